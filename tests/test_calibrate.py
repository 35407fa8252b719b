"""splitans.calibrate: the paired statistics it rests on, and the search end to end on small
synthetic models (the real models are in test_report.py)."""

import math

import numpy as np
import pytest

import splitans
from splitans import _calibrate as cal
from strict import need_module


def test_tango_score_reduces_to_mcnemar_and_uses_the_restricted_mle():
    b, c, n = 30, 12, 1000
    assert cal._tango_z(b, c, n, 0.0) == pytest.approx((b - c) / math.sqrt(b + c))
    # The restricted maximum likelihood of p_c under p_b - p_c = d0, found by brute force.
    for d0 in (0.005, 0.02, -0.01):
        grid = np.linspace(max(0, -d0) + 1e-7, (1 - abs(d0)) / 2 - 1e-7, 200_001)
        pb = grid + d0
        ll = b * np.log(pb) + c * np.log(grid) + (n - b - c) * np.log1p(-pb - grid)
        pc = grid[np.argmax(ll)]
        var = (2 * pc + d0 * (1 - d0)) / n
        assert cal._tango_z(b, c, n, d0) == pytest.approx(((b - c) / n - d0) / math.sqrt(var), rel=1e-3)


def test_paired_interval_and_test_agree():
    lo, hi = cal.paired_drop_interval(30, 12, 1000, level=0.9)
    assert lo < 0.018 < hi
    # The interval's upper end is where the one-sided test at 5% starts to reject.
    assert cal.paired_drop_test(30, 12, 1000, hi) == pytest.approx(0.05, abs=1e-6)
    assert cal.paired_drop_test(30, 12, 1000, hi + 0.002) < 0.05 < cal.paired_drop_test(30, 12, 1000, hi - 0.002)
    # No discordant pair: a Wilson-like bound z^2 / (n + z^2), not a zero-width interval.
    lo, hi = cal.paired_drop_interval(0, 0, 4000, level=0.9)
    z = 1.6448536
    assert hi == pytest.approx(z * z / (4000 + z * z), rel=1e-3) and lo == pytest.approx(-hi, rel=1e-3)


@pytest.mark.parametrize("pb,pc", [(0.012, 0.010), (0.004, 0.002), (0.03, 0.028)])
def test_paired_test_keeps_its_level_at_the_margin(pb, pc):
    """Under the null's boundary (drop = margin), one-sided rejections at 10% stay near 10%."""
    rng = np.random.default_rng(0)
    n, margin = 4000, pb - pc
    draws = rng.multinomial(n, [pb, pc, 1 - pb - pc], size=3000)
    p = np.array([cal.paired_drop_test(int(b), int(c), n, margin) for b, c, _ in draws])
    assert 0.06 < (p <= 0.1).mean() < 0.135


def test_binomial_and_clopper_pearson_match_scipy():
    stats = need_module("scipy.stats", "pip install scipy")
    for k, n, rate in ((0, 300, 0.01), (3, 300, 0.01), (20, 1000, 0.03)):
        assert cal.binomial_test(k, n, rate) == pytest.approx(stats.binom.cdf(k, n, rate), rel=1e-9)
        lo, hi = cal.clopper_pearson(k, n, 0.9)
        assert hi == pytest.approx(stats.beta.ppf(0.95, k + 1, n - k), rel=1e-6)
        assert lo == pytest.approx(0.0 if k == 0 else stats.beta.ppf(0.05, k, n - k + 1), rel=1e-6, abs=1e-12)


def test_prediction_interval_covers_a_new_sample():
    rng = np.random.default_rng(1)
    pb, pc, n, m = 0.015, 0.01, 5000, 10000
    hits = 0
    for _ in range(2000):
        b, c, _ = rng.multinomial(n, [pb, pc, 1 - pb - pc])
        tb, tc, _ = rng.multinomial(m, [pb, pc, 1 - pb - pc])
        lo, hi = cal.prediction_interval(int(b), int(c), n, m, 0.95)
        hits += lo <= (tb - tc) / m <= hi
    assert 0.93 < hits / 2000 < 0.975


def _toy(n=1200, seed=0):
    """ReLU maps and a linear classifier on them: a model whose accuracy degrades with
    coarser quantization."""
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.normal(size=(n, 4, 6, 6)), 0).astype(np.float32)
    w = rng.normal(size=(4 * 36, 5))
    logits = acts.reshape(n, -1) @ w
    labels = np.where(rng.random(n) < 0.9, logits.argmax(1), rng.integers(0, 5, n))
    return acts, w, labels


def test_calibrate_end_to_end_on_a_numpy_tail():
    acts, w, labels = _toy()
    tail = lambda a: np.asarray(a).reshape(len(a), -1) @ w  # noqa: E731
    codec = splitans.calibrate(acts, tail, labels, budget=1.0, bits=(1, 2, 3, 4, 8), options=("clip", "dead_zone"))
    r = codec.calibration
    assert isinstance(r, splitans.CalibrationReport) and r.metric == "accuracy"
    assert r.met and r.p_value <= 0.1 / 3
    assert r.n_selection + r.n_test == len(acts) and r.n_test > r.n_selection
    lo, hi = r.drop_interval_pp
    assert lo <= r.drop_pp <= hi
    plo, phi = r.predict(10_000)
    assert plo <= r.drop_pp <= phi and phi - plo > hi - lo - 1e-9
    # The codec is an ordinary one: its blobs decode to what calibrate measured.
    x = acts[5]
    assert np.array_equal(codec.decompress(codec.compress(x)), codec.round_trip(x[None])[0])
    assert r.bytes_per_sample == pytest.approx(np.mean([len(codec.compress(a)) for a in acts[r.n_selection:][:256]]), rel=0.2)
    assert r.ratio == pytest.approx(4 * x.size / r.bytes_per_sample)
    tested = [t for t in r.tried if t.get("tested")]
    assert tested and any(t["setting"] == r.setting and t["confirmed"] for t in tested)
    # Every confirmed candidate's p-value is within the Bonferroni level; the chosen is the smallest.
    confirmed = [t for t in tested if t["confirmed"]]
    assert all(t["p_value"] <= 0.1 / 3 + 1e-12 for t in confirmed)
    assert min(confirmed, key=lambda t: t["bytes"])["setting"] == r.setting
    assert "meets" in str(r)
    # A zero budget cannot be confirmed: the most faithful candidate comes back, marked.
    strict = splitans.calibrate(acts, tail, labels, budget=0.0, bits=(2, 8), options=())
    assert not strict.calibration.met and "NOT" in str(strict.calibration)


def test_calibrate_agreement_torch_gradients_and_index_tails():
    torch = need_module("torch", "pip install '.[eval]'")
    acts, w, _ = _toy(n=600, seed=2)
    wt = torch.from_numpy(w).float()
    seen = []

    def tail(a, index):
        seen.append(np.asarray(index))
        return a.reshape(len(a), -1) @ wt

    codec = splitans.calibrate(torch.from_numpy(acts), tail, budget=3.0, bits=(2, 4, 8), options=("allocation",), axis=0)
    r = codec.calibration
    assert r.metric == "agreement" and r.sensitivity.startswith("diagonal Fisher")
    assert any(t["option"] == "allocation" for t in r.tried)
    alloc = next(t for t in r.tried if t["option"] == "allocation")
    assert "allocation" in alloc["setting"]
    # The tail got each batch's sample indices, covering every sample.
    assert set(np.concatenate(seen).tolist()) == set(range(len(acts)))
    with pytest.raises(ValueError, match="labels"):
        splitans.calibrate(acts, lambda a: a.reshape(len(a), -1) @ w, metric="accuracy")
    with pytest.raises(ValueError, match="options"):
        splitans.calibrate(acts, lambda a: a.reshape(len(a), -1) @ w, options=("magic",))


def test_calibrate_variable_length_samples():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(8, 3))
    sentences = [rng.normal(size=(int(k), 8)).astype(np.float32) for k in rng.integers(3, 12, 300)]
    tail = lambda batch: np.stack([s.mean(0) @ w for s in batch])  # noqa: E731
    codec = splitans.calibrate(sentences, tail, budget=5.0, bits=(2, 4, 8), options=("per_token",))
    assert codec.shape == (None, 8)
    assert any(t["option"] == "per_token" for t in codec.calibration.tried)
    y = codec.decompress(codec.compress(sentences[0]))
    assert y.shape == sentences[0].shape
