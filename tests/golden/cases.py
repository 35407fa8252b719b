"""The inputs whose outputs must not change when the fast paths change (issue 15): encoder inputs
(every FORMAT.md test vector and a spread of tensors, options and dtypes), and every container of
the fuzz corpora, decoded. `make_golden.py` records what a build produces; `test_golden.py`
compares the current build against the record.

Each case yields (name, result), where a result is a JSON-able value: the SHA-256 of a blob, of
a decoded array (with its dtype and shape), an `inspect` dictionary, or the class and message of
the exception raised.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

import splitans

ROOT = Path(__file__).resolve().parents[2]


def h(n):
    """FORMAT.md 5.7: a fixed pseudo-random sequence of bytes, as uint32."""
    return ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32) >> np.uint64(24)).astype(np.uint32)


def digest(data) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()[:32]


def array_result(a):
    if type(a).__module__.startswith("torch"):
        import torch

        dtype = str(a.dtype)
        a = a.view(torch.int16).numpy() if a.dtype == torch.bfloat16 else a.numpy()
    else:
        dtype = a.dtype.name
    a = np.ascontiguousarray(a)
    return {"dtype": dtype, "shape": list(a.shape), "sha": digest(a.tobytes())}


def _clean(v):
    """inspect() dictionaries as JSON: floats exactly (hex), tuples as lists."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float):
        return v.hex() if math.isfinite(v) else repr(v)
    return v


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the exception is the result
        return {"error": type(e).__name__, "message": str(e)}


def decode_result(blob, **kw):
    def run():
        out = {"decompress": array_result(splitans.decompress(blob, **kw))}
        return out

    r = attempt(run)
    r["inspect"] = attempt(lambda: _clean(splitans.inspect(blob)))
    return r


# ---------------------------------------------------------------- encoder inputs


# The inputs are built with integer arithmetic and single IEEE operations only (no libm call, no
# reduction whose order a library may change, no numpy Generator method): the same arrays on
# every numpy version and every architecture. Before, np.quantile on float32 moved by one ulp
# between numpy 2.2.6 and 2.4.6 and 16 recorded outputs with it.

_M64 = (1 << 64) - 1


def raw(seed, n):
    """n uint64 of splitmix64 seeded with `seed` (integer-exact: wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = (np.arange(1, n + 1, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & _M64)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def normal(seed, shape):
    """Bell-shaped float32 (the sum of four 16-bit uniforms, centred, times 2^-15: std 1.15,
    support +-4), exactly the same everywhere."""
    r = raw(seed, math.prod(shape))
    m = np.uint64(0xFFFF)
    s = sum(((r >> np.uint64(k)) & m).astype(np.int64) for k in (0, 16, 32, 48)) - 2 * 0xFFFF
    return (s.astype(np.float32) * np.float32(2.0**-15)).reshape(shape)


def integers(seed, lo, hi, shape, dtype):
    """Uniform integers in [lo, hi) (hi - lo <= 2^63), modulo-reduced: exact everywhere."""
    r = raw(seed, math.prod(shape)) >> np.uint64(1)
    return ((r % np.uint64(hi - lo)).astype(np.int64 if lo < 0 else np.uint64) + (np.int64(lo) if lo < 0 else np.uint64(lo))).astype(dtype).reshape(shape)


def geometric(seed, p_num, p_den, n):
    """Geometric counts (number of trials to the first success, >= 1) with p = p_num / p_den,
    by inverse CDF over exact integer thresholds floor(2^48 (1 - p)^k)."""
    t, thresholds = 1 << 48, []
    while t:
        thresholds.append(t)
        t = t * (p_den - p_num) // p_den
    u = (raw(seed, n) >> np.uint64(16)).astype(np.int64)  # uniform in [0, 2^48)
    # X = the number of thresholds above u: P(X >= k) = (1 - p)^(k-1).
    desc = np.array(thresholds, dtype=np.int64)
    return np.searchsorted(-desc, -u, side="left").astype(np.int64)


def relu_map(shape, seed, zeros=0.3, scale=1.0):
    x = normal(seed, shape) * np.float32(scale)
    # The threshold is an element of x (an exact order statistic, no interpolation).
    t = np.sort(x.ravel())[int(zeros * (x.size - 1))] if x.size else np.float32(0)
    x = np.maximum(x - t, 0)
    return np.minimum(x, np.float32(6 * scale)).astype(np.float32)


def feature_inputs():
    """(name, array, compress kwargs)."""
    r = np.maximum(h(4096).astype(np.float32) - 160, 0).reshape(4, 32, 32) / 8
    d = ((h(3000).astype(np.float32) - 128) / 32).reshape(30, 100)
    g = np.zeros((16, 32, 32), np.float32)
    g[:, :, :2] = h(1024).reshape(16, 32, 2) / 64
    out = [
        ("r8", r, dict(bits=8)),
        ("r4_axis0_search", r, dict(bits=4, axis=0, reshape="search")),
        ("r3_csr128", r, dict(bits=3, mode="csr", reshape=128)),
        ("d12", d, dict(bits=12)),
        ("d6_axis1_pct", d, dict(bits=6, axis=1, clip=splitans.Percentile(5, 95))),
        ("d_f16_calibrated", d.astype(np.float16), dict(bits=5, scale=0.25, zero_point=16)),
        ("r_f64_16_csr", r.astype(np.float64), dict(bits=16, mode="csr")),
        ("g8", g, dict(bits=8)),
        ("g8_search", g, dict(bits=8, reshape="search")),
    ]
    big = relu_map((1, 256, 56, 56), 1, zeros=0.32)
    for bits in (2, 4, 8, 12, 16):
        out.append((f"big_{bits}", big, dict(bits=bits)))
    out += [
        ("big_8_axis1", big, dict(bits=8, axis=1)),
        ("big_8_dense_t2", big, dict(bits=8, mode="dense", threads=2)),
        ("big_8_csr", big, dict(bits=8, mode="csr")),
        ("big_4_axis2", big, dict(bits=4, axis=2)),
        ("big_8_f16", big.astype(np.float16), dict(bits=8)),
        ("big_8_clip", big, dict(bits=8, clip=(0.0, 3.0))),
        ("big_8_chunk4096", big, dict(bits=8, chunk_symbols=4096)),
        ("big_8_p10", big, dict(bits=8, precision_bits=10)),
    ]
    sparse = relu_map((1, 128, 28, 28), 2, zeros=0.9)
    for bits in (1, 4, 8, 12):
        out.append((f"sparse_{bits}", sparse, dict(bits=bits)))
    out.append(("sparse_8_axis1_csr", sparse, dict(bits=8, axis=1, mode="csr")))
    for seed, shape in enumerate([(1, 32, 7, 7), (1, 40, 28, 28), (1, 16, 14, 14), (3, 5, 7), (1000,), (1, 1, 1)]):
        x = relu_map(shape, 10 + seed, zeros=0.5)
        for bits in (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16):
            out.append((f"small{shape}_{bits}", x, dict(bits=bits)))
        for mode in ("dense", "csr", "context", "best"):
            out.append((f"small{shape}_8_{mode}", x, dict(bits=8, mode=mode)))
            out.append((f"small{shape}_4_{mode}", x, dict(bits=4, mode=mode)))
        if x.ndim >= 2:
            out.append((f"small{shape}_4_axis1", x, dict(bits=4, axis=1)))
            out.append((f"small{shape}_8_axis-1", x, dict(bits=8, axis=-1)))
        out.append((f"small{shape}_6_signed", x - np.float32(0.7), dict(bits=6)))
    odd = normal(30, (3, 7, 11, 13))
    out += [
        ("odd_8", odd, dict(bits=8)),
        ("odd_8_axis1", odd, dict(bits=8, axis=1)),
        ("odd_8_axis3", odd, dict(bits=8, axis=3)),
        ("odd_11_axis0", odd, dict(bits=11, axis=0)),
        ("odd_8_f64", odd.astype(np.float64), dict(bits=8)),
        ("odd_7_clip_pairs", odd[:, :2], dict(bits=7, axis=1, clip=[(-1.0, 1.0), (-2.0, 0.5)])),
        ("odd_8_calib_axis1", odd, dict(bits=8, axis=1, scale=[0.01 * (i + 1) for i in range(7)], zero_point=list(range(100, 107)))),
    ]
    nf = odd.copy()
    nf.flat[[3, 50, 700]] = [np.nan, np.inf, -np.inf]
    out += [
        ("nonfinite_clamp", nf, dict(bits=8, nonfinite="clamp")),
        ("nonfinite_clamp_axis1", nf, dict(bits=5, axis=1, nonfinite="clamp")),
        ("nonfinite_error", nf, dict(bits=8)),
        ("zero_d", np.float32(1.5), dict(bits=8)),
        ("empty", np.zeros((0, 4), np.float32), dict(bits=8)),
        ("constant", np.full((10, 10), 2.5, np.float32), dict(bits=4)),
        ("zeros", np.zeros((64, 64), np.float32), dict(bits=8)),
        ("tiny_range", np.float32([0, 1e-42, 3e-42, 0]), dict(bits=8)),
        ("huge_range", np.float32([-3e38, 3e38, 0, 1]), dict(bits=8)),
        ("huge_range_1bit", np.float32([-3e38, 3e38, 0, 1]), dict(bits=1)),
    ]
    # The compact container (version 3) is the default; these also pin the version-1 layout
    # and the per-tensor context model (pcontext), which take other write paths.
    older = {"r8", "r3_csr128", "d12", "g8", "big_8", "big_8_csr", "big_8_axis1", "sparse_4", "sparse_8_axis1_csr",
             "small(1, 32, 7, 7)_8", "small(1, 32, 7, 7)_4_best", "small(1, 40, 28, 28)_8_context", "empty", "constant"}
    out += [(f"{n}_v1", x, dict(kw, version=1)) for n, x, kw in list(out) if n in older]
    out += [(f"{n}_pcontext", x, dict(kw, mode="pcontext")) for n, x, kw in list(out)
            if n in ("r8", "sparse_4", "small(1, 40, 28, 28)_4", "small(1, 32, 7, 7)_8")]
    return out


def integer_inputs():
    """(name, fn returning the blob)."""
    s = ((h(100000) ** 2) >> 12).astype(np.uint8)
    out = [
        ("vec_rans", lambda: splitans.rans_encode(s)),
        ("vec_rans_chunk4096", lambda: splitans.rans_encode(s[:20000], chunk_symbols=4096)),
        ("vec_rans_u16_p12", lambda: splitans.rans_encode(((h(30000) ** 3) >> 10).astype(np.uint16), precision_bits=12)),
        ("vec_int32", lambda: splitans.compress(((h(6000).astype(np.int32) - 128) ** 3).reshape(60, 100))),
        ("worked_4_5", lambda: splitans.rans_encode(np.array([7, 7, 3, 7] * 5, dtype=np.uint16), precision_bits=2)),
        ("table_example", lambda: splitans.rans_encode(np.repeat(np.uint8([0, 1, 2, 5, 6, 9]), [4, 4, 80, 12, 24, 4]), precision_bits=5)),
    ]
    geo = {p: np.minimum(geometric(41 + i, num, den, 1 << 20) - 1, 255).astype(np.uint8)
           for i, (p, num, den) in enumerate([(0.35, 7, 20), (0.08, 2, 25), (0.9, 9, 10)])}
    for p, g in geo.items():
        out.append((f"geo{p}", lambda g=g: splitans.rans_encode(g)))
        out.append((f"geo{p}_t2", lambda g=g: splitans.rans_encode(g, threads=2)))
    flat = integers(44, 0, 256, (300_000,), np.uint8)
    out += [
        ("flat_u8", lambda: splitans.rans_encode(flat)),
        ("geo_u16", lambda: splitans.rans_encode(np.minimum(geometric(45, 1, 1000, 1 << 19), 65535).astype(np.uint16))),
        ("geo_chunk256", lambda: splitans.rans_encode(geo[0.08][:50000], chunk_symbols=256)),
        ("geo_chunk2_24", lambda: splitans.rans_encode(geo[0.08], chunk_symbols=1 << 24)),
        ("geo_p16", lambda: splitans.rans_encode(geo[0.35], precision_bits=16)),
        ("geo_p8", lambda: splitans.rans_encode(geo[0.35], precision_bits=8)),
    ]
    for n in (0, 1, 2, 31, 32, 33, 255, 4095, 8192, 65535, 65536, 65537, 200_001):
        out.append((f"geo_n{n}", lambda n=n: splitans.rans_encode(geo[0.08][:n])))
    ints = {
        "u8": integers(46, 0, 7, (50, 70), np.uint8),
        "i8": integers(47, -100, 100, (999,), np.int8),
        "u16": geometric(48, 1, 100, 300 * 301).reshape(300, 301).astype(np.uint16),
        "i16": integers(49, -30000, 30000, (4, 5, 6), np.int16),
        "u32": geometric(50, 1, 10000, 70000).astype(np.uint32),
        "i32": integers(51, -(2**31), 2**31 - 1, (5000,), np.int32),
        "u64": integers(52, 0, 2**63, (3000,), np.uint64),
        "i64": integers(53, -(2**40), 2**40, (10, 10, 10), np.int64),
        "i16_fortran": np.asfortranarray(integers(54, 0, 9, (40, 30), np.int16)),
        "u8_0d": np.uint8(7),
        "u16_empty": np.zeros((3, 0), np.uint16),
        "u8_big": (geo[0.08].reshape(1024, 1024)),
    }
    for name, a in ints.items():
        out.append((f"int_{name}", lambda a=a: splitans.compress(a)))
    return out


def encoder_cases():
    for name, x, kw in feature_inputs():
        # The input itself, so that a replay elsewhere tells a changed input from a changed output.
        yield f"input:{name}", array_result(np.asarray(x))
        blob = attempt(lambda: splitans.compress(x, **kw))
        if isinstance(blob, dict):
            yield f"compress:{name}", blob
            continue
        yield f"compress:{name}", {"len": len(blob), "sha": digest(blob)}
        yield f"decode:{name}", decode_result(blob)
    try:
        import torch
    except ImportError:  # the golden record is made with torch installed
        torch = None
    if torch is not None:
        t = torch.from_numpy(relu_map((1, 24, 9, 9), 50))
        for dt in ("float16", "bfloat16", "float32"):
            x = t.to(getattr(torch, dt))
            blob = splitans.compress(x, bits=8)
            yield f"compress:torch_{dt}", {"len": len(blob), "sha": digest(blob)}
            # With inspect, as every other case, so that tests/golden/check_moved.py sees the
            # streams' precisions (added in issue 24).
            yield f"decode:torch_{dt}", {
                "decompress": attempt(lambda: array_result(splitans.decompress(blob, output="torch"))),
                "inspect": attempt(lambda: _clean(splitans.inspect(blob))),
            }
    for name, fn in integer_inputs():
        blob = attempt(fn)
        if isinstance(blob, dict):
            yield f"encode:{name}", blob
            continue
        yield f"encode:{name}", {"len": len(blob), "sha": digest(blob)}
        yield f"decode:{name}", decode_result(blob)


# ---------------------------------------------------------------- the fuzz corpora


CONTAINER_DIRS = ["corpus/container_header", "corpus/decompress", "corpus/inspect_agrees", "corpus/structured", "regressions"]


def corpus_files(sub):
    d = ROOT / "fuzz" / sub
    if not d.is_dir():
        return []
    return sorted(p for p in d.rglob("*") if p.is_file())


def wrap_stream(data: bytes):
    """A bare stream of the stream_decode corpus (first byte: symbol type) as a symbols container."""
    pick, body = data[0], data[1:]
    if len(body) < 10:
        return None
    n = struct.unpack_from("<Q", body, 2)[0]
    code = 1 if pick & 1 == 0 else 3
    head = b"SPNS" + bytes([1, 0]) + struct.pack("<H", 32) + b"\0" * 4 + b"\0" * 8
    head += bytes([1, code, 1, 1]) + struct.pack("<Q", n)
    blob = bytearray(head + struct.pack("<Q", len(body)) + body)
    blob[12:20] = struct.pack("<Q", len(blob))
    crc = zlib.crc32(bytes(blob[:8]) + bytes(blob[12:]))
    blob[8:12] = struct.pack("<I", crc)
    return bytes(blob)


def corpus_cases():
    for sub in CONTAINER_DIRS:
        for p in corpus_files(sub):
            blob = p.read_bytes()
            yield f"corpus:{sub}/{p.name}", decode_result(blob, max_output_bytes=64 << 20)
    for p in corpus_files("corpus/stream_decode"):
        blob = wrap_stream(p.read_bytes())
        if blob is not None:
            yield f"corpus:stream_decode/{p.name}", decode_result(blob, max_output_bytes=64 << 20)


def all_cases():
    yield from encoder_cases()
    yield from corpus_cases()
