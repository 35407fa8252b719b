#!/usr/bin/env python3
"""Mutation testing of splitans's newest code (issue 27): plant one small bug at a time, run the
tests that exercise that code, and count the bugs that no test notices.

Python areas use cosmic-ray's mutation operators (every core operator that takes no arguments);
the Rust area uses cargo-mutants. Each area runs against its targeted test files only (the whole
suite per mutant would take days on two cores), cheapest first, stopping at the first failure.

    pip install cosmic-ray            # into the development venv; cargo install cargo-mutants
    nice -n 10 python tools/mutation/run.py                     # a seeded sample of every area
    nice -n 10 python tools/mutation/run.py calibrate --full    # every mutant of one area
    python tools/mutation/run.py --list                         # how many mutants each area has

It prints, per area, the mutants run, killed, survived, and the score: killed out of the
mutants that are not equivalent (``survivors.toml`` in this folder lists each survivor once, as
equivalent with the reason, or as killed by a named test that came after the run). A sample's
score comes with its 95 % Wilson interval. ``--baseline-ref REF`` also runs each mutant against
the targeted test files that exist at git revision REF first (in their present form: tests added
to those files since REF count as theirs), and prints both scores: what the test files added
since REF kill. Results go to ``target/mutation/<area>.json``; ``--survivors-of``
runs again only the survivors of an earlier results file and merges.

Mutants are written into the working tree one at a time and always put back (also on Ctrl-C);
do not edit the mutated files while it runs. Not part of CI: it takes hours in full.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "target" / "mutation"
SURVIVORS = HERE / "survivors.toml"


@dataclass
class Area:
    sources: List[str]
    #: pytest argument lists, run in this order, each in its own process, until one fails.
    tests: List[List[str]] = field(default_factory=list)
    sample: int = 25


PKG = "python/splitans/"
AREAS: Dict[str, Area] = {
    "calibrate": Area([PKG + "calibration/" + f for f in ("stats.py", "chains.py", "search.py", "data.py",
                                                         "result.py")], [
        ["tests/test_calibrate_select.py"],
        ["tests/test_calibrate.py"],
    ]),
    "fitted": Area([PKG + "_fitted.py", PKG + "_quantizers.py"], [
        ["tests/test_quantizer_fitting.py"],
        ["tests/test_fitted_pins.py"],
        ["tests/test_quantizers.py"],
        ["tests/test_fitted.py"],
        ["tests/test_fitted_properties.py"],
    ]),
    "runtime": Area([PKG + "runtime/" + f for f in ("client.py", "server.py", "service.py", "encodings.py", "cli.py",
                                                     "auth.py", "registry.py")]
                    + [PKG + "cut.py"], [
        ["tests/test_runtime_contract.py"],
        ["tests/test_runtime_network.py"],
        ["tests/test_runtime.py", "-k", "not efficientnet"],
        ["tests/test_edge.py"],
        ["tests/test_ray_serve.py"],
    ]),
    "numcodecs": Area([PKG + "numcodecs.py", PKG + "zarr3.py"], [
        ["tests/test_numcodecs_contract.py"],
        ["tests/test_numcodecs.py"],
    ]),
    "options": Area([PKG + "_options.py"], [
        ["tests/test_options.py"],
        ["tests/test_codec.py"],
        ["tests/test_hardening.py"],
    ]),
    "cli": Area([PKG + "cli/" + f for f in ("__init__.py", "files.py", "options.py", "codec.py", "bench.py",
                                            "evaluation.py")], [
        ["tests/test_cli_messages.py"],
        ["tests/test_cli_exits.py"],
        ["tests/test_cli.py"],
    ]),
}
#: The Rust area: cargo-mutants over these files, against the crate's unit tests and these test
#: targets (structured.rs, the container generator, does not reach them), built with the
#: `mutants` profile of Cargo.toml.
RUST_FILES = ["rust/src/model/pctx/mod.rs", "rust/src/model/pctx/tables.rs", "rust/src/model/pctx/neighbours.rs",
              "rust/src/model/pctx/encode.rs", "rust/src/model/pctx/decode.rs", "rust/src/model/pctx/avx2.rs",
              "rust/src/model/fit.rs", "rust/src/pipeline/codec.rs", "rust/src/format/fitted.rs",
              # The small-map path (issue 24 item 2): the precision search's bound, the CSR skip.
              "rust/src/entropy/freq.rs", "rust/src/entropy/stream.rs", "rust/src/pipeline/feature/mod.rs"]
RUST_TESTS = ["pctx_pins", "quantizers", "roundtrip", "corrupt", "fuzz_regressions", "messages"]
RUST_SAMPLE = 6  # per file
#: The evaluation commands' bodies in cli/ (bench.py, evaluation.py) are exercised by
#: tests/test_report.py (minutes per run); their mutants are left out of the cli area, which pins the codec commands and `main`.
CLI_SKIP = ("run_eval", "train_fmnist", "run_report", "demo", "bench_rows", "_peers", "cmd_bench", "_best_seconds",
            "_timed", "_meta", "_codes")


# ------------------------------------------------------------------------------ bookkeeping


def wilson(k: int, n: int, z: float = 1.96):
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def load_verdicts() -> Dict[str, dict]:
    if not SURVIVORS.exists():
        return {}
    data = tomllib.loads(SURVIVORS.read_text())
    return {m["key"]: m for m in data.get("mutant", [])}


def existing_at(ref: str, path: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{ref}:{path}"], cwd=ROOT, capture_output=True).returncode == 0


# ------------------------------------------------------------------------------ Python mutants


@dataclass
class Mutant:
    key: str
    path: str
    operator: str
    occurrence: int
    line: int
    before: str
    after: str
    code: str = field(repr=False, default="")


def _definitions(source: str) -> List[tuple]:
    """(first line, last line, name) of every def and class, outermost first."""
    import ast

    return [(n.lineno, n.end_lineno, n.name) for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _definition_of(defs: List[tuple], line: int) -> str:
    """The innermost def or class holding ``line``."""
    inside = [d for d in defs if d[0] <= line <= d[1]]
    return max(inside, key=lambda d: d[0])[2] if inside else "<module>"


def enumerate_python(area: str) -> List[tuple]:
    """(path, operator name, occurrence, start line) of every mutant of the area's files."""
    import cosmic_ray.plugins
    from cosmic_ray.ast import ast_nodes, get_ast_from_path

    out = []
    for rel in AREAS[area].sources:
        path = ROOT / rel
        defs = _definitions(path.read_text())
        module = get_ast_from_path(path)
        nodes = list(ast_nodes(module))
        for name in sorted(cosmic_ray.plugins.operator_names()):
            cls = cosmic_ray.plugins.get_operator(name)
            if cls.arguments():
                continue
            op = cls()
            positions = [s for node in nodes for s, _ in op.mutation_positions(node)]
            for occ, (line, _col) in enumerate(positions):
                if area == "cli" and _definition_of(defs, line) in CLI_SKIP:
                    continue
                out.append((rel, name, occ, line))
    return out


def materialize(rel: str, operator: str, occurrence: int, seen: Dict[str, int]) -> Optional[Mutant]:
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    source = (ROOT / rel).read_text()
    code = mutate_code(source, cosmic_ray.plugins.get_operator(operator)(), occurrence)
    if code is None or code == source:
        return None
    a, b = source.splitlines(), code.splitlines()
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    ops = [o for o in sm.get_opcodes() if o[0] != "equal"]
    i1, i2, j1, j2 = ops[0][1], ops[-1][2], ops[0][3], ops[-1][4]
    before = " / ".join(s.strip() for s in a[i1:i2])
    after = " / ".join(s.strip() for s in b[j1:j2])
    short = operator.split("/")[-1]
    base = f"{rel} | {_definition_of(_definitions(source), i1 + 1)} | {short} | {before} => {after}"
    n = seen.get(base, 0)
    seen[base] = n + 1
    key = base if n == 0 else f"{base} #{n + 1}"
    return Mutant(key, rel, operator, occurrence, i1 + 1, before, after, code)


def _parse_key(key: str) -> tuple:
    """(path, operator's short name, line before, line after, duplicate number) of a key."""
    dup = 1
    m = re.match(r"(.*) #(\d+)$", key)
    if m:
        key, dup = m.group(1), int(m.group(2))
    rel, _, short, change = key.split(" | ", 3)
    before, after = change.split(" => ", 1)
    return rel, short, before, after, dup


def _locate(all_mutants: List[tuple], keys: List[str], lines: Dict[str, int]) -> List[tuple]:
    """The mutants (path, operator, occurrence, line) whose change is that of each key (tried
    first at the line it was on)."""
    found = []
    for key in keys:
        rel, short, before, after, dup = _parse_key(key)
        seen = 0
        cands = [m for m in all_mutants if m[0] == rel and m[1].split("/")[-1] == short]
        cands.sort(key=lambda m: abs(m[3] - lines.get(key, m[3])))
        for cand in cands:
            mm = materialize(cand[0], cand[1], cand[2], {})
            if mm is not None and (mm.before, mm.after) == (before, after):
                seen += 1
                if seen == (1 if key in lines else dup):
                    found.append(cand)
                    break
    return sorted(found)


def pytest_cmd(args: List[str]) -> List[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *args]


def run_group(args: List[str], timeout: float) -> tuple:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HYPOTHESIS_PROFILE=os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    t = time.time()
    proc = subprocess.Popen(pytest_cmd(args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", time.time() - t, ""
    text = out.decode(errors="replace")
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    return ("passed" if proc.returncode == 0 else "failed"), time.time() - t, (failed[0] if failed else text[-300:])


def run_python_area(area: str, args) -> Dict[str, dict]:
    spec = AREAS[area]
    all_mutants = enumerate_python(area)
    n_total = len(all_mutants)
    prev = load_results(area) if args.survivors_of else None
    if prev is not None:
        chosen = _locate(all_mutants, [k for k, v in prev["mutants"].items() if v["outcome"] == "survived"],
                         {k: v["line"] for k, v in prev["mutants"].items()})
    elif args.full:
        chosen = all_mutants
    else:
        rng = random.Random(f"{args.seed}:{area}")
        chosen = sorted(rng.sample(all_mutants, min(args.sample or spec.sample, n_total)))
    groups = [g for g in spec.tests if (ROOT / g[0]).exists()]
    old = [g for g in groups if args.baseline_ref and existing_at(args.baseline_ref, g[0])]
    # Unmutated, every group must pass; its time sets the timeout.
    timeouts = {}
    for g in groups:
        status, secs, info = run_group(g, 1800)
        if status != "passed":
            sys.exit(f"{area}: {' '.join(g)} fails without a mutant: {info}")
        timeouts[tuple(g)] = max(60.0, 3 * secs)
        print(f"  {area}: {' '.join(g)} passes unmutated in {secs:.0f} s", flush=True)
    results: Dict[str, dict] = {}
    seen: Dict[str, int] = {}
    originals = {rel: (ROOT / rel).read_text() for rel in spec.sources}
    try:
        for k, (rel, op, occ, _) in enumerate(chosen):
            m = materialize(rel, op, occ, seen)
            if m is None:
                continue
            (ROOT / rel).write_text(m.code)
            try:
                outcome, killed_by, before_ref, secs = "survived", None, None, 0.0
                order = old + [g for g in groups if g not in old]
                for g in order:
                    status, s, info = run_group(g, timeouts[tuple(g)])
                    secs += s
                    if status != "passed":
                        outcome, killed_by = "killed", f"{' '.join(g)}: {status} {info}"
                        break
                if args.baseline_ref:
                    before_ref = outcome == "killed" and any(killed_by.startswith(" ".join(g) + ":") for g in old)
                    if prev is not None:
                        before_ref = False
            finally:
                (ROOT / rel).write_text(originals[rel])
            results[m.key] = dict(outcome=outcome, killed_by=killed_by, killed_by_ref_tests=before_ref,
                                  line=m.line, operator=op, occurrence=occ, seconds=round(secs, 1))
            print(f"  [{k + 1}/{len(chosen)}] {outcome:8s} {secs:5.0f} s  {m.key}", flush=True)
    finally:
        for rel, text in originals.items():
            if (ROOT / rel).read_text() != text:
                (ROOT / rel).write_text(text)
    if prev is not None:
        # Survivors are found again by their text (lines may have moved): replace them.
        merged = {k: v for k, v in prev["mutants"].items() if v["outcome"] != "survived"}
        for key, r in results.items():
            r["killed_by_ref_tests"] = False if r["outcome"] == "killed" else r["killed_by_ref_tests"]
            merged[key] = r
        lost = len(prev["mutants"]) - len(merged)
        if lost:
            print(f"  {lost} earlier survivors no longer exist in the source (the code changed there)")
        results = merged
    return dict(area=area, total=n_total, sampled=prev["sampled"] if prev else len(chosen), seed=args.seed,
                full=args.full,
                baseline_ref=args.baseline_ref or (prev or {}).get("baseline_ref"), mutants=results)


# ------------------------------------------------------------------------------ Rust mutants


def _rust_key(name: str, seen: Dict[str, int]) -> str:
    base = re.sub(r"^(\S+?):\d+:\d+: ", r"\1 | ", name)
    n = seen.get(base, 0)
    seen[base] = n + 1
    return base if n == 0 else f"{base} #{n + 1}"


def _rust_escape(s: str) -> str:
    return re.sub(r"([\\.+*?()|\[\]{}^$#&\-~])", r"\\\1", s)


class RustTree:
    """A copy of the working tree in which cargo-mutants can see the crate's layers.

    ``rust/src/lib.rs`` declares its layers with the ``layers!`` macro (``pub`` with the
    ``internals`` feature, private otherwise), and cargo-mutants finds a crate's files by
    following plain ``mod`` items without expanding macros: in the tree itself it finds no file
    under ``rust/src`` but ``lib.rs`` and ``python/``. The copy (the files git tracks or would
    track, as they are now) declares each layer ``pub mod``, which is what the tests build anyway
    (the crate is its own dev-dependency with ``internals``). Mutant names are the same paths.
    """

    def __enter__(self) -> Path:
        import tempfile

        self.path = Path(tempfile.mkdtemp(prefix="splitans-mutants."))
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
        for f in filter(None, listed):
            src = ROOT / f
            if src.is_file():
                (self.path / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, self.path / f)
        lib = self.path / "rust" / "src" / "lib.rs"
        text = lib.read_text()
        lib.write_text(re.sub(r"layers!\(([^)]*)\);", lambda m: "".join(
            f"pub mod {n.strip()};\n" for n in m.group(1).split(",") if n.strip()), text))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def run_rust_area(args) -> dict:
    with RustTree() as tree:
        return _run_rust_area(args, tree)


def _run_rust_area(args, tree: Path) -> dict:
    files = [a for f in RUST_FILES for a in ("--file", f)]
    listed = subprocess.run(["cargo", "mutants", "--list", "--json", *files], cwd=tree, capture_output=True,
                            text=True, check=True)
    mutants = json.loads(listed.stdout)
    names = [m["name"] for m in mutants]
    seen: Dict[str, int] = {}
    keys = {n: _rust_key(n, seen) for n in names}
    if args.full:
        chosen = names
    else:
        chosen = []
        for f in RUST_FILES:
            mine = [n for n in names if n.startswith(f + ":")]
            rng = random.Random(f"{args.seed}:rust:{f}")
            chosen += sorted(rng.sample(mine, min(args.sample or RUST_SAMPLE, len(mine))))
    prev = load_results("rust") if args.survivors_of else None
    if prev is not None:
        chosen = [n for n in chosen if prev["mutants"].get(keys[n], {}).get("outcome") == "survived"]
    results: Dict[str, dict] = {}
    if chosen:
        out = OUT / "cargo-mutants"
        shutil.rmtree(out, ignore_errors=True)
        regex = "^(" + "|".join(_rust_escape(n) for n in chosen) + ")$"
        declared = set(re.findall(r'^name = "(\w+)"', (ROOT / "Cargo.toml").read_text(), re.M))
        tests = ["--lib"] + [a for t in RUST_TESTS if t in declared for a in ("--test", t)]
        cmd = ["cargo", "mutants", *files, "-F", regex, "-j", "1", "--timeout", "600", "--output", str(out),
               "--no-shuffle", "--profile", "mutants", *[f"--cargo-test-arg={a}" for a in tests]]
        print("  " + " ".join(cmd[:4]) + f" ... ({len(chosen)} mutants)", flush=True)
        subprocess.run(cmd, cwd=tree)
        data = json.loads((out / "mutants.out" / "outcomes.json").read_text())
        for o in data["outcomes"]:
            sc = o.get("scenario")
            if not isinstance(sc, dict) or "Mutant" not in sc:
                continue
            name = sc["Mutant"]["name"]
            summary = o["summary"]
            outcome = {"CaughtMutant": "killed", "MissedMutant": "survived", "Timeout": "killed",
                       "Unviable": "unviable"}.get(summary, summary)
            results[keys[name]] = dict(outcome=outcome, killed_by="cargo test" if outcome == "killed" else None,
                                       killed_by_ref_tests=None, name=name)
    if prev is not None:
        merged = dict(prev["mutants"])
        for key, r in results.items():
            if r["outcome"] == "killed":
                r["killed_by_ref_tests"] = False
            merged[key] = r
        results = merged
    return dict(area="rust", total=len(names), sampled=len(chosen) if prev is None else prev["sampled"],
                seed=args.seed, full=args.full, baseline_ref=None, mutants=results)


# ------------------------------------------------------------------------------ report


def load_results(area: str) -> dict:
    return json.loads((OUT / f"{area}.json").read_text())


def table(rows: List[dict]) -> str:
    verdicts = load_verdicts()
    lines = [f"{'area':10s} {'mutants':>7s} {'run':>5s} {'killed':>6s} {'surv.':>5s} {'equiv.':>6s} "
             f"{'score':>7s} {'95% interval':>14s} {'unlisted':>8s}   at baseline ref"]
    unlisted_all = []
    for r in rows:
        ms = {k: v for k, v in r["mutants"].items() if v["outcome"] != "unviable"}
        killed = sum(v["outcome"] == "killed" for v in ms.values())
        surv = [k for k, v in ms.items() if v["outcome"] == "survived"]
        equiv = [k for k in surv if verdicts.get(k, {}).get("verdict") == "equivalent"]
        unlisted = [k for k in surv if k not in verdicts]
        unlisted_all += unlisted
        n = len(ms) - len(equiv)
        lo, hi = wilson(killed, n)
        score = killed / n if n else 1.0
        ref = ""
        if r.get("baseline_ref"):
            kr = sum(bool(v.get("killed_by_ref_tests")) for v in ms.values())
            ref = f"{kr}/{n} = {kr / n:.0%} killed by the test files present at {r['baseline_ref']}" if n else ""
        lines.append(f"{r['area']:10s} {r['total']:7d} {len(ms):5d} {killed:6d} {len(surv):5d} {len(equiv):6d} "
                     f"{score:7.1%} {f'[{lo:.0%}, {hi:.0%}]':>14s} {len(unlisted):8d}   {ref}")
    if unlisted_all:
        lines.append("\nSurvivors not yet in tools/mutation/survivors.toml (kill them, or list them as equivalent):")
        lines += [f"  {k}" for k in unlisted_all]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("areas", nargs="*", help=f"areas to run (default: all): {', '.join([*AREAS, 'rust'])}")
    p.add_argument("--full", action="store_true", help="every mutant, not a sample (hours)")
    p.add_argument("--sample", type=int, help="mutants per area (per file for rust); default "
                   f"{AREAS['calibrate'].sample} per Python area, {RUST_SAMPLE} per Rust file")
    p.add_argument("--seed", type=int, default=27, help="the sample's seed (default 27)")
    p.add_argument("--baseline-ref", help="also score the targeted test files that exist at this git revision (as they are now)")
    p.add_argument("--survivors-of", action="store_true",
                   help="run only the survivors recorded in target/mutation/<area>.json again, and merge")
    p.add_argument("--list", action="store_true", help="count the mutants of each area and exit")
    p.add_argument("--report", action="store_true", help="print the table of the recorded results and exit")
    args = p.parse_args(argv)
    areas = args.areas or [*AREAS, "rust"]
    for a in areas:
        if a not in AREAS and a != "rust":
            p.error(f"unknown area {a!r}")
    if args.list:
        for a in areas:
            if a == "rust":
                with RustTree() as tree:
                    out = subprocess.run(["cargo", "mutants", "--list", *[x for f in RUST_FILES for x in ("--file", f)]],
                                         cwd=tree, capture_output=True, text=True).stdout
                print(f"rust: {len(out.splitlines())} mutants")
            else:
                print(f"{a}: {len(enumerate_python(a))} mutants")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for a in areas:
        if not args.report:
            print(f"{a}:", flush=True)
            r = run_rust_area(args) if a == "rust" else run_python_area(a, args)
            (OUT / f"{a}.json").write_text(json.dumps(r, indent=1))
        rows.append(load_results(a))
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
