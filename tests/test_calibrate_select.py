"""splitans.calibrate's selection rule, pinned (issues 27 and 26): the margin is the budget in
percentage points over 100; the anchor (the most faithful base candidate) is tested at the shares
its chains lend it, and each chain by the fallback procedure (a node at its chain's level times
its weight, plus the level of the node before when that one was confirmed: one failure does not
end a chain); of every candidate confirmed, the smallest returned codec wins; nothing confirmed
returns the anchor, loudly; candidates are ranked on the selection part only and tested on the
test part only; the report's drop, interval and p-value are the paired statistics of the test
part's counts, the interval adjusted for the selection, with the sign of a loss.

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
from splitans import calibration as cal

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


def test_each_chain_is_a_fallback_procedure_at_its_share(search, monkeypatch):
    budget, confidence = 2.0, 0.9
    paths = search.paths((), budget, confidence)
    anchor = search.anchor()
    assert paths and sum(q["level"] for q in paths) == pytest.approx(search.family_level("base", confidence))
    first = next(q for q in paths if len(q["nodes"]) >= 2)
    nodes, level, weights = first["nodes"], first["level"], first["weights"]
    a0, a1 = level * weights[0], level * weights[1]
    # The anchor and the chain's first node fail; the second is confirmed exactly at its own
    # weight's level (a chain that stopped at its first failure would never test it); a third
    # is tested at its own level plus the one the second hands on, and fails just above it.
    p = {id(anchor): 0.9, id(nodes[0]): 0.9, id(nodes[1]): a1}
    if len(nodes) > 2:
        a2 = level * weights[2] + a1
        p[id(nodes[2])] = a2 * 1.0001
    margins = _stub(search, monkeypatch, lambda c: p.get(id(c), 0.9))
    r = search.select(budget=budget, confidence=confidence, final_fit=False).calibration
    tested = _tested(r)
    assert margins and r.confirmed and r.setting == nodes[1].name and r.p_value == a1
    assert r.level == pytest.approx(a1)
    anchor_level = sum(q["level"] * (cal.NODE_WEIGHTS[0] if q["nodes"] else 1.0) for q in paths)
    assert tested[anchor.name]["test_level"] == pytest.approx(anchor_level) and not tested[anchor.name]["confirmed"]
    assert tested[nodes[0].name]["test_level"] == pytest.approx(a0) and not tested[nodes[0].name]["confirmed"]
    assert tested[nodes[1].name]["test_level"] == pytest.approx(a1) and tested[nodes[1].name]["confirmed"]
    if len(nodes) > 2:
        assert tested[nodes[2].name]["test_level"] == pytest.approx(a2) and not tested[nodes[2].name]["confirmed"]
        # After a failure, a node of weight 0 has no level at all: not tested.
        for i in range(3, len(nodes)):
            if weights[i] == 0:
                assert nodes[i].name not in tested
                break


def test_the_smallest_returned_codec_of_every_confirmed_candidate_wins(search, monkeypatch):
    budget, confidence = 2.0, 0.9
    paths = search.paths((), budget, confidence)
    anchor = search.anchor()
    # The anchor and every node but each chain's last confirmed (each hands its level on, so
    # the last is tested too, and fails).
    confirmed = [anchor] + [c for q in paths for c in q["nodes"][:-1]]
    p = {id(c): 0.0 for c in confirmed}
    _stub(search, monkeypatch, lambda c: p.get(id(c), 1.0))
    r = search.select(budget=budget, confidence=confidence, final_fit=False).calibration
    want = min(confirmed, key=lambda c: (search._final(c, False)[1], c.name))
    assert r.confirmed and r.setting == want.name and r.p_value == 0.0
    tested = _tested(r)
    assert {n for n, t in tested.items() if t["confirmed"]} == {c.name for c in confirmed}
    assert all(q["nodes"][-1].name in tested and not tested[q["nodes"][-1].name]["confirmed"] for q in paths if q["nodes"])


def test_nothing_confirmed_returns_the_anchor_loudly(search, monkeypatch):
    _stub(search, monkeypatch, lambda c: 0.2)
    with pytest.warns(cal.CalibrationWarning, match="no candidate could be confirmed"):
        r = search.select(budget=1.0, confidence=0.9, final_fit=False).calibration
    assert not r.confirmed and not r.met and r.level == 0.0
    assert r.setting == search.anchor().name and r.p_value == 0.2
    assert "NOT confirmed" in str(r)


def _independent_counts(codec, acts, w, labels, idx):
    """b (right only uncompressed), c (right only compressed), n on the samples ``idx``."""
    ref = (acts[idx].reshape(len(idx), -1) @ w).argmax(1) == labels[idx]
    dec = codec.round_trip(acts[idx])
    got = (dec.reshape(len(idx), -1) @ w).argmax(1) == labels[idx]
    return int((ref & ~got).sum()), int((~ref & got).sum()), len(idx)


def _tail(w):
    return lambda a: np.asarray(a).reshape(len(a), -1) @ w


def _chosen(search, r):
    return {c.name: c for c in search.candidates}[r.setting]


def test_report_statistics_of_a_lossy_choice(toy):
    """A budget wide enough that a lossy candidate is chosen: the drop is positive (right
    without compression, wrong with it, counts as a loss) and equals the drop counted here on
    the test part, its interval is ``paired_drop_interval`` at the confidence adjusted for the
    candidates the chains could have returned, and the p-value is the paired test of the test
    part's counts at margin ``budget / 100``."""
    acts, w, labels = toy
    budget, confidence = 12.0, 0.8
    search = cal.Search(acts, _tail(w), labels, bits=BITS, options=())
    r = search.select(budget=budget, confidence=confidence, final_fit=False).calibration
    assert r.confirmed and r.metric == "accuracy"
    b, c, n = _independent_counts(_chosen(search, r).codec, acts, w, labels, search.test)
    assert (r.b, r.c, r.n) == (b, c, n) and n == r.n_test == len(search.test)
    assert b > c, "the toy must lose accuracy at the chosen setting"
    assert r.drop_pp == pytest.approx(100 * (b - c) / n, abs=1e-12) and r.drop_pp > 0
    on_path = {c.name for q in search.paths((), budget, confidence) for c in q["nodes"]} | {search.anchor().name}
    assert r.adjusted_for == len(on_path) > 1
    lo, hi = cal.paired_drop_interval(b, c, n, level=1 - (1 - confidence) / r.adjusted_for)
    assert r.drop_interval_pp == (pytest.approx(100 * lo, abs=1e-9), pytest.approx(100 * hi, abs=1e-9))
    assert lo < (b - c) / n < hi
    assert r.p_value == cal.paired_drop_test(b, c, n, budget / 100) and r.p_value <= r.level


def test_agreement_report_is_clopper_pearson_of_changed_predictions(toy):
    acts, w, _ = toy
    budget, confidence = 10.0, 0.85
    search = cal.Search(acts, _tail(w), bits=BITS, options=())
    r = search.select(budget=budget, confidence=confidence, final_fit=False).calibration
    test = search.test
    ref = (acts[test].reshape(len(test), -1) @ w).argmax(1)
    got = (_chosen(search, r).codec.round_trip(acts[test]).reshape(len(test), -1) @ w).argmax(1)
    changed = int((ref != got).sum())
    assert r.metric == "agreement" and changed > 0 and (r.b, r.c, r.n) == (changed, 0, len(test))
    assert r.drop_pp == pytest.approx(100 * changed / len(test), abs=1e-12)
    lo, hi = cal.clopper_pearson(changed, len(test), level=1 - (1 - confidence) / r.adjusted_for)
    assert r.drop_interval_pp == (pytest.approx(100 * lo, abs=1e-9), pytest.approx(100 * hi, abs=1e-9))
    assert r.p_value == cal.binomial_test(r.b, r.n, budget / 100)


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
    search = cal.Search(acts, lambda a: np.asarray(a, np.float32).reshape(len(a), -1) @ w, labels, metric=metric,
                        bits=(2, 8), options=())
    codec = search.select(budget, confidence)
    r = codec.calibration
    assert codec.shape == shape and codec.dtype == dtype
    test = search.test
    ref = (flat[test] @ w).argmax(1)
    got = (_chosen(search, r).codec.round_trip(a32[test]).reshape(len(test), -1) @ w).argmax(1)
    adjusted = 1 - (1 - confidence) / r.adjusted_for
    if metric == "accuracy":
        y = labels[test]
        b, c = int(((ref == y) & (got != y)).sum()), int(((ref != y) & (got == y)).sum())
        lo, hi = cal.paired_drop_interval(b, c, len(test), level=adjusted)
        assert (r.b, r.c, r.n) == (b, c, len(test))
        assert r.p_value == cal.paired_drop_test(r.b, r.c, r.n, budget / 100)
        assert r.drop_pp == pytest.approx(100 * (b - c) / len(test), abs=1e-9)
    else:
        changed = int((ref != got).sum())
        lo, hi = cal.clopper_pearson(changed, len(test), level=adjusted)
        assert r.p_value == cal.binomial_test(r.b, r.n, budget / 100)
        assert r.drop_pp == pytest.approx(100 * changed / len(test), abs=1e-9)
    assert r.drop_interval_pp == (pytest.approx(100 * lo, abs=1e-9), pytest.approx(100 * hi, abs=1e-9))
    assert r.confirmed == any(t.get("confirmed") for t in r.tried)
    assert r.p_value <= r.level if r.confirmed else r.level == 0.0
    one = a32[int(rng.integers(n))]
    assert np.array_equal(codec.decompress(codec.compress(one)), codec.round_trip(one[None])[0].astype(dtype))


# ------------------------------------------------------------------------------ the search's parts


def test_predict_is_the_selection_adjusted_prediction_interval_of_the_test_part(toy):
    acts, w, labels = toy
    search = cal.Search(acts, _tail(w), labels, bits=BITS, options=())
    r = search.select(budget=12.0, final_fit=False).calibration
    b, c, n = _independent_counts(_chosen(search, r).codec, acts, w, labels, search.test)
    for n_new, level in ((1000, 0.95), (50_000, 0.8)):
        lo, hi = cal.prediction_interval(b, c, n, n_new, 1 - (1 - level) / r.adjusted_for)
        assert r.predict(n_new, level) == (pytest.approx(100 * lo), pytest.approx(100 * hi))


def test_paths_defaults_are_select_defaults(search):
    import inspect

    def described(paths):
        return [(q["config"], q["level"], [c.name for c in q["nodes"]], q["weights"]) for q in paths]

    got = described(search.paths(()))
    kl_ref = search._kl_ref
    assert got == described(search.paths((), 0.2, 0.9))
    # The chains are ranked where the test would just confirm the budget at the defaults.
    assert kl_ref == search._kl_ref == search.reference_kl(0.2, 0.9)
    sp, ss = inspect.signature(search.paths).parameters, inspect.signature(search.select).parameters
    assert (sp["budget"].default, sp["confidence"].default) == (ss["budget"].default, ss["confidence"].default)


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


def test_predict_of_an_agreement_report_is_unpaired(toy):
    """Agreement counts changed predictions, one number: its prediction interval is the
    unpaired one (``paired=False``), which differs from the paired formula on the same counts."""
    acts, w, _ = toy
    search = cal.Search(acts, _tail(w), bits=BITS, options=())
    r = search.select(budget=10.0, final_fit=False).calibration
    assert r.metric == "agreement" and r.b > 0 and r.c == 0
    for n_new, level in ((1000, 0.95), (50_000, 0.8)):
        adjusted = 1 - (1 - level) / r.adjusted_for
        lo, hi = cal.prediction_interval(r.b, r.c, r.n, n_new, adjusted, paired=False)
        assert r.predict(n_new, level) == (pytest.approx(100 * lo), pytest.approx(100 * hi))
        assert (lo, hi) != pytest.approx(cal.prediction_interval(r.b, r.c, r.n, n_new, adjusted, paired=True))


def test_sparse_means_nonnegative_with_more_than_a_tenth_zeros():
    """The search treats maps as sparse (one-sided clip percentiles, unsigned searched ranges)
    when no value is negative and more than 10 % are zero; dense nonnegative maps are not sparse."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=(36, 3))
    tail = lambda a: np.asarray(a).reshape(len(a), -1) @ w  # noqa: E731
    dense_positive = rng.uniform(0.5, 1.5, size=(60, 4, 3, 3)).astype(np.float32)
    few_zeros = dense_positive.copy()
    few_zeros.reshape(-1)[::20] = 0  # 5 % zeros
    relu = np.maximum(rng.normal(size=(60, 4, 3, 3)), 0).astype(np.float32)  # about half zeros
    signed = rng.normal(size=(60, 4, 3, 3)).astype(np.float32)
    for acts, sparse in ((dense_positive, False), (few_zeros, False), (relu, True), (signed, False)):
        s = cal.Search(acts, tail, bits=(4,), options=())
        assert s.sparse is sparse
        labels = {c.config.split(" clip ")[1] for c in s.candidates}
        assert labels == ({"min/max", "p99.99", "p99.9"} if sparse else {"min/max", "p0.01-p99.99", "p0.1-p99.9"})


def test_large_samples_are_sized_on_fewer_samples():
    """Sizing fits context models to at most 2 M elements of selection samples (at least 4
    samples), and measures them on as many other selection samples."""
    rng = np.random.default_rng(9)
    acts = np.maximum(rng.normal(size=(40, 4, 256, 256)), 0).astype(np.float32)  # 2^18 elements a sample
    w = rng.normal(size=(64, 3))
    s = cal.Search(acts, lambda a: np.asarray(a).reshape(len(a), -1)[:, :64] @ w, bits=(8,), options=())
    assert len(s.sel) == 10
    assert len(s.size_fit) == (2 << 20) // (1 << 18) == 8
    small = cal.Search(acts[:, :, :8, :8], lambda a: np.asarray(a).reshape(len(a), -1)[:, :64] @ w, bits=(8,),
                       options=(), size_samples=6)
    assert len(small.size_fit) == 6 and len(small.size_eval) == 4  # the rest of the 10 selection samples


def test_the_power_statement_skips_a_candidate_as_large_as_the_one_returned(search, monkeypatch):
    """Only a candidate smaller than the one returned is worth more data: with every candidate
    the same size and only the anchor confirmed, no power statement is made."""
    for c in search.candidates:
        monkeypatch.setattr(c, "bytes", 100.0)
    anchor = search.anchor()
    _stub(search, monkeypatch, lambda c: 0.0 if c is anchor else 1.0)
    r = search.select(budget=50.0, confidence=0.9, final_fit=False).calibration
    assert r.confirmed and r.setting == anchor.name
    waiting = [t for t in r.tried if t.get("tested") and not t["confirmed"] and t["samples_to_confirm"] is not None]
    assert waiting, "an unconfirmed candidate that more data would confirm must have been tested"
    assert r.power is None
