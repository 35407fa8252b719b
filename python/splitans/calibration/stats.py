"""The tests and intervals calibration rests on: Tango's score test and an exact unconditional
test for a paired drop in accuracy, an exact binomial test for a change in predictions, their
intervals, the interval of a drop measured on new samples, and how many samples would confirm a
candidate. Plain functions of counts, checked against scipy and brute force in the tests."""

from __future__ import annotations

import math
import statistics
from typing import Callable, Optional, Tuple

import numpy as np

#: ``n × budget`` (budget as a fraction) below which the exact test replaces the score test.
EXACT_BELOW = 100.0
#: Share of the exact test's level spent on bounding the discordance (Berger and Boos 1994).
EXACT_GAMMA = 1e-3
#: Power at which `samples_to_confirm` states the samples a candidate would need.
POWER = 0.8

_NORMAL = statistics.NormalDist()


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


def _diff_cdf(d: int, n: int, pb: float, pc: float) -> float:
    """``P(B - C <= d)`` for ``(B, C, n - B - C)`` multinomial with probabilities ``(pb, pc,
    1 - pb - pc)``: the sum of ``n`` independent steps of +1, -1 or 0, by the discrete Fourier
    transform of its characteristic function. The window is wide enough (40 standard deviations,
    or the whole support) that what wraps around is below double precision."""
    if d < -n:
        return 0.0
    if d >= n:
        return 1.0
    p0 = max(0.0, 1.0 - pb - pc)
    var = n * max(pb + pc - (pb - pc) ** 2, 0.0)
    full = 1 << int(math.ceil(math.log2(2 * n + 1)))
    size = min(full, 1 << int(math.ceil(math.log2(max(64.0, 2 * (40 * math.sqrt(var) + 64))))))
    z = np.exp(-2j * np.pi * np.arange(size) / size)
    pmf = np.clip(np.fft.ifft((pc + p0 * z + pb * z * z) ** n).real, 0.0, None)  # of S = D + n, mod size
    j = np.arange(size)
    s = j + size * np.ceil((n * (pb - pc) + n - size / 2 - j) / size)  # the window around the mean
    return float(min(1.0, pmf[s <= d + n].sum()))


def exact_drop_test(b: int, c: int, n: int, margin: float, gamma: float = EXACT_GAMMA) -> float:
    """Exact unconditional one-sided p-value for "the drop ``p_b - p_c`` is at least
    ``margin``": the largest probability, over the discordance rates ``q = p_b + p_c`` on the
    null's boundary up to their ``1 - gamma`` upper confidence bound, that ``B - C`` is at most
    the observed ``b - c``, plus ``gamma`` (Berger and Boos 1994). Valid at every ``n``: the
    rejection rate under the null never exceeds the level (the maximum is taken over a grid of 14
    rates, ends included, on which the tail probability varies smoothly)."""
    if n <= 0:
        return 1.0
    upper = clopper_pearson(b + c, n, 1 - 2 * gamma)[1]
    low = abs(margin)
    if upper < low:  # every discordance rate the null allows is excluded at 1 - gamma
        return gamma
    qs = np.unique(np.r_[low, np.geomspace(max(low, 1e-12), max(upper, 1e-12), 12), upper])
    tail = max(_diff_cdf(b - c, n, (q + margin) / 2, (q - margin) / 2) for q in qs if q >= low)
    return min(1.0, gamma + tail)


def paired_drop_test(b: int, c: int, n: int, margin: float, exact: Optional[bool] = None) -> float:
    """One-sided p-value for "the drop ``p_b - p_c`` is at least ``margin``" (a fraction), from
    ``b`` samples right only without compression and ``c`` right only with it, out of ``n``;
    small values say the drop is below the margin. Tango's score test when ``n * |margin|`` is at
    least `EXACT_BELOW`, the exact test (`exact_drop_test`) below; ``exact`` forces either."""
    if n <= 0:
        return 1.0
    if exact is None:
        exact = n * abs(margin) < EXACT_BELOW
    if exact:
        return exact_drop_test(b, c, n, margin)
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


def samples_to_confirm(b: int, c: int, n: int, margin: float, level: float, power: float = POWER,
                       paired: bool = True) -> Optional[int]:
    """Paired samples at which the test at ``level`` would confirm a drop below ``margin`` with
    probability ``power``, if the rates observed in ``b``, ``c`` of ``n`` were the true ones
    (normal approximation of the score test); None when the observed drop is not below the
    margin (no amount of data would confirm it). ``paired=False``: ``b`` changed predictions of
    ``n`` against the rate ``margin``."""
    if n <= 0 or not 0 < level < 1:
        return None
    za, zb = _NORMAL.inv_cdf(1 - level), _NORMAL.inv_cdf(power)
    if paired:
        d = (b - c) / n
        if d >= margin:
            return None
        w = (b + c) - margin * (2 * n - b + c)  # Tango's restricted variance at the margin, per sample
        pc = (w + math.sqrt(w * w + 8.0 * n * c * margin * (1.0 - margin))) / (4.0 * n) if margin >= 0 else c / n
        v0 = max(2.0 * pc + margin * (1.0 - margin), 1e-12)
        v1 = max((b + c) / n - d * d, 1e-12)
    else:
        d = b / n
        if d >= margin:
            return None
        v0, v1 = max(margin * (1 - margin), 1e-12), max(d * (1 - d), 1e-12)
    return int(math.ceil(((za * math.sqrt(v0) + zb * math.sqrt(v1)) / (margin - d)) ** 2))
