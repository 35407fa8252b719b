#!/usr/bin/env python3
"""A/B of two builds on the fitted codec's sizes: `bench_codec.py`'s size rows without the
peers (which do not change with the build), each build in its own process on the same data.

    python benches/ab_fit_sizes.py --before ../before/python --after python
    python benches/ab_fit_sizes.py --before ../before/python --after python --points lite0.stem --bits 5,8

``--before``/``--after`` are directories put first on ``PYTHONPATH`` (each a ``splitans``
package with its built ``_core``). For every point and bit width: the codec fitted on the
point's calibration samples (``Codec.fit``, per-tensor range), its mean bytes per test sample
(every per-blob byte), the chosen model, the fit's seconds. Prints a Markdown table with the
change of each row, the geometric mean of after/before, and the rows that grew by more than
``--grow`` percent (exit status 1 if any did).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
import numpy as np
import splitans
from splitans.eval import activations
points, bits_list, n_test = sys.argv[1].split(","), [int(b) for b in sys.argv[2].split(",")], int(sys.argv[3])
out = []
for name in points:
    cal, tst = activations.load(name)
    tst = tst[:n_test]
    for bits in bits_list:
        t = time.perf_counter()
        codec = splitans.Codec.fit(cal, bits=bits)
        fit_s = time.perf_counter() - t
        sizes = [len(codec.compress(x)) for x in tst]
        m = codec.describe()["model"]
        out.append(dict(point=name, bits=bits, bytes=float(np.mean(sizes)), fit_s=fit_s,
                        model=f"{m['predictor']} g{m['groups']} c{'/'.join(map(str, m['classes']))} "
                              f"t{m['tables']} p{m['precision_bits']}" + (" planes" if m.get("plane_lanes") else "")))
        print(f"  {name} {bits}: {out[-1]['bytes']:.1f} B ({out[-1]['model']}, fit {fit_s:.1f} s)", file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def run(pythonpath: str, points: str, bits: str, n_test: int) -> list:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(pythonpath), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", CHILD, points, bits, str(n_test)], env=env, check=True,
                         stdout=subprocess.PIPE, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    sys.path.insert(0, HERE)
    from bench_codec import DEFAULT_POINTS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--points", default=",".join(DEFAULT_POINTS))
    ap.add_argument("--bits", default="2,3,4,8")
    ap.add_argument("--test", type=int, default=40, help="test samples per point (EfficientNet-Lite0: at most 8)")
    ap.add_argument("--grow", type=float, default=0.5, help="percent growth of a row that fails the run")
    ap.add_argument("--json", default=None, help="also write both builds' rows here")
    args = ap.parse_args(argv)
    before = run(args.before, args.points, args.bits, args.test)
    after = run(args.after, args.points, args.bits, args.test)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"before": before, "after": after}, f, indent=1)
    print("| point | bits | before: bytes | model | fit s | after: bytes | model | fit s | change |")
    print("|---|---:|---:|---|---:|---:|---|---:|---:|")
    logs, grown = [], []
    for b, a in zip(before, after):
        ch = 100 * (a["bytes"] / b["bytes"] - 1)
        logs.append(math.log(a["bytes"] / b["bytes"]))
        if ch > args.grow:
            grown.append(f"{a['point']} {a['bits']} bits {ch:+.2f} %")
        print(f"| {a['point']} | {a['bits']} | {b['bytes']:,.1f} | {b['model']} | {b['fit_s']:.1f} | {a['bytes']:,.1f} | "
              f"{a['model']} | {a['fit_s']:.1f} | {ch:+.2f} % |")
    print(f"\n{len(logs)} rows; geometric mean of after/before {100 * (math.exp(sum(logs) / len(logs)) - 1):+.2f} %; "
          f"grown by more than {args.grow} %: {', '.join(grown) or 'none'}")
    return 1 if grown else 0


if __name__ == "__main__":
    raise SystemExit(main())
