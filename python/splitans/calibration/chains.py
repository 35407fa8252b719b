"""How the level ``1 - confidence`` is spent over the chains of candidates, and how a chain is
tested: Wiens' fallback procedure over a chain's nodes, and the graphical procedure that lends
the anchor its share of every chain and hands it back once the anchor is confirmed."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

#: Share of the level ``1 - confidence`` held by the base grid's chains; the rest is split equally
#: among the options that apply to the samples.
BASE_SHARE = 0.5
#: Chains tested per family: the base grid's, and each option's.
BASE_CHAINS, OPTION_CHAINS = 2, 1
#: A chain's level over its nodes: lent to the anchor, on the chain's first node, on its second
#: (where the chain goes on after a failure of the first).
NODE_WEIGHTS = (0.5, 0.3, 0.2)


def fallback(weights: Sequence[float], level: float, reject: Callable[[int, float], bool],
             carry: float = 0.0) -> List[bool]:
    """Wiens' fallback procedure over hypotheses in a fixed order: hypothesis ``i`` is tested at
    ``level * weights[i]``, plus the level of hypothesis ``i - 1`` when that one was rejected
    (``carry`` for the first: a level handed on by a hypothesis before the sequence);
    ``reject(i, level_i)`` tests it (a hypothesis whose level is 0 is not tested). Returns which
    were rejected. With weights summing to at most 1, the familywise error is at most ``level``
    under any dependence (a closed test of weighted Bonferroni tests; Wiens and Dmitrienko
    2005); ``carry`` counts against whatever handed it on."""
    if sum(weights) > 1 + 1e-12 or min(weights, default=0) < 0:
        raise ValueError(f"fallback weights must be >= 0 and sum to at most 1, got {list(weights)}")
    out = []
    for i, w in enumerate(weights):
        a = level * w + carry
        ok = a > 0 and bool(reject(i, a))
        out.append(ok)
        carry = a if ok else 0.0
    return out


def run_chains(paths: Sequence[Dict[str, Any]], anchor: Any, test: Callable[[Any, float], bool]) -> Tuple[List[Any], float]:
    """The whole test: the anchor once, at the sum of the shares its chains lend it
    (``NODE_WEIGHTS[0]`` of each chain's ``level``; all of it for a chain with no other node);
    confirmed, it hands each chain its share back. Then each chain's ``nodes`` by the
    `fallback` procedure with its ``weights``. A graphical procedure (Bretz, Maurer, Brannath
    and Posch 2009) whose weights sum to the chains' levels: the familywise error is at most
    their sum. ``test(candidate, level)`` says whether a candidate is confirmed at ``level``.
    Returns the candidates confirmed (the anchor first when it is) and the anchor's level."""
    anchor_level = sum(p["level"] * (NODE_WEIGHTS[0] if p["nodes"] else 1.0) for p in paths)
    confirmed: List[Any] = []
    anchored = bool(test(anchor, anchor_level))
    if anchored:
        confirmed.append(anchor)
    for path in paths:
        nodes = path["nodes"]
        carry = path["level"] * NODE_WEIGHTS[0] if anchored else 0.0
        done = fallback(path["weights"], path["level"], lambda i, a: test(nodes[i], a), carry=carry)
        confirmed += [nodes[i] for i, ok in enumerate(done) if ok and not any(nodes[i] is c for c in confirmed)]
    return confirmed, anchor_level
