"""Calibrating a fitted codec for an accuracy budget: the smallest codec whose accuracy drop is
within the budget with a stated confidence.

    codec = splitans.calibrate(activations, tail, labels, budget=0.2)
    print(codec.calibration)            # predicted drop, its interval, expected size

How (a *learn then test* procedure; Angelopoulos, Bates, Candès, Jordan and Lei, 2021):

1. The calibration samples are split at random into a *selection* part (a tenth by default, at
   least 200 samples or a quarter) and a *test* part. Everything that is chosen is chosen on
   the selection part: the quantizer parameters (clip ranges, trained levels, per-channel
   bits from the gradients' Fisher information), and which candidates to test in which order.
2. Candidates (bit widths × clipping × per tensor or per channel × the quantizer options) are
   sized with a context model fitted to selection samples and measured on test samples (sizes
   need no labels), and ranked by the divergence (KL) of the model's outputs on the selection
   part. Grouped by *configuration* (everything but the bit width), each configuration is a
   chain from its most bits to its fewest, monotone in practice; the three configurations
   predicted smallest where the test would just confirm the budget are kept, each after the
   most faithful candidate of all.
3. Along each chain, each candidate is tested on the test part: the null hypothesis "its drop
   is at least the budget" is rejected when its p-value is at most ``(1 - confidence) / 3``;
   the chain stops at its first candidate not rejected. The smallest candidate rejected in any
   chain is returned. A fixed sequence within each chain and Bonferroni over the three keep the
   familywise error at ``1 - confidence``: with probability at least ``confidence``, the
   returned codec's drop (on samples from the calibration distribution) is within the budget.

The test is paired — the same samples with and without compression. For ``metric="accuracy"``
the counts are ``b`` (right before, wrong after) and ``c`` (wrong before, right after), the
drop is ``(b - c) / n``, and the p-value is that of Tango's score test for a difference of
paired proportions (Tango 1998; at a margin of 0 it is McNemar's). For ``metric="agreement"``
the drop is the fraction of predictions that change, with an exact binomial test.

Nothing here is needed to decode: the result is an ordinary ``splitans.Codec``.
"""

from __future__ import annotations

import inspect as _inspect
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _feature, _quantizers
from ._fitted import Codec

__all__ = [
    "CalibrationReport",
    "OPTIONS",
    "Search",
    "binomial_test",
    "calibrate",
    "clopper_pearson",
    "paired_drop_interval",
    "paired_drop_test",
    "prediction_interval",
]

#: Quantizer options the search may use, each measured on its own by the report: ``clip`` (MSE-
#: optimal and ACIQ clip ranges), ``dead_zone``, ``levels`` (Lloyd–Max and entropy-constrained),
#: ``allocation`` (per-channel bits by sensitivity) and ``per_token`` (per-sample parameters
#: along the first axis of 2-d samples, e.g. tokens). The uniform grid with percentile clipping,
#: per tensor or per channel, is always searched.
OPTIONS = ("clip", "dead_zone", "levels", "allocation", "per_token")

_NORMAL = statistics.NormalDist()


# ------------------------------------------------------------------------------ statistics


def _tango_z(b: int, c: int, n: int, d0: float) -> float:
    """Tango's score statistic for H: p_b - p_c = d0 (restricted maximum likelihood variance)."""
    if d0 < 0:
        return -_tango_z(c, b, n, -d0)
    if n == 0:
        return 0.0
    w = (b + c) - d0 * (2 * n - b + c)
    pc = (w + math.sqrt(w * w + 8.0 * n * c * d0 * (1.0 - d0))) / (4.0 * n)
    var = (2.0 * pc + d0 * (1.0 - d0)) / n
    diff = (b - c) / n - d0
    if var <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def paired_drop_test(b: int, c: int, n: int, margin: float) -> float:
    """One-sided p-value for "the drop ``p_b - p_c`` is at least ``margin``" (a fraction), from
    ``b`` samples right only without compression and ``c`` right only with it, out of ``n``:
    Tango's score test; small values say the drop is below the margin."""
    if n <= 0:
        return 1.0
    return _NORMAL.cdf(_tango_z(b, c, n, margin))


def paired_drop_interval(b: int, c: int, n: int, level: float = 0.9) -> Tuple[float, float]:
    """Two-sided ``level`` confidence interval of the drop ``p_b - p_c`` (fractions): the
    margins that Tango's score test does not reject."""
    if n <= 0:
        return (-1.0, 1.0)
    z = _NORMAL.inv_cdf(0.5 + level / 2)

    def solve(target: float) -> float:
        lo, hi = -1.0 + 1e-12, 1.0 - 1e-12
        for _ in range(100):  # Z decreases in d0
            mid = (lo + hi) / 2
            if _tango_z(b, c, n, mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    return solve(z), solve(-z)


def _binom_cdf(k: int, n: int, p: float) -> float:
    if k < 0:
        return 0.0
    if k >= n or p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq for i in range(k + 1)]
    m = max(logs)
    return min(1.0, math.exp(m) * sum(math.exp(v - m) for v in logs))


def binomial_test(k: int, n: int, rate: float) -> float:
    """One-sided exact p-value for "the rate is at least ``rate``" after ``k`` events in ``n``."""
    return _binom_cdf(k, n, rate) if n > 0 else 1.0


def clopper_pearson(k: int, n: int, level: float = 0.9) -> Tuple[float, float]:
    """Two-sided exact ``level`` interval of a binomial rate."""
    if n <= 0:
        return (0.0, 1.0)
    a = (1 - level) / 2

    def solve(f: Callable[[float], float]) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if f(mid):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(lambda p: 1 - _binom_cdf(k - 1, n, p) < a)
    upper = 1.0 if k == n else solve(lambda p: _binom_cdf(k, n, p) > a)
    return lower, upper


def prediction_interval(b: int, c: int, n: int, n_new: int, level: float = 0.95,
                        paired: bool = True) -> Tuple[float, float]:
    """Where the drop measured on ``n_new`` new samples should fall (fractions), from counts on
    ``n`` calibration samples: the estimate plus the spread of both samples,
    ``z * sqrt(var * (1/n + 1/n_new))`` (counts smoothed by a half, so zero counts keep some
    width). ``paired=False``: ``b`` counts changed predictions and ``c`` is unused."""
    if n <= 0 or n_new <= 0:
        return (-1.0, 1.0)
    z = _NORMAL.inv_cdf(0.5 + level / 2)
    if paired:
        pb, pc = (b + 0.5) / (n + 1), (c + 0.5) / (n + 1)
        d = (b - c) / n
        var = pb + pc - (pb - pc) ** 2
    else:
        p = (b + 0.5) / (n + 1)
        d = b / n
        var = p * (1 - p)
    half = z * math.sqrt(var * (1 / n + 1 / n_new))
    lo = d - half
    return (max(lo, 0.0) if not paired else lo, d + half)


# ------------------------------------------------------------------------------ the report


@dataclass
class CalibrationReport:
    """What ``calibrate`` chose and what it predicts for it (drops in percentage points)."""

    setting: str
    option: str
    fit: Dict[str, Any]
    metric: str
    budget_pp: float
    confidence: float
    met: bool
    #: Mean bytes of a blob (every per-blob byte), measured on held-out calibration samples.
    bytes_per_sample: float
    elements_per_sample: float
    codec_bytes: int
    #: Drop on every calibration sample (selection and test parts), and its two-sided interval
    #: at ``confidence`` (for the drop on the calibration distribution).
    drop_pp: float
    drop_interval_pp: Tuple[float, float]
    #: The test part's counts: for accuracy, ``b`` right only without compression and ``c``
    #: right only with it; for agreement, ``b`` changed predictions.
    b: int
    c: int
    n: int
    p_value: float
    n_selection: int
    n_test: int
    sensitivity: Optional[str] = None
    tried: List[Dict[str, Any]] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    _pooled: Tuple[int, int, int] = (0, 0, 0)

    @property
    def bits_per_element(self) -> float:
        return 8 * self.bytes_per_sample / max(self.elements_per_sample, 1e-9)

    @property
    def ratio(self) -> float:
        """Compression ratio against float32."""
        return 4 * self.elements_per_sample / max(self.bytes_per_sample, 1e-9)

    def predict(self, n_new: int, level: float = 0.95) -> Tuple[float, float]:
        """Interval (pp) in which the drop measured on ``n_new`` new samples should fall, from
        every calibration sample (`prediction_interval`)."""
        b, c, n = self._pooled
        lo, hi = prediction_interval(b, c, n, n_new, level, paired=self.metric == "accuracy")
        return 100 * lo, 100 * hi

    def __str__(self) -> str:
        lo, hi = self.drop_interval_pp
        verdict = "meets" if self.met else "does NOT meet"
        return (f"{self.setting}: {self.bytes_per_sample:,.1f} bytes/sample ({self.bits_per_element:.3f} b/el, "
                f"{self.ratio:.1f}x vs float32); {self.metric} drop {self.drop_pp:+.3f} pp "
                f"[{lo:+.3f}, {hi:+.3f}] at {self.confidence:.0%}; {verdict} the {self.budget_pp} pp budget "
                f"with {self.confidence:.0%} confidence (p = {self.p_value:.3g} on {self.n_test} test samples)")


# ------------------------------------------------------------------------------ candidates


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _logits(out: Any) -> np.ndarray:
    if _is_torch(out):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, np.float64)


def _kl(ref: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Per-sample KL(softmax(ref) || softmax(new))."""
    a = ref - ref.max(1, keepdims=True)
    b = new - new.max(1, keepdims=True)
    la = a - np.log(np.exp(a).sum(1, keepdims=True))
    lb = b - np.log(np.exp(b).sum(1, keepdims=True))
    return (np.exp(la) * (la - lb)).sum(1)


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
    codec: Optional[Codec] = None
    outcome: Optional[Tuple[np.ndarray, np.ndarray]] = None  # test-part predictions


def _auto_axis(shape: Sequence[Optional[int]]) -> Optional[int]:
    """The channel axis of a sample: the only axis of a vector, the last of a 2-d sample
    (tokens x features), the first of a 3-d map unless its first two axes are equal and the last
    differs (H x W x C)."""
    d = len(shape)
    if d == 0:
        return None
    if d == 1:
        return 0
    if d == 2:
        return 1
    if d == 3 and shape[0] == shape[1] and shape[1] != shape[2]:
        return 2
    return 0


class Search:
    """The state of one calibration: candidates sized and ranked on the selection part, and
    test outcomes cached, so that `select` can be asked again with other options (the report's
    per-option columns) without running the model twice on the same candidate."""

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
        # Context models for sizing: fitted to selection samples, measured on test samples (fewer
        # of large samples: the model fit reads at most a few million elements anyway).
        size_samples = int(min(size_samples, max(4, (2 << 20) // max(1, int(self.elements)))))
        self.size_fit = self._list(self.sel[:size_samples])
        self.size_eval = self._list(self.test[:size_samples])
        self.fit_items = self._list(self.sel[:fit_samples])
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

    # -------------------------------------------------------------- candidates

    def _channel_rows(self, axis: Optional[int]) -> List[np.ndarray]:
        if axis not in self._rows:
            items = self._take(self.sel)
            items = list(items) if self.fixed else items
            self._rows[axis] = _quantizers.channel_rows(items, axis, limit=1 << 20)
        return self._rows[axis]

    def _clip(self, axis: Optional[int], how: Any, bits: int) -> List[Tuple[float, float]]:
        key = (axis, how if not isinstance(how, str) or how not in ("mse", "aciq") else (how, bits))
        if key not in self._ranges:
            rows = self._channel_rows(axis)
            if how == "minmax":
                r = [(float(v.min()), float(v.max())) if v.size else (0.0, 0.0) for v in rows]
            elif how in ("mse", "aciq"):
                fn = _quantizers.mse_range if how == "mse" else _quantizers.aciq_range
                r = [fn(v, bits, signed=not self.sparse) for v in rows]
            else:
                lo_p, hi_p = how
                r = [(float(np.percentile(v, lo_p)), float(np.percentile(v, hi_p))) if v.size else (0.0, 0.0)
                     for v in rows]
            self._ranges[key] = r
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

    def _make_codec(self, cand: _Candidate, items: List[np.ndarray]) -> Codec:
        return Codec._from_spec(items, self.dtype, cand.bits, cand.axis, cand.spec)

    def _evaluate_candidates(self):
        """Sizes and a cheap distortion (Fisher-weighted squared error) for every candidate;
        then the model's divergence for those near the best size-distortion trade-off (of all
        options together, or of each option with the base grid), which rank the path."""
        t = time.time()
        ref_rank = self._take(self.rank)
        w = self.fisher if self.fisher is not None else None
        for cand in self.candidates:
            codec = self._make_codec(cand, self.size_fit)
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
        groups = [None] + sorted({c.option for c in self.candidates if c.option != "base"})
        for g in groups:
            pool = [c for c in self.candidates if g is None or c.option in ("base", g)]
            pool.sort(key=lambda c: c.bytes)
            best = math.inf
            for c in pool:  # the lower envelope of distortion against size
                c._front = best
                best = min(best, c.proxy)
            for c in pool:
                if c.proxy <= 1.5 * c._front:
                    keep.add(id(c))
        ranked = [c for c in self.candidates if id(c) in keep]
        for k, cand in enumerate(ranked):
            logits = self._run(self._decoded(cand.codec, self.rank), self.rank)
            cand.kl = float(np.mean(_kl(self.ref[self.rank], logits)))
            cand.sel_changed = int((logits.argmax(1) != self.ref_pred[self.rank]).sum())
        for cand in self.candidates:
            if id(cand) not in keep:
                cand.kl = math.inf
        self.log(f"calibrate: {len(ranked)} candidates near the best trade-off ranked by the model "
                 f"[{time.time() - t:.0f} s]")

    # -------------------------------------------------------------- testing

    def _outcome(self, cand: _Candidate) -> Tuple[np.ndarray, np.ndarray]:
        """Predictions on the test part."""
        if cand.outcome is None:
            logits = self._run(self._decoded(cand.codec, self.test), self.test)
            cand.outcome = logits.argmax(1)
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

    def reference_kl(self, budget: float, confidence: float) -> float:
        """The divergence at which a candidate is expected to sit at the edge of what the test
        can confirm: from a fit of the changed predictions on the selection part against the
        divergence, over every candidate (``changed ~ a * kl^beta``), at the change rate ``r*``
        whose test just confirms the budget when the drop itself is 0 (accuracy:
        ``z * sqrt(r* / n) = budget``; agreement: ``r* = budget / 2``)."""
        pts = [(c.kl, c.sel_changed) for c in self.candidates if 0 < c.kl < math.inf]
        n = len(self.rank)
        if not pts:
            return math.inf
        kl = np.log(np.array([p[0] for p in pts]))
        r = np.log((np.array([p[1] for p in pts]) + 0.5) / (n + 1))
        w = np.array([p[1] for p in pts]) + 0.5
        A = np.stack([np.ones_like(kl), kl], 1) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(A, r * np.sqrt(w), rcond=None)
        if self.metric == "accuracy":
            z = _NORMAL.inv_cdf(confidence)
            target = len(self.test) * (budget / 100 / z) ** 2
        else:
            target = budget / 100 / 2
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

    def paths(self, options: Sequence[str], budget: float = 0.2, confidence: float = 0.9,
              chains: int = 3) -> List[List[_Candidate]]:
        """The candidates to test: the chains of the ``chains`` configurations that the
        selection part predicts smallest at the edge of the budget (`reference_kl`, at the
        Bonferroni level ``1 - (1 - confidence) / chains``), each from its most bits to its
        fewest, after the most faithful candidate of all. One configuration's chain is monotone
        in practice (fewer bits never help accuracy), which a fixed-sequence test needs; a path
        mixing configurations in order of divergence stops at the first one the divergence
        misjudges, and one chain alone at the first unlucky draw — hence a few chains."""
        level = 1 - (1 - confidence) / chains
        kl_ref = self.reference_kl(budget, level)
        by_config = self.configurations(options)
        if not by_config:
            raise ValueError("no candidate to test")
        self._last_scores = {k: self.size_at(v, kl_ref) for k, v in by_config.items()}
        self._kl_ref = kl_ref
        scored = sorted(by_config.values(), key=lambda ch: (self._last_scores[ch[0].config], ch[-1].bytes))
        safest = min((c for chain in by_config.values() for c in chain), key=lambda c: (c.kl, c.bytes))
        return [([safest] if safest is not chain[0] else []) + chain for chain in scored[:chains]]

    def select(self, budget: float = 0.2, confidence: float = 0.9, options: Optional[Sequence[str]] = None,
               chains: int = 3, final_fit: bool = True) -> Codec:
        """The smallest codec that the test part confirms within ``budget`` percentage points
        at ``confidence``, among the `paths` of ``options`` (default: all of the search's):
        each chain is tested in order at level ``(1 - confidence) / chains`` and stops at its
        first candidate not confirmed; the smallest confirmed candidate of any chain wins
        (Bonferroni over the chains, a fixed sequence within each)."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
        if budget < 0:
            raise ValueError(f"budget must be >= 0 percentage points, got {budget}")
        options = self.options if options is None else tuple(options)
        margin = budget / 100
        paths = self.paths(options, budget, confidence, chains)
        alpha = (1 - confidence) / len(paths)
        chosen, chosen_p, tested = None, 1.0, {}
        for path in paths:
            for cand in path:
                if id(cand) not in tested:
                    b, c, n = self._counts(self._outcome(cand), self.test)
                    tested[id(cand)] = (cand, b, c, n, self._p_value(b, c, n, margin))
                p = tested[id(cand)][4]
                if p > alpha:
                    break
                if chosen is None or cand.bytes < chosen.bytes:
                    chosen, chosen_p = cand, p
        path = [c for p in paths for c in p]
        tested = list(tested.values())
        met = chosen is not None
        if chosen is None:
            chosen = paths[0][0]
            chosen_p = tested[0][4]
        b, c, n = next((t[1], t[2], t[3]) for t in tested if t[0] is chosen)
        # The whole calibration set (selection and test parts) for the estimate.
        sel_pred = self._run(self._decoded(chosen.codec, self.sel), self.sel).argmax(1)
        pb, pc, pn = self._counts(sel_pred, self.sel)
        pooled = (b + pb, c + pc, n + pn)
        if self.metric == "accuracy":
            lo, hi = paired_drop_interval(*pooled, level=confidence)
            drop = (pooled[0] - pooled[1]) / pooled[2]
        else:
            lo, hi = clopper_pearson(pooled[0], pooled[2], level=confidence)
            drop = pooled[0] / pooled[2]
        codec = self._make_codec(chosen, self.fit_items) if final_fit else chosen.codec
        size_items = self._list(self.test[: max(len(self.size_eval), 256)])
        size = float(np.mean([len(codec.compress(x)) for x in size_items]))
        tried = []
        tested_ids = {id(t[0]): t for t in tested}
        on_path = {id(c) for c in path}
        for cand in self.candidates:
            row = dict(setting=cand.name, option=cand.option, config=cand.config, level=cand.level,
                       config_score=self._last_scores.get(cand.config), bytes=cand.bytes, proxy=cand.proxy,
                       kl=cand.kl if cand.kl < math.inf else None,
                       selection_changed=cand.sel_changed if cand.kl < math.inf else None,
                       on_path=id(cand) in on_path)
            if id(cand) in tested_ids:
                _, tb, tc, tn, tp = tested_ids[id(cand)]
                row.update(tested=True, b=tb, c=tc, n=tn, p_value=tp, confirmed=tp <= alpha)
            tried.append(row)
        report = CalibrationReport(
            setting=chosen.name, option=chosen.option, fit=chosen.fit, metric=self.metric, budget_pp=budget,
            confidence=confidence, met=met, bytes_per_sample=size, elements_per_sample=self.elements,
            codec_bytes=len(codec.to_bytes()), drop_pp=100 * drop, drop_interval_pp=(100 * lo, 100 * hi),
            b=b, c=c, n=n, p_value=chosen_p, n_selection=len(self.sel), n_test=len(self.test),
            sensitivity=self.sensitivity_note, tried=tried, seconds=self.seconds, _pooled=pooled,
        )
        codec.calibration = report
        self.log("calibrate: " + str(report))
        return codec


def _samples(activations: Any):
    """(float32 samples: an array with samples along axis 0, or a list of arrays when their
    shapes differ; the float dtype's name)."""
    if isinstance(activations, np.ndarray) or _is_torch(activations):
        arr, name = _feature.to_float32(activations)
        if arr.ndim == 0:
            raise ValueError("activations must hold samples along the first axis")
        return np.ascontiguousarray(arr), name
    items, names = [], set()
    for a in activations:
        x, n = _feature.to_float32(a)
        items.append(np.ascontiguousarray(x))
        names.add(n)
    if not items:
        raise ValueError("calibrate needs calibration samples")
    if len(names) > 1:
        raise TypeError(f"calibration samples of several dtypes: {sorted(names)}")
    if all(x.shape == items[0].shape for x in items):
        return np.stack(items), names.pop()
    return items, names.pop()


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
    """The smallest fitted codec whose accuracy drop stays within ``budget`` percentage points
    with probability ``confidence``.

    ``activations``: calibration samples at the split point — an array or CPU torch tensor with
    samples along the first axis, or a list of per-sample arrays (an axis whose length varies
    becomes a variable axis of the codec). ``tail(batch)``: the rest of the model, from a batch
    of decompressed activations (same type as given: numpy, torch, or a list) to logits (numpy
    or torch); a tail with a second required parameter also gets the batch's sample indices
    (for side inputs such as a skip connection or a mask). ``labels``: the true classes; without them
    ``metric="agreement"`` (the drop is the fraction of predictions that change).

    The search (see the module) covers bit widths ``bits``, clipping, per-tensor and per-channel
    (``axis``: the channel axis of a sample, "auto" to guess it, None for per tensor only)
    parameters and the quantizer ``options``. The result is a ``splitans.Codec`` whose
    ``calibration`` (`CalibrationReport`) holds the setting, the expected bytes per blob, the
    drop on the calibration samples with its interval, the test's p-value, ``met`` (False when
    not even the most faithful candidate can be confirmed within the budget: the most faithful
    is returned then), ``predict(n)`` for the interval of a drop measured on ``n`` new samples,
    and every candidate tried.

    >>> import numpy as np, splitans
    >>> rng = np.random.default_rng(0)
    >>> acts = np.maximum(rng.normal(size=(400, 4, 8, 8)), 0).astype(np.float32)
    >>> w = rng.normal(size=(256, 3))
    >>> tail = lambda a: np.asarray(a).reshape(len(a), -1) @ w
    >>> codec = splitans.calibrate(acts, tail, budget=2.0, options=(), bits=(2, 4, 8))
    >>> codec.calibration.met, codec.calibration.ratio > 4
    (True, True)
    """
    search = Search(activations, tail, labels, metric=metric, axis=axis, bits=bits, options=options,
                    selection=selection, batch_size=batch_size, seed=seed, log=log)
    return search.select(budget, confidence)
