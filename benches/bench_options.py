"""The fixed cost of a call on a small map (issue 22: splitans.Options must not add to it).

Times ``compress(x, bits=4)``, ``compress(x, Options(bits=4))`` (when this tree has Options) and
``decompress(blob)`` of a float32 1x32x7x7 ReLU map: timeit, best of 7 repeats of N calls. With
``--base PATH`` (the ``python`` folder of another build, e.g. a worktree of the previous commit)
both trees are timed in turn, ROUNDS times each in alternation, each in its own interpreter, and
the best of each is printed with the change: the peer measured in the same run.

    python benches/bench_options.py --base /work/wt-before/python --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent

_ONE = r"""
import hashlib, json, sys, timeit
import numpy as np, splitans
n = int(sys.argv[1])
x = np.maximum(np.random.default_rng(0).normal(size=(1, 32, 7, 7)), 0).astype(np.float32)
blob = splitans.compress(x, bits=4)
res = {"sha": hashlib.sha256(blob).hexdigest()[:16]}
calls = {"compress": lambda: splitans.compress(x, bits=4), "decompress": lambda: splitans.decompress(blob)}
if hasattr(splitans, "Options"):
    o = splitans.Options(bits=4)
    calls["compress_options"] = lambda: splitans.compress(x, o)
for name, call in calls.items():
    res[name] = min(timeit.repeat(call, number=n, repeat=7)) / n * 1e6
print(json.dumps(res))
"""


def _run(pythonpath: str, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run([sys.executable, "-c", _ONE, str(n)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="the python/ folder of the build to compare against")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--calls", type=int, default=4000, help="calls per timeit repeat (>= 2000)")
    args = p.parse_args()
    trees = {"this": str(HERE.parent / "python")}
    if args.base:
        trees["base"] = args.base
    best: dict = {t: {} for t in trees}
    for _ in range(args.rounds):
        for t, path in trees.items():
            for k, v in _run(path, args.calls).items():
                best[t][k] = v if k == "sha" else min(best[t].get(k, float("inf")), v)
    for t in trees:
        print(t, trees[t], {k: (round(v, 3) if k != "sha" else v) for k, v in best[t].items()}, "(us per call)")
    if args.base:
        if best["this"]["sha"] != best["base"]["sha"]:
            print("the blobs differ!")
        for k in ("compress", "decompress"):
            print(f"{k}: {100 * (best['this'][k] / best['base'][k] - 1):+.1f} %")


if __name__ == "__main__":
    main()
