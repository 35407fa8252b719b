"""The report's image experiments: the Fashion-MNIST families (`evaluate_fmnist`), cut at their
stages by ``splitans.split`` (`splitans.eval.fmnist`), and EfficientNet-Lite0 on ImageNet
photographs (`evaluate_lite0`), each calibrated and measured at its split points."""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from splitans.calibration import OPTIONS, Search

from .experiments import BITS, CALIBRATION_SPLITS, CONFIDENCE, calibrated_rows, frontier_points, paper_row


def _heads(model, point: str, x, batch: int = 1000) -> np.ndarray:
    """The activations at ``point`` of every image, written into one float32 array (a list of
    per-batch tensors and their concatenation would hold them twice: 13.5 GB for 60,000 maps of
    28,224 elements)."""
    import torch

    with torch.no_grad():
        first = model.head(x[:1], point).numpy()
        out = np.empty((len(x), *first.shape[1:]), np.float32)
        for i in range(0, len(x), batch):
            out[i : i + batch] = model.head(x[i : i + batch], point).numpy()
    return out


def evaluate_fmnist(
    families: Sequence[str],
    *,
    budget_pp: float = 0.2,
    confidence: float = CONFIDENCE,
    limit: Optional[int] = None,
    calibration_limit: Optional[int] = None,
    points: Optional[Dict[str, Sequence[str]]] = None,
    options: Sequence[str] = OPTIONS,
    bits: Sequence[int] = BITS,
    frontier: int = 6,
    calibration_split: str = "calibration",
    log: Callable[[str], None] = print,
) -> Tuple[List[dict], List[dict]]:
    """Rows (the paper's setting and the calibrated codec per option set, per split point) and
    frontier points (for the plots), on the 10,000 test images (or the first `limit`); the
    calibration uses the 5,000 calibration images (or the first `calibration_limit`).

    ``calibration_split="train+calibration"`` calibrates on the calibration images followed by
    the 55,000 training images (60,000 in all): the usual source of post-training calibration
    data, 12× the samples for the paired test, at the risk of a bias (the model has fitted those
    images; the report's bracket count on test shows whether it matters). The selection part
    stays at 500 samples either way."""
    import torch

    from . import fmnist

    if calibration_split not in CALIBRATION_SPLITS:
        raise ValueError(f"unknown calibration split {calibration_split!r}: choose from {', '.join(CALIBRATION_SPLITS)}")
    torch.set_num_threads(1)  # per-sample work on small tensors: one thread is fastest (2 contend)
    xt, yt = fmnist.load_data("test")
    xc, yc = fmnist.load_data("calibration")
    if calibration_split == "train+calibration":
        xtr, ytr = fmnist.load_data("train")
        xc, yc = torch.cat([xc, xtr]), torch.cat([yc, ytr])
    if limit:
        xt, yt = xt[:limit], yt[:limit]
    if calibration_limit:
        xc, yc = xc[:calibration_limit], yc[:calibration_limit]
    yt, yc = yt.numpy(), yc.numpy()
    rows, fronts = [], []
    for family in families:
        model = fmnist.load(family)
        for p in model.parameters():
            p.requires_grad_(False)
        for point in (points or {}).get(family, fmnist.POINTS[family]):
            t0 = time.time()
            at, ac = _heads(model, point, xt), _heads(model, point, xc)
            # Points outside POINTS (any stage name works) are sparse when a tenth is exact zeros.
            kind = fmnist.POINTS[family].get(point) or ("sparse" if (ac == 0).mean() > 0.1 else "dense")

            def tail(a, _point=point):
                # Differentiable (calibrate takes the Fisher information from its gradients).
                return model.tail(a, _point)

            def predict(a, _point=point):
                with torch.no_grad():
                    t = torch.from_numpy(np.ascontiguousarray(a, np.float32))
                    return torch.cat([model.tail(t[i : i + 1000], _point).argmax(1) for i in range(0, len(t), 1000)]).numpy()

            channel_axis = at.ndim - 2 if family == "swin" else 0
            ref_t, ref_c = predict(at), predict(ac)
            meta = dict(model=family, point=point, kind=kind, elements=int(np.prod(at.shape[1:])),
                        zeros=float((at == 0).mean()), baseline_accuracy=float((ref_t == yt).mean()))
            log(f"{family} {point} ({kind}, {meta['elements']:,} elements, {meta['zeros']:.0%} zeros)")
            rows.append(paper_row(meta, ac, at, predict, ref_c, ref_t, yc, yt, "accuracy"))
            search = Search(torch.from_numpy(ac), tail, yc, axis=channel_axis, bits=bits, options=options,
                            selection=min(0.1, 500 / len(ac)), log=lambda s: log("  " + s))
            rows += calibrated_rows(search, meta, at, predict, ref_t, yt, budget_pp=budget_pp, confidence=confidence,
                                    log=log)
            for f in frontier_points(search, at, predict, ref_t, yt, points=frontier) if frontier else []:
                fronts.append(dict(model=family, point=point, kind=kind, **f))
            log(f"  [{time.time() - t0:.0f} s]")
    return rows, fronts


def lite0_views(img: np.ndarray, scales=(256, 300, 360, 440), size: int = 224):
    """Views of one HxWx3 uint8 photograph, preprocessed as EfficientNet-Lite0 expects: the
    shorter side resized to each of `scales` (bicubic), crops of `size` at the centre and the
    four corners, each also mirrored (40 views with the defaults)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    out = []
    for s in scales:
        h, w = t.shape[-2:]
        r = s / min(h, w)
        u = F.interpolate(t, size=(round(h * r), round(w * r)), mode="bicubic", align_corners=False).clamp(0, 255)
        H, W = u.shape[-2:]
        for top, left in (((H - size) // 2, (W - size) // 2), (0, 0), (0, W - size), (H - size, 0), (H - size, W - size)):
            crop = (u[..., top : top + size, left : left + size] / 255 - 0.498) / 0.502
            out += [crop, crop.flip(-1)]
    return torch.cat(out)


def _lite0_photos() -> List[np.ndarray]:
    """The 20 ImageNet photographs foolbox ships (when installed) and scikit-learn's two."""
    import importlib.util

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = []
    spec = importlib.util.find_spec("foolbox")
    if spec is not None and spec.submodule_search_locations:
        folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
        for f in sorted(os.listdir(folder)):
            if f.startswith("imagenet_") and f.endswith(".jpg"):
                photos.append(np.asarray(Image.open(os.path.join(folder, f)).convert("RGB")))
    photos += list(load_sample_images().images)
    return photos


def evaluate_lite0(
    points: Sequence[str] = ("block3.expand", "block11.expand"),
    *,
    budget_pp: float = 1.0,
    confidence: float = CONFIDENCE,
    options: Sequence[str] = OPTIONS,
    bits: Sequence[int] = (2, 3, 4, 5, 6, 8),
    scales: Sequence[int] = (256, 300, 360, 440),
    photos: Optional[int] = None,
    frontier: int = 4,
    log: Callable[[str], None] = print,
) -> Tuple[List[dict], List[dict]]:
    """EfficientNet-Lite0 (ImageNet weights) cut at expansion maps: views of the photographs
    (`lite0_views`) of even index calibrate, those of odd index test; the metric is top-1
    agreement with the uncompressed model (the drop is the fraction of changed predictions, the
    budget 1 pp: at least 99% agreement)."""
    import torch

    from . import models

    torch.set_num_threads(1)  # per-sample work on small tensors: one thread is fastest (2 contend)
    model = models.efficientnet_lite0()
    for p in model.parameters():
        p.requires_grad_(False)
    pics = _lite0_photos()[:photos]
    views = [lite0_views(p, scales) for p in pics]
    cal_x = torch.cat(views[0::2])
    test_x = torch.cat(views[1::2])
    log(f"EfficientNet-Lite0: {len(pics)} photographs, {len(cal_x)} calibration and {len(test_x)} test views")
    rows, fronts = [], []
    for point in points:
        t0 = time.time()
        split = models.EfficientNetSplit(model, point)
        ac = torch.cat([split.head(cal_x[i : i + 32]) for i in range(0, len(cal_x), 32)]).numpy()
        at = torch.cat([split.head(test_x[i : i + 32]) for i in range(0, len(test_x), 32)]).numpy()

        def tail(a, _split=split):
            return _split.tail(a, grad=True)

        def predict(a, _split=split):
            t = torch.from_numpy(np.ascontiguousarray(a, np.float32))
            return torch.cat([_split.tail(t[i : i + 32]).argmax(1) for i in range(0, len(t), 32)]).numpy()

        ref_c, ref_t = predict(ac), predict(at)
        meta = dict(model="EfficientNet-Lite0", point=point, kind="sparse", elements=int(np.prod(at.shape[1:])),
                    zeros=float((at == 0).mean()), baseline_accuracy=None)
        log(f"EfficientNet-Lite0 {point} ({meta['elements']:,} elements, {meta['zeros']:.0%} zeros)")
        rows.append(paper_row(meta, ac, at, predict, ref_c, ref_t, None, None, "agreement", sized=200))
        search = Search(torch.from_numpy(ac), tail, None, metric="agreement", axis=0, bits=bits, options=options,
                        batch_size=32, log=lambda s: log("  " + s))
        rows += calibrated_rows(search, meta, at, predict, ref_t, None, budget_pp=budget_pp, confidence=confidence,
                                log=log)
        for f in frontier_points(search, at, predict, ref_t, None, points=frontier) if frontier else []:
            fronts.append(dict(model="EfficientNet-Lite0", point=point, kind="sparse", **f))
        log(f"  [{time.time() - t0:.0f} s]")
    return rows, fronts
