#!/usr/bin/env python3
"""A/B of two builds' ``splitans.compress`` on one sample of real activation maps, small to large
(the 1x32x7x7 Lite0 map of ``bench_issue24.py`` and the first test sample of four points of
``splitans.eval.activations``), at 4 and 8 bits: each build in its own process, the builds
alternated ``--rounds`` times, the best of 9 repeats per row and round, then the best over rounds.
Checks every blob has the same size in both builds.

    python benches/ab_maps.py --before ../before/python --after python --rounds 2

``--before``/``--after`` are directories put first on ``PYTHONPATH`` (each a ``splitans`` package
with its built ``_core``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
POINTS = ["resnet.layer1", "resnet.layer2", "mobilenetv2.block4.expand", "lite0.block3.expand"]


def measure() -> dict:
    import time

    import numpy as np

    import splitans
    from splitans.eval import activations

    sys.path.insert(0, HERE)
    import bench_issue24

    maps = {"1x32x7x7 (Lite0 block12.expand)": bench_issue24.small_map()[0]}
    for name in POINTS:
        _, test = activations.load(name)
        maps[name] = np.ascontiguousarray(test[0:1])
    out = {}
    for name, x in maps.items():
        for bits in (4, 8):
            n = max(20, int(2e5 / x.size))
            best = float("inf")
            for _ in range(9):
                t0 = time.perf_counter()
                for _ in range(n):
                    blob = splitans.compress(x, bits=bits)
                best = min(best, (time.perf_counter() - t0) / n)
            out[f"{name}, {bits}"] = (best * 1e6, len(blob))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure()))
        return
    runs = {"before": [], "after": []}
    for _ in range(a.rounds):
        for which in ("before", "after"):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(getattr(a, which)), OMP_NUM_THREADS="1")
            out = subprocess.run([sys.executable, __file__, "--before", "-", "--after", "-", "--measure"],
                                 env=env, check=True, capture_output=True, text=True).stdout
            runs[which].append(json.loads(out))
    print("| map, bits | bytes | before µs | after µs | change |\n|---|---:|---:|---:|---:|")
    for key in runs["before"][0]:
        sizes = {r[key][1] for rs in runs.values() for r in rs}
        if len(sizes) != 1:
            raise SystemExit(f"{key}: the builds wrote different sizes {sorted(sizes)}")
        b = min(r[key][0] for r in runs["before"])
        t = min(r[key][0] for r in runs["after"])
        print(f"| {key} | {sizes.pop():,} | {b:.1f} | {t:.1f} | {100 * (t / b - 1):+.1f} % |")


if __name__ == "__main__":
    main()
