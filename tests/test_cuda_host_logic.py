"""The GPU path without a GPU: its kernels' logic compiled for the host, its pipeline as is.

tests/cuda_host/driver.cpp compiles the kernels' headers (python/splitans/cuda/rans_common.cuh and
feature_common.cuh) with g++; the rANS chunk coders run there with HostWarp, which executes the 32
lanes of a warp one after the other and builds each ballot mask from their predicates, so the word
placement (ballot + prefix popcount), the symbol tiles and the word ring of the kernels run exactly
as written. ``HostOps`` stands in for the CuPy device, and ``splitans.gpu``'s own pipeline (the
plan through the Rust bindings, chunk offsets, packing, container, CRC, validation and error
handling) runs unchanged on top. Every output is compared byte for byte with the CPU path.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import splitans
from splitans import gpu
from splitans.gpu import loader, pipelines
from strict import need, need_module
from splitans.gpu import rans as gpu_rans

from cuda_host import host_ops
from reference import varint


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    if host_ops.compiler() is None:
        need(False, "g++ not found: the host build of the CUDA kernels needs a C++17 compiler (apt-get install g++)")
    return host_ops.HostOps(host_ops.build(tmp_path_factory.mktemp("cuda_host")))


def h(n):
    """FORMAT.md 5.7: a fixed pseudo-random sequence of bytes, as uint32."""
    return ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32) >> np.uint64(24)).astype(
        np.uint32
    )


def symbols(dist: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dist == "geom":
        return np.minimum(rng.geometric(0.15, n), 255).astype(np.uint8)
    if dist == "skew":
        return (rng.random(n) ** 4 * 40).astype(np.uint8)
    if dist == "uniform":
        return rng.integers(0, 256, n, dtype=np.uint8)
    if dist == "two":
        return rng.choice(np.array([3, 200], np.uint8), n, p=[0.9, 0.1])
    if dist == "wide":
        return (rng.random(n) ** 3 * 5000).astype(np.uint16)
    if dist == "spread16":
        return (rng.integers(0, 65536, n) & 0xF0F3).astype(np.uint16)
    if dist == "hash":
        return ((h(n) ** 2) >> 12).astype(np.uint8)
    raise ValueError(dist)


# (distribution, n, precision_bits, chunk_symbols): between them every lane count 1..32, single
# and multiple chunks, partial last chunks and steps, chunks shorter and longer than a symbol
# tile (1024) and word rings that wrap.
STREAMS = [
    ("geom", 0, None, None),
    ("geom", 1, None, None),
    ("two", 2, None, None),
    ("geom", 31, None, None),
    ("geom", 3000, None, None),
    ("geom", 700, None, 256),
    ("skew", 5000, None, 4096),
    ("skew", 9000, 12, 8192),
    ("skew", 20000, None, None),
    ("uniform", 20000, None, None),
    ("geom", 40001, 9, None),
    ("geom", 200003, None, None),
    ("geom", 300007, None, 1 << 17),
    ("two", 70001, 1, None),
    ("hash", 100000, None, None),
    ("hash", 20000, None, 4096),
    ("wide", 3000, None, None),
    ("wide", 100000, 16, None),
    ("wide", 140000, 16, 1 << 18),
    ("wide", 150000, 13, 65536),
    ("spread16", 66000, None, 1024),
]


@pytest.mark.parametrize("dist,n,precision_bits,chunk_symbols", STREAMS)
def test_rans_encode_matches_cpu(ops, dist, n, precision_bits, chunk_symbols):
    s = symbols(dist, n)
    kw = dict(precision_bits=precision_bits, chunk_symbols=chunk_symbols)
    cpu = splitans.rans_encode(s, **kw)
    assert gpu.rans_encode_gpu(s, _ops_=ops, **kw) == cpu
    back = gpu.rans_decode_gpu(cpu, _ops_=ops)
    assert back.dtype == s.dtype and np.array_equal(back, s)


def test_streams_cover_every_stream_mode():
    modes = {
        splitans.inspect(splitans.rans_encode(symbols(d, n), precision_bits=p, chunk_symbols=c))["streams"][0]["mode"]
        for d, n, p, c in STREAMS
    }
    assert modes == {"empty", "constant", "raw", "rans"}


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize(
    "dist,n,chunk_symbols", [("geom", 5000, 256), ("hash", 70001, 4096), ("wide", 140000, 1 << 16)]
)
def test_every_lane_count_decodes_on_the_cpu(ops, monkeypatch, lanes, dist, n, chunk_symbols):
    """Whatever lane counts the reference's policy picks, the format allows 1..32: force each one
    through the GPU encoder and read the result back with the CPU decoder (and the GPU one)."""
    plan_stream = splitans._core.gpu_plan_stream

    def forced(*args):
        plan = plan_stream(*args)
        plan["lanes"] = lanes
        return plan

    core = type(
        "Core", (), {k: staticmethod(getattr(splitans._core, k)) for k in dir(splitans._core) if k.startswith("gpu_")}
    )
    core.gpu_plan_stream = staticmethod(forced)
    monkeypatch.setattr(gpu_rans, "_core", core)
    s = symbols(dist, n)
    blob = gpu.rans_encode_gpu(s, chunk_symbols=chunk_symbols, _ops_=ops)
    info = splitans.inspect(blob)["streams"][0]
    assert info["mode"] == "rans" and info["lanes"] == lanes
    assert np.array_equal(splitans.rans_decode(blob), s)
    assert np.array_equal(gpu.rans_decode_gpu(blob, _ops_=ops), s)


def test_worked_example(ops):
    """FORMAT.md 4.5: one lane, precision 2, a single renormalization at j = 0."""
    s = np.array([7, 7, 3, 7] * 5, dtype=np.uint16)
    blob = gpu.rans_encode_gpu(s, precision_bits=2, _ops_=ops)
    assert blob == splitans.rans_encode(s, precision_bits=2)
    # The chunk ends the blob: lane 0's initial state 0x00012B53, then the one word 0xD336.
    assert blob[-6:] == bytes.fromhex("532b010036d3")


def test_format_test_vectors(ops):
    """FORMAT.md 5.7, through the GPU pipeline."""
    s = ((h(100000) ** 2) >> 12).astype(np.uint8)
    cases = [
        (s, {}),
        (s[:20000], dict(chunk_symbols=4096)),
        (((h(30000) ** 3) >> 10).astype(np.uint16), dict(precision_bits=12)),
    ]
    for x, kw in cases:
        assert gpu.rans_encode_gpu(x, _ops_=ops, **kw) == splitans.rans_encode(x, **kw)
    x = ((h(6000).astype(np.int32) - 128) ** 3).reshape(60, 100)
    assert gpu.compress_gpu(x, _ops_=ops) == splitans.compress(x)


@settings(deadline=None)
@given(
    n=st.integers(1, 12000),
    alphabet=st.sampled_from([2, 3, 17, 256, 1000, 65536]),
    skew=st.floats(0.3, 6.0),
    wide=st.booleans(),
    precision_bits=st.one_of(st.none(), st.integers(1, 16)),
    chunk_log2=st.one_of(st.none(), st.integers(8, 14)),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_streams_match_cpu(ops, n, alphabet, skew, wide, precision_bits, chunk_log2, seed):
    rng = np.random.default_rng(seed)
    alphabet = alphabet if wide else min(alphabet, 256)
    s = (rng.random(n) ** skew * alphabet).astype(np.uint16 if wide else np.uint8)
    kw = dict(precision_bits=precision_bits, chunk_symbols=None if chunk_log2 is None else 1 << chunk_log2)
    try:
        cpu = splitans.rans_encode(s, **kw)
    except ValueError as e:  # too many distinct symbols for precision_bits
        with pytest.raises(ValueError, match="cannot give each"):
            gpu.rans_encode_gpu(s, _ops_=ops, **kw)
        assert "cannot give each" in str(e)
        return
    assert gpu.rans_encode_gpu(s, _ops_=ops, **kw) == cpu
    assert np.array_equal(gpu.rans_decode_gpu(cpu, _ops_=ops), s)


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
        return ("ok", fn())
    except splitans.CorruptDataError as e:
        return ("corrupt", type(e))
    except ValueError as e:  # e.g. a kind the call does not take
        return ("value", type(e))


def same_outcome(cpu, dev):
    assert cpu[0] == dev[0], (cpu, dev)
    if cpu[0] == "ok":
        a, b = np.asarray(cpu[1]), np.asarray(dev[1])
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize(
    "blob",
    [
        splitans.rans_encode(symbols("geom", 200003)),
        splitans.rans_encode(symbols("skew", 9000), chunk_symbols=1024),
        splitans.rans_encode(symbols("wide", 40000)),
        splitans.rans_encode(symbols("hash", 3000)),
    ],
    ids=["u8-32lanes", "u8-1lane-chunks", "u16-16lanes", "u8-1lane"],
)
def test_corrupt_chunks_rejected_like_cpu(ops, blob):
    """Mutations past the frequency table (directory, states, words) with the CRC fixed up, so the
    kernels' end-of-chunk checks decide: the GPU decoder fails exactly when the CPU one does."""
    rng = np.random.default_rng(len(blob))
    start = 24 + 8 + 8 + 10 + 4 + 8  # header, shape, stream_len, stream header, params, a little table
    outcomes = set()
    for _ in range(250):
        b = bytearray(blob)
        for _ in range(rng.integers(1, 3)):
            i = int(rng.integers(start, len(b)))
            b[i] ^= int(rng.integers(1, 256))
        data = fix_crc(b)
        cpu = outcome(lambda: splitans.rans_decode(data))
        dev = outcome(lambda: gpu.rans_decode_gpu(data, _ops_=ops))
        same_outcome(cpu, dev)
        outcomes.add(cpu[0])
    assert "corrupt" in outcomes


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (30, 50), (3, 4, 2000)])
def test_integer_arrays_match_cpu(ops, dtype, shape):
    rng = np.random.default_rng(len(shape) + np.dtype(dtype).itemsize)
    info = np.iinfo(dtype)
    x = (rng.geometric(0.05, shape) * (1 if info.min == 0 else rng.choice([-1, 1], shape))).astype(dtype)
    if np.dtype(dtype).itemsize >= 4 and x.size:
        x.reshape(-1)[::7] = info.max  # high planes not constant
    cpu = splitans.compress(x)
    assert gpu.compress_gpu(x, _ops_=ops) == cpu
    back = gpu.decompress_gpu(cpu, _ops_=ops)
    assert back.dtype == x.dtype and back.shape == x.shape and np.array_equal(back, x)


# ------------------------------------------------------------------------------------------------
# Features


def feature(name: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if name == "r":  # FORMAT.md 6.10
        return np.maximum(h(4096).astype(np.float32) - 160, 0).reshape(4, 32, 32) / 8
    if name == "d":
        return ((h(3000).astype(np.float32) - 128) / 32).reshape(30, 100)
    if name == "g":
        g = np.zeros((16, 32, 32), np.float32)
        g[:, :, :2] = h(1024).reshape(16, 32, 2) / 64
        return g
    if name == "worked":  # FORMAT.md 6.9
        return np.array(
            [
                [[0.0, 1.5, 0.0, -0.5], [0.0, 0.0, 2.0, 0.0], [0.25, 0.0, 0.0, 0.0]],
                [[0.0, 0.0, 0.0, 3.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.75, 0.0, 0.0]],
            ],
            dtype=np.float32,
        )
    if name == "relu":  # a post-ReLU activation, 1 x 16 x 20 x 20
        return np.maximum(rng.normal(0, 1, (1, 16, 20, 20)), 0).astype(np.float32) * rng.uniform(
            0.5, 3, (1, 16, 1, 1)
        ).astype(np.float32)
    if name == "signed":
        return (rng.standard_t(3, (2, 3, 40, 50)) * 0.7).astype(np.float32)
    if name == "special":
        x = rng.normal(0, 1, 3000).astype(np.float32)
        x[::97] = np.nan
        x[5::101] = np.inf
        x[7::103] = -np.inf
        x[9::89] = np.float32(1e-41)  # subnormal
        x[11::83] = -0.0
        return x.reshape(30, 100)
    if name == "tiny":  # a subnormal range: subnormal scale (quant.rs from_range)
        return (rng.random(2000) * 3.8e-42).astype(np.float32).reshape(40, 50)
    if name == "huge":
        return np.array([-3e38, 3e38, 0.0, 1e38, -2.5e38, 7.0], np.float32)
    if name == "ties":  # k/4: with scale 0.5 every odd k/2 is a tie
        return (np.arange(-512, 512, dtype=np.float32) / 4).reshape(32, 32)
    if name == "allzero":
        return np.zeros((8, 64), np.float32)
    raise ValueError(name)


FEATURES = [
    ("r", dict(bits=8)),
    ("r", dict(bits=4, axis=0, reshape="search")),
    ("r", dict(bits=3, mode="csr", reshape=128)),
    ("d", dict(bits=12)),
    ("g", dict(bits=8)),
    ("g", dict(bits=8, reshape="search")),
    ("worked", dict(bits=4, mode="csr", reshape=6)),
    ("worked", dict(bits=4)),
    *[("relu", dict(bits=b)) for b in range(1, 17)],
    ("relu", dict(bits=8, axis=1)),
    ("relu", dict(bits=8, axis=-1, mode="csr")),
    ("relu", dict(bits=5, axis=1, clip=[(0.0, 1.5 + c / 8) for c in range(16)])),
    ("relu", dict(bits=8, clip=(-0.5, 2.0))),
    ("relu", dict(bits=6, scale=[0.05 + c / 100 for c in range(16)], zero_point=[c for c in range(16)], axis=1)),
    ("relu", dict(bits=8, mode="csr", reshape="search", precision_bits=11)),
    ("relu", dict(bits=10, mode="dense", chunk_symbols=1024)),
    ("signed", dict(bits=7, axis=2)),
    ("signed", dict(bits=16, mode="auto")),
    ("signed", dict(bits=2, mode="csr")),
    ("special", dict(bits=8, nonfinite="clamp")),
    ("special", dict(bits=12, nonfinite="clamp", axis=0)),
    ("special", dict(bits=8, nonfinite="clamp", clip=(-1.0, 1.0))),
    ("tiny", dict(bits=8)),
    ("tiny", dict(bits=16, axis=1)),
    ("huge", dict(bits=1)),
    ("huge", dict(bits=4)),
    ("huge", dict(bits=16)),
    ("ties", dict(bits=8, scale=0.5, zero_point=128)),
    ("ties", dict(bits=9, scale=-0.0, zero_point=3)),
    ("allzero", dict(bits=8)),
    ("allzero", dict(bits=4, mode="csr")),
]


def check_feature(ops, x, kw):
    cpu = splitans.compress(x, **kw)
    dev = gpu.compress_gpu(x, _ops_=ops, **kw)
    assert dev == cpu
    a = splitans.decompress(cpu)
    b = gpu.decompress_gpu(cpu, _ops_=ops)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), "decoded values differ in some bit"
    return cpu


@pytest.mark.parametrize("name,kw", FEATURES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FEATURES)])
def test_features_match_cpu(ops, name, kw):
    check_feature(ops, feature(name), kw)


def test_features_cover_both_modes_and_all_stream_modes(ops):
    modes, stream_modes = set(), set()
    for name, kw in FEATURES:
        info = splitans.inspect(splitans.compress(feature(name), **kw))
        modes.add(info["mode"])
        stream_modes |= {s["mode"] for s in info["streams"]}
    assert modes == {"dense", "csr"}
    assert stream_modes >= {"rans", "raw", "constant"}


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_float16_and_float64_inputs(ops, dtype):
    x = feature("signed").astype(dtype)
    x.reshape(-1)[::50] = np.asarray(1e-39 if dtype == "float64" else 3e-7, dtype)  # subnormal in float32 / float16
    check_feature(ops, x, dict(bits=9, axis=1))
    check_feature(ops, x, dict(bits=5, scale=0.25, zero_point=16))


def test_torch_bfloat16_input(ops):
    torch = need_module("torch")
    t = torch.from_numpy(feature("relu")).to(torch.bfloat16)
    cpu = splitans.compress(t, bits=8)
    assert gpu.compress_gpu(t, bits=8, _ops_=ops) == cpu
    b = gpu.decompress_gpu(cpu, _ops_=ops)
    assert b.dtype == np.float32 and np.array_equal(b, splitans.decompress(cpu))


@settings(deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    bits=st.integers(1, 16),
    density=st.floats(0.0, 1.0),
    axis=st.one_of(st.none(), st.integers(0, 3)),
    mode=st.sampled_from(["auto", "dense", "csr"]),
    reshape=st.sampled_from(["model", "search"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_features_match_cpu(ops, shape, bits, density, axis, mode, reshape, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 2, shape) * (rng.random(shape) < density)).astype(np.float32)
    kw = dict(bits=bits, axis=None if axis is None or axis >= len(shape) else axis, mode=mode, reshape=reshape)
    check_feature(ops, x, kw)


def test_empty_feature_goes_through_the_cpu(ops):
    x = np.zeros((3, 0, 4), np.float32)
    assert gpu.compress_gpu(x, bits=8, axis=1, _ops_=ops) == splitans.compress(x, bits=8, axis=1)


def test_errors_match_cpu(ops):
    x = feature("special")
    with pytest.raises(ValueError, match="NaN or infinity"):
        splitans.compress(x, bits=8)
    with pytest.raises(ValueError, match="NaN or infinity"):
        gpu.compress_gpu(x, bits=8, _ops_=ops)
    r = feature("relu")
    for kw in (
        dict(bits=0),
        dict(bits=8, axis=4),
        dict(bits=8, reshape=7),
        dict(bits=8, clip=(1.0, 0.0)),
        dict(bits=8, scale=-1.0, zero_point=0),
        dict(bits=4, scale=0.1, zero_point=16),
        dict(bits=8, axis=1, scale=[0.1, 0.2], zero_point=[0, 0]),
        dict(bits=8, mode="sparse"),
        dict(bits=8, precision_bits=17),
        dict(bits=8, chunk_symbols=1000),
    ):
        with pytest.raises(ValueError):
            splitans.compress(r, **kw)
        with pytest.raises(ValueError):
            gpu.compress_gpu(r, _ops_=ops, **kw)
    with pytest.raises(TypeError):
        gpu.compress_gpu(r, _ops_=ops)  # no bits
    with pytest.raises(ValueError, match="Percentile"):
        gpu.compress_gpu(r, bits=8, clip=splitans.Percentile(1, 99), _ops_=ops)
    with pytest.raises(ValueError, match="rans_decode"):
        gpu.rans_decode_gpu(splitans.compress(r, bits=8), _ops_=ops)


@pytest.mark.parametrize("version", [None, 1])
@pytest.mark.parametrize(
    "name,kw",
    [
        ("relu", dict(bits=8, mode="csr")),
        ("r", dict(bits=3, mode="csr", reshape=128)),
        ("relu", dict(bits=12, axis=1)),
        ("d", dict(bits=12)),
    ],
)
def test_corrupt_features_rejected_like_cpu(ops, name, kw, version):
    """Byte flips anywhere after the checksum with the CRC fixed up: section checks (Rust),
    stream parsing (Rust), chunk checks and CSR columns (kernels), code range (kernel)."""
    blob = splitans.compress(feature(name), version=version, **kw)
    rng = np.random.default_rng(len(blob))
    for _ in range(250):
        b = bytearray(blob)
        i = int(rng.integers(behind_checksum(blob), len(b)))
        b[i] ^= int(rng.integers(1, 256))
        data = fix_crc(b)
        try:
            splitans.inspect(data)
        except splitans.CorruptDataError as e:
            assert "checksum" not in str(e), "the flip must reach behind the checksum"
        except splitans.OutputTooLargeError:
            pass
        cpu = outcome(lambda: splitans.decompress(data))
        dev = outcome(lambda: gpu.decompress_gpu(data, _ops_=ops))
        same_outcome(cpu, dev)


def test_csr_column_checks(ops):
    """A CSR container whose columns are valid symbols but decreasing within a row, or past the
    row, passes every structural check and must be rejected by the scatter kernel's check."""
    x = feature("worked")
    # The column stream is raw: [1, 3, 2, 0, 3, 0, 1] at offset 136 in version 1 (FORMAT.md 6.9),
    # at offset 36 in the compact container (10.7: its length at 34, its mode byte at 35).
    for version, at in ((1, 136), (None, 36)):
        blob = bytearray(splitans.compress(x, bits=4, mode="csr", reshape=6, version=version))
        assert np.frombuffer(blob[at : at + 14], "<u2").tolist() == [1, 3, 2, 0, 3, 0, 1]
        check_columns(ops, blob, at)


def check_columns(ops, blob, at):
    for cols in ([3, 1, 2, 0, 3, 0, 1], [1, 4, 2, 0, 3, 0, 1], [1, 1, 2, 0, 3, 0, 1]):
        b = bytearray(blob)
        b[at : at + 14] = np.array(cols, "<u2").tobytes()
        data = fix_crc(b)
        with pytest.raises(splitans.CorruptDataError, match="out of order or range"):
            splitans.decompress(data)
        with pytest.raises(splitans.CorruptDataError):
            gpu.decompress_gpu(data, _ops_=ops)


def test_max_output_bytes(ops):
    blob = splitans.compress(feature("relu"), bits=8)
    with pytest.raises(splitans.OutputTooLargeError):
        gpu.decompress_gpu(blob, max_output_bytes=100, _ops_=ops)


def test_initial_state_below_2_16_rejected(ops):
    blob = splitans.rans_encode(symbols("geom", 300007), chunk_symbols=1 << 17)
    st = splitans._core.gpu_layout(blob, 1 << 40)["streams"][0]
    b = bytearray(blob)
    off = int(st["state_offsets"][1]) + 4 * 3  # chunk 1, lane 3
    b[off + 2 : off + 4] = b"\x00\x00"
    data = fix_crc(b)
    with pytest.raises(splitans.CorruptDataError, match="below 2"):
        splitans.rans_decode(data)
    with pytest.raises(splitans.CorruptDataError, match="below 2"):
        gpu.rans_decode_gpu(data, _ops_=ops)


def _exp_golomb_decode(data: bytes, pos: int, count: int, k: int):
    bit = 0

    def get(n):
        nonlocal bit
        v = 0
        for _ in range(n):
            v = (v << 1) | ((data[pos + bit // 8] >> (bit % 8)) & 1)
            bit += 1
        return v

    freqs = []
    for _ in range(count):
        zeros = 0
        while get(1) == 0:
            zeros += 1
        m = (1 << (zeros + k)) | get(zeros + k)
        freqs.append(m - (1 << k) + 1)
    return freqs, pos + (bit + 7) // 8


def _exp_golomb_encode(freqs, k: int) -> bytes:
    bits = []
    for f in freqs:
        m = f - 1 + (1 << k)
        n = m.bit_length()
        bits += [0] * (n - k - 1) + [(m >> i) & 1 for i in reversed(range(n))]
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        out[i // 8] |= b << (i % 8)
    return bytes(out)


def test_table_with_another_exp_golomb_k(ops):
    """A valid table need not be the one the reference writes (its k is free): the GPU decoder
    must find the chunks after it as the CPU decoder does."""
    s = symbols("geom", 50000)
    blob = splitans.rans_encode(s)
    st = splitans._core.gpu_layout(blob, 1 << 40)["streams"][0]
    assert st["mode"] == "rans"
    table_at = st["offset"] + 10 + 4
    count, pos = varint(blob, table_at)
    runs, pos = varint(blob, pos)
    for _ in range(2 * runs):
        _, pos = varint(blob, pos)
    k = blob[pos]
    freqs, end = _exp_golomb_decode(blob, pos + 1, count, k)
    assert freqs == list(st["freqs"])
    grown = set()
    for k2 in sorted({0, (k + 3) % 16, 15} - {k}):
        table = blob[table_at:pos] + bytes([k2]) + _exp_golomb_encode(freqs, k2)
        b = bytearray(blob[:table_at] + table + blob[end:])
        grow = len(b) - len(blob)
        grown.add(grow)
        struct.pack_into("<Q", b, 32, struct.unpack_from("<Q", blob, 32)[0] + grow)  # stream_len
        struct.pack_into("<Q", b, 12, len(b))  # total_len
        data = fix_crc(b)
        cpu = outcome(lambda: splitans.rans_decode(data))
        dev = outcome(lambda: gpu.rans_decode_gpu(data, _ops_=ops))
        same_outcome(cpu, dev)
        assert cpu[0] == "ok" and np.array_equal(cpu[1], s)
    assert grown - {0}, "some variant must change the table's length"


# ------------------------------------------------------------------------------------------------
# splitans.gpu.pipelines.CupyOps itself, on a stand-in CuPy (tests/cuda_host/fake_cupy.py): every launch is
# checked against the kernel's C signature in the source CuPy would compile, then run by the host
# build of that kernel.


@pytest.fixture(params=[232448, 49152], ids=["optin-227k", "shared-48k"])
def cupy_ops(ops, monkeypatch, request):
    import sys

    from cuda_host import fake_cupy

    fake = fake_cupy.make(ops.lib, sms=8, smem_optin=request.param)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    caches = (loader.module, loader.kernel, loader.device_info)
    for c in caches:
        c.cache_clear()
    try:
        yield pipelines.CupyOps()
    finally:
        for c in caches:
            c.cache_clear()


def test_cupy_ops_streams(cupy_ops):
    for dist, n, p, c in STREAMS:
        s = symbols(dist, n)
        kw = dict(precision_bits=p, chunk_symbols=c)
        cpu = splitans.rans_encode(s, **kw)
        assert gpu.rans_encode_gpu(s, _ops_=cupy_ops, **kw) == cpu
        assert np.array_equal(gpu.rans_decode_gpu(cpu, _ops_=cupy_ops), s)
    cp = cupy_ops.cp
    names = {launch[0] for launch in cp.launches}
    assert {
        "histogram_u8",
        "histogram_u16",
        "rans_encode_u8",
        "rans_encode_u16",
        "rans_decode_u8",
        "rans_decode_u16",
    } <= names
    # What CuPy compiles: each file once, with the headers inlined and the documented options.
    for code, options in cp.compiled:
        assert options == gpu.COMPILE_OPTIONS and '#include "' not in code


@pytest.mark.parametrize("name,kw", FEATURES[:12] + FEATURES[-16:], ids=lambda v: v if isinstance(v, str) else "")
def test_cupy_ops_features(cupy_ops, name, kw):
    x = feature(name)
    cpu = splitans.compress(x, **kw)
    assert gpu.compress_gpu(x, _ops_=cupy_ops, **kw) == cpu
    a = splitans.decompress(cpu)
    b = gpu.decompress_gpu(cpu, _ops_=cupy_ops)
    assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_cupy_ops_integers_and_inputs(cupy_ops):
    for x in (
        np.arange(-3000, 3000, dtype=np.int32).reshape(60, 100) ** 3,
        np.arange(7, dtype=np.uint64) << 40,
        np.uint16(9),
    ):
        x = np.asarray(x)
        cpu = splitans.compress(x)
        assert gpu.compress_gpu(x, _ops_=cupy_ops) == cpu
        y = gpu.decompress_gpu(cpu, _ops_=cupy_ops)
        assert y.dtype == x.dtype and y.shape == x.shape and np.array_equal(y, x)
    for dtype in ("float16", "float64"):
        x = feature("signed").astype(dtype)
        cpu = splitans.compress(x, bits=8, axis=1)
        assert gpu.compress_gpu(x, bits=8, axis=1, _ops_=cupy_ops) == cpu
        y = gpu.decompress_gpu(cpu, _ops_=cupy_ops)
        assert y.dtype == dtype and np.array_equal(y.view(np.uint8), splitans.decompress(cpu).view(np.uint8))


def test_cupy_ops_corrupt_input(cupy_ops):
    blob = splitans.compress(feature("relu"), bits=8, mode="csr")
    rng = np.random.default_rng(3)
    for _ in range(60):
        b = bytearray(blob)
        b[int(rng.integers(behind_checksum(blob), len(b)))] ^= int(rng.integers(1, 256))
        data = fix_crc(b)
        same_outcome(
            outcome(lambda: splitans.decompress(data)), outcome(lambda: gpu.decompress_gpu(data, _ops_=cupy_ops))
        )


def test_cupy_ops_half_outputs_saturate_like_the_cpu(cupy_ops):
    # Grid points past 65504 (a float16 input at the range end, 2 to 11 bits) and the whole
    # float32 range: the GPU path gives the CPU path's values, finite, bit for bit.
    x16 = np.array([-65504, -1000.5, 0, 3, 65504], np.float16)
    big = np.array([-3.4028235e38, -1e38, 0, 2.5e38, 3.4028235e38], np.float32)
    for x in (x16, big):
        for bits in (2, 5, 7, 9, 10, 11, 16):
            cpu = splitans.compress(x, bits=bits)
            assert gpu.compress_gpu(x, bits=bits, _ops_=cupy_ops) == cpu
            a = splitans.decompress(cpu)
            b = gpu.decompress_gpu(cpu, _ops_=cupy_ops)
            assert np.isfinite(a).all() and a.dtype == b.dtype
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), (bits, a, b)
    # Expectations are checked by the GPU path too, before the device sees the container.
    with pytest.raises(ValueError, match="not the expected"):
        gpu.decompress_gpu(splitans.compress(x16, bits=4), expect_shape=(6,), _ops_=cupy_ops)
    with pytest.raises(ValueError, match="holds float16, not the expected float32"):
        gpu.decompress_gpu(splitans.compress(x16, bits=4), expect_dtype="float32", _ops_=cupy_ops)


# ------------------------------------------------------------------------------------------------
# Fitted codecs (pctx.cu): the GPU pipeline, run with the kernels' own chunk coders on the host,
# writes the CPU codec's blobs byte for byte and decodes them (and refuses damaged ones) alike.


def _maps(n, shape, seed, sparsity=0.5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    if len(shape) >= 2:
        x = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2)) / 3
    return np.maximum(x - np.quantile(x, sparsity), 0).astype(np.float32)


CODEC_CASES = [
    # (sample shape, bits, axis, clip)
    ((4, 12, 10), 2, None, "calibration"),
    ((3, 9, 11), 4, 0, None),
    ((8, 16, 16), 8, None, "calibration"),
    ((2, 3, 120, 150), 4, 1, "calibration"),  # 108,000 elements: two chunks, 32 lanes
    ((300,), 3, None, None),
    ((5, 24), 6, 1, "calibration"),
    ((6, 7, 9), 1, None, "calibration"),
    # Plane lanes (codec version 4): chunks of 32 and 8 lanes of one 60 x 50 plane each; two
    # lanes of five planes, the second shorter.
    ((40, 60, 50), 8, 0, "calibration"),
    ((9, 37, 41), 3, None, "calibration"),
]


def _codec_for(case, seed=0):
    shape, bits, axis, clip = case
    cal = _maps(8, shape, seed)
    return splitans.Codec.fit(cal, bits=bits, axis=axis, clip=clip), _maps(3, shape, seed + 100)


@pytest.mark.parametrize("case", CODEC_CASES, ids=lambda c: f"{c[0]}-{c[1]}b")
def test_codec_gpu_pipeline_matches_cpu(ops, case):
    codec, tests = _codec_for(case)
    d = codec.describe()
    assert d["model"]["plane_lanes"] == (case[0] in ((40, 60, 50), (9, 37, 41)))
    assert d["version"] == 4 if d["model"]["plane_lanes"] else d["version"] < 4
    for x in [*tests, np.zeros(case[0], np.float32), tests[0].astype(np.float16)]:
        cpu = codec.compress(x)
        assert codec.compress_gpu(x, _ops_=ops) == cpu
        a = codec.decompress(cpu)
        b = codec.decompress_gpu(cpu, _ops_=ops)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))
    kinds = {codec.inspect(codec.compress(x))["kind"] for x in [*tests, np.zeros(case[0], np.float32)]}
    assert "constant" in kinds and "coded" in kinds | {"raw"}


def _fix_fitted_crc(codec, b):
    import zlib

    b = bytearray(b)
    ident = bytes.fromhex(codec.id)
    b[3:7] = zlib.crc32(ident + bytes(b[:3]) + bytes(b[7:])).to_bytes(4, "little")
    return bytes(b)


@pytest.mark.parametrize("case", [CODEC_CASES[3], CODEC_CASES[7]], ids=lambda c: f"{c[0]}")
def test_codec_gpu_refuses_what_the_cpu_refuses(ops, case):
    codec, tests = _codec_for(case, seed=4)
    blob = codec.compress(tests[0])
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(120):
        b = bytearray(blob)
        b[int(rng.integers(7, len(b)))] ^= int(rng.integers(1, 256))
        data = _fix_fitted_crc(codec, b)
        cpu = outcome(lambda: codec.decompress(data))
        dev = outcome(lambda: codec.decompress_gpu(data, _ops_=ops))
        same_outcome(cpu, dev)
        seen.add(cpu[0])
    assert "corrupt" in seen, "mutations behind the checksum must reach the decoder's checks"
    other, _ = _codec_for(case, seed=9)
    same_outcome(outcome(lambda: other.decompress(blob)), outcome(lambda: other.decompress_gpu(blob, _ops_=ops)))


def test_cupy_ops_codec(cupy_ops):
    for case in (CODEC_CASES[0], CODEC_CASES[3], CODEC_CASES[7]):
        codec, tests = _codec_for(case, seed=2)
        x = tests[0]
        cpu = codec.compress(x)
        assert codec.compress_gpu(x, _ops_=cupy_ops) == cpu
        y = codec.decompress_gpu(cpu, _ops_=cupy_ops)
        assert np.array_equal(np.asarray(y).view(np.uint8), codec.decompress(cpu).view(np.uint8))
    names = {launch[0] for launch in cupy_ops.cp.launches}
    assert {"pctx_encode", "pctx_pack", "pctx_decode"} <= names
