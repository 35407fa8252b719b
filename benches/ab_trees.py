#!/usr/bin/env python3
"""A/B of two builds on the speed benchmarks a refactoring must not slow (issue 22's targets), in
one run: ``benches/ab_fast.py`` (the calls of ``bench_fast.py``) and ``bench_codec.py --skip
size`` (fitted encode/decode speed and 1x32x7x7 latency), alternating the builds round by round
so that a busy spell on a shared machine hits both, then the best of the rounds per row.

    python benches/ab_trees.py --before ../before/python --after python --rounds 3

``--before``/``--after`` are directories put first on ``PYTHONPATH`` (each a ``splitans``
package with its built ``_core``). Both builds run this tree's bench scripts, which use only
calls every build has. Prints a Markdown table: each row's before, after and after/before
(times: lower is better; MB/s: higher is better, shown inverted so that > 0 is slower),
the blob sizes (which must not differ) and the worst row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(pythonpath: str, codec_points: str, codec_bits: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(pythonpath), OMP_NUM_THREADS="1")
    rows = {}
    out = subprocess.run([sys.executable, os.path.join(HERE, "ab_fast.py")], env=env, check=True,
                         capture_output=True, text=True).stdout
    for k, v in json.loads(out).items():
        if k in ("blob", "s4", "s8"):
            rows[f"fast: {k} blob bytes"] = ("bytes", float(v))
        elif k != "so":
            rows[f"fast: {k} (µs)"] = ("time", float(v))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "codec.json")
        cmd = [sys.executable, os.path.join(HERE, "bench_codec.py"), "--skip", "size,overhead", "--no-peer-speed", "--json", path,
               "--bits", codec_bits]
        if codec_points:
            cmd += ["--points", codec_points]
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        with open(path) as f:
            res = json.load(f)
    for r in res.get("speed", []):
        for key in ("encode_MBps", "decode_MBps", "decode_codes_MBps"):
            if r.get(key):
                rows[f"codec: {r['point']} {r['bits']}-bit {key}"] = ("rate", float(r[key]))
    for bits, r in res.get("latency", {}).items():
        for key in ("compress_us", "decompress_us"):
            rows[f"codec latency: 1x32x7x7 {bits}-bit {key}"] = ("time", float(r[key]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--codec-points", default="", help="bench_codec.py --points (default: its own)")
    ap.add_argument("--codec-bits", default="2,4,8")
    ap.add_argument("--json", default=None, help="also write every round's rows here")
    args = ap.parse_args(argv)
    got = {"before": [], "after": []}
    for i in range(args.rounds):
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        for which in order:
            print(f"round {i + 1}/{args.rounds}: {which}", file=sys.stderr, flush=True)
            got[which].append(run(getattr(args, which), args.codec_points, args.codec_bits))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(got, f, indent=1)
    names = [k for k in got["before"][0] if all(k in r for r in got["before"] + got["after"])]
    print(f"| row ({args.rounds} rounds, best of each) | before | after | slower by |")
    print("|---|---:|---:|---:|")
    worst = (None, -1e9)
    for k in names:
        kind = got["before"][0][k][0]
        if kind == "bytes":
            same = {r[k][1] for r in got["before"] + got["after"]}
            print(f"| {k} | {got['before'][0][k][1]:,.0f} | {got['after'][0][k][1]:,.0f} | "
                  f"{'same' if len(same) == 1 else 'DIFFERENT'} |")
            continue
        pick = min if kind == "time" else max
        b = pick(r[k][1] for r in got["before"])
        a = pick(r[k][1] for r in got["after"])
        slower = (a / b - 1) if kind == "time" else (b / a - 1)
        if slower > worst[1]:
            worst = (k, slower)
        print(f"| {k} | {b:,.2f} | {a:,.2f} | {100 * slower:+.1f} % |")
    print(f"\nWorst row: {worst[0]}: {100 * worst[1]:+.1f} % (target: within +3 %).")


if __name__ == "__main__":
    main()
