"""How fitted codecs choose their quantizers (issue 27): the MSE clip search against the trivial
range, codebooks whose float32 levels merge, the subsample that bounds a channel's values, and
explicit clip ranges given once or per channel along any axis."""

import numpy as np
import pytest

import splitans
from splitans import _quantizers


def _grid_error(v, lo, hi, bits):
    """Mean squared error of the affine grid over [lo, hi] (FORMAT.md 6.7.2), computed here."""
    v = np.asarray(v, np.float64)
    scale, zp = _quantizers.affine(lo, hi, bits)
    if scale == 0:
        return float(np.mean(v**2))
    q = np.clip(np.rint(v / scale) + zp, 0, (1 << bits) - 1)
    return float(np.mean((v - (q - zp) * scale) ** 2))


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_mse_range_is_never_worse_than_a_grid_of_zeros(bits, signed):
    """Sparse channels (99.5 % zeros, small values otherwise): the searched range beats
    sending everything to zero, and is the best of the candidate ranges it lists."""
    rng = np.random.default_rng(bits)
    v = np.zeros(20_000, np.float32)
    idx = rng.choice(v.size, 100, replace=False)
    v[idx] = rng.uniform(0.01, 0.2, 100).astype(np.float32) * (rng.choice([-1, 1], 100) if signed else 1)
    lo, hi = _quantizers.mse_range(v, bits, signed=signed)
    assert hi > 0 and (lo <= 0 if signed else lo == 0)
    assert _grid_error(v, lo, hi, bits) < float(np.mean(v.astype(np.float64) ** 2))
    assert _grid_error(v, lo, hi, bits) <= _grid_error(v, float(v.min()), float(v.max()), bits) * (1 + 1e-9)


def test_merged_float32_levels_keep_the_thresholds_between_the_kept_ones():
    levels, thresholds = _quantizers._to_f32_book(np.array([0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0]),
                                                  np.array([0.5, 1.0, 1.0, 1.5, 2.0, 2.5]))
    assert levels == [0.0, 1.0, 2.0, 3.0]
    assert thresholds == [0.5, 1.5, 2.5]
    # Levels that differ in float64 but not in float32 merge too.
    levels, thresholds = _quantizers._to_f32_book(np.array([0.0, 1.0, 1.0 + 1e-12, 4.0]), np.array([0.25, 1.0, 3.0]))
    assert levels == [0.0, 1.0, 4.0] and thresholds == [0.25, 3.0]


@pytest.mark.parametrize("n", [999, 1000, 1001, 1999, 2000, 2001, 2500, 3000, 10_001])
def test_channel_values_are_subsampled_to_the_limit(n):
    x = np.arange(n, dtype=np.float32).reshape(1, n)
    (row,) = _quantizers.channel_rows([x], None, limit=1000)
    step = -(-n // 1000)
    assert len(row) <= 1000 and len(row) == len(range(0, n, step))
    assert np.array_equal(row, np.arange(0, n, step, dtype=np.float32))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_explicit_per_channel_ranges_along_any_axis(axis):
    rng = np.random.default_rng(1)
    cal = rng.normal(size=(4, 5, 6)).astype(np.float32)
    C = cal.shape[1:][axis]
    pairs = [(-float(c + 1), float(2 * c + 1)) for c in range(C)]
    for kw in ({}, {"dead_zone": 0.5}):
        codec = splitans.Codec.fit(cal, bits=4, axis=axis, clip=pairs, **kw)
        d = codec.describe()
        for c, (lo, hi) in enumerate(pairs):
            s, z = _quantizers.affine(lo, hi, 4)
            assert d["scale"][c] == pytest.approx(s, rel=1e-6) and d["zero_point"][c] == z
    # One pair for every channel, with a quantizer option too.
    for kw in ({}, {"dead_zone": 0.5}):
        codec = splitans.Codec.fit(cal, bits=4, axis=axis, clip=(-1.0, 3.0), **kw)
        s, z = _quantizers.affine(-1.0, 3.0, 4)
        d = codec.describe()
        assert len(d["scale"]) == C and all(v == pytest.approx(s) for v in d["scale"]) and d["zero_point"] == [z] * C
    with pytest.raises(ValueError, match="ranges"):
        splitans.Codec.fit(cal, bits=4, axis=axis, clip=pairs[:-1] if C > 1 else pairs * 2, dead_zone=0.5)


# ------------------------------------------------------------------------------ one range rule

#: calibrate's clip labels, as the clip= that Codec.fit takes for the same range.
_FIT_CLIP = {"min/max": "calibration", "mse": "mse", "aciq": "aciq", "p0.01-p99.99": splitans.Percentile(0.01, 99.99),
             "p0.1-p99.9": splitans.Percentile(0.1, 99.9), "p99.99": splitans.Percentile(0, 99.99),
             "p99.9": splitans.Percentile(0, 99.9)}


@pytest.mark.parametrize("data", ["relu_few_zeros", "relu_sparse", "signed"])
def test_fit_and_calibrate_pick_the_same_range_on_the_same_samples(data):
    """Every uniform-grid candidate of calibrate (min/max, percentiles, MSE, ACIQ; per tensor and
    per channel) quantizes exactly as Codec.fit does with that clip on calibrate's selection
    samples. Non-negative data with few zeros once got a searched low end from calibrate (its
    "sparse" test) and none from Codec.fit; and more than 2^20 values a channel, calibrate's
    subsample, moved min/max and the percentiles."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.3, 1.0, size=(2800, 2, 24, 24)).astype(np.float32)
    if data == "relu_few_zeros":
        x = np.abs(x) + np.float32(0.01) * (rng.random(x.shape) < 0.95)  # never negative, 5 % zeros
    elif data == "relu_sparse":
        x = np.maximum(x, 0)
    x = x.astype(np.float32)
    w = rng.normal(size=(x[0].size, 3))
    search = splitans.calibration.Search(x, lambda a: np.asarray(a).reshape(len(a), -1) @ w, bits=(3,),
                                         options=("clip",), axis=0, selection=0.8, rank_samples=20)
    sel = x[search.sel]
    assert sel[:, 0].size > 1 << 20  # beyond calibrate's old subsample, per channel too
    cands = [c for c in search.candidates if c.option in ("base", "clip")]
    assert {c.fit["clip"] for c in cands} <= set(_FIT_CLIP) and {c.axis for c in cands} == {None, 0}
    for cand in cands:
        fitted = splitans.Codec.fit(sel, bits=cand.bits, axis=cand.axis, clip=_FIT_CLIP[cand.fit["clip"]]).describe()
        mine = search.make_codec(cand, search.fit_items).describe()
        assert (mine["scale"], mine["zero_point"]) == (fitted["scale"], fitted["zero_point"]), cand.name
