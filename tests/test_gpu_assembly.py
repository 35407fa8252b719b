"""The GPU path's containers are written by Rust (``_core.gpu_array_container``,
``gpu_feature_container``: FORMAT.md 2, 6.2, 10), from the streams its kernels coded. Given the
streams the CPU encoder coded, they must give back exactly ``splitans.compress``'s bytes, for
both container versions, both layouts and the integer kinds."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import splitans
from splitans import _core


def records(blob: bytes) -> list:
    """The records of a version-1 container (FORMAT.md 2.5): each u64 length, then its bytes."""
    (header_len,) = struct.unpack_from("<H", blob, 6)
    out, pos = [], header_len
    while pos < len(blob):
        (n,) = struct.unpack_from("<Q", blob, pos)
        out.append(blob[pos + 8 : pos + 8 + n])
        pos += 8 + n
    assert pos == len(blob)
    return out


def section(rec: bytes) -> dict:
    """The feature section (FORMAT.md 6.2)."""
    bits, mode, axis, _, clamped, rows, n = struct.unpack_from("<BBBBQQI", rec)
    params = [struct.unpack_from("<fi", rec, 24 + 8 * k) for k in range(n)]
    return dict(
        bits=bits,
        mode=("dense", "csr")[mode],
        axis=None if axis == 255 else axis,
        clamped=clamped,
        rows=rows,
        scale=[p[0] for p in params],
        zero_point=[p[1] for p in params],
    )


def feature(seed: int, shape, density: float, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(size=shape), 0) * (rng.random(shape) < density)
    return x.astype(dtype)


CASES = [
    (dict(bits=8), (4, 16, 16), 0.5, np.float32),
    (dict(bits=4, axis=1), (2, 8, 9, 7), 0.3, np.float32),
    (dict(bits=12, mode="csr", reshape=16), (16, 64), 0.1, np.float32),
    (dict(bits=6, mode="csr", reshape=8, axis=0), (8, 40), 0.05, np.float16),
    (dict(bits=8, mode="dense", clip=(0.0, 1.0)), (3, 33), 0.9, np.float64),
    (dict(bits=2, mode="csr", reshape=1), (1000,), 0.02, np.float32),
    (dict(bits=8, scale=0.05, zero_point=3), (5, 7), 1.0, np.float32),
    (dict(bits=8), (0, 4), 1.0, np.float32),
    (dict(bits=8), (6,), 0.0, np.float32),
]


@pytest.mark.parametrize("kw,shape,density,dtype", CASES)
def test_feature_containers_are_the_cpu_encoders(kw, shape, density, dtype):
    x = feature(len(shape) + int(100 * density), shape, density, dtype)
    v1 = splitans.compress(x, version=1, **kw)
    recs = records(v1)
    sec = section(recs[0])
    streams = recs[1:]
    nnz = struct.unpack_from("<Q", streams[2], 2)[0] if sec["mode"] == "csr" else 0
    name = np.dtype(dtype).name
    args = (name, tuple(shape), sec["bits"], sec["mode"], sec["axis"], sec["scale"], sec["zero_point"])
    rest = (sec["clamped"], sec["rows"], nnz, [bytearray(s) for s in streams])
    assert _core.gpu_feature_container(1, *args, *rest) == v1
    # The compact container of the same streams, in the layout the version-1 one took.
    v3 = splitans.compress(x, version=3, **{**kw, "mode": sec["mode"]})
    if sec["mode"] == "csr":
        assert splitans.inspect(v3)["rows"] == sec["rows"]
    assert _core.gpu_feature_container(3, *args, *rest) == v3


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int32", "uint64", "int64"])
def test_array_containers_are_the_cpu_encoders(dtype):
    rng = np.random.default_rng(7)
    x = (rng.geometric(0.2, size=(5, 300)) - 3).astype(dtype)
    blob = splitans.compress(x)
    assert _core.gpu_array_container("array", dtype, x.shape, records(blob)) == blob
    sym = splitans.rans_encode(x.reshape(-1)[:777].astype(np.uint8))
    assert _core.gpu_array_container("symbols", "uint8", (777,), records(sym)) == sym


def test_bad_arguments_are_value_errors():
    blob = splitans.compress(np.ones(8, np.float32), version=1, bits=8)
    streams = records(blob)[1:]
    args = ("float32", (8,), 8, "dense", None, [0.1], [0], 0, 0, 0)
    with pytest.raises(ValueError):
        _core.gpu_feature_container(2, *args, streams)
    with pytest.raises(ValueError):
        _core.gpu_feature_container(1, "int8", *args[1:], streams)
    with pytest.raises(ValueError):
        _core.gpu_feature_container(1, *args, streams * 2)
    with pytest.raises(ValueError):
        _core.gpu_array_container("feature", "uint8", (8,), streams)


@pytest.mark.parametrize(
    "kw",
    [
        dict(bits=8),
        dict(bits=5, axis=1),
        dict(bits=8, clip=(-0.5, 2.0)),
        dict(bits=6, axis=1, clip=[(0.0, 1.0), (-1.0, 1.0), (0.0, 0.25)]),
        dict(bits=8, scale=0.02, zero_point=4),
        dict(bits=4, axis=1, scale=[0.1, 0.2, 0.3], zero_point=[0, 1, 2]),
    ],
)
def test_resolved_parameters_are_the_cpu_encoders(kw):
    """The GPU path's quantization parameters come from the CPU encoder's resolve_params: given
    the range scan the device makes (here numpy's), they are those the CPU container stores."""
    x = np.random.default_rng(3).normal(size=(4, 3, 20)).astype(np.float32)
    sec = section(records(splitans.compress(x, version=1, **kw))[0])
    axis = kw.get("axis")
    channels = 1 if axis is None else x.shape[axis]
    if "scale" in kw:
        s = np.atleast_1d(np.float32(kw["scale"])).tolist()
        got = _core.gpu_resolve_params(kw["bits"], channels, params=(s, np.atleast_1d(kw["zero_point"]).tolist()))
    elif "clip" in kw:
        clip = [kw["clip"]] if np.ndim(kw["clip"]) == 1 else kw["clip"]
        got = _core.gpu_resolve_params(kw["bits"], channels, clip=[tuple(map(float, c)) for c in clip])
    else:
        per = np.moveaxis(x, 1, 0).reshape(channels, -1) if axis is not None else x.reshape(1, -1)
        pairs = [(float(r.min()), float(r.max())) for r in per]
        got = _core.gpu_resolve_params(kw["bits"], channels, min_max=(pairs, True))
        assert got[2] is None  # the data's own range: nothing is clamped
    scale, zero_point, _ = got
    assert np.array_equal(np.float32(scale), np.float32(sec["scale"]))
    assert zero_point == sec["zero_point"]


def test_resolve_refuses_what_the_cpu_refuses():
    x = np.ones((2, 3), np.float32)
    for kw, call in [
        (dict(clip=(1.0, 0.0)), dict(clip=[(1.0, 0.0)])),
        (dict(clip=[(0.0, 1.0)] * 2, axis=1), dict(clip=[(0.0, 1.0)] * 2)),
        (dict(scale=-1.0, zero_point=0), dict(params=([-1.0], [0]))),
    ]:
        with pytest.raises(ValueError) as cpu:
            splitans.compress(x, bits=8, **kw)
        with pytest.raises(ValueError) as gpu:
            _core.gpu_resolve_params(8, 3 if "axis" in kw else 1, **call)
        assert str(gpu.value) == str(cpu.value)


def _symbols(kind: str, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    dtype = np.uint8 if width == 1 else np.uint16
    if kind == "empty":
        return np.zeros(0, dtype)
    if kind == "constant":
        return np.full(1000, 200 if width == 1 else 40000, dtype)
    if kind == "raw":  # uniform: coding cannot beat the raw stream
        return rng.integers(0, 256 if width == 1 else 65536, 300).astype(dtype)
    return np.minimum(rng.geometric(0.2, 50_000) - 1, 255 if width == 1 else 65535).astype(dtype)


@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("kind", ["empty", "constant", "raw", "rans"])
def test_a_stream_head_is_the_cpu_encoder_s(kind, width):
    """``gpu_stream_head`` writes what precedes the device's bytes in each stream mode exactly as
    the CPU encoder does (FORMAT.md 4, 5.2)."""
    a = _symbols(kind, width)
    (stream,) = records(splitans.rans_encode(a))
    mode, w, n = struct.unpack_from("<BBQ", stream)
    assert (["empty", "constant", "raw", "rans"][mode], w, n) == (kind, width, a.size)
    counts = np.bincount(a, minlength=1 << (8 * width)).astype(np.uint64)
    plan = _core.gpu_plan_stream(counts, width, None, None)
    if kind in ("empty", "constant"):
        assert _core.gpu_stream_head(kind, width, a.size, symbol=plan.get("symbol")) == stream
    elif kind == "raw":
        assert _core.gpu_stream_head("raw", width, a.size) == stream[:10]
    else:
        head_len = 10 + 4 + len(plan["table_bytes"]) + 4 * plan["chunks"]
        words = np.frombuffer(stream, "<u4", plan["chunks"], head_len - 4 * plan["chunks"]).astype(np.uint32)
        coded = (plan["precision_bits"], plan["lanes"], plan["chunk_log2"], plan["table_bytes"], words)
        assert _core.gpu_stream_head("rans", width, a.size, coded=coded + (len(stream) - head_len,)) == stream[:head_len]
        # Step 7: a body that leaves the stream no shorter than the raw one gives the raw stream.
        raw_len = 10 + width * a.size
        assert _core.gpu_stream_head("rans", width, a.size, coded=coded + (raw_len - head_len,)) is None
        assert _core.gpu_stream_head("rans", width, a.size, coded=coded + (raw_len - head_len - 1,)) is not None


@pytest.mark.parametrize(
    "args, kw",
    [
        (("constant", 1, 10), {}),  # no symbol
        (("constant", 1, 10), dict(symbol=256)),  # wider than the symbols
        (("empty", 1, 3), {}),  # an empty stream has no symbols
        (("raw", 3, 10), {}),  # no such width
        (("rans", 1, 10), {}),  # no coded parameters
        (("zstd", 1, 10), {}),
    ],
)
def test_a_stream_head_refuses_what_no_stream_is(args, kw):
    with pytest.raises(ValueError):
        _core.gpu_stream_head(*args, **kw)
