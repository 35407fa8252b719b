"""What every experiment of the report does at a split point, whatever the model: code each
activation on its own (`code_items`), measure a codec on the test items (`measure_codec`), the
calibrated codec per set of quantizer options beside what the calibration predicted
(`calibrated_rows`), the size-divergence frontier for the plots (`frontier_points`) and the
paper's setting (`paper_row`). The models' own experiments are in `nets` and `nlp`; the report
that collects them is `report`."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import splitans
from splitans.calibration import OPTIONS, Search, prediction_interval

from .peers import peer_bytes

#: Coders compared on the same quantized codes in the paper's row.
CODERS: Dict[str, dict] = {
    "paper": dict(mode="csr", reshape="model"),
    "auto": dict(mode="auto"),
    "best": dict(mode="best"),
}
#: Each quantizer option on its own (with the base grid: uniform levels, percentile and
#: min/max clipping, per tensor or per channel), then all of them.
OPTION_SETS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("base", ()),
    ("+clip search", ("clip",)),
    ("+dead zone", ("dead_zone",)),
    ("+levels", ("levels",)),
    ("+allocation", ("allocation",)),
    ("+per-token", ("per_token",)),
    ("all", OPTIONS),
)
#: The issue's targets: ratio vs float32 within the budget on the test split.
TARGETS = {"sparse": 30.0, "dense": 16.0}
STRETCH = 45.0
CONFIDENCE = 0.9
#: Level of the interval that should hold the test drop.
PREDICTION_LEVEL = 0.95
#: Bit widths searched.
BITS = (1, 2, 3, 4, 5, 6, 8)
#: Calibration samples the paper row's prediction is measured on, at most.
PAPER_CALIBRATION = 10_000
#: Where evaluate_fmnist takes its calibration samples from.
CALIBRATION_SPLITS = ("calibration", "train+calibration")


def _progress(label: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{label[:100]:<100}")
        sys.stderr.flush()


def code_items(
    acts: np.ndarray,
    quant: dict,
    *,
    coders: Sequence[str] = ("best", "auto", "paper"),
    timed: int = 300,
    peers: int = 1000,
) -> Tuple[np.ndarray, Dict[str, float]]:
    """Compresses every item ``acts[i]`` on its own (batch 1) with each coder and the quantization
    options `quant`. Returns the items as the first coder decodes them, and statistics: mean
    bytes per coder, encode/decode ms per item over the first `timed` items (each later coder's
    decoded items are checked equal to the first's there: the coders are lossless on the same
    codes), the first item's mode under "best", and zstd-19 / blosc2 mean bytes over the first
    `peers` items' codes."""
    n = len(acts)
    stats: Dict[str, float] = {}
    decoded: Optional[np.ndarray] = None
    for coder in coders:
        opts = dict(CODERS[coder], **quant)
        out = np.empty(acts.shape, np.float32) if decoded is None else None
        sizes = np.empty(n)
        t_enc = t_dec = 0.0
        for i in range(n):
            t = time.perf_counter()
            blob = splitans.compress(acts[i : i + 1], threads=1, **opts)
            dt = time.perf_counter() - t
            sizes[i] = len(blob)
            if i < timed or out is not None:
                t = time.perf_counter()
                y = splitans.decompress(blob, threads=1)
                dd = time.perf_counter() - t
                if out is not None:
                    out[i] = y[0]
                elif not np.array_equal(y[0], decoded[i]):
                    raise AssertionError(f"{coder} decoded other values than {coders[0]} from the same codes")
                if i < timed:
                    t_enc, t_dec = t_enc + dt, t_dec + dd
            if coder == "best" and i == 0:
                stats["best_mode"] = splitans.inspect(blob)["mode"]
        if out is not None:
            decoded = out
        stats[f"{coder}_bytes"] = float(sizes.mean())
        stats[f"{coder}_encode_ms"] = 1e3 * t_enc / max(1, min(timed, n))
        stats[f"{coder}_decode_ms"] = 1e3 * t_dec / max(1, min(timed, n))
    assert decoded is not None
    # Each item's codes from its decoded values and its own parameters (min/max is per item).
    codes = []
    for i in range(min(peers, n)):
        info = splitans.inspect(splitans.compress(acts[i : i + 1], threads=1, **dict(CODERS["auto"], **quant)))
        codes += _codes(decoded[i : i + 1], info)
    stats.update({f"{k}_bytes": v for k, v in peer_bytes(codes).items() if v is not None})
    return decoded, stats


def _codes(decoded: np.ndarray, info: dict) -> List[np.ndarray]:
    scale = np.asarray(info["scale"], np.float32)
    zp = np.asarray(info["zero_point"], np.float32)
    shape = [1] * (decoded.ndim - 1)
    if info["axis"] is not None:
        shape[info["axis"] - 1] = -1
    scale, zp = scale.reshape(shape), zp.reshape(shape)
    safe = np.where(scale > 0, scale, 1)
    dtype = np.uint8 if info["bits"] <= 8 else np.uint16
    return [np.rint(d / safe + zp).astype(dtype) for d in decoded]




# ---------------------------------------------------------------- measuring codecs


def _decode_all(codec: splitans.Codec, items) -> Any:
    if isinstance(items, np.ndarray):
        return codec.round_trip(items)
    return [codec.round_trip(x[None])[0] for x in items]


def _predict_decoded(codec: splitans.Codec, items, predict: Callable[[Any], np.ndarray], batch: int = 1000) -> np.ndarray:
    """The model's predictions on every item as ``codec`` decodes it, ``batch`` items of an
    array at a time: 60,000 calibration maps are never decoded at once. (A list of items, the
    sentences, goes whole: its `predict` pairs each item with its side input by position.)"""
    if not isinstance(items, np.ndarray):
        return predict(_decode_all(codec, items))
    out = [predict(_decode_all(codec, items[k : k + batch])) for k in range(0, len(items), batch)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def measure_codec(codec: splitans.Codec, items, predict: Callable[[Any], np.ndarray], *, timed: int = 300,
                  checked: int = 50) -> Dict[str, Any]:
    """A codec on test items, one blob each: mean blob bytes over every item, encode and decode
    ms over the first `timed`, and the predictions of the model on the decoded items. The
    decoded values come from ``round_trip`` (quantization only, a batch at a time); the first
    `checked` blobs are decompressed and must give the same values."""
    first = _decode_all(codec, items[:checked])
    sizes = np.empty(len(items))
    t_enc = t_dec = 0.0
    for i in range(len(items)):
        x = items[i]
        t = time.perf_counter()
        blob = codec.compress(x)
        dt = time.perf_counter() - t
        sizes[i] = len(blob)
        if i < max(timed, checked):
            t = time.perf_counter()
            y = codec.decompress(blob)
            dd = time.perf_counter() - t
            if i < checked and not np.array_equal(y, first[i]):
                raise AssertionError("decompress(compress(x)) differs from round_trip(x)")
            if i < timed:
                t_enc, t_dec = t_enc + dt, t_dec + dd
    n_t = max(1, min(timed, len(items)))
    elements = float(np.mean([np.size(x) for x in items]))
    return dict(bytes=float(sizes.mean()), elements=elements, encode_ms=1e3 * t_enc / n_t,
                decode_ms=1e3 * t_dec / n_t, pred=_predict_decoded(codec, items, predict))


def _drop(pred: np.ndarray, ref: np.ndarray, labels: Optional[np.ndarray], metric: str) -> float:
    if metric == "accuracy":
        return 100 * float((ref == labels).mean() - (pred == labels).mean())
    return 100 * float((pred != ref).mean())


def _counts(pred, ref, labels, metric) -> Tuple[int, int, int]:
    if metric == "accuracy":
        r0, r1 = ref == labels, pred == labels
        return int((r0 & ~r1).sum()), int((~r0 & r1).sum()), len(pred)
    return int((pred != ref).sum()), 0, len(pred)


def calibrated_rows(
    search: Search,
    meta: dict,
    test_items,
    predict: Callable[[Any], np.ndarray],
    ref_test: np.ndarray,
    labels_test: Optional[np.ndarray],
    *,
    budget_pp: float,
    confidence: float = CONFIDENCE,
    option_sets=OPTION_SETS,
    log: Callable[[str], None] = print,
) -> List[dict]:
    """One row per option set: the codec `search` selects with those options, measured on the
    test items, beside what the calibration predicted for it."""
    rows, measured = [], {}
    metric = search.metric
    for label, opts in option_sets:
        if label != "all" and opts and not any(c.option in opts for c in search.candidates):
            continue  # an option the search could not use here (e.g. allocation without gradients)
        t0 = time.time()
        codec = search.select(budget_pp, confidence, options=search.options if label == "all" else opts or ())
        r = codec.calibration
        edge = min(v for v in search.config_sizes.values())
        if codec.id not in measured:
            measured[codec.id] = measure_codec(codec, test_items, predict)
        m = measured[codec.id]
        pred = m["pred"]
        drop = _drop(pred, ref_test, labels_test, metric)
        lo, hi = r.predict(len(pred), PREDICTION_LEVEL)
        power = r.power or {}
        row = dict(
            meta, row=label, setting=r.setting, option=r.option, confirmed=r.confirmed, metric=metric,
            bytes=m["bytes"], elements=m["elements"], bpe=8 * m["bytes"] / m["elements"],
            ratio=4 * m["elements"] / m["bytes"], expected_bytes=r.bytes_per_sample, codec_bytes=r.codec_bytes,
            cal_drop_pp=r.drop_pp, cal_lo_pp=lo, cal_hi_pp=hi, test_drop_pp=drop, inside=bool(lo <= drop <= hi),
            gap_pp=drop - r.drop_pp, p_value=r.p_value, level=r.level, adjusted_for=r.adjusted_for,
            agreement=float((pred == ref_test).mean()),
            test_accuracy=None if labels_test is None else float((pred == labels_test).mean()),
            encode_ms=m["encode_ms"], decode_ms=m["decode_ms"], test_n=len(pred), cal_n=r.n_test + r.n_selection,
            cal_test_n=r.n_test, sensitivity=r.sensitivity, edge_bytes=edge if edge < math.inf else None,
            power_setting=power.get("setting"), power_drop_pp=power.get("drop_pp"),
            power_discordance=power.get("discordance"), power_samples=power.get("samples"),
            power_ratio=4 * m["elements"] / power["bytes"] if power else None,
        )
        rows.append(row)
        log(f"  {meta.get('model', '')} {meta.get('point', '')} {label:13} {r.setting:58} {row['ratio']:6.1f}x "
            f"cal {r.drop_pp:+.2f} [{lo:+.2f}, {hi:+.2f}] test {drop:+.2f} pp {'confirmed' if r.confirmed else 'NOT confirmed'} "
            f"[{time.time() - t0:.0f} s]")
    return rows


def frontier_points(search: Search, test_items, predict, ref_test, labels_test, *, points: int = 6) -> List[dict]:
    """Candidates on the size-divergence frontier of the whole search (every option), spread
    over sizes, measured on the test items (their sizes on up to 2,000 of them): the rate-accuracy
    curve of the plot. Diagnostic only: nothing is chosen from these."""
    cands = [c for c in search.candidates if c.kl < math.inf]
    cands.sort(key=lambda c: (c.kl, c.bytes))
    front = []
    for c in cands:
        if not front or c.bytes < front[-1].bytes:
            front.append(c)
    if len(front) > points:
        logs = np.log([c.bytes for c in front])
        want = np.linspace(logs.min(), logs.max(), points)
        picked = sorted({int(np.argmin(np.abs(logs - w))) for w in want})
        front = [front[i] for i in picked]
    out = []
    sample = test_items[:2000] if isinstance(test_items, np.ndarray) else test_items[:2000]
    for c in front:
        codec = search.make_codec(c, search.fit_items)
        size = float(np.mean([len(codec.compress(x)) for x in sample]))
        pred = _predict_decoded(codec, test_items, predict)
        elements = float(np.mean([np.size(x) for x in sample]))
        out.append(dict(setting=c.name, option=c.option, bytes=size, bpe=8 * size / elements, ratio=4 * elements / size,
                        test_drop_pp=_drop(pred, ref_test, labels_test, search.metric),
                        agreement=float((pred == ref_test).mean())))
    return out


def paper_row(meta: dict, cal_items, test_items, predict, ref_cal, ref_test, labels_cal, labels_test, metric,
              *, sized: int = 1000, predict_cal: Optional[Callable[[Any], np.ndarray]] = None) -> dict:
    """The paper's setting — 8-bit per-tensor min/max of each item — with the paper's pipeline
    (self-contained container, CSR + reshape model), splitans' ``best`` container and a fitted
    codec with per-sample parameters (same codes); zstd-19 on the same codes."""
    fit_items = list(cal_items[:64]) if isinstance(cal_items, np.ndarray) else cal_items[:64]
    codec = splitans.Codec.fit(fit_items, bits=8, clip=None)
    m = measure_codec(codec, test_items, predict)
    sample = test_items[:sized]
    first = np.asarray(sample[0])
    sizes = {}
    for coder in ("paper", "best"):
        sizes[coder] = float(np.mean([len(splitans.compress(np.asarray(x)[None], bits=8, threads=1, **CODERS[coder]))
                                      for x in sample]))
    # The container's 8-bit per-item quantization and the per-sample codec's are the same rule.
    y = splitans.decompress(splitans.compress(first[None], bits=8))[0]
    assert np.array_equal(y, codec.round_trip(first[None])[0])
    codes = []
    for x in sample[:300]:
        blob = splitans.compress(np.asarray(x)[None], bits=8, threads=1)
        codes += _codes(splitans.decompress(blob), splitans.inspect(blob))
    zstd = peer_bytes(codes).get("zstd19")
    elements = float(np.mean([np.size(x) for x in sample]))
    # Its prediction from the first 10,000 calibration samples at most (a whole pass over 60,000
    # maps would cost more than every other part of this row).
    k = len(cal_items) if not isinstance(cal_items, np.ndarray) else min(len(cal_items), PAPER_CALIBRATION)
    pred_cal = _predict_decoded(codec, cal_items[:k], predict_cal or predict)
    b, c, n = _counts(pred_cal, ref_cal[:k], None if labels_cal is None else labels_cal[:k], metric)
    lo, hi = prediction_interval(b, c, n, len(test_items), PREDICTION_LEVEL, paired=metric == "accuracy")
    cal_drop = 100 * ((b - c) / n if metric == "accuracy" else b / n)
    drop = _drop(m["pred"], ref_test, labels_test, metric)
    return dict(
        meta, row="paper 8-bit", setting="8-bit per-item min/max (per-sample parameters)", option="paper", confirmed=None,
        metric=metric, bytes=m["bytes"], elements=m["elements"], bpe=8 * m["bytes"] / m["elements"],
        ratio=4 * m["elements"] / m["bytes"], paper_ratio=4 * elements / sizes["paper"],
        best_container_ratio=4 * elements / sizes["best"], zstd19_ratio=None if not zstd else 4 * elements / zstd,
        cal_drop_pp=cal_drop, cal_lo_pp=100 * lo, cal_hi_pp=100 * hi, test_drop_pp=drop,
        inside=bool(100 * lo <= drop <= 100 * hi), gap_pp=drop - cal_drop, agreement=float((m["pred"] == ref_test).mean()),
        test_accuracy=None if labels_test is None else float((m["pred"] == labels_test).mean()),
        encode_ms=m["encode_ms"], decode_ms=m["decode_ms"], test_n=len(m["pred"]), cal_n=n,
    )
