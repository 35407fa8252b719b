"""The search itself (`Search`): candidates built and sized on the selection part, ranked by the
model's divergence, chained, and tested on the test part by `chains.run_chains`; and
`calibrate`, which runs one search and returns its choice."""

from __future__ import annotations

import inspect as _inspect
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _feature, _quantizers
from .._fitted import Codec
from .chains import BASE_CHAINS, BASE_SHARE, NODE_WEIGHTS, OPTION_CHAINS, run_chains
from .data import _auto_axis, _is_torch, _kl, _logits, _samples
from .result import CalibrationReport, CalibrationWarning
from .stats import _NORMAL, binomial_test, clopper_pearson, paired_drop_interval, paired_drop_test, samples_to_confirm

#: Quantizer options the search may use, each measured on its own by the report: ``clip`` (MSE-
#: optimal and ACIQ clip ranges), ``dead_zone``, ``levels`` (Lloyd–Max and entropy-constrained),
#: ``allocation`` (per-channel bits by sensitivity) and ``per_token`` (per-sample parameters
#: along the first axis of 2-d samples, e.g. tokens). The uniform grid with percentile clipping,
#: per tensor or per channel, is always searched.
OPTIONS = ("clip", "dead_zone", "levels", "allocation", "per_token")


@dataclass
class _Candidate:
    name: str
    option: str
    bits: int
    axis: Optional[int]
    spec: Dict[str, Any]
    fit: Dict[str, Any]
    config: str = ""
    level: float = 0.0
    bytes: float = math.nan
    kl: float = math.nan
    proxy: float = math.nan
    _front: float = math.inf
    sel_changed: int = 0
    sel_b: int = 0  # selection-part (ranking samples) counts, for accuracy
    sel_c: int = 0
    codec: Optional[Codec] = None
    outcome: Optional[np.ndarray] = None  # test-part predictions
    final: Optional[Tuple[Codec, float]] = None  # the refitted codec and its bytes on test-part samples
    final_plain: Optional[Tuple[Codec, float]] = None  # the sizing codec and its bytes there


class Search:
    """The state of one calibration: candidates sized and ranked on the selection part, and
    test outcomes cached, so that `select` can be asked again with other options (the report's
    per-option columns) without running the model twice on the same candidate. Memory beyond
    the samples themselves stays near a few batches: candidates are decoded and run through the
    tail batch by batch."""

    def __init__(
        self,
        activations: Any,
        tail: Callable[..., Any],
        labels: Any = None,
        *,
        metric: Optional[str] = None,
        axis: Any = "auto",
        bits: Sequence[int] = (1, 2, 3, 4, 5, 6, 8),
        options: Sequence[str] = OPTIONS,
        selection: float = 0.1,
        batch_size: int = 250,
        size_samples: int = 32,
        fit_samples: int = 256,
        rank_samples: int = 300,
        final_size_samples: int = 2000,
        seed: int = 0,
        log: Optional[Callable[[str], None]] = None,
    ):
        t0 = time.time()
        self.log = log or (lambda s: None)
        self.torch_input = _is_torch(activations)
        items, self.dtype = _samples(activations)
        self.items = items
        self.fixed = isinstance(items, np.ndarray)
        n = len(items)
        if n < 10:
            raise ValueError("calibrate needs at least 10 calibration samples")
        if metric is None:
            metric = "accuracy" if labels is not None else "agreement"
        if metric not in ("accuracy", "agreement"):
            raise ValueError(f"metric must be 'accuracy' or 'agreement', got {metric!r}")
        if metric == "accuracy" and labels is None:
            raise ValueError("metric='accuracy' needs labels; without labels use metric='agreement'")
        self.metric = metric
        self.labels = None if labels is None else _logits(labels).astype(np.int64).reshape(-1)
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} samples")
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; choose from {OPTIONS}")
        self.options = tuple(options)
        self.tail = tail
        try:
            params = _inspect.signature(tail).parameters.values()
            required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                        and p.default is p.empty]
            self._tail_takes_index = len(required) >= 2
        except (TypeError, ValueError):
            self._tail_takes_index = False
        self.batch_size = batch_size
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        n_sel = min(max(int(round(selection * n)), min(n // 4, 200)), n - 5)
        self.sel, self.test = np.sort(order[:n_sel]), np.sort(order[n_sel:])
        shape0 = items[0].shape
        self.shape = tuple(d if all(it.shape[a] == d for it in items) else None for a, d in enumerate(shape0))
        self.elements = float(np.mean([it.size for it in items]))
        if axis == "auto":
            axis = _auto_axis(self.shape)
        if axis is not None:
            axis = _feature._axis(axis, len(shape0))
            if self.shape[axis] is None:
                axis = None
        self.axis = axis
        sel_items = self._take(self.sel)
        values = np.concatenate([np.asarray(x).reshape(-1) for x in (sel_items if not self.fixed else [sel_items])])
        self.sparse = bool(values.min() >= 0 and (values == 0).mean() > 0.1)
        self.bits = tuple(int(b) for b in bits)
        # Reference predictions (uncompressed) on every sample.
        self.ref = self._run(items, np.arange(n))
        self.ref_pred = self.ref.argmax(1)
        self.correct0 = None if self.labels is None else self.ref_pred == self.labels
        self.log(f"calibrate: {n} samples ({len(self.sel)} selection, {len(self.test)} test), "
                 f"{'sparse' if self.sparse else 'dense'}, channel axis {self.axis}")
        # Context models for sizing: fitted to some selection samples, measured on other selection
        # samples (fewer of large samples: the model fit reads at most a few million elements
        # anyway). Nothing of the test part decides what is tested (only the final pick among
        # confirmed candidates looks at its sizes).
        size_samples = int(min(size_samples, max(4, (2 << 20) // max(1, int(self.elements)))))
        self.size_fit = self._list(self.sel[:size_samples])
        rest = self.sel[size_samples : 2 * size_samples]
        self.size_eval = self._list(rest) if len(rest) >= min(size_samples, 4) else self.size_fit
        self.fit_items = self._list(self.sel[:fit_samples])
        #: Test-part samples on which a returned codec is sized.
        self.final_size_samples = final_size_samples
        self._rows: Dict[Any, List[np.ndarray]] = {}
        self._ranges: Dict[Any, List[Tuple[float, float]]] = {}
        self.sensitivity, self.sensitivity_note = None, None
        self.fisher = self._fisher()
        self.rank = self.sel[: min(len(self.sel), rank_samples)]
        self.candidates: List[_Candidate] = []
        self._build_candidates()
        self._evaluate_candidates()
        self.seconds = time.time() - t0

    # -------------------------------------------------------------- data plumbing

    def _take(self, idx: np.ndarray):
        if self.fixed:
            return self.items[idx]
        return [self.items[i] for i in idx]

    def _list(self, idx: np.ndarray) -> List[np.ndarray]:
        return [np.ascontiguousarray(self.items[i]) for i in idx]

    def _as_input(self, batch):
        if self.torch_input:
            import torch

            if isinstance(batch, np.ndarray):
                return torch.from_numpy(batch)
            return [torch.from_numpy(b) for b in batch]
        return batch

    def _call_tail(self, batch, idx):
        args = (self._as_input(batch), idx) if self._tail_takes_index else (self._as_input(batch),)
        if self.torch_input:
            import torch

            with torch.no_grad():
                return _logits(self.tail(*args))
        return _logits(self.tail(*args))

    def _run(self, data, idx: np.ndarray) -> np.ndarray:
        """Logits of the tail on ``data`` (aligned with sample indices ``idx``), in batches."""
        out = []
        for k in range(0, len(idx), self.batch_size):
            part = idx[k : k + self.batch_size]
            if isinstance(data, np.ndarray):
                batch = data[k : k + len(part)]
            else:
                batch = data[k : k + len(part)]
            out.append(self._call_tail(batch, part))
        return np.concatenate(out) if out else np.zeros((0, 0))

    def _decoded(self, codec: Codec, idx: np.ndarray):
        if self.fixed:
            return codec.round_trip(self.items[idx])
        return [codec.round_trip(self.items[i][None])[0] for i in idx]

    def _predict(self, codec: Codec, idx: np.ndarray) -> np.ndarray:
        """The tail's predictions on the decoded samples ``idx``, one batch at a time: what is
        held beyond the samples is one batch, its decoded copy and the tail's own work."""
        out = np.empty(len(idx), np.int64)
        for k in range(0, len(idx), self.batch_size):
            part = idx[k : k + self.batch_size]
            out[k : k + len(part)] = self._call_tail(self._decoded(codec, part), part).argmax(1)
        return out

    # -------------------------------------------------------------- candidates

    def _channel_rows(self, axis: Optional[int]) -> List[np.ndarray]:
        if axis not in self._rows:
            items = self._take(self.sel)
            items = list(items) if self.fixed else items
            self._rows[axis] = _quantizers.channel_rows(items, axis, limit=1 << 20)
        return self._rows[axis]

    def _clip(self, axis: Optional[int], how: Any, bits: int) -> List[Tuple[float, float]]:
        """A candidate's ranges from the selection samples, by the rule ``Codec.fit(clip=...)``
        follows on the same samples (`_quantizers.clip_ranges`)."""
        key = (axis, how if not isinstance(how, str) or how not in ("mse", "aciq") else (how, bits))
        if key not in self._ranges:
            self._ranges[key] = _quantizers.clip_ranges(self._take(self.sel), axis, how, bits, nonfinite="clamp")
        return self._ranges[key]

    def _add(self, name, option, bits, axis, spec, fit, config, level):
        self.candidates.append(_Candidate(name, option, bits, axis, spec, fit, config=config, level=level))

    def _uniform(self, option, bits, axis, how, label, **extra):
        ranges = self._clip(axis, how, bits)
        where = "per-tensor" if axis is None else f"per-channel (axis {axis})"
        spec = _quantizers.quantizer_spec(ranges, [bits] * len(ranges), **extra)
        fit = dict(bits=bits, axis=axis, clip=label, **{k: v for k, v in extra.items() if k != "rows"})
        more = ""
        if extra.get("dead_zone") is not None:
            more = f", dead zone {extra['dead_zone']} steps"
        if extra.get("levels", "uniform") != "uniform":
            more = f", {extra['levels']} levels"
        config = f"{where} clip {label}{more}"
        self._add(f"{bits}-bit {config}", option, bits, axis, spec, fit, config, float(bits))

    def _build_candidates(self):
        sparse = self.sparse
        base = [("minmax", "min/max"), ((0.0, 99.99) if sparse else (0.01, 99.99), "p99.99" if sparse else "p0.01-p99.99"),
                ((0.0, 99.9) if sparse else (0.1, 99.9), "p99.9" if sparse else "p0.1-p99.9")]
        anchor = base[1]
        axes = [None] + ([self.axis] if self.axis is not None else [])
        for b in self.bits:
            for ax in axes:
                for how, label in base:
                    self._uniform("base", b, ax, how, label)
                if "clip" in self.options:
                    for how in ("mse", "aciq"):
                        self._uniform("clip", b, ax, how, how)
                if "dead_zone" in self.options and b >= 2:
                    self._uniform("dead_zone", b, ax, anchor[0], anchor[1], dead_zone=0.8)
                if "levels" in self.options and b <= 6 and ax is None:
                    for method in ("lloyd", "ecsq"):
                        self._uniform("levels", b, ax, anchor[0], anchor[1], levels=method,
                                      rows=self._channel_rows(ax))
        if "per_token" in self.options and len(self.shape) == 2:
            for b in self.bits:
                self._add(f"{b}-bit per-token min/max", "per_token", b, 0, dict(kind="per-sample"),
                          dict(bits=b, axis=0, clip=None), "per-token min/max", float(b))
        if "allocation" in self.options and self.axis is not None:
            weights = self._sensitivity_weights()
            if weights is not None:
                ranges_by_bits = {b: self._clip(self.axis, anchor[0], b) for b in range(1, 9)}
                seen = set()
                for mean in (0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0):
                    cb = _quantizers.allocate_bits(weights, mean, max_bits=8)
                    key = tuple(cb)
                    if key in seen or cb.max() == 0:
                        continue
                    seen.add(key)
                    top = int(cb.max())
                    ranges = [ranges_by_bits[max(1, int(b))][c] for c, b in enumerate(cb)]
                    spec = _quantizers.quantizer_spec(ranges, [int(b) for b in cb])
                    self._add(f"{mean:g}-bit mean per-channel allocation (up to {top}) clip {anchor[1]}",
                              "allocation", top, self.axis, spec,
                              dict(bits=top, axis=self.axis, clip=anchor[1], channel_bits=cb.tolist()),
                              f"per-channel allocation clip {anchor[1]}", float(mean))
        self.log(f"calibrate: {len(self.candidates)} candidates")

    def _fisher(self) -> Optional[np.ndarray]:
        """Per-element mean squared gradient of the loss (cross entropy against the labels, or
        against the uncompressed prediction) with respect to the activation: the diagonal of the
        Fisher information, on up to 512 selection samples. ``sum(F * error^2) / 2`` is the
        second-order change of the loss that an error causes. Needs a tail that torch can
        differentiate and samples of one shape; otherwise None (the allocation option is then
        skipped, and candidates are screened by plain squared error)."""
        if not self.fixed:
            self.sensitivity_note = "samples of several shapes: no gradient, allocation skipped"
            return None
        try:
            import torch
        except ImportError:
            self.sensitivity_note = "no torch: allocation skipped"
            return None
        idx = self.sel[: min(len(self.sel), 512)]
        total = None
        try:
            for k in range(0, len(idx), self.batch_size):
                part = idx[k : k + self.batch_size]
                x = torch.from_numpy(np.ascontiguousarray(self.items[part])).requires_grad_(True)
                arg = x if self.torch_input else x  # a torch tail gets torch; others fail here
                out = self.tail(arg, part) if self._tail_takes_index else self.tail(arg)
                if not (_is_torch(out) and out.requires_grad):
                    raise TypeError("the tail's output carries no gradient")
                target = torch.from_numpy(self.labels[part] if self.labels is not None else self.ref_pred[part])
                loss = torch.nn.functional.cross_entropy(out.float(), target, reduction="sum")
                (g,) = torch.autograd.grad(loss, x)
                g2 = (g.detach().numpy().astype(np.float64) ** 2).sum(0)
                total = g2 if total is None else total + g2
        except Exception as e:  # any tail: the gradient is an option, not a requirement
            self.sensitivity_note = f"no gradient ({type(e).__name__}: {str(e)[:80]})"
            return None
        self.sensitivity_note = "diagonal Fisher (squared gradients of the cross entropy)"
        return (total / len(idx)).astype(np.float32)

    def _sensitivity_weights(self) -> Optional[np.ndarray]:
        """Per-channel weights ``F_c * var_c`` for `allocate_bits`: the channel's mean Fisher
        information per element times its variance."""
        if self.fisher is None:
            return None
        f = np.moveaxis(self.fisher, self.axis, 0)
        per_el = f.reshape(f.shape[0], -1).mean(1)
        var = np.array([float(np.var(r)) if r.size else 0.0 for r in self._channel_rows(self.axis)])
        self.sensitivity = per_el
        return per_el * var

    def make_codec(self, cand: _Candidate, items: List[np.ndarray]) -> Codec:
        """A candidate's codec fitted to ``items`` (``fit_items``: the selection samples a
        returned codec is fitted to), e.g. to measure a candidate that was not chosen."""
        return Codec._from_spec(items, self.dtype, cand.bits, cand.axis, cand.spec)

    def _evaluate_candidates(self):
        """Sizes and a cheap distortion (Fisher-weighted squared error) for every candidate;
        then the model's divergence for those near the best size-distortion trade-off of their
        family (the base grid alone, or the base grid with the candidate's option), which rank
        the chains. A base candidate's fate never depends on which options were asked for."""
        t = time.time()
        ref_rank = self._take(self.rank)
        w = self.fisher if self.fisher is not None else None
        for cand in self.candidates:
            codec = self.make_codec(cand, self.size_fit)
            cand.bytes = float(np.mean([len(codec.compress(x)) for x in self.size_eval]))
            cand.codec = codec
            dec = self._decoded(codec, self.rank)
            if self.fixed:
                err = (dec - ref_rank) ** 2
                cand.proxy = float(np.mean((err * w if w is not None else err).reshape(len(err), -1).sum(1)))
            else:
                cand.proxy = float(np.mean([np.sum((a - b) ** 2) for a, b in zip(dec, ref_rank)]))
        self.log(f"calibrate: {len(self.candidates)} candidates sized [{time.time() - t:.0f} s]")
        keep = set()
        for g in ["base"] + sorted({c.option for c in self.candidates if c.option != "base"}):
            pool = sorted((c for c in self.candidates if c.option in ("base", g)), key=lambda c: c.bytes)
            best = math.inf
            for c in pool:  # the lower envelope of distortion against size
                c._front = best
                best = min(best, c.proxy)
            keep |= {id(c) for c in pool if c.option == g and c.proxy <= 1.5 * c._front}
        ranked = [c for c in self.candidates if id(c) in keep]
        for cand in ranked:
            logits = self._run(self._decoded(cand.codec, self.rank), self.rank)
            cand.kl = float(np.mean(_kl(self.ref[self.rank], logits)))
            pred = logits.argmax(1)
            cand.sel_changed = int((pred != self.ref_pred[self.rank]).sum())
            if self.metric == "accuracy":
                cand.sel_b, cand.sel_c, _ = self._counts(pred, self.rank)
        for cand in self.candidates:
            if id(cand) not in keep:
                cand.kl = math.inf
        self.log(f"calibrate: {len(ranked)} candidates near the best trade-off ranked by the model "
                 f"[{time.time() - t:.0f} s]")

    # -------------------------------------------------------------- testing

    def _outcome(self, cand: _Candidate) -> np.ndarray:
        """Predictions on the test part (decoded and run batch by batch)."""
        if cand.outcome is None:
            cand.outcome = self._predict(cand.codec, self.test)
        return cand.outcome

    def _counts(self, pred: np.ndarray, idx: np.ndarray) -> Tuple[int, int, int]:
        if self.metric == "accuracy":
            right0 = self.correct0[idx]
            right1 = pred == self.labels[idx]
            return int((right0 & ~right1).sum()), int((~right0 & right1).sum()), len(idx)
        return int((pred != self.ref_pred[idx]).sum()), 0, len(idx)

    def _p_value(self, b: int, c: int, n: int, budget: float) -> float:
        if self.metric == "accuracy":
            return paired_drop_test(b, c, n, budget)
        return binomial_test(b, n, budget)

    def applicable(self) -> Tuple[str, ...]:
        """The quantizer options that can make candidates for these samples, asked for or not:
        each holds a share of the level, so that asking for more never lowers another's."""
        out = ["clip"]
        if any(b >= 2 for b in self.bits):
            out.append("dead_zone")
        if any(b <= 6 for b in self.bits):
            out.append("levels")
        if self.axis is not None and self.fisher is not None:
            out.append("allocation")
        if len(self.shape) == 2:
            out.append("per_token")
        return tuple(out)

    def family_level(self, family: str, confidence: float) -> float:
        """The familywise level held by a family's chains together."""
        alpha = 1 - confidence
        if family == "base":
            return alpha * BASE_SHARE
        applicable = self.applicable()
        return alpha * (1 - BASE_SHARE) / len(applicable) if family in applicable else 0.0

    def reference_kl(self, budget: float, confidence: float) -> float:
        """The divergence at which a candidate is expected to sit at the edge of what the test
        can confirm, from the selection part's base candidates: a fit of their changed
        predictions against their divergence (``changed ~ a * kl^beta``), and, for accuracy,
        the share ``lam`` of changed predictions that are net losses (``(b - c) / (b + c)``,
        pooled over candidates changing at most a quarter of them). The edge is the change rate
        ``r*`` at which a candidate whose drop is ``lam * r*`` is just confirmed at the level of
        one base chain, on the test part's ``n`` samples: ``budget - lam * r* = z * sqrt(r* / n)``
        (agreement: ``budget - r* = z * sqrt(r* (1 - r*) / n)``)."""
        base = [c for c in self.candidates if c.option == "base" and 0 < c.kl < math.inf]
        n = len(self.rank)
        if not base:
            return math.inf
        kl = np.log(np.array([c.kl for c in base]))
        changed = np.array([c.sel_changed for c in base], float)
        r = np.log((changed + 0.5) / (n + 1))
        w = changed + 0.5
        A = np.stack([np.ones_like(kl), kl], 1) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(A, r * np.sqrt(w), rcond=None)
        z = _NORMAL.inv_cdf(1 - self.family_level("base", confidence) / BASE_CHAINS)
        n_test, margin = len(self.test), budget / 100
        if self.metric == "accuracy":
            near = [c for c in base if c.sel_b + c.sel_c <= n / 4]
            disc = sum(c.sel_b + c.sel_c for c in near)
            lam = min(max(sum(c.sel_b - c.sel_c for c in near) / disc, 0.0), 1.0) if disc else 0.0

            def slack(q):
                return margin - lam * q - z * math.sqrt(q / n_test)
        else:
            def slack(q):
                return margin - q - z * math.sqrt(q * (1 - q) / n_test)
        lo, hi = 0.0, 1.0
        for _ in range(60):  # slack decreases in q
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if slack(mid) > 0 else (lo, mid)
        target = lo
        beta = coef[1] if coef[1] > 0.05 else 0.5
        return float(np.exp((math.log(min(max(target, 1e-6), 0.5)) - coef[0]) / beta))

    def configurations(self, options: Sequence[str]) -> Dict[str, List[_Candidate]]:
        """Candidates of the allowed options by configuration (everything but the bit width),
        each from the most faithful (most bits) to the smallest."""
        chains: Dict[str, List[_Candidate]] = {}
        for c in self.candidates:
            if (c.option == "base" or c.option in options) and c.kl < math.inf:
                chains.setdefault(c.config, []).append(c)
        for chain in chains.values():
            chain.sort(key=lambda c: -c.level)
        return chains

    @staticmethod
    def size_at(chain: List[_Candidate], kl_ref: float) -> float:
        """A configuration's size where its divergence reaches ``kl_ref`` (log-log interpolation
        over its bit widths); infinite if even its most faithful candidate diverges more."""
        pts = sorted((c.kl, c.bytes) for c in chain if c.kl > 0)
        if not pts or pts[0][0] > kl_ref:
            return math.inf
        if pts[-1][0] <= kl_ref:
            return min(b for _, b in pts)
        for (k0, b0), (k1, b1) in zip(pts, pts[1:]):
            if k0 <= kl_ref <= k1:
                t = (math.log(kl_ref) - math.log(k0)) / max(math.log(k1) - math.log(k0), 1e-12)
                return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
        return math.inf

    def anchor(self) -> _Candidate:
        """The most faithful base candidate (least divergence on the selection part): the first
        node of every chain, and what comes back when nothing is confirmed."""
        base = [c for c in self.candidates if c.option == "base" and c.kl < math.inf]
        if not base:
            raise ValueError("no candidate to test")
        return min(base, key=lambda c: (c.kl, c.bytes, c.name))

    def paths(self, options: Sequence[str], budget: float = 0.2, confidence: float = 0.9) -> List[Dict[str, Any]]:
        """The chains to test, from the selection part alone: per family (the base grid, and
        each allowed option), the configurations predicted smallest at the edge of the budget
        (`reference_kl`), ``BASE_CHAINS`` of the base grid and ``OPTION_CHAINS`` of each option.
        Each chain holds its family's level over its number of chains (``level``), a share
        ``NODE_WEIGHTS[0]`` of which it lends to the `anchor`, and its ``nodes``: the
        configuration's candidates from one bit width more faithful than the predicted edge (its
        last candidate within ``kl_ref``) down to its fewest, with ``weights`` (the rest of
        ``NODE_WEIGHTS`` on the first two; `fallback`)."""
        kl_ref = self.reference_kl(budget, confidence)
        by_config = self.configurations(options)
        if not by_config:
            raise ValueError("no candidate to test")
        #: Each configuration's predicted size at the edge of the budget (`size_at`), as of the
        #: last `paths` (and so the last `select`).
        self.config_sizes = {k: self.size_at(v, kl_ref) for k, v in by_config.items()}
        self._kl_ref = kl_ref
        anchor = self.anchor()
        out = []
        for family in ["base"] + [o for o in OPTIONS if o in options]:
            level = self.family_level(family, confidence)
            configs = [ch for ch in by_config.values() if ch[0].option == family]
            if level <= 0 or not configs:
                continue
            configs.sort(key=lambda ch: (self.config_sizes[ch[0].config], ch[-1].bytes, ch[0].config))
            top = configs[: BASE_CHAINS if family == "base" else OPTION_CHAINS]
            for chain in top:
                within = 0
                while within < len(chain) and chain[within].kl <= kl_ref:
                    within += 1
                nodes = [c for c in chain[max(0, within - 2):] if c is not anchor]
                weights = [NODE_WEIGHTS[1] if i == 0 else NODE_WEIGHTS[2] if i == 1 else 0.0 for i in range(len(nodes))]
                if weights:
                    weights[-1] += 1 - NODE_WEIGHTS[0] - sum(weights)  # a chain of one node keeps its whole share
                out.append(dict(family=family, config=chain[0].config, level=level / len(top), nodes=nodes,
                                weights=weights))
        return out

    def _final(self, cand: _Candidate, final_fit: bool) -> Tuple[Codec, float]:
        """The codec returned for a candidate (refitted to more selection samples, or the sizing
        one) and its mean blob bytes on test-part samples (sizes only: no labels, no tail)."""
        key = "final" if final_fit else "final_plain"
        if getattr(cand, key) is None:
            codec = self.make_codec(cand, self.fit_items) if final_fit else cand.codec
            sized = self.test[: max(len(self.size_eval), self.final_size_samples)]
            size = float(np.mean([len(codec.compress(np.ascontiguousarray(self.items[i]))) for i in sized]))
            setattr(cand, key, (codec, size))
        return getattr(cand, key)

    def select(self, budget: float = 0.2, confidence: float = 0.9, options: Optional[Sequence[str]] = None,
               final_fit: bool = True) -> Codec:
        """The smallest codec that the test part confirms within ``budget`` percentage points
        at ``confidence``, among the `paths` of ``options`` (default: all of the search's): each
        chain is tested by the `fallback` procedure at its share of ``1 - confidence``; of every
        candidate confirmed, the one whose returned codec is smallest on test-part samples
        wins. With nothing confirmed, the anchor comes back with ``confirmed`` False and a
        `CalibrationWarning`."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
        if budget < 0:
            raise ValueError(f"budget must be >= 0 percentage points, got {budget}")
        options = self.options if options is None else tuple(options)
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"options {sorted(unknown)} were not searched; this search has {self.options}")
        margin = budget / 100
        paths = self.paths(options, budget, confidence)
        tested: Dict[int, Dict[str, Any]] = {}

        def test(cand: _Candidate, level: float) -> bool:
            if id(cand) not in tested:
                b, c, n = self._counts(self._outcome(cand), self.test)
                tested[id(cand)] = dict(cand=cand, b=b, c=c, n=n, p=self._p_value(b, c, n, margin), levels=[])
            t = tested[id(cand)]
            t["levels"].append(level)
            return t["p"] <= level

        anchor = self.anchor()
        confirmed_list, anchor_level = run_chains(paths, anchor, test)
        confirmed = {id(c): c for c in confirmed_list}
        on_path = {id(c): c for p in paths for c in p["nodes"]}
        on_path[id(anchor)] = anchor
        if confirmed:
            chosen = min(confirmed.values(), key=lambda c: (self._final(c, final_fit)[1], c.name))
        else:
            chosen = anchor
        codec, size = self._final(chosen, final_fit)
        codec = Codec(codec._c, codec.report)  # its own `calibration`: one per select
        t = tested[id(chosen)]
        b, c, n = t["b"], t["c"], t["n"]
        m = len(on_path)
        adjusted = 1 - (1 - confidence) / m
        if self.metric == "accuracy":
            lo, hi = paired_drop_interval(b, c, n, level=adjusted)
            drop = (b - c) / n
        else:
            lo, hi = clopper_pearson(b, n, level=adjusted)
            drop = b / n
        # What more data would confirm: the smallest candidate tested, not confirmed, smaller than
        # the one returned, whose observed drop is below the budget, at its chain's level.
        path_level = {id(anchor): anchor_level}
        for p in paths:
            for cand in p["nodes"]:
                path_level[id(cand)] = max(path_level.get(id(cand), 0.0), p["level"])
        power = None
        for t2 in sorted(tested.values(), key=lambda t2: (t2["cand"].bytes, t2["cand"].name)):
            cand = t2["cand"]
            if id(cand) in confirmed:
                continue
            need = samples_to_confirm(t2["b"], t2["c"], t2["n"], margin, path_level[id(cand)],
                                      paired=self.metric == "accuracy")
            t2["samples"] = need
            if need is not None and power is None and not (confirmed and cand.bytes >= chosen.bytes):
                power = dict(setting=cand.name, option=cand.option, bytes=cand.bytes,
                             drop_pp=100 * ((t2["b"] - t2["c"]) if self.metric == "accuracy" else t2["b"]) / t2["n"],
                             discordance=(t2["b"] + t2["c"]) / t2["n"], level=path_level[id(cand)], samples=need)
        tried = []
        for cand in self.candidates:
            row = dict(setting=cand.name, option=cand.option, config=cand.config, level=cand.level,
                       config_score=self.config_sizes.get(cand.config), bytes=cand.bytes, proxy=cand.proxy,
                       kl=cand.kl if cand.kl < math.inf else None,
                       selection_changed=cand.sel_changed if cand.kl < math.inf else None,
                       on_path=id(cand) in on_path)
            if id(cand) in tested:
                t2 = tested[id(cand)]
                row.update(tested=True, b=t2["b"], c=t2["c"], n=t2["n"], p_value=t2["p"],
                           test_level=max(t2["levels"]), confirmed=id(cand) in confirmed,
                           samples_to_confirm=t2.get("samples"))
            tried.append(row)
        report = CalibrationReport(
            setting=chosen.name, option=chosen.option, fit=chosen.fit, metric=self.metric, budget_pp=budget,
            confidence=confidence, confirmed=bool(confirmed), bytes_per_sample=size, elements_per_sample=self.elements,
            codec_bytes=len(codec.to_bytes()), drop_pp=100 * drop, drop_interval_pp=(100 * lo, 100 * hi),
            b=b, c=c, n=n, p_value=t["p"], n_selection=len(self.sel), n_test=len(self.test),
            level=max(t["levels"]) if confirmed else 0.0, adjusted_for=m, power=power,
            sensitivity=self.sensitivity_note, tried=tried, seconds=self.seconds,
        )
        codec.calibration = report
        self.log("calibrate: " + str(report))
        if not confirmed:
            warnings.warn(f"calibrate: no candidate could be confirmed within {budget:g} pp at {confidence:.0%} "
                          f"confidence on {n} test samples; returning the most faithful ({chosen.name}) with no "
                          "guarantee (codec.calibration.confirmed is False)", CalibrationWarning, stacklevel=2)
        return codec


def calibrate(
    activations: Any,
    tail: Callable[..., Any],
    labels: Any = None,
    *,
    budget: float = 0.2,
    metric: Optional[str] = None,
    confidence: float = 0.9,
    options: Sequence[str] = OPTIONS,
    bits: Sequence[int] = (1, 2, 3, 4, 5, 6, 8),
    axis: Any = "auto",
    selection: float = 0.1,
    batch_size: int = 250,
    seed: int = 0,
    log: Optional[Callable[[str], None]] = None,
) -> Codec:
    """The smallest fitted codec whose accuracy drop the calibration samples confirm within
    ``budget`` percentage points at ``confidence``: when ``codec.calibration.confirmed`` is True,
    then with probability at least ``confidence`` (over the draw of the calibration samples)
    its drop on data like them is within the budget. When nothing can be confirmed, the most
    faithful candidate comes back with ``confirmed`` False and no guarantee, and a
    `CalibrationWarning` says so.

    ``activations``: calibration samples at the split point — an array or CPU torch tensor with
    samples along the first axis (used in place when it is float32 and contiguous: a training
    set's activations are not copied), or a list of per-sample arrays (an axis whose length
    varies becomes a variable axis of the codec). ``tail(batch)``: the rest of the model, from a
    batch of decompressed activations (same type as given: numpy, torch, or a list) to logits
    (numpy or torch); a tail with a second required parameter also gets the batch's sample
    indices (for side inputs such as a skip connection or a mask). Candidates are decoded and
    run through the tail ``batch_size`` samples at a time, so memory beyond the samples stays
    near a few batches. ``labels``: the true classes; without them ``metric="agreement"`` (the
    drop is the fraction of predictions that change).

    Calibration samples may be the model's training samples: a paired test's power grows with
    the samples (a training set often has ten times a held-out split's), but the guarantee is
    then about the training distribution, where the model has fitted the labels and a
    quantizer may change fewer predictions than on new data. Check it on held-out data (the
    report does: ``splitans report --calibration-split train+calibration`` counts how often the
    predicted interval brackets the drop on the test split).

    The search (see the module) covers bit widths ``bits``, clipping, per-tensor and per-channel
    (``axis``: the channel axis of a sample, "auto" to guess it, None for per tensor only)
    parameters and the quantizer ``options`` (asking for more never gives a larger codec). The
    result is a ``splitans.Codec`` whose ``calibration`` (`CalibrationReport`) holds the
    setting, the expected bytes per blob, the drop on the test part with its selection-adjusted
    interval, the test's p-value, ``confirmed``, ``power`` (how many paired samples would confirm
    the smallest candidate not confirmed), ``predict(n)`` for the interval of a drop measured on
    ``n`` new samples, and every candidate tried.

    >>> import numpy as np, splitans
    >>> rng = np.random.default_rng(0)
    >>> acts = np.maximum(rng.normal(size=(400, 4, 8, 8)), 0).astype(np.float32)
    >>> w = rng.normal(size=(256, 3))
    >>> tail = lambda a: np.asarray(a).reshape(len(a), -1) @ w
    >>> codec = splitans.calibrate(acts, tail, budget=2.0, options=(), bits=(2, 4, 8))
    >>> codec.calibration.confirmed, codec.calibration.ratio > 4
    (True, True)
    """
    search = Search(activations, tail, labels, metric=metric, axis=axis, bits=bits, options=options,
                    selection=selection, batch_size=batch_size, seed=seed, log=log)
    return search.select(budget, confidence)
