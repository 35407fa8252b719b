"""What a user installs: an abi3 extension, an sdist with everything a build needs, and a package
whose import pulls in none of the optional dependencies. The wheel itself (manylinux, stripped,
audited) is built and checked by .ci/wheel."""

import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _toml(name: str) -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / name).read_text())


def test_extension_is_built_for_the_stable_abi():
    pyo3 = _toml("Cargo.toml")["dependencies"]["pyo3"]
    assert "abi3-py39" in pyo3["features"], "one wheel for CPython >= 3.9 needs pyo3's abi3-py39"
    project = _toml("pyproject.toml")["project"]
    assert project["requires-python"] == ">=3.9"
    import splitans._core as core

    suffix = pathlib.Path(core.__file__).name
    assert suffix in ("_core.so", "_core.abi3.so"), suffix  # a development build, or a wheel's


def test_console_script_and_entry_points_are_declared():
    project = _toml("pyproject.toml")["project"]
    assert project["scripts"] == {"splitans": "splitans.cli:main"}
    assert set(project["entry-points"]) == {"numcodecs.codecs", "zarr.codecs"}


def test_importing_splitans_pulls_in_no_optional_dependency():
    code = (
        "import sys, splitans\n"
        "assert 'torch' not in sys.modules\n"
        "bad = [m for m in ('torch', 'cupy', 'numcodecs', 'zarr', 'zstandard', 'lz4', 'blosc2', 'splitans.cli',"
        " 'splitans.eval', 'splitans.gpu', 'splitans.cut', 'splitans.runtime', 'grpc', 'onnxruntime')"
        " if m in sys.modules]\n"
        "assert callable(splitans.split) and 'splitans.cut' in sys.modules\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _maturin():
    here = pathlib.Path(sys.executable).with_name("maturin")
    return str(here) if here.exists() else shutil.which("maturin")


def test_sdist_builds_and_holds_everything_a_build_needs(tmp_path):
    maturin = _maturin()
    if maturin is None or shutil.which("cargo") is None:
        pytest.skip("maturin sdist needs maturin and cargo")
    out = subprocess.run([maturin, "sdist", "-o", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (sdist,) = tmp_path.glob("splitans-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "PKG-INFO", "rust/src/lib.rs",
                   "rust/src/python/mod.rs", "python/splitans/__init__.py", "python/splitans/_core.pyi",
                   "python/splitans/py.typed", "python/splitans/cli/__init__.py", "python/splitans/numcodecs.py",
                   "python/splitans/zarr3.py", "python/splitans/cuda/rans_decode.cu", "python/splitans/eval/report.py",
                   "python/splitans/runtime/splitans_runtime.proto", "python/splitans/runtime/splitans_runtime_pb2.py",
                   "python/splitans/runtime/splitans_runtime_pb2_grpc.py", "python/splitans/eval/imagenet_classes.txt"):
        assert needed in names, needed
    assert not any(n.startswith(("target/", ".venv", "python/splitans/_core.")) and not n.endswith(".pyi") for n in names)


def _quickstart_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart"):]
    section = section[: section.index("\n## ", 3)]
    import re

    return [block.strip() for block in re.findall(r"```\n(.*?)```", section, re.S)]


def test_quickstart_has_two_commands_and_ci_runs_the_test_command_verbatim():
    commands = _quickstart_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    demo, tests = commands
    assert demo.endswith("splitans demo") and "'.[demo]'" in demo
    assert "'.[test]'" in tests and tests.endswith("-m pytest")
    assert ".venv-test" in tests and " .venv " not in f" {tests} ", "the tests keep out of the demo's .venv"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, ".ci/run must run the README's test command verbatim"
    assert "bash .ci/wheel" in ci


def test_readme_lists_every_extra():
    """Each extra of pyproject.toml has its row in the README's table of extras."""
    extras = _toml("pyproject.toml")["project"]["optional-dependencies"]
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines() if line.startswith("| `[")}
    assert {f"[{name}]" for name in extras} <= rows, sorted({f"[{name}]" for name in extras} - rows)
    quickstart = readme.index("## Quickstart")
    assert quickstart < 1000, "the Quickstart comes first, right after the introduction"


def _expand(extras: dict, names) -> set:
    """The distribution names an install of splitans[names] pulls in, through splitans[...] entries."""
    import re

    out = set()
    for name in names:
        for dep in extras[name]:
            m = re.match(r"splitans\[([^\]]+)\]", dep)
            if m:
                out |= _expand(extras, m.group(1).split(","))
            else:
                out.add(re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower())
    return out


def test_edge_extras_are_light_and_runtime_leaves_ray_to_its_own():
    extras = _toml("pyproject.toml")["project"]["optional-dependencies"]
    assert _expand(extras, ["edge"]) == {"grpcio", "protobuf"}
    assert _expand(extras, ["edge", "onnx"]) == {"grpcio", "protobuf", "onnxruntime"}
    runtime = _expand(extras, ["runtime"])
    assert "torch" in runtime and not runtime & {"ray", "grpcio-tools"}, runtime
    assert "ray" in _expand(extras, ["ray"]) and runtime <= _expand(extras, ["ray"])
