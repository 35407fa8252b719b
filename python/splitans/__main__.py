"""Command line: ``splitans demo`` (also ``python -m splitans demo``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np

import splitans


def _timed(fn, repeat: int = 5):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def demo(args: argparse.Namespace) -> int:
    import torch

    from . import models

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = models.efficientnet_lite0()
    names, images = models.sample_images()
    split = models.EfficientNetSplit(model, args.split)
    with torch.no_grad():
        reference = model(images)
    feature = split.head(images)
    x = feature.numpy()
    print(f"model       EfficientNet-Lite0 (ImageNet-1k weights), images {', '.join(names)}")
    print(f"split       {args.split}: activation {tuple(x.shape)} float32, {x.nbytes:,} bytes, "
          f"{(x == 0).mean():.1%} exact zeros")

    # Per-tensor asymmetric quantization to `bits` (the lossy pipeline's job once it lands).
    levels = (1 << args.bits) - 1
    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / levels if hi > lo else 1.0
    zero_point = int(round(-lo / scale))
    dtype = np.uint8 if args.bits <= 8 else np.uint16
    q = np.clip(np.rint(x / scale) + zero_point, 0, levels).astype(dtype)
    print(f"quantize    {args.bits} bits asymmetric per tensor: scale {scale:.5g}, zero point {zero_point}, "
          f"max error {np.abs((q.astype(np.float32) - zero_point) * scale - x).max():.4g}")

    blob, t_enc = _timed(lambda: splitans.compress(q, threads=1))
    back, t_dec = _timed(lambda: splitans.decompress(blob, threads=1))
    assert back.dtype == q.dtype and np.array_equal(back, q), "round trip mismatch"
    info = splitans.inspect(blob)
    stream = info["streams"][0]
    bits_per = 8 * len(blob) / q.size
    print(f"compress    {len(blob):,} bytes ({stream['mode']}, precision {stream['precision_bits']} bits, "
          f"{stream['lanes']} lanes): {bits_per:.3f} bits/element, {x.nbytes / len(blob):.1f}x smaller than "
          f"float32, {q.nbytes / len(blob):.2f}x smaller than the {args.bits}-bit codes")
    print(f"entropy     order-0 bound {stream['entropy_bound_bytes']:,.0f} bytes; coded size is "
          f"{len(blob) / stream['entropy_bound_bytes'] - 1:+.2%} over it, header and table included")
    print(f"time        encode {t_enc * 1e3:.2f} ms, decode {t_dec * 1e3:.2f} ms (one thread, best of 5)")

    restored = torch.from_numpy((back.astype(np.float32) - zero_point) * scale)
    logits = split.tail(restored)
    same = (logits.argmax(1) == reference.argmax(1)).tolist()
    for name, r, c, ok in zip(names, reference.argmax(1).tolist(), logits.argmax(1).tolist(), same):
        print(f"top-1       {name}: uncompressed class {r}, after compression class {c}"
              f"{'' if ok else '  (differs)'}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="splitans", description=splitans.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"splitans {splitans.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="split EfficientNet-Lite0, compress its activation, finish the model on it")
    p.add_argument("--split", default="block3.expand", help="split point (default: block3.expand, a sparse ReLU6 output)")
    p.add_argument("--bits", type=int, default=8, choices=range(1, 17), metavar="{1..16}", help="quantization bits")
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
