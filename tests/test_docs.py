"""The docstring examples and the README's Python examples run as tests."""

import doctest
import pathlib
import re

import splitans
import splitans._codec
import splitans.calibration.search
import splitans._fitted


def test_docstrings():
    for module in (splitans, splitans._codec, splitans._fitted, splitans.calibration.search):
        result = doctest.testmod(module, raise_on_error=False)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_readme_python_blocks():
    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert blocks, "README has no python examples"
    for block in blocks:
        exec(compile(block, str(readme), "exec"), {})


def _top_level_split(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[(" and 1 or ch in "])" and -1 or 0
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def test_stub_matches_native_module():
    import inspect

    stub = pathlib.Path(splitans.__file__).with_name("_core.pyi").read_text()
    native = splitans._core
    for name in (
        "encode", "decode", "inspect", "max_compressed_size", "encode_feature", "plan_feature", "decode_feature_stages",
        "gpu_plan_stream", "gpu_estimated_len", "gpu_affine_from_range", "gpu_model_rows", "gpu_candidate_rows",
        "gpu_search_cost", "gpu_layout", "gpu_stream_layout", "codec_fit", "codec_fit_quantizer", "decode_into",
        "decode_many", "encode_many", "encode_feature_many", "compress_feature", "gpu_resolve_params",
        "gpu_array_container", "gpu_feature_container",
    ):
        params = list(inspect.signature(getattr(native, name)).parameters)
        m = re.search(rf"def {name}\((.*?)\)\s*->", stub, re.S)
        assert m, name
        stub_params = [p.split(":")[0].strip() for p in _top_level_split(m.group(1)) if p.strip()]
        assert stub_params == params, name
    for name in ("CorruptDataError", "UnsupportedVersionError", "OutputTooLargeError", "FORMAT_VERSION", "MAX_NDIM"):
        assert hasattr(native, name) and name in stub
