"""Split-computing evaluation: cut a real model at named points, compress each activation per
image, decompress, finish the model, and report accuracy, agreement with the uncompressed model,
size and time; results as CSV, Markdown and a PNG plot.

So far EfficientNet-Lite0 (ImageNet weights) on the 20 labelled ImageNet images foolbox ships,
plus flipped and shifted copies for agreement. ``splitans eval --help``.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

import splitans

from . import models
from .peers import peer_bytes

#: Configurations compared on every row: the paper's pipeline (CSR with the reshape model) and
#: splitans' choices.
CONFIGS: Dict[str, dict] = {
    "paper csr+model": dict(mode="csr", reshape="model"),
    "auto": dict(mode="auto"),
    "auto per-channel": dict(mode="auto", axis=1),
    "best": dict(mode="best"),
}

COLUMNS = [
    "model", "point", "bits", "config", "images", "accuracy", "baseline_accuracy", "agreement",
    "bits_per_element", "ratio_vs_float32", "ratio_vs_float16", "encode_ms", "decode_ms",
    "zstd19_bits_per_element", "blosc2_bits_per_element",
]


def _progress(i: int, n: int, label: str) -> None:
    if sys.stderr.isatty():
        width = 30
        done = width * i // max(n, 1)
        sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{n} {label:<40}")
        if i == n:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _peers(codes: List[np.ndarray]) -> Dict[str, Optional[float]]:
    """zstd-19 and blosc2 (bitshuffle + zstd) bits per element on the same quantized codes
    (every item of one point has the same size, so mean bytes / item size gives the rate)."""
    size = codes[0].size
    return {k: None if v is None else 8 * v / size for k, v in peer_bytes(codes).items()}


def evaluate(
    points: Sequence[str],
    bits_list: Sequence[int],
    configs: Iterable[str] = tuple(CONFIGS),
    augment: int = 2,
    limit: Optional[int] = None,
) -> List[dict]:
    """One row per (point, bits, config), over every image compressed on its own (batch 1, as an
    edge device sends it). Accuracy is on the labelled images; agreement is top-1 agreement with
    the uncompressed model on those and their `augment` flipped/shifted copies each."""
    import torch

    model = models.efficientnet_lite0()
    data = models.imagenet_images()
    if data is not None:
        names, labels, images = data
    else:
        names, images = models.sample_images()
        labels = None
    if limit is not None:
        images, names = images[:limit], names[:limit]
        labels = labels[:limit] if labels is not None else None
    views = [images]
    for k in range(augment):
        views.append(images.flip(-1) if k % 2 == 0 else images.roll(8 * (k + 1), -2))
    batch = torch.cat(views)
    with torch.no_grad():
        reference = model(batch).argmax(1)
    baseline = float((reference[: len(images)].numpy() == np.array(labels)).mean()) if labels is not None else None
    rows = []
    jobs = [(p, b, c) for p in points for b in bits_list for c in configs]
    for j, (point, bits, config) in enumerate(jobs):
        _progress(j, len(jobs), f"{point} {bits} bits {config}")
        split = models.EfficientNetSplit(model, point)
        feats = split.head(batch)
        opts = dict(CONFIGS[config], bits=bits)
        predictions, sizes, t_enc, t_dec, codes = [], [], 0.0, 0.0, []
        for i in range(len(batch)):
            a = feats[i : i + 1]
            t = time.perf_counter()
            blob = splitans.compress(a, threads=1, **opts)
            t_enc += time.perf_counter() - t
            t = time.perf_counter()
            restored = splitans.decompress(blob, threads=1, output="torch")
            t_dec += time.perf_counter() - t
            predictions.append(int(split.tail(restored).argmax(1)))
            sizes.append(len(blob))
            if config == "auto":
                info = splitans.inspect(blob)
                q = np.clip(np.rint(a.numpy() / np.float32(info["scale"][0])) + info["zero_point"][0], 0, (1 << bits) - 1)
                codes.append(q.astype(np.uint8 if bits <= 8 else np.uint16))
        n_elem = feats[0].numel()
        bpe = 8 * float(np.mean(sizes)) / n_elem
        pred = np.array(predictions)
        peers = _peers(codes) if codes else {"zstd19": None, "blosc2": None}
        rows.append({
            "model": "efficientnet-lite0", "point": point, "bits": bits, "config": config, "images": len(batch),
            "accuracy": float((pred[: len(images)] == np.array(labels)).mean()) if labels is not None else None,
            "baseline_accuracy": baseline,
            "agreement": float((pred == reference.numpy()).mean()),
            "bits_per_element": bpe, "ratio_vs_float32": 32 / bpe, "ratio_vs_float16": 16 / bpe,
            "encode_ms": 1e3 * t_enc / len(batch), "decode_ms": 1e3 * t_dec / len(batch),
            "zstd19_bits_per_element": peers["zstd19"], "blosc2_bits_per_element": peers["blosc2"],
        })
    _progress(len(jobs), len(jobs), "done")
    return rows


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_reports(rows: List[dict], out_dir: str) -> Dict[str, str]:
    """results.csv, results.md and (with matplotlib) agreement_vs_bits.png in `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"csv": os.path.join(out_dir, "results.csv"), "md": os.path.join(out_dir, "results.md")}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    with open(paths["md"], "w") as f:
        f.write("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n")
        for r in rows:
            f.write("| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |\n")
    png = plot_agreement(rows, os.path.join(out_dir, "agreement_vs_bits.png"))
    if png:
        paths["png"] = png
    return paths


def plot_agreement(rows: List[dict], path: str) -> Optional[str]:
    """Agreement against bits per element (auto), one line per split point; `path`, or None
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for point in dict.fromkeys(r["point"] for r in rows):
        pts = sorted((r["bits_per_element"], r["agreement"]) for r in rows if r["point"] == point and r["config"] == "auto")
        if pts:
            ax.plot(*zip(*pts), marker="o", label=point)
    ax.set_xlabel("bits per element (auto)")
    ax.set_ylabel("top-1 agreement with the uncompressed model")
    ax.set_title("EfficientNet-Lite0: agreement against size, per split point")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
