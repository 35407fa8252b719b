#!/usr/bin/env python3
"""The familywise error of `splitans.calibrate`'s test, by simulation: the real chains of a
search (a small ReLU map and a linear classifier), with the test part's counts drawn from
chosen true rates instead of a model, many times.

    python benches/rate/calibrate_error.py                 # 20,000 replicates a case
    python benches/rate/calibrate_error.py --reps 2000     # quicker

Each chain (and the anchor) draws one uniform per sample; a candidate loses the sample (right
only without compression) below its p_b and wins it above 1 - p_c, so that within a chain the
coarser candidates change a superset of the finer ones' predictions (strongly dependent tests)
while chains are independent (where Bonferroni over them is nearly tight). The cases:

- ``boundary``: the anchor and each chain's first node have no drop; every later node's drop is
  exactly the budget (the least favourable null: the test's level is reached there).
- ``all-null``: every candidate, the anchor included, exactly at the budget.
- ``noisy-start``: each chain's first node a little under the budget (noisy: it often fails),
  the second with no drop, the rest at the budget: how often a chain goes on after a failure
  (``resumed``), and the error then.

For each, at n × budget above the exact test's threshold (Tango's score test) and below it
(the exact test): the share of replicates in which some candidate whose drop is not below the
budget was confirmed, against the chains' summed level (at most 1 - confidence = 10%).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from splitans import calibration as cal


def search():
    rng = np.random.default_rng(4)
    n = 900
    acts = np.maximum(rng.normal(size=(n, 4, 6, 6)), 0).astype(np.float32)
    w = rng.normal(size=(4 * 36, 5))
    logits = acts.reshape(n, -1) @ w
    labels = np.where(rng.random(n) < 0.9, logits.argmax(1), rng.integers(0, 5, n))
    return cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, bits=(2, 3, 4, 8),
                      options=("clip", "levels"))


def simulate(s, budget, n, truths, reps, seed):
    rng = np.random.default_rng(seed)
    paths = s.paths(s.options, budget, 0.9)
    anchor = s.anchor()
    chain_of = {id(c): k for k, p in enumerate(paths) for c in p["nodes"]}
    margin = budget / 100
    cache = {}
    errors = resumed = 0
    for _ in range(reps):
        draws = np.sort(rng.random((len(paths) + 1, n)), axis=1)

        def test(cand, level):
            pb, pc = truths(cand)
            u = draws[chain_of.get(id(cand), len(paths))]
            b = int(np.searchsorted(u, pb))
            c = n - int(np.searchsorted(u, 1 - pc))
            if (b, c) not in cache:
                cache[b, c] = cal.paired_drop_test(b, c, n, margin)
            return cache[b, c] <= level

        confirmed, _ = cal.run_chains(paths, anchor, test)
        errors += any(truths(c)[0] - truths(c)[1] >= margin - 1e-15 for c in confirmed)
        for path in paths:
            flags = [any(c is x for x in confirmed) for c in path["nodes"]]
            resumed += any(not a and b for a, b in zip(flags, flags[1:]))
    return errors / reps, resumed / (reps * len(paths)), sum(p["level"] for p in paths)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=20_000)
    a = p.parse_args()
    s = search()
    print("| regime | n | budget (pp) | case | familywise error | chains' level | resumed after a failure |")
    print("|---|---|---|---|---|---|---|")
    for regime, n, budget in (("score test", 4000, 3.0), ("exact test", 4500, 0.2)):
        margin = budget / 100
        q = 0.01 if regime == "score test" else 0.004  # discordance of the true nulls' pairs
        paths = s.paths(s.options, budget, 0.9)
        index = {id(c): i for path in paths for i, c in enumerate(path["nodes"])}
        zero, null = (q, q), (q + margin, q)
        cases = {
            "boundary": lambda c: zero if index.get(id(c), 0) == 0 else null,
            "all-null": lambda c: null,
            "noisy-start": lambda c: [(q + 0.8 * margin, q), zero][index[id(c)]] if index.get(id(c), -1) in (0, 1)
            else (zero if id(c) not in index else null),
        }
        for name, truths in cases.items():
            t = time.time()
            fwer, resumed, total = simulate(s, budget, n, truths, a.reps, 1)
            se = math.sqrt(max(fwer * (1 - fwer), 1e-12) / a.reps)
            print(f"| {regime} | {n:,} | {budget:g} | {name} | {fwer:.4f} ± {se:.4f} | {total:.4f} | {resumed:.1%} |"
                  f"  [{time.time() - t:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
