#!/usr/bin/env python3
"""Rate and single-core speed of splitans' rANS coder against zstd, lz4, blosc2 and constriction.

    python benches/bench_rans.py            # three 16 MiB uint8 datasets (about a minute)
    python benches/bench_rans.py --quick    # 1 MiB datasets, fewer repetitions (smoke run)

Datasets: "skewed" (geometric p = 0.35, ~2.7 bits/symbol), "geometric-0.08" (~5 bits/symbol,
a long tail of rare symbols: 13-bit tables, 16 before issue 24), "near-uniform" (wide truncated
Gaussian, ~7.9 bits/symbol) and "activations" (EfficientNet-Lite0 activations, 8-bit quantized
per tensor). Prints Markdown tables: rate against the order-0 entropy bound, speed with one
thread for every codec, and the targets (issue 15: decode >= 1.3x and encode >= 1.5x zstd -1).
Needs the 'bench' and 'demo' extras.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import statistics
import time
from importlib.metadata import version

import numpy as np

import splitans
import splitans.eval.models  # the activations dataset needs the 'demo' extra (torch, EfficientNet-Lite0)

MiB = 1 << 20
MB = 1e6
SEED = 20240601
POINTS = ["block3.expand", "block5.expand", "block11.expand", "block3.out", "block8.out"]
TARGET_PAYLOAD = 0.005  # payload within 0.5% of the entropy bound
TARGET_DEC, TARGET_ENC = 1500.0, 800.0  # MB/s, one core
ZSTD_DEC_RATIO, ZSTD_ENC_RATIO = 1.3, 1.5  # issue 15: against zstd -1, one core


# ---------------------------------------------------------------- helpers


def table(headers, rows):
    """Print a Markdown table (numbers right-aligned)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    right = [all(_numeric(r[i]) for r in cells) for i in range(len(headers))]

    def line(cs):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cs, widths, right)) + " |"

    print(line(headers))
    print("|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|")
    for r in cells:
        print(line(r))
    print()


def _numeric(s):
    try:
        float(s.replace(",", "").rstrip("%x"))
        return True
    except ValueError:
        return False


def timed(fn, reps, warmup=True):
    """Run fn (warm-up once unless told not to, then `reps` times); return (result, best s, median s)."""
    if warmup:
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times), statistics.median(times)


def entropy(x):
    """Order-0 entropy of uint8 symbols in bits/symbol (numpy float64) and the bound n*H/8 in bytes."""
    counts = np.bincount(x, minlength=256).astype(np.float64)
    p = counts[counts > 0] / x.size
    h = float(-(p * np.log2(p)).sum())
    return h, x.size * h / 8


def cpu_busy():
    """(CPU seconds used by the whole machine, by this process) so far: a gauge of interference."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        machine = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError):
        machine = float("nan")
    t = os.times()
    return machine, t.user + t.system


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------- datasets


def skewed(n, rng):
    """Geometric(p=0.35) shifted to start at 0, clipped to 255: ~2.7 bits/symbol."""
    return np.minimum(rng.geometric(0.35, n) - 1, 255).astype(np.uint8)


def geometric08(n, rng):
    """Geometric(p=0.08) shifted to start at 0, clipped to 255: ~5 bits/symbol, ~160 symbols."""
    return np.minimum(rng.geometric(0.08, n) - 1, 255).astype(np.uint8)


def near_uniform(n, rng):
    """A Gaussian with sigma 80 centred on 127.5, truncated to 0..255: ~7.9 bits/symbol."""
    s = np.arange(256)
    p = np.exp(-0.5 * ((s - 127.5) / 80.0) ** 2)
    return rng.choice(256, size=n, p=p / p.sum()).astype(np.uint8)


def quantize8(a):
    """Asymmetric per-tensor 8-bit quantization: scale=(max-min)/255, q=round(x/scale)+zero_point."""
    lo, hi = float(a.min()), float(a.max())
    scale = (hi - lo) / 255 or 1.0
    zp = round(-lo / scale)
    return np.clip(np.round(a / scale) + zp, 0, 255).astype(np.uint8)


def augmented_images():
    """The two sample photos (256x256 centre crops) -> 224x224 views: centre crop, its horizontal
    flip, six shifted crops, brightness x1.3, x1.15, x0.85, x0.7. Ordered view by view, both
    photos each, so that a short run still sees both photos."""
    import torch

    names, big = splitans.eval.models.sample_images(size=256)  # normalized: (x/255 - 0.498)/0.502

    def bright(t, f):  # scale the 0..1 pixel values, renormalize
        return (((t * 0.502 + 0.498) * f).clamp(0, 1) - 0.498) / 0.502

    def crop(img, top, left):
        return img[:, top : top + 224, left : left + 224]

    variants = {"centre": lambda im: crop(im, 16, 16), "hflip": lambda im: torch.flip(crop(im, 16, 16), dims=[-1])}
    for top, left in [(0, 0), (32, 32), (0, 32), (32, 0), (16, 0), (0, 16)]:
        variants[f"crop({top},{left})"] = lambda im, t=top, l=left: crop(im, t, l)
    for f in [1.3, 0.7, 1.15, 0.85]:
        variants[f"brightness x{f}"] = lambda im, f=f: bright(crop(im, 16, 16), f)
    views, labels = [], []
    for k, fn in variants.items():
        for name, img in zip(names, big):
            views.append(fn(img))
            labels.append(f"{name}:{k}")
    return labels, torch.stack(views)


def activations(n):
    """Quantized EfficientNet-Lite0 activations, image by image and point by point, until n bytes."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights ..."
        model = splitans.eval.models.efficientnet_lite0()
    labels, batch = augmented_images()
    acts = {p: splitans.eval.models.EfficientNetSplit(model, p).head(batch).numpy() for p in POINTS}
    parts, total, used = [], 0, []
    for i, label in enumerate(labels):
        for p in POINTS:
            if total >= n:
                break
            q = quantize8(acts[p][i]).ravel()
            parts.append(q)
            used.append((label, p, q.size))
            total += q.size
    data = np.concatenate(parts)[:n]
    assert data.size == n, f"only {data.size} activation symbols for {n}: add input views"
    shapes = {p: "x".join(map(str, acts[p].shape[1:])) for p in POINTS}
    partial = total - n
    desc = (
        f"{len(used)} tensors ({len(set(u[0] for u in used))} input views of {len(labels)}: the 2 sklearn photos "
        f"as centre crop, h-flip, 6 shifted crops, brightness x1.3/x0.7/x1.15/x0.85) from EfficientNet-Lite0 at "
        + ", ".join(f"{p} ({shapes[p]})" for p in POINTS)
        + f"; each quantized to uint8 on its own, concatenated, last tensor cut by {partial} symbols"
    )
    return data, desc


# ---------------------------------------------------------------- rate


def rans_layout(blob):
    """Byte accounting of a one-stream splitans container (docs/FORMAT.md), from the library's own
    parse of it: fixed overheads (container header, stream record and header, rANS parameters,
    frequency table, chunk directory, chunk states) and the payload (the 16-bit words)."""
    s = splitans._core.gpu_layout(blob, 1 << 62)["streams"][0]
    if s["mode"] != "rans":
        return {"mode": s["mode"], "header": s["offset"] + 10, "table": 0, "directory": 0, "states": 0,
                "chunks": 0, "payload": len(blob) - s["offset"] - 10}
    chunks, lanes = len(s["word_counts"]), s["lanes"]
    directory_at = s["state_offsets"][0] - 4 * chunks
    header = s["offset"] + 10 + 4  # container header and record length, stream header, rANS parameters
    lay = {"mode": 3, "header": header, "table": directory_at - header, "directory": 4 * chunks,
           "states": 4 * lanes * chunks, "chunks": chunks, "payload": 2 * int(sum(s["word_counts"]))}
    assert sum(v for k, v in lay.items() if k not in ("mode", "chunks")) == len(blob), "layout does not add up"
    return lay


def rate_rows(datasets):
    rows = []
    for name, x in datasets.items():
        h, bound = entropy(x)
        blob = splitans.rans_encode(x)
        assert np.array_equal(splitans.rans_decode(blob), x)
        info, lay = splitans.inspect(blob), rans_layout(blob)
        st = info["streams"][0]
        assert abs(st["entropy_bound_bytes"] - bound) < 1e-6 * bound + 1, "inspect's bound differs from numpy's"
        fixed = len(blob) - lay["payload"]
        excess = lay["payload"] / bound - 1
        # Strict reading: everything but the table and headers (states and directory included)
        # within 0.5% of the bound.
        strict = (len(blob) - lay["table"] - lay["header"]) / bound - 1
        rows.append([
            name, f"{x.size:,}", f"{h:.4f}", f"{bound:,.0f}", f"{len(blob):,}", f"{len(blob) - bound:,.0f}",
            f"{100 * (len(blob) / bound - 1):.3f}%", st["mode"], st["precision_bits"], st["distinct_symbols"],
            f"{lay['header']}+{lay['table']}+{lay['directory']}+{lay['states']} = {fixed:,}",
            f"{lay['payload']:,}", f"{100 * excess:+.3f}%", "PASS" if excess <= TARGET_PAYLOAD else "MISS",
            f"{100 * strict:+.3f}%", "PASS" if strict <= TARGET_PAYLOAD else "MISS",
        ])
    print("## Rate: splitans.rans_encode (defaults) against the order-0 entropy bound\n")
    print("bound = n*H/8 from the numpy histogram (float64; equals inspect()'s entropy_bound_bytes). "
          "Fixed = container+stream headers and rANS parameters + frequency table + chunk directory "
          "(4 B/chunk) + chunk states (lanes x 4 B/chunk), parsed from the blob per docs/FORMAT.md; "
          "payload = the 16-bit words. Target: payload <= bound x 1.005 (i.e. size within 0.5% of the "
          "bound plus table and header bytes); 'strict' also counts the chunk states and directory "
          "against the coder: (size - table - headers) <= bound x 1.005.\n")
    table(["dataset", "n", "H bits", "bound B", "size B", "size-bound", "size/bound-1", "mode", "p",
           "distinct", "fixed: hdr+table+dir+states", "payload B", "payload/bound-1", "target",
           "strict excess", "strict target"], rows)


# ---------------------------------------------------------------- speed


def codecs(quick):
    """(name, encode(x)->bytes-like, decode(c, n)->ndarray, reps, note) for single-threaded coding."""
    import blosc2
    import constriction
    import lz4.frame
    import zstandard

    reps = 3 if quick else 7
    blosc2.set_nthreads(1)

    def zstd(level):
        cctx, dctx = zstandard.ZstdCompressor(level=level, threads=0), zstandard.ZstdDecompressor()
        return (lambda x: cctx.compress(x), lambda c, n: np.frombuffer(dctx.decompress(c), np.uint8))

    def cat_model(counts):
        return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)

    def cs_enc(x):  # histogram + model + coding; the decoder would receive the counts as side info
        counts = np.bincount(x, minlength=256).astype(np.float64)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(x.astype(np.int32), cat_model(counts))
        return counts, coder.get_compressed()

    def cs_dec(c, n):
        counts, words = c
        return constriction.stream.stack.AnsCoder(words).decode(cat_model(counts), n).astype(np.uint8)

    def blosc(codec):
        return (lambda x: blosc2.compress(x, typesize=1, codec=codec),
                lambda c, n: np.frombuffer(blosc2.decompress(c), np.uint8))

    return [
        ("splitans threads=1", lambda x: splitans.rans_encode(x, threads=1),
         lambda c, n: splitans.rans_decode(c, threads=1), reps, ""),
        ("splitans threads=1 precision_bits=12", lambda x: splitans.rans_encode(x, threads=1, precision_bits=12),
         lambda c, n: splitans.rans_decode(c, threads=1), reps,
         "tables of 12 bits (the default takes a table beyond 16 KiB only where that saves 0.5%)"),
        ("constriction AnsCoder", cs_enc, cs_dec, max(3, reps // 2),
         "Categorical(perfect=False) from the histogram; size = words only; times include the int32 cast"),
        ("zstd -1", *zstd(1), reps, ""),
        ("zstd -3", *zstd(3), reps, ""),
        ("zstd -19", *zstd(19), 1, "encode timed once, no warm-up"),
        ("lz4.frame", lambda x: lz4.frame.compress(x), lambda c, n: np.frombuffer(lz4.frame.decompress(c), np.uint8),
         reps, "default level"),
        ("blosc2 LZ4", *blosc(blosc2.Codec.LZ4), reps, "typesize=1, default clevel/filter, nthreads=1"),
        ("blosc2 ZSTD", *blosc(blosc2.Codec.ZSTD), reps, "typesize=1, default clevel/filter, nthreads=1"),
        ("splitans threads=None", lambda x: splitans.rans_encode(x),
         lambda c, n: splitans.rans_decode(c), reps, f"all {os.cpu_count()} cores"),
    ]


def size_of(c):
    if isinstance(c, tuple):  # constriction: (counts, words)
        return c[1].nbytes
    return len(c)


def speed(name, x, quick, results):
    print(f"### {name}: {x.size:,} symbols\n")
    rows, notes = [], []
    (m0, s0), w0 = cpu_busy(), time.perf_counter()
    for codec, enc, dec, reps, note in codecs(quick):
        c, eb, em = timed(lambda: enc(x), reps, warmup=reps > 1)
        y, db, dm = timed(lambda: dec(c, x.size), reps)
        ok = np.array_equal(np.asarray(y), x)
        size = size_of(c)
        results[(name, codec)] = {"enc": x.size / em / MB, "dec": x.size / dm / MB,
                                  "enc_best": x.size / eb / MB, "dec_best": x.size / db / MB,
                                  "ratio": x.size / size}
        rows.append([codec, f"{size:,}", f"{x.size / size:.3f}", f"{x.size / eb / MB:,.0f}",
                     f"{x.size / em / MB:,.0f}", f"{x.size / db / MB:,.0f}", f"{x.size / dm / MB:,.0f}",
                     reps, "ok" if ok else "MISMATCH"])
        if note:
            notes.append(f"{codec}: {note}")
    (m1, s1), w1 = cpu_busy(), time.perf_counter()
    notes.append(f"other processes used {max(m1 - m0 - (s1 - s0), 0):.1f} CPU-s in these {w1 - w0:.1f} s "
                 f"(this process {s1 - s0:.1f} CPU-s): a large share means the timings were disturbed")
    table(["codec", "bytes", "ratio", "enc MB/s best", "enc MB/s median", "dec MB/s best",
           "dec MB/s median", "reps", "round trip"], rows)
    one, all_ = results[(name, "splitans threads=1")], results[(name, "splitans threads=None")]
    print(f"splitans speed-up threads=None vs threads=1 ({os.cpu_count()} cores, medians): "
          f"encode x{all_['enc'] / one['enc']:.2f}, decode x{all_['dec'] / one['dec']:.2f}\n")
    for n_ in notes:
        print(f"- {n_}")
    print()


def targets(results, names):
    rows, notes = [], []
    for name in names:
        s, z = results[(name, "splitans threads=1")], results[(name, "zstd -1")]
        if z["ratio"] < 1.001:
            notes.append(f"{name}: zstd -1 stored the data uncompressed (ratio {z['ratio']:.4f}), "
                         "so its 'decompression' is a copy; that comparison is moot there.")
        for what, got, best, want in [
            ("decode >= 1500 MB/s", s["dec"], s["dec_best"], TARGET_DEC),
            ("encode >= 800 MB/s", s["enc"], s["enc_best"], TARGET_ENC),
            (f"decode >= {ZSTD_DEC_RATIO}x zstd -1 decode", s["dec"], s["dec_best"], ZSTD_DEC_RATIO * z["dec"]),
            (f"encode >= {ZSTD_ENC_RATIO}x zstd -1 encode", s["enc"], s["enc_best"], ZSTD_ENC_RATIO * z["enc"]),
        ]:
            rows.append([name, what, f"{got:,.0f}", f"{best:,.0f}", f"{want:,.0f}", "PASS" if got >= want else "MISS",
                         f"x{got / z['dec' if 'decode' in what else 'enc']:.2f}"])
    print("## Targets (splitans, one core; judged on the median)\n")
    table(["dataset", "target", "measured median MB/s", "best MB/s", "required MB/s", "result", "vs zstd -1"], rows)
    for n_ in notes:
        print(f"- {n_}")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 MiB datasets and fewer repetitions")
    args = ap.parse_args()
    n = (1 if args.quick else 16) * MiB

    print("# splitans rANS benchmark" + (" (--quick)" if args.quick else "") + "\n")
    vers = ", ".join([f"splitans {splitans.__version__}"] + [f"{p} {version(p)}" for p in
                     ["numpy", "zstandard", "lz4", "blosc2", "constriction", "torch"]])
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.platform()}, "
          f"Python {platform.python_version()}")
    print(f"- load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"- versions: {vers}")
    so = splitans._core.__file__  # others may rebuild the package: say which build ran
    built = datetime.datetime.fromtimestamp(os.path.getmtime(so)).astimezone().isoformat(timespec="seconds")
    print(f"- splitans extension: {so} (modified {built})")
    print(f"- datasets: {n:,} uint8 symbols each ({n // MiB} MiB), seed {SEED}; MB/s = 1e6 input bytes/s\n")

    rng = np.random.default_rng(SEED)
    acts, desc = activations(n)
    datasets = {"skewed": skewed(n, rng), "near-uniform": near_uniform(n, rng), "activations": acts,
                "geometric-0.08": geometric08(n, rng)}
    print(f"- skewed: {skewed.__doc__}")
    print(f"- geometric-0.08: {geometric08.__doc__}")
    print(f"- near-uniform: {near_uniform.__doc__}")
    print(f"- activations: {desc}\n")

    rate_rows(datasets)

    print("## Speed, one thread for every codec (plus splitans on all cores)\n")
    results = {}
    for name, x in datasets.items():
        speed(name, x, args.quick, results)
    targets(results, list(datasets))
    print(f"- load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
