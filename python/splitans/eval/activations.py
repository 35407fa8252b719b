"""Real per-sample activations at split points, split into calibration and test samples, for the
codec benchmarks (``benches/bench_codec.py``): what a fitted codec is fitted on and measured on.

Every point yields float32 arrays of shape ``(samples, *sample_shape)`` — one image or one block
of tokens per sample, as an edge device sends them:

* Fashion-MNIST families (committed checkpoints): calibration samples from the held-out
  calibration split, test samples from the test split.
* EfficientNet-Lite0 (ImageNet weights): the stem, expansion and block outputs of the 20
  ImageNet images foolbox ships and scikit-learn's two photographs, each also flipped and
  cropped at other offsets; images with an even index calibrate, odd ones test.
* MiniLM-L6: the hidden state and FFN GELU output of encoder layer 2 for Rotten Tomatoes
  reviews, their real tokens concatenated and cut into blocks of 32 tokens; the first reviews
  calibrate, the rest test.

``load(name)`` computes a point once and caches it as an .npz (``$SPLITANS_ACTIVATIONS``, default
``~/.cache/splitans/activations``); nothing is downloaded.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["POINTS", "load"]

#: name -> (source, point, kind)
POINTS: Dict[str, Tuple[str, str, str]] = {
    "resnet.layer1": ("fmnist", "resnet:layer1", "sparse"),
    "resnet.layer2": ("fmnist", "resnet:layer2", "sparse"),
    "vgg.pool1": ("fmnist", "vgg:pool1", "sparse"),
    "vgg.pool2": ("fmnist", "vgg:pool2", "sparse"),
    "mobilenetv2.block4.expand": ("fmnist", "mobilenetv2:block4.expand", "sparse"),
    "mobilenetv2.block3.out": ("fmnist", "mobilenetv2:block3.out", "dense"),
    "densenet.transition2.relu": ("fmnist", "densenet:transition2.relu", "sparse"),
    "densenet.transition1": ("fmnist", "densenet:transition1", "dense"),
    "swin.stage1": ("fmnist", "swin:stage1", "dense"),
    "efficientnet.block4.expand": ("fmnist", "efficientnet:block4.expand", "dense"),
    "lite0.stem": ("lite0", "stem", "sparse"),
    "lite0.block3.expand": ("lite0", "block3.expand", "sparse"),
    "lite0.block11.expand": ("lite0", "block11.expand", "sparse"),
    "lite0.block3.out": ("lite0", "block3.out", "dense"),
    "lite0.block8.out": ("lite0", "block8.out", "dense"),
    "minilm.hidden": ("minilm", "hidden", "dense"),
    "minilm.ffn": ("minilm", "ffn", "dense"),
}


def cache_dir() -> str:
    return os.environ.get("SPLITANS_ACTIVATIONS") or os.path.join(
        os.path.expanduser("~"), ".cache", "splitans", "activations"
    )


def load(name: str, calibration: int = 200, test: int = 200) -> Tuple[np.ndarray, np.ndarray]:
    """(calibration samples, test samples) of point `name` (a key of POINTS), float32, at most
    `calibration` and `test` of each (the EfficientNet-Lite0 and MiniLM points have fewer)."""
    if name not in POINTS:
        raise ValueError(f"unknown point {name!r}; one of {', '.join(POINTS)}")
    source, point, _ = POINTS[name]
    path = os.path.join(cache_dir(), f"{name}-{calibration}-{test}.npz")
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as d:
            return d["calibration"], d["test"]
    if source == "fmnist":
        cal, tst = _fmnist(point, calibration, test)
    elif source == "lite0":
        cal, tst = _lite0(point)
        cal, tst = cal[:calibration], tst[:test]
    else:
        cal, tst = _minilm(point, calibration, test)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, calibration=cal, test=tst)
    return cal, tst


def _fmnist(point: str, calibration: int, test: int):
    import torch

    from . import fmnist

    family, stage = point.split(":")
    model = fmnist.load(family)
    out = []
    for split, n in (("calibration", calibration), ("test", test)):
        x, _ = fmnist.load_data(split)
        with torch.no_grad():
            out.append(np.concatenate([model.head(x[i : i + 250], stage).numpy() for i in range(0, n, 250)])[:n])
    return tuple(np.ascontiguousarray(a, dtype=np.float32) for a in out)


def _images():
    """The ImageNet images foolbox ships and scikit-learn's photos, 224x224, preprocessed."""
    import torch

    from . import models

    parts = [models.sample_images()[1]]
    imagenet = models.imagenet_images()
    if imagenet is not None:
        parts.insert(0, imagenet[2])
    return torch.cat(parts)


def _views(x):
    """Each image, its mirror image and two shifted crops (edge-padded), as separate samples."""
    import torch

    views = [x, x.flip(-1)]
    for dy, dx in ((16, -24), (-20, 12)):
        views.append(torch.roll(x, shifts=(dy, dx), dims=(-2, -1)))
    return views


def _lite0(point: str):
    import torch

    from . import models

    model = models.efficientnet_lite0()
    images = _images()
    split = None if point == "stem" else models.EfficientNetSplit(model, point)
    cal: List[np.ndarray] = []
    tst: List[np.ndarray] = []
    for i in range(len(images)):
        for v in _views(images[i : i + 1]):
            with torch.no_grad():
                if split is None:
                    a = model._swish(model._bn0(model._conv_stem(v)))
                else:
                    a = split.head(v)
            (cal if i % 2 == 0 else tst).append(a[0].numpy())
    return np.stack(cal).astype(np.float32), np.stack(tst).astype(np.float32)


def _minilm(point: str, calibration: int, test: int, tokens: int = 32):
    import torch

    from .nlp import minilm, rotten_tomatoes

    texts, _ = rotten_tomatoes()
    st = minilm()
    layer = st[0].auto_model.encoder.layer[2]
    module = layer if point == "hidden" else layer.intermediate
    rows: List[np.ndarray] = []
    mask = {}

    def hook(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        for i in range(h.shape[0]):
            rows.append(h[i, : int(mask["m"][i].sum())].detach().numpy().copy())

    need = (calibration + test) * tokens
    handle = module.register_forward_hook(hook)
    try:
        for i in range(0, len(texts), 64):
            features = st.tokenize(texts[i : i + 64])
            mask["m"] = features["attention_mask"]
            with torch.no_grad():
                st(features)
            if sum(len(r) for r in rows) >= need:
                break
    finally:
        handle.remove()
    flat = np.concatenate(rows)
    blocks = flat[: len(flat) // tokens * tokens].reshape(-1, tokens, flat.shape[-1]).astype(np.float32)
    return blocks[:calibration], blocks[calibration : calibration + test]
