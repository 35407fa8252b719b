#!/usr/bin/env python3
"""Issue 24's speed targets, each against its peer in the same run, one thread:

    python benches/bench_issue24.py                 # static, large, small (a few minutes)
    python benches/bench_issue24.py --only small    # one section: static, large, small, fitted
    python benches/bench_issue24.py --json out.json

On a shared machine a busy spell slows whichever call it lands on, so every figure here is a
*paired* one: the splitans call and its peer run back to back, many times, and the table gives
the median of each and the median of the per-pair ratio (with its quartiles), which a slow drift
of the load cancels out of.

1. **Static decode** (`rans_decode`, threads=1) against zstd -1 decompression of the same
   16 MiB: skewed (geometric p = 0.35), geometric p = 0.08 and EfficientNet-Lite0 activations,
   the data sets of `bench_rans.py`. Target: >= 1.3x zstd -1.
2. **Large map**: `np.maximum(normal(1, 256, 56, 56), 0)` float32 at 8 bits, auto. Compress
   against numpy's bare quantization `np.round(x / s).astype(np.uint8)` (target <= 3x);
   decompress against zstd -1 decompression of those codes plus `codes.astype(np.float32) * s`
   (target <= 1.0x).
3. **Small map**: a 1x32x7x7 map (block12.expand of EfficientNet-Lite0, the first 32 channels,
   as `bench_fast.py`) at 4 and 8 bits, auto. Compress against numpy quantization (range
   included) + zstd -1 (target <= 1.3x); decompress against zstd -1 + numpy dequantization
   (target <= 1.0x).
4. **Fitted** (`--only fitted`, needs the activation data of `splitans.eval.activations`): a codec
   fitted at 8 bits on the Lite0 stem and on block3.expand; decode and encode in G codes/s
   (targets >= 0.5 and >= 0.3), with zstd -1 decompression of the codes beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import splitans

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MiB = 1 << 20


def paired(fa, fb, reps, inner=1):
    """Times fa and fb back to back `reps` times (each call repeated `inner` times per sample);
    returns (median seconds of a, of b, median of a/b, quartiles of a/b)."""
    fa()
    fb()
    ta, tb, r = [], [], []
    for k in range(reps):
        # Alternate which runs first, so neither always inherits the other's cache state.
        order = (fa, fb) if k % 2 == 0 else (fb, fa)
        t = {}
        for f in order:
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            t[f] = (time.perf_counter() - t0) / inner
        ta.append(t[fa])
        tb.append(t[fb])
        r.append(t[fa] / t[fb])
    q = statistics.quantiles(r, n=4)
    return statistics.median(ta), statistics.median(tb), statistics.median(r), (q[0], q[2])


def table(headers, rows):
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def verdict(ratio, want, le=True):
    ok = ratio <= want if le else ratio >= want
    return "met" if ok else f"missed ({ratio / want - 1:+.0%})"


def static(results, reps):
    import zstandard

    import bench_rans as br

    rng = np.random.default_rng(br.SEED)
    n = 16 * MiB
    sets = {"skewed": br.skewed(n, rng)}
    br.near_uniform(n, rng)  # keeps the generator's sequence that of bench_rans.py
    with contextlib.redirect_stdout(io.StringIO()):
        acts, _ = br.activations(n)
    sets["activations"] = acts
    sets["geometric-0.08"] = br.geometric08(n, rng)
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    rows = []
    for name, x in sets.items():
        blob = splitans.rans_encode(x, threads=1)
        z = zc.compress(x)
        st = splitans.inspect(blob)["streams"][0]
        ts, tz, ratio, (q1, q3) = paired(lambda: splitans.rans_decode(blob, threads=1), lambda: zd.decompress(z), reps)
        speedup = 1 / ratio
        results[f"static {name}"] = {"bytes": len(blob), "p": st["precision_bits"], "splitans_MBps": n / ts / 1e6,
                                     "zstd1_MBps": n / tz / 1e6, "x_zstd1": speedup}
        rows.append([name, f"{len(blob):,}", st["precision_bits"], f"{n / ts / 1e6:,.0f}", f"{n / tz / 1e6:,.0f}",
                     f"x{speedup:.2f} (x{1 / q3:.2f}-x{1 / q1:.2f})", verdict(speedup, 1.3, le=False)])
    print(f"## 1. Static decode, 16 MiB, one thread ({reps} pairs)\n")
    table(["data", "bytes", "p", "splitans MB/s", "zstd -1 MB/s", "speed / zstd -1 (quartiles)", "target >= x1.3"], rows)


def large(results, reps):
    import zstandard

    rng = np.random.default_rng(24)
    x = np.maximum(rng.standard_normal((1, 256, 56, 56), dtype=np.float32), 0)
    s = np.float32(x.max() / 255)
    codes = np.round(x / s).astype(np.uint8)
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    z = zc.compress(codes)
    blob = splitans.compress(x, bits=8, threads=1)
    st = splitans.inspect(blob)["streams"][0]
    c = paired(lambda: splitans.compress(x, bits=8, threads=1), lambda: np.round(x / s).astype(np.uint8), reps)
    d = paired(lambda: splitans.decompress(blob, threads=1),
               lambda: (np.frombuffer(zd.decompress(z), np.uint8).astype(np.float32) * s).reshape(x.shape), reps)
    results["large"] = {"bytes": len(blob), "p": st["precision_bits"], "compress_ms": c[0] * 1e3,
                        "quantize_ms": c[1] * 1e3, "compress_ratio": c[2], "decompress_ms": d[0] * 1e3,
                        "zstd1_dequantize_ms": d[1] * 1e3, "decompress_ratio": d[2]}
    print(f"## 2. Large map: max(normal(1, 256, 56, 56), 0), 8 bits, auto, one thread ({reps} pairs)\n")
    print(f"{len(blob):,} bytes, {st['precision_bits']}-bit table; zstd -1 of the codes {len(z):,} bytes.\n")
    table(["call", "splitans", "peer", "peer time", "ratio (quartiles)", "target"], [
        ["compress", f"{c[0] * 1e3:.3f} ms", "np.round(x / s).astype(uint8)", f"{c[1] * 1e3:.3f} ms",
         f"{c[2]:.2f} ({c[3][0]:.2f}-{c[3][1]:.2f})", "<= 3: " + verdict(c[2], 3.0)],
        ["decompress", f"{d[0] * 1e3:.3f} ms", "zstd -1 + dequantize", f"{d[1] * 1e3:.3f} ms",
         f"{d[2]:.2f} ({d[3][0]:.2f}-{d[3][1]:.2f})", "<= 1: " + verdict(d[2], 1.0)],
    ])


def small_map():
    try:
        import bench_fast

        with contextlib.redirect_stdout(io.StringIO()):
            _, smalls = bench_fast.maps()
        return smalls[0], "block12.expand of EfficientNet-Lite0 (first 32 channels)"
    except Exception as e:  # noqa: BLE001 - no torch or weights: a synthetic map says so
        rng = np.random.default_rng(7)
        x = np.clip(rng.standard_normal((1, 32, 7, 7), dtype=np.float32) - 0.2, 0, 6)
        return x, f"synthetic ReLU map (the real one needs torch: {type(e).__name__})"


def small(results, reps):
    import zstandard

    x, what = small_map()
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    rows = []
    for bits in (4, 8):
        levels = (1 << bits) - 1
        blob = splitans.compress(x, bits=bits)

        def peer_c(levels=levels):
            s = np.float32(x.max() / levels)
            return zc.compress(np.round(x / s).astype(np.uint8)), s

        pz, ps = peer_c()
        c = paired(lambda bits=bits: splitans.compress(x, bits=bits), peer_c, reps, inner=20)
        d = paired(lambda blob=blob: splitans.decompress(blob),
                   lambda: (np.frombuffer(zd.decompress(pz), np.uint8).astype(np.float32) * ps).reshape(x.shape),
                   reps, inner=20)
        info = splitans.inspect(blob)
        results[f"small{bits}"] = {"bytes": len(blob), "zstd_bytes": len(pz), "compress_us": c[0] * 1e6,
                                   "peer_compress_us": c[1] * 1e6, "compress_ratio": c[2],
                                   "decompress_us": d[0] * 1e6, "peer_decompress_us": d[1] * 1e6,
                                   "decompress_ratio": d[2]}
        mode = f"{info['mode']}, p={','.join(str(s['precision_bits']) for s in info['streams'])}"
        rows.append([f"{bits} bits", f"{len(blob):,} ({mode})", f"{len(pz):,}", f"{c[0] * 1e6:.1f} µs",
                     f"{c[1] * 1e6:.1f} µs", f"{c[2]:.2f} ({c[3][0]:.2f}-{c[3][1]:.2f})", verdict(c[2], 1.3),
                     f"{d[0] * 1e6:.1f} µs", f"{d[1] * 1e6:.1f} µs", f"{d[2]:.2f} ({d[3][0]:.2f}-{d[3][1]:.2f})",
                     verdict(d[2], 1.0)])
    print(f"## 3. Small map 1x32x7x7, auto, default threads ({reps} pairs of 20 calls)\n")
    print(f"{what}; peers: numpy quantization + zstd -1, and zstd -1 + numpy dequantization.\n")
    table(["bits", "splitans bytes", "zstd bytes", "compress", "numpy + zstd -1", "ratio", "<= 1.3",
           "decompress", "zstd -1 + numpy", "ratio", "<= 1.0"], rows)


def fitted(results, reps):
    import zstandard

    from splitans.eval import activations

    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    rows = []
    for name in ("lite0.stem", "lite0.block3.expand"):
        cal, tst = activations.load(name)
        codec = splitans.Codec.fit(cal[:12], bits=8)
        x = tst[0]
        blob = codec.compress(x)
        codes, *_ = codec._c.decode_codes(blob, 1 << 40)
        n = codes.size
        z = zc.compress(codes.tobytes())
        d = paired(lambda: codec._c.decode_codes(blob, 1 << 40), lambda: zd.decompress(z), reps)
        e = paired(lambda: codec.compress(x), lambda: zc.compress(codes.tobytes()), reps)
        results[f"fitted {name}"] = {"elements": n, "bytes": len(blob), "decode_Gcps": n / d[0] / 1e9,
                                     "encode_Gcps": n / e[0] / 1e9, "zstd1_decode_Gcps": n / d[1] / 1e9}
        rows.append([name, f"{n:,}", f"{len(blob):,}", f"{n / d[0] / 1e9:.3f}", verdict(n / d[0] / 1e9, 0.5, le=False),
                     f"{n / e[0] / 1e9:.3f}", verdict(n / e[0] / 1e9, 0.3, le=False), f"{n / d[1] / 1e9:.3f}"])
    print(f"## 4. Fitted codec, 8 bits, one thread ({reps} pairs)\n")
    table(["map", "codes", "bytes", "decode G codes/s", ">= 0.5", "encode G codes/s", ">= 0.3",
           "zstd -1 decode G codes/s"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="static,large,small", help="sections: static,large,small,fitted")
    ap.add_argument("--reps", type=int, default=0, help="pairs per measurement (default per section)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    so = splitans._core.__file__
    built = datetime.datetime.fromtimestamp(os.path.getmtime(so)).astimezone().isoformat(timespec="seconds")
    print("# issue 24 targets\n")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, "
          f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} logical cores")
    print(f"- splitans extension: {so} (modified {built}); vector kernels: {splitans._core.simd_kernels()}")
    print(f"- load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    results = {}
    sections = {"static": (static, 31), "large": (large, 101), "small": (small, 201), "fitted": (fitted, 21)}
    for name in args.only.split(","):
        fn, reps = sections[name]
        fn(results, args.reps or reps)
    print(f"- load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"so": so, **results}, f, indent=1)


if __name__ == "__main__":
    main()
