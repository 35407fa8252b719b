"""Model factories for `splitans serve --model splitans.eval.serving:NAME` and `splitans edge`.

Each returns a trained model in eval mode as an ``nn.Sequential`` of named stages (nested where a
stage has named parts, so ``"block3.expand"`` is a point), with ``example_input`` (a batch of
real inputs), ``preprocess`` (an H x W x C uint8 image to the model's input; also under its
earlier name ``input_transform``) and
``class_names`` (the output classes, by index) set.

- ``fmnist_resnet``, ``fmnist_vgg``, ``fmnist_mobilenetv2``, ``fmnist_densenet``, ``fmnist_swin``,
  ``fmnist_efficientnet``: the Fashion-MNIST families of `splitans.eval.fmnist`, from their
  committed checkpoints; points are the stage names (``layer2``, ``block4.expand``, ...).
- ``efficientnet_lite0``: EfficientNet-Lite0 with its ImageNet weights; points ``stem``,
  ``block{i}`` (a block's output) and ``block{i}.expand`` (the ReLU6 output of an expanding
  block's expansion, for blocks without a skip connection across it).
"""

from __future__ import annotations

import os
from collections import OrderedDict

from .fmnist import sequential_of_stages  # served models are the same Sequential the harness cuts

__all__ = ["efficientnet_lite0", "fmnist_densenet", "fmnist_efficientnet", "fmnist_mobilenetv2", "fmnist_resnet",
           "fmnist_swin", "fmnist_vgg", "fmnist_model", "sequential_of_stages"]


def _checkpoints() -> str:
    # The source tree's checkpoints wherever the process runs (a Ray replica's working folder
    # is not ours), else the harness' default.
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "benches", "checkpoints", "fmnist"))
    from . import fmnist

    return os.environ.get("SPLITANS_CHECKPOINTS") or (here if os.path.isdir(here) else fmnist.checkpoint_dir())


def _fmnist_transform(img):
    import numpy as np
    import torch

    from .fmnist import MEAN, STD

    a = np.asarray(img, dtype=np.float32)
    a = a[..., 0] if a.ndim == 3 else a
    return ((torch.from_numpy(a) / 255 - MEAN) / STD)[None, None]


def fmnist_model(family: str, examples: int = 8):
    from . import fmnist

    staged = fmnist.load(family, _checkpoints())
    model = sequential_of_stages(staged.names, list(staged.chain), staged.classifier).eval()
    x, _ = fmnist.load_data("test") if os.path.exists(os.path.join(fmnist.DATA_DIR, "t10k-images-idx3-ubyte.gz")) else (None, None)
    if x is None:  # no data set here: a deterministic input of the right shape
        import torch

        x = torch.linspace(-1, 2, 28 * 28 * examples).reshape(examples, 1, 28, 28)
    model.example_input = x[:examples]
    model.preprocess = model.input_transform = _fmnist_transform
    model.family = family
    from .labels import FASHION_MNIST

    model.class_names = FASHION_MNIST
    return model


def fmnist_resnet():
    return fmnist_model("resnet")


def fmnist_vgg():
    return fmnist_model("vgg")


def fmnist_mobilenetv2():
    return fmnist_model("mobilenetv2")


def fmnist_densenet():
    return fmnist_model("densenet")


def fmnist_swin():
    return fmnist_model("swin")


def fmnist_efficientnet():
    return fmnist_model("efficientnet")


def efficientnet_lite0():
    """EfficientNet-Lite0 (ImageNet-1k) as named stages; ``example_input``: scikit-learn's two
    photographs, preprocessed; ``preprocess``: an image to the input, as the model was trained (a
    224 x 224 x 3 image is taken as the crop; any other size is resized so that its shorter side
    is 256, then centre-cropped)."""
    import torch
    from torch import nn

    from . import models

    m = models.efficientnet_lite0()

    class Block(nn.Module):
        """One MBConv block, as the model runs it at inference (no drop-connect)."""

        def __init__(self, block):
            super().__init__()
            self.block = block

        def forward(self, x):
            return self.block(x, drop_connect_rate=None)

    class AfterExpand(nn.Module):
        """The rest of an expanding block after its expansion's ReLU6 (no skip: checked)."""

        def __init__(self, b):
            super().__init__()
            self.b = b

        def forward(self, x):
            b = self.b
            x = b._swish(b._bn1(b._depthwise_conv(x)))
            if b.has_se:
                s = b._se_expand(b._swish(b._se_reduce(nn.functional.adaptive_avg_pool2d(x, 1))))
                x = torch.sigmoid(s) * x
            return b._bn2(b._project_conv(x))

    class Pool(nn.Module):
        def __init__(self, pool, dropout):
            super().__init__()
            self.pool, self.dropout = pool, dropout

        def forward(self, x):
            return self.dropout(self.pool(x).flatten(1))

    stages = OrderedDict(stem=nn.Sequential(m._conv_stem, m._bn0, m._swish))
    for i, b in enumerate(m._blocks):
        a = b._block_args
        skip = b.id_skip and a.stride == 1 and a.input_filters == a.output_filters
        if a.expand_ratio != 1 and not skip:
            stages[f"block{i}"] = nn.Sequential(OrderedDict(
                expand=nn.Sequential(b._expand_conv, b._bn0, b._swish), rest=AfterExpand(b)))
        else:
            stages[f"block{i}"] = Block(b)
    stages["head"] = nn.Sequential(m._conv_head, m._bn1, m._swish)
    stages["pool"] = Pool(m._avg_pooling, m._dropout)
    stages["classifier"] = m._fc
    model = nn.Sequential(stages).eval()
    _, images = models.sample_images()
    model.example_input = images
    def preprocess(img):
        img = np.asarray(img)
        if img.shape[:2] != (224, 224):
            return models.preprocess(img)
        return (torch.from_numpy(img.astype("float32")).permute(2, 0, 1)[None] / 255 - 0.498) / 0.502

    import numpy as np

    model.preprocess = model.input_transform = preprocess
    from .labels import imagenet

    model.class_names = imagenet()
    return model
