#!/usr/bin/env python3
"""The fast path's targets (issue 15): every peer measured in the same run, one thread unless stated.

    python benches/bench_fast.py            # about a minute
    python benches/bench_fast.py --quick    # fewer repetitions (smoke run)

1. A 1x256x56x56 float32 map (EfficientNet-Lite0 block3.expand ReLU6 activations of the two
   sample photos, reshaped) at 8 bits, mode auto: compress, decompress and decompress(out=)
   beside a memcpy of the same float32 bytes (the memory-speed limit: the map is read once to
   compress, written once to decompress), numpy's quantization and zstd -1 on the codes.
2. A 1x32x7x7 map (block12.expand, its first 32 channels, one photo) at 4 and at 8 bits, auto:
   compress and decompress beside numpy quantization + zstd -1 (and zstd -1 + numpy
   dequantization).
3. Threads, 1 -> 2: the large map, and batches of 256 small maps through compress_many /
   decompress_many.

Each time is the best of many calls, taken over rounds that alternate the codecs, so that a busy
spell on a shared machine hits all of them. Prints Markdown tables and the targets. Needs the
'demo' and 'bench' extras (torch, the EfficientNet-Lite0 weights package, zstandard).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import time

import numpy as np

import splitans

N_BATCH = 256


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def maps():
    """The large and the small map, from real activations."""
    from splitans.eval import models

    with contextlib.redirect_stdout(io.StringIO()):  # "Loaded pretrained weights ..."
        model = models.efficientnet_lite0()
    _, images = models.sample_images()
    big = models.EfficientNetSplit(model, "block3.expand").head(images).numpy()
    big = np.ascontiguousarray(big.reshape(1, -1, 56, 56)[:, :256])
    small = models.EfficientNetSplit(model, "block12.expand").head(images).numpy()
    smalls = [np.ascontiguousarray(small[i : i + 1, 32 * j : 32 * (j + 1)]) for i in range(2) for j in range(36)]
    return big, smalls


def race(fns, rounds, reps):
    """Best seconds of each callable: `rounds` rounds, each calling every one `reps` times in turn."""
    best = {k: float("inf") for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(rounds):
        for k, fn in fns.items():
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t)
    return best


def table(headers, rows):
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def us(s):
    return f"{s * 1e6:,.1f} µs"


def ms(s):
    return f"{s * 1e3:.3f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import zstandard

    rounds = 3 if args.quick else 10
    print("# splitans fast-path benchmark" + (" (--quick)" if args.quick else "") + "\n")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, Python {platform.python_version()}")
    print(f"- load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    so = splitans._core.__file__
    built = datetime.datetime.fromtimestamp(os.path.getmtime(so)).astimezone().isoformat(timespec="seconds")
    print(f"- splitans {splitans.__version__}, extension {so} (modified {built}); numpy {np.__version__}, "
          f"zstandard {zstandard.__version__}\n")
    big, smalls = maps()
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    results = {}

    # ------------------------------------------------------------ 1. the large map
    blob = splitans.compress(big, bits=8, threads=1)
    info = splitans.inspect(blob)
    out = np.empty_like(big)
    dst = np.empty_like(big)
    scale = np.float32(big.max() / 255)
    codes = np.round(big / scale).astype(np.uint8)
    zcodes = zc.compress(codes)
    fns = {
        "memcpy of the map (np.copyto)": lambda: np.copyto(dst, big),
        "splitans compress": lambda: splitans.compress(big, bits=8, threads=1),
        "splitans decompress": lambda: splitans.decompress(blob, threads=1),
        "splitans decompress(out=)": lambda: splitans.decompress(blob, threads=1, out=out),
        "numpy np.round(x / s).astype(uint8)": lambda: np.round(big / scale).astype(np.uint8),
        "zstd -1 compress of the codes": lambda: zc.compress(codes),
        "zstd -1 decompress of the codes": lambda: zd.decompress(zcodes),
        "splitans compress threads=2": lambda: splitans.compress(big, bits=8, threads=2),
        "splitans decompress threads=2": lambda: splitans.decompress(blob, threads=2),
    }
    t = race(fns, rounds, 5)
    copy = t["memcpy of the map (np.copyto)"]
    print(f"## 1. {big.shape} float32 map, 8 bits, auto, one thread\n")
    print(f"{(big == 0).mean():.0%} zeros; {len(blob):,} bytes ({8 * len(blob) / big.size:.3f} bits/element), "
          f"mode {info['mode']}, precision {info['streams'][0]['precision_bits']} bits. The memcpy moves the "
          f"map's {big.nbytes / 1e6:.2f} MB once: 'of memcpy' is its time over the row's, the fraction of that "
          "memory speed a call reaches.\n")
    rows = []
    for k, v in t.items():
        if "threads=2" in k:
            continue
        rows.append([k, ms(v), f"{big.nbytes / v / 1e9:.1f} GB/s", f"{copy / v:.0%}"])
    table(["call", "best", "map bytes / time", "of memcpy"], rows)
    results["big compress"] = t["splitans compress"]
    results["big decompress"] = t["splitans decompress"]
    results["big decompress out"] = t["splitans decompress(out=)"]
    results["big threads"] = (t["splitans compress"] / t["splitans compress threads=2"],
                              t["splitans decompress"] / t["splitans decompress threads=2"])
    np.testing.assert_array_equal(splitans.decompress(blob), out)

    # ------------------------------------------------------------ 2. the small map
    x = smalls[0]
    print(f"## 2. {x.shape} float32 map, auto, one call each (threads default)\n")
    print(f"{(x == 0).mean():.0%} zeros. The peer quantizes with numpy (range included) and codes with zstd -1; "
          "decoding, zstd -1 then numpy's dequantization.\n")
    rows = []
    for bits in (4, 8):
        levels = (1 << bits) - 1
        sb = splitans.compress(x, bits=bits)
        small_out = np.empty_like(x)

        def peer_c(bits=bits, levels=levels):
            s = np.float32(x.max() / levels)
            return zc.compress(np.round(x / s).astype(np.uint8)), s

        (pz, ps) = peer_c()

        def peer_d():
            return (np.frombuffer(zd.decompress(pz), np.uint8).astype(np.float32) * ps).reshape(x.shape)

        fns = {
            "splitans compress": lambda bits=bits: splitans.compress(x, bits=bits),
            "splitans decompress": lambda sb=sb: splitans.decompress(sb),
            "splitans decompress(out=)": lambda sb=sb, o=small_out: splitans.decompress(sb, out=o),
            "numpy + zstd -1 compress": peer_c,
            "zstd -1 + numpy decompress": peer_d,
        }
        t = race(fns, rounds, 200)
        mode = splitans.inspect(sb)["mode"]
        for k, v in t.items():
            rows.append([f"{bits} bits", k, us(v), f"{len(sb) if k.startswith('splitans') else len(pz):,} B",
                         mode if k.startswith("splitans") else ""])
        results[f"small{bits} compress"] = t["splitans compress"]
        results[f"small{bits} decompress"] = t["splitans decompress"]
    table(["bits", "call", "best", "compressed", "mode"], rows)

    # ------------------------------------------------------------ 3. batches, 1 -> 2 threads
    batch = [smalls[i % len(smalls)] for i in range(N_BATCH)]
    blobs = splitans.compress_many(batch, bits=8)
    assert blobs == [splitans.compress(a, bits=8) for a in batch], "compress_many differs from compress"
    outs = [np.empty_like(a) for a in batch]
    fns = {
        "compress_many threads=1": lambda: splitans.compress_many(batch, bits=8, threads=1),
        "compress_many threads=2": lambda: splitans.compress_many(batch, bits=8, threads=2),
        "decompress_many threads=1": lambda: splitans.decompress_many(blobs, threads=1),
        "decompress_many threads=2": lambda: splitans.decompress_many(blobs, threads=2),
        "decompress_many(out=) threads=2": lambda: splitans.decompress_many(blobs, out=outs, threads=2),
        "a loop of decompress()": lambda: [splitans.decompress(b) for b in blobs],
    }
    t = race(fns, rounds, 5)
    print(f"## 3. Threads: {N_BATCH} maps of {batch[0].shape} at 8 bits per call, and the large map\n")
    rows = [[k, ms(v), us(v / N_BATCH)] for k, v in t.items()]
    table(["call", f"best for {N_BATCH}", "per map"], rows)
    sc = t["compress_many threads=1"] / t["compress_many threads=2"]
    sd = t["decompress_many threads=1"] / t["decompress_many threads=2"]
    bc, bd = results["big threads"]
    print(f"Speed-up from 1 to 2 threads: batches compress x{sc:.2f}, decompress x{sd:.2f}; "
          f"the large map compress x{bc:.2f}, decompress x{bd:.2f}.\n")
    results["many decompress speedup"] = sd

    # ------------------------------------------------------------ targets
    print("## Targets (issue 15)\n")
    rows = []
    for what, got, want, fmt, le in [
        ("1x256x56x56, 8 bits: compress", results["big compress"], 1.0e-3, ms, True),
        ("1x256x56x56, 8 bits: decompress", results["big decompress"], 0.45e-3, ms, True),
        ("1x32x7x7, 4 bits: compress", results["small4 compress"], 10e-6, us, True),
        ("1x32x7x7, 8 bits: compress", results["small8 compress"], 10e-6, us, True),
        ("1x32x7x7, 4 bits: decompress", results["small4 decompress"], 4e-6, us, True),
        ("1x32x7x7, 8 bits: decompress", results["small8 decompress"], 4e-6, us, True),
    ]:
        ok = got <= want if le else got >= want
        rows.append([what, fmt(got), f"≤ {fmt(want)}", "met" if ok else f"missed by {got / want - 1:.0%}"])
    ok = sd >= 1.7
    rows.append([f"decompress_many of {N_BATCH} small blobs, 2 threads vs 1", f"x{sd:.2f}", "≥ x1.70",
                 "met" if ok else "missed"])
    table(["target", "measured", "required", "result"], rows)
    print("Static rANS decode and encode against zstd -1 are in benches/bench_rans.py.\n")
    print(f"- load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
