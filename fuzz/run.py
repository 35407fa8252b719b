"""Runs every fuzz target for a given time and prints executions, coverage and findings.

    RUSTC_BOOTSTRAP=1 python fuzz/run.py --seconds 600 [--jobs 2] [target ...]

Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain take
the sanitizer flags. Each target starts from its committed seeds in fuzz/corpus/<target>; what
it discovers goes to a scratch corpus (fuzz/work/<target>, not committed). Crashes, timeouts and
out-of-memory inputs land in fuzz/artifacts/<target>/: copy each into fuzz/regressions/ once
fixed, where rust/tests/fuzz_regressions.rs replays it in CI.
"""

import argparse
import concurrent.futures
import os
import pathlib
import re
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent
TARGETS = ["container_header", "stream_decode", "freq_table", "csr_section", "decompress", "mutated_blob", "round_trip",
           "structured", "inspect_agrees", "fitted_blob"]


def run(target: str, seconds: int) -> dict:
    work = ROOT / "work" / target
    seeds = ROOT / "corpus" / target
    work.mkdir(parents=True, exist_ok=True)
    seeds.mkdir(parents=True, exist_ok=True)
    artifacts = ROOT / "artifacts" / target
    before = set(artifacts.glob("*")) if artifacts.exists() else set()
    cmd = ["cargo", "fuzz", "run", "-O", target, str(work), str(seeds), "--",
           f"-max_total_time={seconds}", "-rss_limit_mb=2048", "-malloc_limit_mb=1024", "-timeout=10",
           "-print_final_stats=1"]
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    t0 = time.time()
    log_path = ROOT / "work" / f"{target}.log"
    with open(log_path, "w") as log:
        rc = subprocess.call(cmd, cwd=ROOT.parent, stdout=log, stderr=subprocess.STDOUT, env=env)
    text = log_path.read_text(errors="replace")
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    cov = re.findall(r"\bcov: (\d+) ft: (\d+)", text)
    after = set(artifacts.glob("*")) if artifacts.exists() else set()
    new = sorted(p.name for p in after - before)
    return {
        "target": target,
        "seconds": round(time.time() - t0),
        "executions": int(execs[-1]) if execs else 0,
        "coverage": f"{cov[-1][0]} edges, {cov[-1][1]} features" if cov else "?",
        "crashes": sum(n.startswith("crash-") for n in new),
        "timeouts": sum(n.startswith("timeout-") for n in new),
        "oom": sum(n.startswith("oom-") for n in new),
        "exit": rc,
        "artifacts": new,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("targets", nargs="*", default=TARGETS)
    args = ap.parse_args()
    subprocess.check_call(["cargo", "fuzz", "build", "-O"], cwd=ROOT.parent, env=dict(os.environ, RUSTC_BOOTSTRAP="1"))
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda t: run(t, args.seconds), args.targets))
    print(f"\n| target | seconds | executions | coverage | crashes | timeouts | oom | exit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['target']} | {r['seconds']} | {r['executions']:,} | {r['coverage']} | {r['crashes']} | "
              f"{r['timeouts']} | {r['oom']} | {r['exit']} |")
        for a in r["artifacts"]:
            print(f"  new artifact: fuzz/artifacts/{r['target']}/{a}")
    return 1 if any(r["crashes"] or r["timeouts"] or r["oom"] or r["exit"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
