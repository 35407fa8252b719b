#!/usr/bin/env python3
"""A/B of two builds on one small map: ``splitans.compress`` or ``decompress`` of the 1x32x7x7
map of ``bench_issue24.py`` (block12.expand of EfficientNet-Lite0, first 32 channels; a seeded
synthetic ReLU map without torch), each build in its own process, alternated ``--rounds``
times; per run, the median and lower quartile of 201 samples of 100 calls.

    python benches/ab_small.py --before ../before/python --after python --bits 8 --call compress

``--before``/``--after`` are directories put first on ``PYTHONPATH`` (each a ``splitans``
package with its built ``_core``). Both builds must give blobs of the same size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, statistics, sys, time
import numpy as np
import splitans
x = np.load(sys.argv[1]); bits = int(sys.argv[2]); call = sys.argv[3]
blob = splitans.compress(x, bits=bits)
f = (lambda: splitans.compress(x, bits=bits)) if call == "compress" else (lambda: splitans.decompress(blob))
for _ in range(2000):
    f()
ts = []
for _ in range(201):
    t = time.perf_counter()
    for _ in range(100):
        f()
    ts.append((time.perf_counter() - t) / 100 * 1e6)
print(json.dumps({"median": statistics.median(ts), "q1": statistics.quantiles(ts, n=4)[0], "bytes": len(blob)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--call", choices=("compress", "decompress"), default="compress")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    import numpy as np

    from bench_issue24 import small_map

    with contextlib.redirect_stdout(io.StringIO()):
        x, what = small_map()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "map.npy")
        np.save(path, x)
        print(f"{what}, {args.bits} bits, {args.call}")
        sizes = set()
        for r in range(args.rounds):
            for name, tree in (("before", args.before), ("after", args.after)):
                env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
                out = subprocess.run([sys.executable, "-c", CHILD, path, str(args.bits), args.call], env=env,
                                     capture_output=True, text=True, check=True).stdout
                m = json.loads(out)
                sizes.add(m["bytes"])
                print(f"round {r + 1} {name}: median {m['median']:.2f} µs, lower quartile {m['q1']:.2f} µs")
        if len(sizes) != 1:
            raise SystemExit(f"the builds' blobs differ in size: {sorted(sizes)}")


if __name__ == "__main__":
    main()
