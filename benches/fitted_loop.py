#!/usr/bin/env python3
"""A fitted codec's decode or encode of one sample in a loop, for profiling and A/B of builds:

    python benches/fitted_loop.py --point lite0.stem --call decode --n 300
    perf record python benches/fitted_loop.py --point lite0.stem --call encode --n 300

The codec is ``Codec.fit`` of the point's first 12 calibration samples at 8 bits (as
``bench_issue24.py --only fitted``), fitted once and kept in ``--cache`` (default
``~/.cache/splitans/bench``) with the first test sample, so that a profile holds the loop and
not the fit, and two builds (``PYTHONPATH``) run the same codec. Prints ms a call and G codes/s.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import splitans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--point", default="lite0.stem")
    ap.add_argument("--call", choices=("decode", "encode"), default="decode")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/splitans/bench"))
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    codec_path = os.path.join(args.cache, f"{args.point}.codec")
    x_path = os.path.join(args.cache, f"{args.point}.x.npy")
    if not (os.path.exists(codec_path) and os.path.exists(x_path)):
        from splitans.eval import activations

        cal, tst = activations.load(args.point)
        codec = splitans.Codec.fit(cal[:12], bits=8)
        with open(codec_path, "wb") as f:
            f.write(codec.to_bytes())
        np.save(x_path, np.ascontiguousarray(tst[0]))
    with open(codec_path, "rb") as f:
        codec = splitans.Codec.from_bytes(f.read())
    x = np.load(x_path)
    # The decode loop reads the blob from the cache: an encode in the same process would leave
    # the allocator in a state of its own (glibc raises its mmap threshold when a large block is
    # freed), and the decoder's output allocations would fault or not by that history
    # (benches/NOTES.md 45).
    blob_path = os.path.join(args.cache, f"{args.point}.blob")
    if not os.path.exists(blob_path):
        with open(blob_path, "wb") as f:
            f.write(codec.compress(x))
    with open(blob_path, "rb") as f:
        blob = f.read()
    if args.call == "encode":
        def call():
            return codec.compress(x)
    else:
        def call():
            return codec._c.decode_codes(blob, 1 << 40)
    call()
    t = time.perf_counter()
    for _ in range(args.n):
        call()
    dt = (time.perf_counter() - t) / args.n
    print(f"{args.point} {args.call}: {dt * 1e3:.3f} ms, {x.size / dt / 1e9:.3f} G codes/s ({len(blob):,} bytes)")


if __name__ == "__main__":
    main()
