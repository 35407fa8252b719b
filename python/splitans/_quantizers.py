"""Fitting the quantizer of a fitted codec: clip ranges, dead zones, trained levels and
per-channel bits, from calibration values. None of this is part of the format: a decoder needs
only the parameters it is given (FORMAT.md 9.2).

Every function takes the calibration values of one channel (or of the whole tensor) as a 1-d
float array, or the values of every channel as the rows of a 2-d array.
"""

from __future__ import annotations

import warnings
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

__all__ = [
    "ACIQ_LAPLACE",
    "aciq_range",
    "affine",
    "allocate_bits",
    "channel_view",
    "clip_ranges",
    "codebook",
    "mse_range",
    "quantizer_spec",
    "uniform_codebook",
]

#: ACIQ's clipping value for Laplace(0, b) data, in units of b, per bit width (Banner, Nahshan
#: and Soudry, "Post training 4-bit quantization of convolutional networks", 2019, table 1);
#: 1 bit from the same optimization.
ACIQ_LAPLACE = {1: 1.86, 2: 2.83, 3: 3.89, 4: 5.03, 5: 6.2, 6: 7.41, 7: 8.64, 8: 9.89}

#: Values used to fit one channel (a strided subsample beyond this).
MAX_VALUES = 1 << 18


def _subsample(v: np.ndarray, limit: int = MAX_VALUES) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size > limit:
        v = v[:: -(-v.size // limit)]
    return v


def affine(lo: float, hi: float, bits: int) -> Tuple[float, int]:
    """Scale and zero point of the grid over ``[lo, hi]`` (widened to include 0) with ``bits``
    bits, by the library's rule (FORMAT.md 6.7.2); 0 bits: every value to the code 0, scale 0."""
    if bits == 0:
        return 0.0, 0
    return _core.gpu_affine_from_range(float(lo), float(hi), int(bits))


def _grid_error(v: np.ndarray, lo: float, hi: float, bits: int) -> float:
    scale, zp = affine(lo, hi, bits)
    if scale == 0:
        return float(np.mean(v.astype(np.float64) ** 2))
    q = np.clip(np.rint(v / np.float32(scale)) + zp, 0, (1 << bits) - 1)
    # A range near +-float32 max has errors whose squares overflow: inf, the worst error, is
    # the right answer for it, and no warning is the caller's business.
    with np.errstate(over="ignore"):
        return float(np.mean((v - (q - zp) * scale) ** 2))


def mse_range(values: np.ndarray, bits: int, signed: Optional[bool] = None) -> Tuple[float, float]:
    """The clip range whose uniform ``bits``-bit grid has the least mean squared error on the
    values: a search over quantiles of each tail (the low end stays at the minimum for data that
    is never negative)."""
    v = _subsample(values)
    if v.size == 0:
        return 0.0, 0.0
    if signed is None:
        signed = bool(v.min() < 0)
    tails = np.array([0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.2])
    his = np.quantile(v, 1 - tails)
    los = np.quantile(v, tails) if signed else np.array([min(0.0, float(v.min()))])
    fit = v[:: max(1, v.size // 50_000)]
    best = (np.inf, float(los[0]), float(his[0]))
    for lo in los:
        for hi in his:
            if hi < lo:
                continue
            e = _grid_error(fit, float(lo), float(hi), bits)
            if e < best[0]:
                best = (e, float(lo), float(hi))
    return best[1], best[2]


def aciq_range(values: np.ndarray, bits: int, signed: Optional[bool] = None) -> Tuple[float, float]:
    """ACIQ-style clip range: the values' Laplace scale ``b`` (mean absolute deviation from the
    median) times ACIQ's optimal multiple for ``bits``, around the median, within the values'
    range. Data that is never negative (a ReLU's output) is clipped at the top only, with ``b``
    the mean of its positive values (the scale of its exponential tail)."""
    v = _subsample(values)
    if v.size == 0:
        return 0.0, 0.0
    if signed is None:
        signed = bool(v.min() < 0)
    alpha = ACIQ_LAPLACE[min(max(int(bits), 1), 8)]
    if not signed:
        pos = v[v > 0]
        b = float(pos.mean()) if pos.size else 0.0
        return min(0.0, float(v.min())), min(float(v.max()), alpha * b)
    mid = float(np.median(v))
    b = float(np.mean(np.abs(v - mid)))
    return max(float(v.min()), mid - alpha * b), min(float(v.max()), mid + alpha * b)


def _to_f32_book(levels: np.ndarray, thresholds: np.ndarray) -> Tuple[List[float], List[float]]:
    """Levels strictly increasing and thresholds between their neighbours, in float32 (what the
    format stores)."""
    lv = np.asarray(levels, np.float32)
    keep = np.concatenate([[True], np.diff(lv) > 0])
    if not keep.all():
        # Merged levels: drop the duplicates and the thresholds before them.
        idx = np.flatnonzero(keep)
        th = np.asarray(thresholds, np.float64)
        thresholds = th[idx[1:] - 1]
        lv = lv[idx]
    th = np.clip(np.asarray(thresholds, np.float32), lv[:-1], lv[1:])
    return lv.tolist(), th.tolist()


def uniform_codebook(lo: float, hi: float, bits: int) -> Tuple[List[float], List[float]]:
    """The affine grid of ``bits`` bits over ``[lo, hi]`` as a codebook: levels on the grid,
    thresholds half-way (what kind 1 does, up to rounding ties)."""
    scale, zp = affine(lo, hi, bits)
    if scale == 0:
        return [0.0], []
    levels = (np.arange((1 << bits)) - zp).astype(np.float32) * np.float32(scale)
    # Midpoints in float64: the same float32 thresholds where the float32 sum is finite, and no
    # overflow for levels near +-float32 max.
    wide = levels.astype(np.float64)
    return _to_f32_book(levels, (wide[:-1] + wide[1:]) / 2)


def codebook(
    values: np.ndarray,
    bits: int,
    lo: float,
    hi: float,
    method: str = "lloyd",
    rate_weight: float = 0.1,
    iterations: int = 25,
) -> Tuple[List[float], List[float]]:
    """Trained levels and thresholds for the values, from the uniform grid over ``[lo, hi]``.

    ``"lloyd"``: Lloyd–Max (each level the mean of its cell, each threshold half-way between
    levels) minimizes the squared error for ``2^bits`` levels. ``"ecsq"``: entropy-constrained
    (Chou, Lookabaugh and Gray, 1989): a value goes to the level of least
    ``(x - level)^2 + lambda * code length``, with ``lambda = rate_weight * step^2``; more
    probable cells grow (a dead zone appears around a frequent zero), rare ones shrink or
    vanish. In both, the level of the cell that holds 0 stays exactly 0, so exact zeros (a ReLU's
    output) stay exact."""
    if method not in ("lloyd", "ecsq"):
        raise ValueError(f"levels must be 'uniform', 'lloyd' or 'ecsq', got {method!r}")
    v = _subsample(values).astype(np.float64)
    levels, thresholds = (np.asarray(a, np.float64) for a in uniform_codebook(lo, hi, bits))
    if v.size == 0 or levels.size == 1:
        return _to_f32_book(levels, thresholds)
    step = float(np.median(np.diff(levels)))
    lam = rate_weight * step * step
    for _ in range(iterations):
        q = np.searchsorted(thresholds, v, side="right")
        n = np.bincount(q, minlength=levels.size).astype(np.float64)
        s = np.bincount(q, weights=v, minlength=levels.size)
        new = levels.copy()
        filled = n > 0
        new[filled] = s[filled] / n[filled]
        z = int(np.searchsorted(thresholds, 0.0, side="right"))
        new[z] = 0.0 if levels[0] <= 0.0 <= levels[-1] else new[z]
        # Keep the order (an empty cell keeps its level; a centroid never crosses a neighbour).
        new = np.maximum.accumulate(new)
        levels = new
        mids = (levels[:-1] + levels[1:]) / 2
        if method == "ecsq":
            p = (n + 0.5) / (n.sum() + 0.5 * n.size)
            bits_k = -np.log2(p)
            gap = np.maximum(np.diff(levels), 1e-12)
            mids = mids + lam * (bits_k[1:] - bits_k[:-1]) / (2 * gap)
        thresholds = np.clip(mids, levels[:-1], levels[1:])
    return _to_f32_book(levels, thresholds)


def allocate_bits(weights: np.ndarray, mean_bits: float, max_bits: int, min_bits: int = 0) -> np.ndarray:
    """Per-channel bits by the classic rule ``b_c = mean + log2(w_c / geometric mean) / 2``
    (Huang and Schultheiss): a channel whose error costs ``w_c`` times more (sensitivity times
    variance) gets half a bit more per doubling. Rounded, clipped to ``[min_bits, max_bits]``,
    then shifted so the mean stays as close to ``mean_bits`` as the clipping allows."""
    w = np.maximum(np.asarray(weights, np.float64), 1e-30)
    lw = 0.5 * np.log2(w)
    base = lw - lw.mean()
    shift = 0.0
    for _ in range(30):
        b = np.clip(np.rint(mean_bits + shift + base), min_bits, max_bits)
        err = mean_bits - b.mean()
        if abs(err) < 0.5 / len(b):
            break
        shift += err
    return b.astype(np.int64)


def channel_view(a: np.ndarray, axis: Optional[int]) -> np.ndarray:
    """The values of one array as rows, one per channel along ``axis`` (one row without)."""
    if axis is None:
        return a.reshape(1, -1)
    return np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)


def clip_ranges(items: Sequence[np.ndarray], axis: Optional[int], how: Any, bits: Union[int, Sequence[int]] = 8,
                nonfinite: str = "error") -> List[Tuple[float, float]]:
    """One ``(low, high)`` per channel along ``axis`` (one without) from the calibration values
    of ``items``: the one rule behind ``Codec.fit(clip=...)``, calibrate's candidates and
    ``compress(clip=Percentile(...))`` (there ``items`` is the tensor alone), so that the same
    values and the same option give the same range everywhere.

    ``how``: "minmax" (the finite values' extremes); "mse" or "aciq" (`mse_range`,
    `aciq_range` at ``bits``, one width or one per channel, on each channel's subsampled
    values; the low end is searched only when some value of some channel is negative, one rule
    for all channels); or a ``(low, high)`` pair of percentiles (``splitans.Percentile``) of every
    value, non-finite ones left out only with ``nonfinite="clamp"``. An empty channel gets
    ``(0, 0)``, as an empty tensor gets one such range."""
    if isinstance(how, tuple):
        lo, hi = float(how[0]), float(how[1])
        if not 0 <= lo <= hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low <= high <= 100, got {how}")
        if all(np.size(a) == 0 for a in items):
            return [(0.0, 0.0)]
        views = [channel_view(np.asarray(a), axis) for a in items]
        rows = views[0] if len(views) == 1 else np.concatenate(views, axis=1)
        fn = np.nanpercentile if nonfinite == "clamp" else np.percentile
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels, handled below
            ends = fn(np.where(np.isfinite(rows), rows, np.nan) if nonfinite == "clamp" else rows, [lo, hi], axis=1)
        # A channel with no finite value has no percentiles: give it the range (0, 0), as
        # min/max would.
        ends = np.where(np.isnan(ends), 0.0, ends)
        return [(float(l), float(h)) for l, h in zip(ends[0], ends[1])]
    if how in ("mse", "aciq"):
        rows = channel_rows(items, axis)
        bits_of = [bits] * len(rows) if isinstance(bits, (int, np.integer)) else bits
        signed = any(float(r.min()) < 0 for r in rows if r.size)
        fn = mse_range if how == "mse" else aciq_range
        return [fn(r, max(1, int(b)), signed) for r, b in zip(rows, bits_of)]
    if how == "minmax":
        rows = channel_rows(items, axis, limit=1 << 62)
        return [(float(r.min()), float(r.max())) if r.size else (0.0, 0.0) for r in rows]
    raise ValueError(f"a clip range is found by 'minmax', 'mse', 'aciq' or percentiles, got {how!r}")


def channel_rows(items: Sequence[np.ndarray], axis: Optional[int], limit: int = MAX_VALUES) -> List[np.ndarray]:
    """The values of each channel over every sample (one array per channel), subsampled."""
    if axis is None:
        return [_subsample(np.concatenate([np.asarray(a, np.float32).reshape(-1) for a in items]), limit)]
    C = items[0].shape[axis]
    parts = [np.moveaxis(np.asarray(a, np.float32), axis, 0).reshape(C, -1) for a in items]
    rows = np.concatenate(parts, axis=1)
    return [_subsample(r, limit) for r in rows]


def quantizer_spec(
    ranges: Sequence[Tuple[float, float]],
    bits_of: Sequence[int],
    *,
    rows: Optional[Sequence[np.ndarray]] = None,
    dead_zone: Optional[float] = None,
    levels: str = "uniform",
    rate_weight: float = 0.1,
) -> dict:
    """A fixed quantizer from one clip range and bit width per channel: the affine grid (kind
    "fixed"), with a dead zone of ``dead_zone`` steps ("dead-zone"), or levels trained on the
    channel values ``rows`` ("levels")."""
    if levels != "uniform":
        if rows is None:
            raise ValueError("trained levels need the calibration values")
        books = []
        for (lo, hi), b, r in zip(ranges, bits_of, rows):
            books.append(([0.0], []) if b == 0 else codebook(r, b, lo, hi, levels, rate_weight))
        return dict(kind="levels", codebooks=books, codebook_index=list(range(len(books))))
    params = [affine(lo, hi, b) for (lo, hi), b in zip(ranges, bits_of)]
    if dead_zone is None:
        return dict(kind="fixed", params=params)
    return dict(kind="dead-zone", params=params,
                dead_zone=[float(np.float32(dead_zone) * np.float32(s)) for s, _ in params])
