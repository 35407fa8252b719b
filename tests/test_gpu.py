"""The GPU path on a real device: CuPy kernels, byte for byte the CPU path's containers.

Skipped without CuPy or a CUDA device (the host build of the same kernels is tested by
test_cuda_host_logic.py, their compilation by test_cuda_compile.py); then only the error for a
missing device is checked here.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import splitans
from splitans import gpu

HAVE_GPU = gpu.available()
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device (pip install cupy-cuda13x)")


@pytest.mark.skipif(HAVE_GPU, reason="CuPy and a CUDA device are present")
def test_clear_error_without_cupy_or_device():
    assert not gpu.available()
    x = np.zeros((2, 8), np.float32)
    blob = splitans.compress(x, bits=8)
    for call in (
        lambda: gpu.compress_gpu(x, bits=8),
        lambda: gpu.decompress_gpu(blob),
        lambda: gpu.rans_encode_gpu(np.zeros(8, np.uint8)),
        lambda: gpu.rans_decode_gpu(splitans.rans_encode(np.zeros(8, np.uint8))),
    ):
        with pytest.raises(RuntimeError, match="needs CuPy and a CUDA device: pip install cupy-cuda13x"):
            call()


@pytest.fixture(scope="module")
def cp():
    if not HAVE_GPU:
        pytest.skip("needs CuPy and a CUDA device (pip install cupy-cuda13x)")
    import cupy

    return cupy


def h(n):
    """FORMAT.md 5.7: a fixed pseudo-random sequence of bytes, as uint32."""
    return ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32) >> np.uint64(24)).astype(
        np.uint32
    )


def fix_crc(blob: bytearray) -> bytes:
    """The CRC recomputed: FORMAT.md 2.2, or 10.1 for a compact container (no length field)."""
    if blob[0] == 0xF3:
        struct.pack_into("<I", blob, 1, zlib.crc32(bytes(blob[5:]), zlib.crc32(bytes(blob[:1]))))
    else:
        struct.pack_into("<I", blob, 8, zlib.crc32(bytes(blob[12:]), zlib.crc32(bytes(blob[:8]))))
    return bytes(blob)


def behind_checksum(blob) -> int:
    """The first byte a flip may touch and still reach the parsers (after the CRC and, in
    version 1, total_len)."""
    return 5 if blob[0] == 0xF3 else 20


def outcome(fn):
    try:
        r = fn()
        return ("ok", r.get() if hasattr(r, "get") else np.asarray(r))
    except splitans.CorruptDataError:
        return ("corrupt", None)
    except ValueError:
        return ("value", None)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


# ------------------------------------------------------------------------------------------------
# Symbol streams


def stream(kind: str, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "geom8":
        return np.minimum(rng.geometric(0.12, n), 255).astype(np.uint8)
    if kind == "uniform8":
        return rng.integers(0, 256, n, dtype=np.uint8)
    if kind == "relu8":  # zero-heavy quantized activation codes
        return np.where(rng.random(n) < 0.6, 0, np.minimum(rng.exponential(20, n), 255)).astype(np.uint8)
    if kind == "wide16":
        return (rng.random(n) ** 3 * 5000).astype(np.uint16)
    if kind == "bimodal16":
        return np.where(rng.random(n) < 0.5, rng.integers(0, 40, n), rng.integers(60000, 65536, n)).astype(np.uint16)
    raise ValueError(kind)


STREAMS = [
    ("geom8", 1, {}),
    ("geom8", 100, {}),
    ("geom8", 5000, {}),
    ("relu8", 40000, {}),
    ("relu8", 300007, dict(chunk_symbols=1 << 17)),
    ("geom8", 1 << 20, {}),
    ("relu8", (1 << 24) + 12345, {}),  # default chunks of 2^18, 32 lanes, a partial last chunk
    ("uniform8", 100000, {}),  # raw
    ("geom8", 200000, dict(precision_bits=10, chunk_symbols=4096)),
    ("geom8", 70000, dict(chunk_symbols=256)),
    ("wide16", 3000, {}),
    ("wide16", 250000, dict(precision_bits=16)),
    ("bimodal16", 1 << 20, dict(chunk_symbols=1 << 16)),
]


@needs_gpu
@pytest.mark.parametrize("kind,n,kw", STREAMS, ids=[f"{k}-{n}" for k, n, _ in STREAMS])
def test_rans_matches_cpu(cp, kind, n, kw):
    s = stream(kind, n)
    cpu = splitans.rans_encode(s, **kw)
    dev = gpu.rans_encode_gpu(cp.asarray(s), **kw)
    assert dev == cpu
    back = gpu.rans_decode_gpu(cpu)
    assert isinstance(back, cp.ndarray) and same(back.get(), s)
    assert same(splitans.rans_decode(dev), s)


@needs_gpu
def test_format_test_vectors(cp):
    s = ((h(100000) ** 2) >> 12).astype(np.uint8)
    for x, kw in (
        (s, {}),
        (s[:20000], dict(chunk_symbols=4096)),
        (((h(30000) ** 3) >> 10).astype(np.uint16), dict(precision_bits=12)),
    ):
        assert gpu.rans_encode_gpu(cp.asarray(x), **kw) == splitans.rans_encode(x, **kw)
    x = ((h(6000).astype(np.int32) - 128) ** 3).reshape(60, 100)
    assert gpu.compress_gpu(cp.asarray(x)) == splitans.compress(x)


@needs_gpu
@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"])
def test_integer_arrays(cp, dtype):
    rng = np.random.default_rng(5)
    x = rng.geometric(0.02, (3, 40, 500)).astype(dtype)
    if np.dtype(dtype).kind == "i":
        x[::2] = -x[::2]
    cpu = splitans.compress(x)
    assert gpu.compress_gpu(cp.asarray(x)) == cpu
    y = gpu.decompress_gpu(cpu)
    assert y.dtype == x.dtype and same(y.get(), x)


# ------------------------------------------------------------------------------------------------
# Features


def activation(kind: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if kind == "relu":  # 1 x 64 x 56 x 56, per-channel scales, ~55% zeros
        return (np.maximum(rng.normal(-0.1, 1, (1, 64, 56, 56)), 0) * rng.uniform(0.2, 4, (1, 64, 1, 1))).astype(
            np.float32
        )
    if kind == "signed":
        return (rng.standard_t(4, (2, 32, 28, 28)) * 0.5).astype(np.float32)
    if kind == "sparse":
        x = np.zeros((16, 32, 32), np.float32)
        x[:, :, :2] = h(1024).reshape(16, 32, 2) / 64
        return x
    if kind == "special":
        x = rng.normal(0, 1, (40, 300)).astype(np.float32)
        x.reshape(-1)[::97] = np.nan
        x.reshape(-1)[5::101] = np.inf
        x.reshape(-1)[7::103] = -np.inf
        x.reshape(-1)[9::89] = np.float32(1e-41)
        return x
    if kind == "tiny":
        return (rng.random((40, 50)) * 3.8e-42).astype(np.float32)
    raise ValueError(kind)


FEATURES = [
    *[("relu", dict(bits=b)) for b in range(1, 17)],
    *[("signed", dict(bits=b, axis=1)) for b in (1, 3, 8, 12, 16)],
    ("relu", dict(bits=8, axis=1)),
    ("relu", dict(bits=4, mode="csr")),
    ("relu", dict(bits=8, mode="csr", reshape="search")),
    ("relu", dict(bits=8, mode="dense", chunk_symbols=1 << 12)),
    ("relu", dict(bits=6, clip=(0.0, 3.0))),
    ("relu", dict(bits=8, axis=1, scale=[0.02] * 64, zero_point=[0] * 64)),
    ("sparse", dict(bits=8)),
    ("sparse", dict(bits=8, reshape="search")),
    ("signed", dict(bits=2, mode="csr", reshape=1568)),
    ("special", dict(bits=8, nonfinite="clamp")),
    ("special", dict(bits=10, nonfinite="clamp", axis=0)),
    ("tiny", dict(bits=8)),
]


@needs_gpu
@pytest.mark.parametrize("kind,kw", FEATURES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(FEATURES)])
def test_features_match_cpu(cp, kind, kw):
    x = activation(kind)
    cpu = splitans.compress(x, **kw)
    assert gpu.compress_gpu(cp.asarray(x), **kw) == cpu
    a = splitans.decompress(cpu)
    b = gpu.decompress_gpu(cpu)
    assert isinstance(b, cp.ndarray) and same(b.get(), a)


@needs_gpu
def test_context_mode_decodes_through_the_cpu(cp):
    x = np.maximum(np.random.default_rng(3).normal(size=(2, 8, 14, 14)), 0).astype(np.float32)
    blob = splitans.compress(x, bits=3, mode="context")
    y = gpu.decompress_gpu(blob)
    assert isinstance(y, cp.ndarray) and same(y.get(), splitans.decompress(blob))
    for mode in ("context", "best"):
        with pytest.raises(ValueError, match="CPU only"):
            gpu.compress_gpu(cp.asarray(x), bits=3, mode=mode)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_float16_float64_inputs(cp, dtype):
    x = activation("signed").astype(dtype)
    cpu = splitans.compress(x, bits=8, axis=1)
    assert gpu.compress_gpu(cp.asarray(x), bits=8, axis=1) == cpu
    y = gpu.decompress_gpu(cpu)
    assert y.dtype == dtype and same(y.get(), splitans.decompress(cpu))


@needs_gpu
def test_non_contiguous_input(cp):
    x = activation("signed")
    xt = cp.asarray(x).transpose(0, 2, 3, 1)
    assert gpu.compress_gpu(xt, bits=8) == splitans.compress(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), bits=8)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_cuda_tensors(cp, dtype):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    t = torch.from_numpy(activation("relu")).to(getattr(torch, dtype))
    cpu = splitans.compress(t, bits=8)
    assert gpu.compress_gpu(t.cuda(), bits=8) == cpu
    y = gpu.decompress_gpu(cpu, output="torch")
    assert y.is_cuda and y.dtype == t.dtype
    assert torch.equal(y.cpu(), splitans.decompress(cpu, output="torch"))


@needs_gpu
def test_errors(cp):
    x = cp.asarray(activation("special"))
    with pytest.raises(ValueError, match="NaN or infinity"):
        gpu.compress_gpu(x, bits=8)
    with pytest.raises(ValueError, match="Percentile"):
        gpu.compress_gpu(x, bits=8, clip=splitans.Percentile(1, 99), nonfinite="clamp")
    with pytest.raises(TypeError):
        gpu.compress_gpu(x)
    for bad in (b"", b"SPNS", b"not a container at all", splitans.rans_encode(stream("geom8", 5000))[:-1]):
        with pytest.raises(splitans.CorruptDataError):
            gpu.decompress_gpu(bad)
        with pytest.raises(splitans.CorruptDataError):
            gpu.rans_decode_gpu(bad)


@needs_gpu
@pytest.mark.parametrize(
    "blob",
    [
        splitans.rans_encode(stream("relu8", 300007), chunk_symbols=1 << 17),
        splitans.rans_encode(stream("wide16", 40000)),
        splitans.compress(activation("relu")[:, :8], bits=8, mode="csr"),
        splitans.compress(activation("signed")[:1], bits=12, axis=1),
    ],
    ids=["u8-32lanes", "u16", "feature-csr", "feature-dense-axis"],
)
def test_corrupt_input_rejected_like_cpu(cp, blob):
    """Byte flips with the CRC fixed up, so the kernels' end-of-chunk, CSR-column and code-range
    checks decide: the GPU raises CorruptDataError exactly when the CPU does, else decodes the same."""
    rng = np.random.default_rng(len(blob))
    seen = set()
    for _ in range(120):
        b = bytearray(blob)
        b[int(rng.integers(behind_checksum(blob) + 20, len(b)))] ^= int(rng.integers(1, 256))
        data = fix_crc(b)
        c = outcome(lambda: splitans.decompress(data))
        g = outcome(lambda: gpu.decompress_gpu(data))
        assert c[0] == g[0]
        if c[0] == "ok":
            assert same(np.asarray(c[1]), g[1])
        seen.add(c[0])
    assert "corrupt" in seen


def _relu_maps(n, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    x = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2)) / 3
    return np.maximum(x - np.quantile(x, 0.5), 0).astype(np.float32)


@needs_gpu
@pytest.mark.parametrize(
    "shape,bits,axis,clip",
    [((32, 7, 7), 4, None, "calibration"), ((3, 4, 120, 150), 4, 1, "calibration"), ((8, 16, 16), 8, None, None),
     ((16, 56, 56), 2, 0, "calibration")],
)
def test_fitted_codec_matches_cpu(cp, shape, bits, axis, clip):
    codec = splitans.Codec.fit(_relu_maps(8, shape, 1), bits=bits, axis=axis, clip=clip)
    for x in _relu_maps(2, shape, 2):
        cpu = codec.compress(x)
        assert codec.compress_gpu(cp.asarray(x)) == cpu
        y = codec.decompress_gpu(cpu)
        assert isinstance(y, cp.ndarray) and same(y.get(), codec.decompress(cpu))


@needs_gpu
def test_fitted_codec_torch_and_corrupt(cp):
    torch = pytest.importorskip("torch")
    codec = splitans.Codec.fit(_relu_maps(8, (16, 28, 28), 3), bits=4)
    x = _relu_maps(1, (16, 28, 28), 4)[0]
    blob = codec.compress(x)
    assert codec.compress_gpu(torch.from_numpy(x).cuda()) == blob
    y = codec.decompress_gpu(blob, output="torch")
    assert y.is_cuda and torch.equal(y.cpu(), torch.from_numpy(codec.decompress(blob)))
    rng = np.random.default_rng(0)
    for _ in range(40):
        b = bytearray(blob)
        b[int(rng.integers(7, len(b)))] ^= int(rng.integers(1, 256))
        ident = bytes.fromhex(codec.id)
        b[3:7] = zlib.crc32(ident + bytes(b[:3]) + bytes(b[7:])).to_bytes(4, "little")
        data = bytes(b)
        c, g = outcome(lambda: codec.decompress(data)), outcome(lambda: codec.decompress_gpu(data))
        assert c[0] == g[0] and (c[0] != "ok" or same(c[1], g[1]))
