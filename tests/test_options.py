"""splitans.Options (issue 22): one frozen options object, validated once, that every door takes.

What would go wrong without these: a door that drops a field (the bytes of `compress_many`,
`compress_gpu`, numcodecs or the runtime differ from `compress` for the same options), validation
skipped or done per call (an invalid value accepted, or a cached keyword call letting `True`
through as `1`), options that do not survive pickling or a numcodecs config, and mode names that
drift from the native module's.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import typing

import numpy as np
import pytest

import splitans
from splitans import _core, _options, gpu
from splitans.runtime import encodings
from strict import need

from cuda_host import host_ops


def relu_map(shape=(2, 6, 8, 8), seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return np.maximum(x, 0) * np.linspace(0.5, 3, shape[1], dtype=np.float32)[None, :, None, None]


#: Options that each change the bytes of `relu_map()` relative to the same bits alone: a door that
#: ignored the field would give the base bytes.
VARIANTS = [
    dict(bits=4, axis=1),
    dict(bits=4, axis=-3),
    dict(bits=4, clip=(0.0, 1.5)),
    dict(bits=4, axis=1, clip=[(0.0, 1.0 + c / 4) for c in range(6)]),
    dict(bits=4, clip=splitans.Percentile(0.0, 90.0)),
    dict(bits=4, scale=0.2, zero_point=1),
    dict(bits=4, axis=1, scale=[0.1 * (c + 1) for c in range(6)], zero_point=[0, 1, 2, 0, 1, 2]),
    dict(bits=4, mode="dense"),
    dict(bits=4, mode="csr"),
    dict(bits=4, mode="context"),
    dict(bits=4, mode="pcontext"),
    dict(bits=4, mode="csr", reshape=12),
    dict(bits=4, mode="csr", reshape="search"),
    dict(bits=4, precision_bits=9),
    dict(bits=4, chunk_symbols=256),
    dict(bits=4, version=1),
    dict(bits=9),
]


def _ids(kw):
    if not isinstance(kw, dict):
        return None
    return ",".join(f"{k}={v!r}"[:24] for k, v in kw.items())


# -- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, error",
    [
        (dict(bits=0), ValueError),
        (dict(bits=17), ValueError),
        (dict(bits=True), ValueError),
        (dict(bits=4.0), ValueError),
        (dict(axis="1"), ValueError),
        (dict(axis=True), ValueError),
        (dict(mode="sparse"), ValueError),
        (dict(mode=5), TypeError),
        (dict(reshape=0), ValueError),
        (dict(reshape="guess"), ValueError),
        (dict(reshape=2**64), ValueError),
        (dict(nonfinite="nan"), ValueError),
        (dict(precision_bits=17), ValueError),
        (dict(precision_bits=True), TypeError),
        (dict(chunk_symbols=1000), ValueError),
        (dict(chunk_symbols=128), ValueError),
        (dict(threads=0), ValueError),
        (dict(threads=1.5), TypeError),
        (dict(version=2), ValueError),
        (dict(version=True), ValueError),
        (dict(scale=0.1), ValueError),
        (dict(zero_point=0), ValueError),
        (dict(bits=4, scale=0.1, zero_point=16), ValueError),
        (dict(bits=4, scale=0.1, zero_point=0.5), TypeError),
        (dict(bits=4, scale=0.1, zero_point=True), TypeError),
        (dict(bits=4, clip=(0.0, 1.0), scale=0.1, zero_point=0), ValueError),
        (dict(clip=(1.0,)), ValueError),
        (dict(clip=[(0, 1, 2)]), ValueError),
        (dict(clip=splitans.Percentile(50, 10)), ValueError),
        (dict(clip=splitans.Percentile(-1, 10)), ValueError),
    ],
    ids=_ids,
)
def test_an_invalid_value_is_refused_when_built_and_by_every_door(kw, error):
    with pytest.raises(error):
        splitans.Options(**kw)
    # The keyword doors build the same object: the same refusal, before any array is looked at.
    x = relu_map()
    for door in (
        lambda: splitans.compress(x, **kw),
        lambda: splitans.compress(np.arange(8, dtype=np.int16), **kw),
        lambda: splitans.compress_many([x], **kw),
        lambda: gpu.compress_gpu(x, _ops_=object(), **kw),  # refused before the device is touched
        lambda: splitans.Options(bits=4).replace(**kw),
    ):
        with pytest.raises(error):
            door()


def test_keyword_calls_reuse_a_built_object_but_never_confuse_equal_values_of_other_types():
    x = relu_map()
    assert splitans.compress(x, bits=1) == splitans.compress(x, splitans.Options(bits=1))
    with pytest.raises(ValueError, match="True"):
        splitans.compress(x, bits=True)  # equal to 1 and hashing alike: not the cached bits=1
    splitans.compress(x, bits=4, threads=1)
    with pytest.raises(TypeError, match="threads"):
        splitans.compress(x, bits=4, threads=True)
    splitans.compress(x, bits=4)
    with pytest.raises(ValueError, match="bits"):
        splitans.compress(x, bits=4.0)  # equal to the cached 4 as well
    splitans.compress(x, bits=4, axis=1)
    with pytest.raises(ValueError, match="axis"):
        splitans.compress(x, bits=4, axis=1.0)
    splitans.compress(x, bits=4, scale=0.1, zero_point=(1,))
    with pytest.raises(TypeError, match="zero_point"):
        splitans.compress(x, bits=4, scale=0.1, zero_point=(True,))
    assert _options.options_of(None, {"bits": 4}) is _options.options_of(None, {"bits": 4})


def test_frozen_normalized_equal_and_hashable():
    o = splitans.Options(bits=np.int64(4), axis=np.int32(1), scale=np.array([0.5, 0.25]), zero_point=np.array([3, 0]),
                         mode="csr", reshape=np.int64(6), chunk_symbols=np.uint32(1024))
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.bits = 5  # type: ignore[misc]
    same = splitans.Options(bits=4, axis=1, scale=(0.5, 0.25), zero_point=[3, 0], mode="csr", reshape=6,
                            chunk_symbols=1024)
    assert o == same and hash(o) == hash(same) and len({o, same}) == 1
    assert type(o.bits) is int and o.scale == (0.5, 0.25) and o.zero_point == (3, 0) and type(o.reshape) is int
    assert splitans.Options(clip=np.array([0, 2])).clip == (0.0, 2.0)
    assert splitans.Options(clip=[[0, 1], [0, 2]]).clip == ((0.0, 1.0), (0.0, 2.0))
    assert o != o.replace(mode="dense")
    assert repr(splitans.Options(bits=4)).startswith("Options(bits=4, axis=None")


def test_replace_validates_and_keywords_beside_options_replace_its_fields():
    x = relu_map()
    o = splitans.Options(bits=4, mode="csr")
    with pytest.raises(ValueError):
        o.replace(bits=0)
    assert o.mode == "csr"  # unchanged
    assert splitans.compress(x, o, mode="dense") == splitans.compress(x, o.replace(mode="dense"))
    assert splitans.compress(x, o, mode="dense") == splitans.compress(x, bits=4, mode="dense")
    assert splitans.compress_many([x], o, axis=1) == [splitans.compress(x, bits=4, mode="csr", axis=1)]
    with pytest.raises(TypeError, match="splitans.Options"):
        splitans.compress(x, {"bits": 4})
    with pytest.raises(TypeError):
        splitans.compress(x, bitz=4)


@pytest.mark.parametrize("kw", VARIANTS + [dict(), dict(bits=4, threads=2, nonfinite="clamp")], ids=_ids)
def test_options_pickle_and_round_trip_through_a_json_config(kw):
    o = splitans.Options(**kw)
    back = pickle.loads(pickle.dumps(o))
    assert back == o and back._native is not o._native
    assert repr(back._native) == repr(o._native)
    config = json.loads(json.dumps(o.to_config()))
    assert splitans.Options.from_config(config) == o
    assert set(config) <= {f.name for f in dataclasses.fields(o) if f.init}
    assert splitans.Options().to_config() == {}


# -- the doors give the same bytes ---------------------------------------------------------------


@pytest.mark.parametrize("kw", VARIANTS, ids=_ids)
def test_every_cpu_door_gives_the_bytes_of_compress(kw):
    x, y = relu_map(), relu_map(seed=1)
    o = splitans.Options(**kw)
    want = splitans.compress(x, o)
    # The field matters here, so a door that ignored it would be seen.
    assert want != splitans.compress(x, bits=4 if kw.get("bits") != 4 else 8), "variant changes nothing"
    assert splitans.compress(x, **kw) == want
    assert splitans.compress(x.astype(np.float64), o) == splitans.compress(x.astype(np.float64), **kw)
    assert splitans.compress_many([x, y], o) == [want, splitans.compress(y, o)]
    assert splitans.compress_many([x, y], **kw) == [want, splitans.compress(y, **kw)]
    if set(kw) <= {"bits", "mode", "axis"}:
        from splitans.numcodecs import Splitans

        codec = Splitans(**kw)
        assert codec.encode(x) == want
        assert Splitans.from_config(json.loads(json.dumps(codec.get_config()))).encode(x) == want
        assert pickle.loads(pickle.dumps(codec)).encode(x) == want
    if set(kw) <= {"bits", "axis"} or kw.get("mode") in encodings.CONTAINER_STRATEGIES:
        strategy = kw.get("mode", "auto")
        opts = encodings.activation_options(strategy, kw["bits"], kw.get("axis"))
        _, payload, _ = encodings.encode(strategy, x, options=opts)
        assert payload == splitans.compress(x, o.replace(mode=strategy, threads=1)) == want
        _, payload, _ = encodings.encode(strategy, x, bits=kw["bits"], axis=kw.get("axis"))
        assert payload == want


def test_the_integer_doors_take_the_coder_fields():
    q = np.arange(3000, dtype=np.int32).reshape(30, 100) % 37
    o = splitans.Options(precision_bits=10, chunk_symbols=512)
    want = splitans.compress(q, o)
    assert want != splitans.compress(q)
    assert want == splitans.compress(q, precision_bits=10, chunk_symbols=512)
    assert splitans.compress_many([q, q.astype(np.uint8)], o) == [want, splitans.compress(q.astype(np.uint8), o)]


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    if host_ops.compiler() is None:
        need(False, "g++ not found: the host build of the CUDA kernels needs a C++17 compiler (apt-get install g++)")
    return host_ops.HostOps(host_ops.build(tmp_path_factory.mktemp("cuda_host")))


@pytest.mark.parametrize("kw", [kw for kw in VARIANTS if kw.get("mode", "auto") in _options.GPU_MODES
                                and not isinstance(kw.get("clip"), splitans.Percentile)], ids=_ids)
def test_the_gpu_door_gives_the_bytes_of_compress(ops, kw):
    """The GPU pipeline with its kernels run on the host (tests/cuda_host)."""
    x = relu_map()
    o = splitans.Options(**kw)
    want = splitans.compress(x, o)
    assert gpu.compress_gpu(x, o, _ops_=ops) == want
    assert gpu.compress_gpu(x, _ops_=ops, **kw) == want


def test_the_gpu_door_refuses_what_compress_refuses(ops):
    q = np.arange(12, dtype=np.int32)
    for kw in (dict(mode="dense"), dict(reshape=3), dict(nonfinite="clamp"), dict(bits=4), dict(version=3)):
        with pytest.raises(ValueError, match="integer arrays .* are compressed losslessly"):
            splitans.compress(q, **kw)
        with pytest.raises(ValueError, match="integer arrays .* are compressed losslessly"):
            gpu.compress_gpu(q, _ops_=ops, **kw)
    for mode in set(_options.MODES) - set(_options.GPU_MODES):
        with pytest.raises(ValueError, match="CPU only"):
            gpu.compress_gpu(relu_map(), bits=4, mode=mode, _ops_=ops)


def test_compress_many_refuses_what_compress_refuses_when_no_array_takes_it():
    q = np.arange(12, dtype=np.int32)
    for kw in (dict(mode="dense"), dict(reshape=3), dict(nonfinite="clamp"), dict(bits=4), dict(version=3)):
        with pytest.raises(ValueError, match=r"integer arrays \(here int32\) are compressed losslessly"):
            splitans.compress_many([q, q], **kw)
    # A float array in the list takes them; the integer arrays are coded as compress codes them.
    x = relu_map()
    blobs = splitans.compress_many([q, x], bits=4, mode="dense")
    assert blobs == [splitans.compress(q), splitans.compress(x, bits=4, mode="dense")]


# -- the names come from _core -------------------------------------------------------------------


def test_the_enumerations_are_the_native_modules():
    assert splitans.Options.__dataclass_fields__["mode"].type == "Mode"  # annotations are strings here
    assert typing.get_args(_options.Mode) == _core.MODES == _options.MODES
    assert typing.get_args(_options.NonFinite) == _core.NONFINITE
    assert typing.get_args(_options.ReshapeMethod) == _core.RESHAPES
    assert set(_core.GPU_MODES) < set(_core.MODES)
    from splitans import numcodecs as nc

    assert nc.MODES == _core.MODES
    for mode in _core.MODES:
        assert splitans.Options(mode=mode)._native.mode == mode
    for value in _core.NONFINITE:
        assert splitans.Options(nonfinite=value)._native.nonfinite == value


def test_the_native_options_match_their_stub():
    import inspect
    import pathlib
    import re

    stub = pathlib.Path(splitans.__file__).with_name("_core.pyi").read_text()
    m = re.search(r"class CoderOptions:.*?def __new__\(\s*cls,(.*?)\)\s*->", stub, re.S)
    assert m
    stub_params = [p.split(":")[0].strip() for p in m.group(1).split("\n") if p.strip()]
    assert stub_params == list(inspect.signature(_core.CoderOptions).parameters)
    for name in ("MODES", "GPU_MODES", "NONFINITE", "RESHAPES", "VERSIONS"):
        assert hasattr(_core, name) and re.search(rf"^{name}: ", stub, re.M), name
    for prop in ("bits", "mode", "reshape", "nonfinite", "precision_bits", "chunk_log2", "threads", "version"):
        assert f"def {prop}(self)" in stub and hasattr(_core.CoderOptions, prop), prop
    with pytest.raises(AttributeError):
        splitans.Options(bits=4)._native.bits = 5  # frozen on the native side too


def test_the_docstring_examples_run():
    import doctest

    result = doctest.testmod(_options, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


# -- the edges of each range, and the messages (each case kills a mutant tools/mutation/run.py
# found alive: the native object refuses some of these too, so only the message tells which
# check refused them) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(bits=0), "bits must be an integer from 1 to 16, got 0"),
        (dict(bits=17), "bits must be an integer from 1 to 16, got 17"),
        (dict(reshape=0), "reshape must be a positive row count that divides"),
        (dict(reshape=2**63), "reshape must be a positive row count that divides"),
        (dict(threads=2**31), r"threads must be .* up to 2\*\*31 - 1; got 2147483648"),
        (dict(bits=4, scale=(0.1, 0.1, 0.1), zero_point=(3, 20, 30)), "zero_point 20 is out of range for 4 bits"),
    ],
    ids=_ids,
)
def test_each_range_is_refused_past_its_edge_by_its_own_check(kw, message):
    with pytest.raises(ValueError, match=message):
        splitans.Options(**kw)


@pytest.mark.parametrize(
    "kw", [dict(bits=1), dict(bits=16), dict(reshape=1), dict(reshape=64), dict(reshape=2**63 - 1),
           dict(threads=1), dict(threads=2**31 - 1), dict(version=1), dict(version=3)], ids=_ids,
)
def test_each_range_is_accepted_up_to_its_edge(kw):
    o = splitans.Options(**kw)
    ((name, value),) = kw.items()
    assert getattr(o, name) == value
    assert splitans.Options.from_config(json.loads(json.dumps(o.to_config()))) == o


def test_the_version_annotation_is_the_native_versions():
    hints = typing.get_type_hints(splitans.Options, vars(_options))
    (literal, _none) = typing.get_args(hints["version"])
    assert sorted(typing.get_args(literal)) == sorted(_core.VERSIONS)


def test_a_config_s_percentile_holds_nothing_else():
    assert splitans.Options.from_config({"clip": {"percentile": [1, 99]}}).clip == splitans.Percentile(1, 99)
    with pytest.raises(ValueError, match="percentile"):
        splitans.Options.from_config({"clip": {"percentile": [1, 99], "low": 0}})
