"""splitans.calibrate's selection rule, pinned (issue 27): the margin is the budget in
percentage points over 100, each chain is tested at ``(1 - confidence) / chains`` and stops at its
first candidate not confirmed, the smallest confirmed candidate wins, candidates are ranked on the
selection part only and tested on the test part only, and the report's drop, interval and
p-value are the paired statistics of those counts, with the sign of a loss.

The p-values are stubbed where the rule itself is under test (the search's own statistics are
checked against scipy and brute force in test_calibrate.py); everything else runs for real on a
small linear model."""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import splitans
from splitans import _calibrate as cal

BITS = (1, 2, 4, 8)


def _toy(n=400, seed=0, shape=(4, 6, 6)):
    """ReLU maps and a linear classifier on them: accuracy falls with coarser quantization."""
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.normal(size=(n, *shape)), 0).astype(np.float32)
    w = rng.normal(size=(int(np.prod(shape)), 5))
    logits = acts.reshape(n, -1) @ w
    labels = np.where(rng.random(n) < 0.9, logits.argmax(1), rng.integers(0, 5, n))
    return acts, w, labels


@pytest.fixture(scope="module")
def toy():
    return _toy()


@pytest.fixture(scope="module")
def search(toy):
    acts, w, labels = toy
    return cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, bits=BITS, options=())


def _stub(search, monkeypatch, pvalue_of):
    """Make the search's test answer ``pvalue_of(candidate)``; return the margins it was asked
    about, in order. The counts are still computed (on the test part), only the p-value is set."""
    margins, current = [], {}
    outcome = search._outcome

    def spy_outcome(cand):
        current["cand"] = cand
        return outcome(cand)

    def stub_p(b, c, n, margin):
        margins.append(margin)
        return pvalue_of(current["cand"])

    monkeypatch.setattr(search, "_outcome", spy_outcome)
    monkeypatch.setattr(search, "_p_value", stub_p)
    return margins


def _tested(report):
    return {t["setting"]: t for t in report.tried if t.get("tested")}


def test_margin_is_the_budget_in_percentage_points(search, monkeypatch):
    margins = _stub(search, monkeypatch, lambda c: 0.5)
    for budget in (0.25, 3.0):
        margins.clear()
        search.select(budget=budget, confidence=0.9, final_fit=False)
        assert margins and all(m == budget / 100 for m in margins), (budget, margins)


def test_bonferroni_level_and_the_stop_at_the_first_unconfirmed(search, monkeypatch):
    budget, confidence, chains = 2.0, 0.9, 3
    paths = search.paths((), budget, confidence, chains)
    assert len(paths) == chains and all(len(p) >= 3 for p in paths)
    alpha = (1 - confidence) / chains
    first = paths[0]
    head, second, rest = first[0], first[1], first[2:]
    # The head of the first chain is confirmed exactly at the level; its next candidate only
    # without the division by the number of chains; every later one of that chain would be
    # confirmed, so a chain that went on past `second` would pick the smallest of them.
    p = {id(head): alpha, id(second): alpha * 1.5}
    p.update({id(c): 0.0 for c in rest})
    margins = _stub(search, monkeypatch, lambda c: p.get(id(c), 0.9))
    codec = search.select(budget=budget, confidence=confidence, chains=chains, final_fit=False)
    r = codec.calibration
    assert margins
    assert r.met and r.setting == head.name and r.p_value == alpha
    tested = _tested(r)
    assert tested[head.name]["confirmed"] and not tested[second.name]["confirmed"]
    # Nothing after the unconfirmed candidate of a chain is tested.
    assert not any(c.name in tested for c in rest)
    # Each other chain stopped at its first candidate (p = 0.9), after the shared head.
    for path in paths[1:]:
        stop = next(c for c in path if p.get(id(c), 0.9) > alpha)
        assert stop.name in tested and not tested[stop.name]["confirmed"]
        after = path[path.index(stop) + 1 :]
        assert not any(c.name in tested for c in after if c not in first)


def test_smallest_confirmed_candidate_of_any_chain_wins(search, monkeypatch):
    budget, confidence, chains = 2.0, 0.9, 3
    paths = search.paths((), budget, confidence, chains)
    alpha = (1 - confidence) / chains
    # Every candidate of every chain confirmed down to its second-to-last: the smallest of those.
    confirmed = [c for path in paths for c in path[:-1]]
    p = {id(c): alpha / 2 for c in confirmed}
    _stub(search, monkeypatch, lambda c: p.get(id(c), 1.0))
    r = search.select(budget=budget, confidence=confidence, chains=chains, final_fit=False).calibration
    want = min(confirmed, key=lambda c: c.bytes)
    assert r.met and r.setting == want.name and r.p_value == alpha / 2
    # With fewer chains, each gets the wider level: alpha * 1.5 passes with 2 chains, not with 3.
    p2 = {id(c): (1 - confidence) / 2 for c in confirmed}
    _stub(search, monkeypatch, lambda c: p2.get(id(c), 1.0))
    r3 = search.select(budget=budget, confidence=confidence, chains=3, final_fit=False).calibration
    r2 = search.select(budget=budget, confidence=confidence, chains=2, final_fit=False).calibration
    assert not r3.met and r2.met


def test_nothing_confirmed_returns_the_most_faithful_marked(search, monkeypatch):
    _stub(search, monkeypatch, lambda c: 0.2)
    paths = search.paths((), 1.0, 0.9, 3)
    r = search.select(budget=1.0, confidence=0.9, final_fit=False).calibration
    assert not r.met and r.setting == paths[0][0].name and r.p_value == 0.2
    assert "NOT" in str(r)


def _independent_counts(codec, acts, w, labels, idx):
    """b (right only uncompressed), c (right only compressed), n on the samples ``idx``."""
    ref = (acts[idx].reshape(len(idx), -1) @ w).argmax(1) == labels[idx]
    dec = codec.round_trip(acts[idx])
    got = (dec.reshape(len(idx), -1) @ w).argmax(1) == labels[idx]
    return int((ref & ~got).sum()), int((~ref & got).sum()), len(idx)


def test_report_statistics_of_a_lossy_choice(toy):
    """A budget wide enough that a lossy candidate is chosen: the drop is positive (right
    without compression, wrong with it, counts as a loss), equals the drop counted here over
    every calibration sample, its interval is ``paired_drop_interval`` at the confidence, and
    the p-value is Tango's test of the test part's counts at margin ``budget / 100``."""
    acts, w, labels = toy
    budget, confidence = 12.0, 0.8
    codec = splitans.calibrate(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, budget=budget,
                               confidence=confidence, bits=BITS, options=())
    r = codec.calibration
    assert r.met and r.metric == "accuracy"
    b, c, n = _independent_counts(codec, acts, w, labels, np.arange(len(acts)))
    assert b > c, "the toy must lose accuracy at the chosen setting"
    assert r.drop_pp == pytest.approx(100 * (b - c) / n, abs=1e-12) and r.drop_pp > 0
    lo, hi = cal.paired_drop_interval(b, c, n, level=confidence)
    assert r.drop_interval_pp == (pytest.approx(100 * lo, abs=1e-9), pytest.approx(100 * hi, abs=1e-9))
    assert lo < (b - c) / n < hi
    assert r.n == r.n_test and r.b >= r.c and r.b + r.c <= r.n
    assert r.p_value == cal.paired_drop_test(r.b, r.c, r.n, budget / 100)
    assert r.p_value <= (1 - confidence) / 3


def test_agreement_report_is_clopper_pearson_of_changed_predictions(toy):
    acts, w, _ = toy
    budget, confidence = 10.0, 0.85
    codec = splitans.calibrate(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, budget=budget,
                               confidence=confidence, bits=BITS, options=())
    r = codec.calibration
    ref = (acts.reshape(len(acts), -1) @ w).argmax(1)
    got = (codec.round_trip(acts).reshape(len(acts), -1) @ w).argmax(1)
    changed = int((ref != got).sum())
    assert changed > 0 and r.drop_pp == pytest.approx(100 * changed / len(acts), abs=1e-12)
    lo, hi = cal.clopper_pearson(changed, len(acts), level=confidence)
    assert r.drop_interval_pp == (pytest.approx(100 * lo, abs=1e-9), pytest.approx(100 * hi, abs=1e-9))
    assert r.p_value == cal.binomial_test(r.b, r.n, budget / 100) and r.c == 0


def test_spy_tail_ranks_on_selection_and_tests_on_test_samples(toy):
    acts, w, labels = toy
    calls = []

    def tail(a, index):
        index = np.asarray(index).copy()
        if type(a).__module__.startswith("torch"):  # the gradient pass (selection samples)
            calls.append(("gradient", index))
            return a.reshape(len(a), -1) @ __import__("torch").from_numpy(w).to(a.dtype)
        a = np.asarray(a)
        calls.append(("reference" if np.array_equal(a, acts[index]) else "decoded", index))
        return a.reshape(len(a), -1) @ w

    search = cal.Search(acts, tail, labels, bits=BITS, options=())
    sel, test = set(search.sel.tolist()), set(search.test.tolist())
    assert sel and test and not sel & test and sel | test == set(range(len(acts)))
    reference = set(np.concatenate([i for k, i in calls if k == "reference"]).tolist())
    assert reference == set(range(len(acts)))
    decoded = [i for k, i in calls if k == "decoded"]
    assert decoded, "the ranking runs the tail on decoded samples"
    for i in decoded + [i for k, i in calls if k == "gradient"]:
        assert set(i.tolist()) <= sel, "ranking looked at test samples"
    # The ranking's numbers: the divergence from the uncompressed outputs and the changed
    # predictions, on the selection samples it ran.
    rank = search.rank
    assert set(rank.tolist()) <= sel
    ref = acts[rank].reshape(len(rank), -1) @ w
    ranked = [c for c in search.candidates if c.kl < math.inf]
    assert ranked
    for cand in ranked:
        new = cand.codec.round_trip(acts[rank]).reshape(len(rank), -1) @ w
        pa = np.exp(ref - ref.max(1, keepdims=True))
        pa /= pa.sum(1, keepdims=True)
        pb = np.exp(new - new.max(1, keepdims=True))
        pb /= pb.sum(1, keepdims=True)
        assert cand.kl == pytest.approx(float(np.mean((pa * np.log(pa / pb)).sum(1))), rel=1e-6, abs=1e-12)
        assert cand.sel_changed == int((new.argmax(1) != ref.argmax(1)).sum())
    # Selection: each candidate tested is counted on the test part, and only there.
    calls.clear()
    codec = search.select(budget=3.0, confidence=0.9)
    r = codec.calibration
    seen_test = set()
    for k, i in calls:
        assert k == "decoded"
        s = set(i.tolist())
        assert s <= test or s <= sel, "a batch mixing the two parts"
        if s <= test:
            seen_test |= s
    assert seen_test == test
    by_name = {c.name: c for c in search.candidates}
    tested = [t for t in r.tried if t.get("tested")]
    assert tested
    for t in tested:
        cand = by_name[t["setting"]]
        assert (t["b"], t["c"], t["n"]) == _independent_counts(cand.codec, acts, w, labels, search.test)
        assert t["p_value"] == cal.paired_drop_test(t["b"], t["c"], t["n"], 3.0 / 100)


# ------------------------------------------------------------------------------ real sizes

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


@settings(max_examples=3 if _PROFILE == "ci" else 40, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    layout=st.sampled_from(["chw", "hwc", "tokens", "vector"]),
    elements=st.integers(1_000, 30_000),
    dtype=st.sampled_from(["float32", "float16", "float64"]),
    metric=st.sampled_from(["accuracy", "agreement"]),
    seed=st.integers(0, 2**16),
)
def test_calibration_report_is_consistent_at_real_sizes(layout, elements, dtype, metric, seed):
    """Maps of 1-30 K elements as users send them (channels first or last, token matrices,
    vectors): the report's drop and interval are those of the chosen codec's own decisions over
    every sample, its p-value that of the test part's counts, and the codec decodes to what the
    search measured."""
    rng = np.random.default_rng(seed)
    if layout == "chw":
        c = int(rng.integers(4, 33))
        side = max(2, int(math.sqrt(elements / c)))
        shape = (c, side, side)
    elif layout == "hwc":
        c = int(rng.integers(4, 33))
        side = max(2, int(math.sqrt(elements / c)))
        shape = (side, side, c)
    elif layout == "tokens":
        d = int(rng.integers(16, 129))
        shape = (max(2, elements // d), d)
    else:
        shape = (elements,)
    n = 60
    x = rng.normal(size=(n, *shape))
    acts = np.maximum(x + 0.3 * np.roll(x, 1, -1), 0).astype(dtype)
    w = rng.normal(size=(int(np.prod(shape)), 4)) / math.sqrt(np.prod(shape))
    a32 = acts.astype(np.float32)
    flat = a32.reshape(n, -1)
    labels = (flat @ w).argmax(1) if metric == "accuracy" else None
    budget, confidence = 20.0, 0.9
    codec = splitans.calibrate(acts, lambda a: np.asarray(a, np.float32).reshape(len(a), -1) @ w, labels,
                               budget=budget, confidence=confidence, bits=(2, 8), options=(), metric=metric)
    r = codec.calibration
    assert codec.shape == shape and codec.dtype == dtype
    ref = (flat @ w).argmax(1)
    got = (codec.round_trip(a32).reshape(n, -1) @ w).argmax(1)
    if metric == "accuracy":
        b, c = int(((ref == labels) & (got != labels)).sum()), int(((ref != labels) & (got == labels)).sum())
        lo, hi = cal.paired_drop_interval(b, c, n, level=confidence)
        assert r.p_value == cal.paired_drop_test(r.b, r.c, r.n, budget / 100)
        assert r.drop_pp == pytest.approx(100 * (b - c) / n, abs=1e-9)
    else:
        changed = int((ref != got).sum())
        lo, hi = cal.clopper_pearson(changed, n, level=confidence)
        assert r.p_value == cal.binomial_test(r.b, r.n, budget / 100)
        assert r.drop_pp == pytest.approx(100 * changed / n, abs=1e-9)
    assert r.drop_interval_pp == (pytest.approx(100 * lo, abs=1e-9), pytest.approx(100 * hi, abs=1e-9))
    assert r.met == (r.p_value <= (1 - confidence) / 3)
    one = a32[int(rng.integers(n))]
    assert np.array_equal(codec.decompress(codec.compress(one)), codec.round_trip(one[None])[0].astype(dtype))


# ------------------------------------------------------------------------------ the search's parts


def test_predict_is_the_prediction_interval_of_every_calibration_sample(toy):
    acts, w, labels = toy
    codec = splitans.calibrate(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, budget=12.0,
                               bits=BITS, options=())
    b, c, n = _independent_counts(codec, acts, w, labels, np.arange(len(acts)))
    for n_new, level in ((1000, 0.95), (50_000, 0.8)):
        lo, hi = cal.prediction_interval(b, c, n, n_new, level)
        assert codec.calibration.predict(n_new, level) == (pytest.approx(100 * lo), pytest.approx(100 * hi))


def test_paths_defaults_are_select_defaults(search):
    got = search.paths(())
    kl_ref = search._kl_ref
    want = search.paths((), 0.2, 0.9, 3)
    assert [[c.name for c in p] for p in got] == [[c.name for c in p] for p in want]
    # The chains are ranked where the test at the Bonferroni level would just confirm the budget.
    assert kl_ref == search._kl_ref == search.reference_kl(0.2, 1 - (1 - 0.9) / 3)


def test_size_at_interpolates_log_log_between_bit_widths():
    class C:
        def __init__(self, kl, size):
            self.kl, self.bytes = kl, size

    chain = [C(0.001, 400.0), C(0.01, 200.0), C(0.1, 100.0)]
    assert cal.Search.size_at(chain, 0.0001) == math.inf  # even the most faithful diverges more
    assert cal.Search.size_at(chain, 1.0) == 100.0  # every one is within: the smallest
    # Half-way in log divergence between 0.001 and 0.01: half-way in log size.
    assert cal.Search.size_at(chain, math.sqrt(0.001 * 0.01)) == pytest.approx(math.sqrt(400.0 * 200.0))
    assert cal.Search.size_at(chain, 0.01) == pytest.approx(200.0)
    k = 0.001 * 10 ** 0.25
    assert cal.Search.size_at(chain, k) == pytest.approx(math.exp(math.log(400) + 0.25 * (math.log(200) - math.log(400))))


def test_candidates_of_each_option():
    acts, w, labels = _toy(n=240, seed=4)
    s = cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1) @ w, labels, bits=(1, 2, 4),
                   options=("dead_zone", "clip"))
    by = {}
    for c in s.candidates:
        by.setdefault(c.option, set()).add((c.bits, c.axis))
    axes = {None, 0}
    assert by["base"] == {(b, a) for b in (1, 2, 4) for a in axes}
    assert by["clip"] == {(b, a) for b in (1, 2, 4) for a in axes}
    # A dead zone needs at least 2 bits (1 bit has no code between zero and the top).
    assert by["dead_zone"] == {(b, a) for b in (2, 4) for a in axes}
    # Three clippings of the base grid per bit width and axis, two searched ones for "clip".
    assert sum(c.option == "base" for c in s.candidates) == 3 * 3 * 2
    assert sum(c.option == "clip" for c in s.candidates) == 2 * 3 * 2


def test_variable_length_samples_are_screened_by_squared_error():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(8, 3))
    sentences = [rng.normal(size=(int(k), 8)).astype(np.float32) for k in rng.integers(3, 12, 120)]
    s = cal.Search(sentences, lambda batch: np.stack([x.mean(0) @ w for x in batch]), bits=(2, 4), options=())
    for cand in s.candidates:
        err = [float(np.sum((cand.codec.round_trip(sentences[i][None])[0] - sentences[i]) ** 2)) for i in s.rank]
        assert cand.proxy == pytest.approx(np.mean(err), rel=1e-5)


def test_fisher_information_accumulates_over_batches():
    torch = pytest.importorskip("torch")
    acts, w, labels = _toy(n=400, seed=6)
    wt = torch.from_numpy(w).float()
    tail = lambda a: a.reshape(len(a), -1) @ wt  # noqa: E731
    s = cal.Search(torch.from_numpy(acts), tail, labels, bits=(2, 8), options=("allocation",), batch_size=40,
                   selection=0.3)
    idx = s.sel[:512]
    assert len(idx) > 40  # several batches
    x = torch.from_numpy(acts[idx]).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(tail(x), torch.from_numpy(labels[idx]), reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    want = (g.numpy().astype(np.float64) ** 2).sum(0) / len(idx)
    np.testing.assert_allclose(s.fisher, want, rtol=1e-4, atol=1e-12)
    # The allocation option spans mean bit widths from 0.75 to 6, one candidate per distinct
    # allocation: 4 channels of about equal weight here, so 1.5 and 2.5 round to 1 and 2 bits.
    means = sorted({c.level for c in s.candidates if c.option == "allocation"})
    assert means == [0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for m in means:
        bits = next(c for c in s.candidates if c.level == m and c.option == "allocation").fit["channel_bits"]
        assert abs(np.mean(bits) - m) <= 0.5 + 1e-9
