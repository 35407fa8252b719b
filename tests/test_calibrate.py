"""splitans.calibrate: the paired statistics it rests on, and the search end to end on small
synthetic models (the real models are in test_report.py)."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import splitans
from splitans import calibration as cal
from strict import need_module


def test_tango_score_reduces_to_mcnemar_and_uses_the_restricted_mle():
    b, c, n = 30, 12, 1000
    assert cal.stats._tango_z(b, c, n, 0.0) == pytest.approx((b - c) / math.sqrt(b + c))
    # The restricted maximum likelihood of p_c under p_b - p_c = d0, found by brute force.
    for d0 in (0.005, 0.02, -0.01):
        grid = np.linspace(max(0, -d0) + 1e-7, (1 - abs(d0)) / 2 - 1e-7, 200_001)
        pb = grid + d0
        ll = b * np.log(pb) + c * np.log(grid) + (n - b - c) * np.log1p(-pb - grid)
        pc = grid[np.argmax(ll)]
        var = (2 * pc + d0 * (1 - d0)) / n
        assert cal.stats._tango_z(b, c, n, d0) == pytest.approx(((b - c) / n - d0) / math.sqrt(var), rel=1e-3)


def test_paired_interval_and_test_agree():
    lo, hi = cal.paired_drop_interval(30, 12, 1000, level=0.9)
    assert lo < 0.018 < hi
    # The interval's upper end is where the one-sided score test at 5% starts to reject.
    assert cal.paired_drop_test(30, 12, 1000, hi, exact=False) == pytest.approx(0.05, abs=1e-6)
    assert (cal.paired_drop_test(30, 12, 1000, hi + 0.002, exact=False) < 0.05
            < cal.paired_drop_test(30, 12, 1000, hi - 0.002, exact=False))
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
    p = np.array([cal.paired_drop_test(int(b), int(c), n, margin, exact=False) for b, c, _ in draws])
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
    codec = splitans.calibrate(acts, tail, labels, budget=5.0, bits=(1, 2, 3, 4, 8), options=("clip", "dead_zone"))
    r = codec.calibration
    assert isinstance(r, splitans.CalibrationReport) and r.metric == "accuracy"
    assert r.confirmed and r.met and 0 < r.level <= 0.1 and r.p_value <= r.level
    assert r.n_selection + r.n_test == len(acts) and r.n_test > r.n_selection
    # Drop and interval from the test part alone, the interval adjusted for the m candidates.
    assert r.n == r.n_test and r.drop_pp == pytest.approx(100 * (r.b - r.c) / r.n)
    assert r.adjusted_for == sum(t["on_path"] for t in r.tried) > 1
    lo, hi = cal.paired_drop_interval(r.b, r.c, r.n, level=1 - 0.1 / r.adjusted_for)
    assert r.drop_interval_pp == (pytest.approx(100 * lo), pytest.approx(100 * hi))
    assert lo < (r.b - r.c) / r.n < hi
    plo, phi = r.predict(10_000)
    assert plo <= r.drop_pp <= phi
    wide = cal.prediction_interval(r.b, r.c, r.n, 10_000, 1 - 0.05 / r.adjusted_for)
    assert (plo, phi) == (pytest.approx(100 * wide[0]), pytest.approx(100 * wide[1]))
    # The codec is an ordinary one: its blobs decode to what calibrate measured.
    x = acts[5]
    assert np.array_equal(codec.decompress(codec.compress(x)), codec.round_trip(x[None])[0])
    assert r.ratio == pytest.approx(4 * x.size / r.bytes_per_sample)
    tested = [t for t in r.tried if t.get("tested")]
    assert tested and any(t["setting"] == r.setting and t["confirmed"] for t in tested)
    # Every confirmed candidate's p-value is within the level it was tested at.
    confirmed = [t for t in tested if t["confirmed"]]
    assert all(t["p_value"] <= t["test_level"] + 1e-12 for t in confirmed)
    assert all(t["p_value"] > t["test_level"] for t in tested if not t["confirmed"])
    assert "confirmed within" in str(r) and "NOT" not in str(r)
    # A zero budget cannot be confirmed: the most faithful candidate comes back, loudly.
    with pytest.warns(cal.CalibrationWarning, match="no guarantee"):
        strict = splitans.calibrate(acts, tail, labels, budget=0.0, bits=(2, 8), options=())
    assert not strict.calibration.confirmed and not strict.calibration.met and "NOT" in str(strict.calibration)
    assert strict.calibration.level == 0.0


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


# ------------------------------------------------------------------------------ issue 26

OPTIONS4 = ("clip", "dead_zone", "levels", "allocation")


def _maps(seed, n=800, c=8, side=5, classes=4):
    """ReLU maps (channels of different scales, correlated neighbours) and a linear torch tail:
    a differentiable model, so every option applies (allocation too)."""
    torch = need_module("torch", "pip install '.[eval]'")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, side, side)) * rng.uniform(0.3, 3, (1, c, 1, 1))
    acts = np.maximum(x + 0.5 * np.roll(x, 1, -1), 0).astype(np.float32)
    w = torch.from_numpy(rng.normal(size=(c * side * side, classes)) / math.sqrt(c * side * side)).float()
    logits = torch.from_numpy(acts).reshape(n, -1) @ w
    labels = np.where(rng.random(n) < 0.85, logits.argmax(1).numpy(), rng.integers(0, classes, n))
    return torch.from_numpy(acts), (lambda a: a.reshape(len(a), -1) @ w), labels


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), budget=st.sampled_from([2.0, 4.0]),
       fewer=st.sets(st.sampled_from(OPTIONS4)), extra=st.sets(st.sampled_from(OPTIONS4), min_size=1))
# Cases where the search before issue 26 returned a larger codec with every option than with
# the base grid alone (88.6 against 115.3 bytes; 74.2 against 76.6).
@example(seed=1, budget=2.0, fewer=set(), extra=set(OPTIONS4))
@example(seed=0, budget=4.0, fewer=set(), extra=set(OPTIONS4))
def test_more_options_never_give_a_larger_codec(seed, budget, fewer, extra):
    """Same samples, same seed: the codec calibrated with a superset of the options is never
    larger in bytes, nor less often confirmed (each option's share of the level is fixed by the
    samples, not by the options asked for)."""
    import warnings

    acts, tail, labels = _maps(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cal.CalibrationWarning)
        few = splitans.calibrate(acts, tail, labels, budget=budget, bits=(1, 2, 3, 4, 6, 8), options=tuple(fewer),
                                 seed=seed).calibration
        more = splitans.calibrate(acts, tail, labels, budget=budget, bits=(1, 2, 3, 4, 6, 8),
                                  options=tuple(fewer | extra), seed=seed).calibration
    assert more.bytes_per_sample <= few.bytes_per_sample, (few.setting, more.setting)
    assert more.confirmed >= few.confirmed
    # Every candidate confirmed with fewer options is confirmed with more.
    got = {t["setting"] for t in more.tried if t.get("confirmed")}
    assert {t["setting"] for t in few.tried if t.get("confirmed")} <= got


def test_what_is_tested_comes_from_the_selection_part_alone():
    """Two searches whose selection samples are the same and whose test-part samples differ
    (scaled by 3) size, rank and order the same candidates into the same chains: nothing of the
    test part decides what is tested."""
    acts, w, labels = _toy(n=900, seed=4)
    tail = lambda a: np.asarray(a).reshape(len(a), -1) @ w  # noqa: E731
    one = cal.Search(acts, tail, labels, bits=(2, 3, 4, 8), options=("clip", "levels"))
    other_acts = acts.copy()
    other_acts[one.test] *= 3
    other = cal.Search(other_acts, tail, labels, bits=(2, 3, 4, 8), options=("clip", "levels"))
    assert np.array_equal(one.sel, other.sel)
    for a, b in zip(one.candidates, other.candidates):
        assert (a.name, a.bytes, a.kl, a.proxy) == (b.name, b.bytes, b.kl, b.proxy)
    plan = lambda s: [(p["family"], p["config"], p["level"], [c.name for c in p["nodes"]], p["weights"])  # noqa: E731
                      for p in s.paths(("clip", "levels"), 1.0, 0.9)]
    assert plan(one) == plan(other) and len(plan(one)) >= 3


def test_difference_distribution_is_exact():
    from itertools import product

    n, pb, pc = 30, 0.2, 0.1
    for d in (-31, -5, 0, 3, 6, 30):
        brute = sum(math.comb(n, b) * math.comb(n - b, c) * pb**b * pc**c * (1 - pb - pc) ** (n - b - c)
                    for b, c in product(range(n + 1), repeat=2) if b + c <= n and b - c <= d)
        assert cal.stats._diff_cdf(d, n, pb, pc) == pytest.approx(brute, abs=1e-12)
    # A window of 40 standard deviations at a large n: the tail matches the normal one.
    n, pb, pc = 60_000, 0.011, 0.009
    sd = math.sqrt(n * (pb + pc - (pb - pc) ** 2))
    assert cal.stats._diff_cdf(round(n * (pb - pc) - 2 * sd), n, pb, pc) == pytest.approx(0.0228, abs=2e-3)


def test_exact_test_grid_finds_the_maximum():
    """The exact test's maximum over 14 discordance rates is the maximum over 300."""
    for n, margin, b, c in ((800, 0.002, 3, 1), (800, 0.002, 0, 0), (4500, 0.002, 30, 28), (2000, 0.01, 12, 20)):
        upper = cal.clopper_pearson(b + c, n, 1 - 2 * cal.EXACT_GAMMA)[1]
        fine = max(cal.stats._diff_cdf(b - c, n, (q + margin) / 2, (q - margin) / 2)
                   for q in np.linspace(margin, upper, 300))
        assert cal.exact_drop_test(b, c, n, margin) == pytest.approx(min(1.0, cal.EXACT_GAMMA + fine), abs=1e-12)


def _rejection_rate(n, margin, pc, level, exact):
    """Probability, by enumerating every (b, c) of non-negligible probability, that the test
    confirms a drop below ``margin`` when the drop is exactly ``margin``."""
    pb = pc + margin
    total = 0.0
    for b in range(60):
        for c in range(60):
            lp = (math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(c + 1) - math.lgamma(n - b - c + 1)
                  + b * math.log(pb) + (c * math.log(pc) if pc > 0 else (0 if c == 0 else -math.inf))
                  + (n - b - c) * math.log1p(-pb - pc))
            if lp > -30 and cal.paired_drop_test(b, c, n, margin, exact=exact) <= level:
                total += math.exp(lp)
    return total


def test_exact_test_keeps_its_level_where_the_score_test_does_not():
    """n = 800 at a 0.2 pp margin (n × budget = 1.6): the score test confirms a candidate whose
    drop is exactly the margin 11% of the time at level 10%; the exact test stays below, and
    is the one used there."""
    n, margin = 800, 0.002
    assert n * margin < cal.EXACT_BELOW
    assert _rejection_rate(n, margin, 0.002, 0.1, exact=False) > 0.11
    for pc in (0.0005, 0.002, 0.008):
        assert _rejection_rate(n, margin, pc, 0.1, exact=True) <= 0.1
    assert cal.paired_drop_test(3, 1, n, margin) == cal.exact_drop_test(3, 1, n, margin)
    assert cal.paired_drop_test(300, 200, 60_000, margin) == cal.paired_drop_test(300, 200, 60_000, margin, exact=False)


@pytest.mark.parametrize("pc", [0.0, 0.004, 0.015])
def test_score_test_keeps_its_level_above_the_exact_threshold(pc):
    """Where the score test is used (n × budget >= EXACT_BELOW), its rejections at the null's
    boundary stay at the level (within the simulation's error)."""
    rng = np.random.default_rng(7)
    n, margin = 4000, 0.03
    assert n * margin >= cal.EXACT_BELOW
    draws = rng.multinomial(n, [pc + margin, pc, 1 - 2 * pc - margin], size=20_000)
    p = np.array([cal.paired_drop_test(int(b), int(c), n, margin) for b, c, _ in draws])
    for level in (0.1, 0.0125):
        assert (p <= level).mean() <= level + 3 * math.sqrt(level / 20_000)


def test_fallback_goes_on_after_a_failure_and_carries_levels():
    p = [0.01, 0.2, 0.004, 0.004, 0.5, 0.001]
    seen = []

    def reject(i, a):
        seen.append((i, round(a, 10)))
        return p[i] <= a

    done = cal.fallback([0.3, 0.2, 0.5, 0.0, 0.0, 0.0], 0.05, reject, carry=0.01)
    # 0: 0.015 + 0.01 carried; 1: 0.01 + 0.025 (fails); 2: its own 0.025; 3: carried 0.025;
    # 4: 0.025 (fails); 5: weight 0, nothing carried: not tested.
    assert done == [True, False, True, True, False, False]
    assert seen == [(0, 0.025), (1, 0.035), (2, 0.025), (3, 0.025), (4, 0.025)]
    with pytest.raises(ValueError, match="sum to at most 1"):
        cal.fallback([0.6, 0.6], 0.1, reject)


def _simulate(search, budget, truths, reps, seed, n):
    """Familywise error of the whole test (`run_chains` over the search's real chains) when
    the test part's counts come from ``truths`` (candidate -> (p_b, p_c)). Each chain (and the
    anchor) draws one uniform per sample; a candidate loses a sample below its p_b and wins it
    above 1 - p_c, so that within a chain coarser candidates change a superset of the finer
    ones' predictions (strongly dependent tests), and chains are independent (where Bonferroni
    over them is nearly tight). Returns (familywise error, replicates in which a chain
    confirmed a node after an unconfirmed one, the sum of the chains' levels)."""
    rng = np.random.default_rng(seed)
    paths = search.paths(search.options, budget, 0.9)
    anchor = search.anchor()
    chain_of = {id(c): k for k, p in enumerate(paths) for c in p["nodes"]}
    margin = budget / 100
    errors = resumed = 0
    for _ in range(reps):
        draws = np.sort(rng.random((len(paths) + 1, n)), axis=1)

        def test(cand, level):
            pb, pc = truths[cand.name]
            u = draws[chain_of.get(id(cand), len(paths))]
            b = int(np.searchsorted(u, pb))
            c = n - int(np.searchsorted(u, 1 - pc))
            return cal.paired_drop_test(b, c, n, margin) <= level

        confirmed, _ = cal.run_chains(paths, anchor, test)
        errors += any(truths[c.name][0] - truths[c.name][1] >= margin - 1e-15 for c in confirmed)
        for path in paths:
            flags = [any(c is x for x in confirmed) for c in path["nodes"]]
            resumed += any(not a and b for a, b in zip(flags, flags[1:]))
    return errors / reps, resumed, sum(p["level"] for p in paths)


def test_error_control_by_simulation():
    """The level holds for the whole procedure — anchor, chains, fallback — with the real
    chains of a search, strongly dependent tests within a chain and every candidate beyond each
    chain's first node exactly at the budget (the least favourable null): the replicates that
    confirm a candidate whose drop is not below the budget stay within the chains' levels
    (their sum, at most 1 - confidence), which this setting nearly reaches. And with the first
    node's drop below the budget but noisy, chains go on after its failure."""
    acts, w, labels = _toy(n=900, seed=4)
    search = cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, bits=(2, 3, 4, 8),
                        options=("clip", "levels"))
    budget, n, reps = 3.0, 4000, 10_000  # n × budget = 120: the score test
    paths = search.paths(search.options, budget, 0.9)
    margin = budget / 100
    truths = {c.name: (0.01, 0.01) for c in search.candidates}  # no drop: the anchor is true
    for path in paths:
        for i, c in enumerate(path["nodes"]):
            truths[c.name] = (0.01, 0.01) if i == 0 else (0.02 + margin, 0.02)  # then at the boundary
    fwer, _, total = _simulate(search, budget, truths, reps, 1, n)
    assert total <= 0.1 + 1e-12
    assert 0.6 * total < fwer <= total + 3 * math.sqrt(total / reps)
    # Every node after the second at the boundary: the first (drop 2.5 pp, noisy) fails often,
    # and the chain still confirms the one below it (drop 0) from its own share.
    for path in paths:
        for i, c in enumerate(path["nodes"]):
            truths[c.name] = [(0.03 + 0.025, 0.03), (0.01, 0.01)][i] if i < 2 else (0.02 + margin, 0.02)
    fwer, resumed, total = _simulate(search, budget, truths, 1000, 2, n)
    assert fwer <= total + 3 * math.sqrt(total / 1000) and resumed > 100


def test_samples_to_confirm_give_the_stated_power():
    rng = np.random.default_rng(3)
    b, c, n, margin, level = 55, 50, 5000, 0.002, 0.025
    need = cal.samples_to_confirm(b, c, n, margin, level)
    assert need > n  # not confirmed at n: more would be needed
    pb, pc = b / n, c / n
    draws = rng.multinomial(need, [pb, pc, 1 - pb - pc], size=4000)
    rate = np.mean([cal.paired_drop_test(int(x), int(y), need, margin, exact=False) <= level for x, y, _ in draws])
    assert abs(rate - cal.POWER) < 0.04
    assert cal.samples_to_confirm(60, 40, 5000, 0.002, 0.025) is None  # observed drop at the margin
    assert cal.samples_to_confirm(10, 0, 5000, 0.01, 0.05, paired=False) < 5000


def test_power_statement_names_the_smallest_candidate_more_data_would_confirm():
    acts, w, labels = _toy(n=900, seed=4)
    tail = lambda a: np.asarray(a).reshape(len(a), -1) @ w  # noqa: E731
    r = splitans.calibrate(acts, tail, labels, budget=8.0, bits=(2, 3, 4, 8), options=()).calibration
    chosen = next(t for t in r.tried if t["setting"] == r.setting)
    unconfirmed = [t for t in r.tried if t.get("tested") and not t["confirmed"] and t["bytes"] < chosen["bytes"]]
    could = [t for t in unconfirmed if t["samples_to_confirm"] is not None]
    assert could, "the toy has a candidate that more data would confirm"
    want = min(could, key=lambda t: (t["bytes"], t["setting"]))
    assert r.power["setting"] == want["setting"] and r.power["samples"] == want["samples_to_confirm"] > want["n"]
    assert r.power["drop_pp"] == pytest.approx(100 * (want["b"] - want["c"]) / want["n"]) and r.power["drop_pp"] < 8.0
    assert f"{r.power['samples']:,} paired samples" in str(r)


def test_memory_beyond_the_samples_stays_near_a_batch():
    """Selecting decodes and runs candidates batch by batch: what select() allocates stays near
    a few batches, far below the samples' own size (before issue 26 it decoded the whole test
    part at once: twice its size)."""
    import tracemalloc

    rng = np.random.default_rng(5)
    n, shape = 3000, (16, 16, 16)
    acts = np.maximum(rng.normal(size=(n, *shape)), 0).astype(np.float32)  # 49 MB
    w = rng.normal(size=(int(np.prod(shape)), 4)).astype(np.float32) / 64
    labels = (acts.reshape(n, -1) @ w).argmax(1)
    search = cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, bits=(2, 8), options=(),
                        batch_size=100, final_size_samples=200)
    tracemalloc.start()
    try:
        search.select(budget=2.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    batch = 100 * acts[0].nbytes
    assert peak < 8 * batch < acts.nbytes / 3, (peak, batch, acts.nbytes)


def test_power_statement_is_about_a_smaller_candidate(monkeypatch):
    """Candidates larger than the one returned buy nothing: when every unconfirmed candidate
    that more data could confirm is larger, there is no power statement."""
    acts, w, labels = _toy(n=900, seed=4)
    search = cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, bits=(2, 3, 4, 8), options=())
    paths = search.paths((), 2.0, 0.9)
    anchor = search.anchor()
    first_two = [c for p in paths for c in p["nodes"][:2]]
    small = min(first_two, key=lambda c: c.bytes)
    after = {id(p["nodes"][p["nodes"].index(small) + 1]) for p in paths
             if small in p["nodes"] and p["nodes"].index(small) + 1 < len(p["nodes"])}
    current = {}
    outcome = search._outcome
    monkeypatch.setattr(search, "_outcome", lambda cand: (current.__setitem__("c", cand), outcome(cand))[1])
    n = len(search.test)
    # Right after the smallest: a drop over the budget (nothing would confirm it); the rest: none.
    monkeypatch.setattr(search, "_counts", lambda pred, idx: (60, 0, n) if id(current["c"]) in after else (5, 5, n))
    monkeypatch.setattr(search, "_p_value",
                        lambda b, c, n_, m: 0.0 if current["c"] is anchor or current["c"] is small else 1.0)
    r = search.select(2.0, 0.9, final_fit=False).calibration
    assert r.confirmed and r.setting == small.name
    larger = [t for t in r.tried if t.get("tested") and not t["confirmed"] and t["samples_to_confirm"]]
    assert larger and all(t["bytes"] > small.bytes for t in larger)
    assert r.power is None
