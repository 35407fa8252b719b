"""Small models of the paper's six families, trained here on Fashion-MNIST, for the evaluation.

The families are ResNet, VGG, MobileNetV2, DenseNet, a Swin-style windowed transformer and
EfficientNet (B0-style MBConv with squeeze-and-excitation and SiLU). Each is small enough to
train in a few minutes on two CPU cores. Training is seeded (`splitans.eval.train`); the checkpoints it writes
are committed under ``benches/checkpoints/fmnist`` so the evaluation does not retrain.

Data: the full Fashion-MNIST from the Debian package (``apt-get install dataset-fashion-mnist``),
read from its IDX files. The last 5,000 training images are held out as the calibration split:
models never train on them, and the evaluation chooses bit widths and clipping on them only.

Each model exposes ``head(x, point)`` (the edge side: input up to a named split point) and
``tail(a, point)`` (the server side: the rest), with ``POINTS[family]`` naming the points and
whether the activation there is a sparse ReLU/ReLU6 output or a dense one.
"""

from __future__ import annotations

import gzip
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..cut import Split, split

__all__ = ["DATA_DIR", "FAMILIES", "POINTS", "build", "checkpoint_dir", "load", "load_data", "load_numpy", "predict", "save",
           "sequential_of_stages"]

DATA_DIR = os.environ.get("SPLITANS_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
CALIBRATION = 5000
MEAN, STD = 0.2860, 0.3530

#: Split points per family: name -> "sparse" (after a ReLU/ReLU6) or "dense" (no exact zeros).
#: Any stage name of a model is a valid point (``build(family).names``); these are the ones the
#: report evaluates (the 28x28 expansion outputs, 56-75 K elements an image, are left out to
#: keep the report's run time near an hour on two cores).
POINTS: Dict[str, Dict[str, str]] = {
    "resnet": {"layer1": "sparse", "layer2": "sparse", "layer3": "sparse"},
    "vgg": {"pool1": "sparse", "pool2": "sparse", "fc1": "sparse"},
    "mobilenetv2": {"block4.expand": "sparse", "block3.out": "dense"},
    "densenet": {"transition2.relu": "sparse", "transition1": "dense"},
    "swin": {"stage1": "dense", "merge1": "dense"},
    "efficientnet": {"block4.expand": "dense", "block3.out": "dense"},
}
FAMILIES = tuple(POINTS)


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_numpy(split: str):
    """`load_data` without torch: (float32 N x 1 x 28 x 28 numpy array, normalized; int64 labels).
    The same values as `load_data` (the edge reads its inputs with this)."""
    prefix = "t10k" if split == "test" else "train"
    img_path = os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz")
    lbl_path = os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz")
    if not os.path.exists(img_path):
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {DATA_DIR}: run `apt-get update && apt-get install -y "
            "dataset-fashion-mnist`, or set SPLITANS_FMNIST_DIR to a folder with its IDX .gz files"
        )
    images, labels = _read_idx(img_path), _read_idx(lbl_path)
    if split == "train":
        images, labels = images[:-CALIBRATION], labels[:-CALIBRATION]
    elif split == "calibration":
        images, labels = images[-CALIBRATION:], labels[-CALIBRATION:]
    elif split != "test":
        raise ValueError(f"split must be 'train', 'calibration' or 'test', not {split!r}")
    x = (images.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)
    return x[:, None], labels.astype(np.int64)


def load_data(split: str):
    """``split`` is "train" (55,000), "calibration" (the 5,000 held out) or "test" (10,000).
    Returns (images as float32 N x 1 x 28 x 28 torch tensor, normalized; int64 labels)."""
    import torch

    x, labels = load_numpy(split)
    return torch.from_numpy(x), torch.from_numpy(labels)


def sequential_of_stages(names, modules, classifier):
    """An ``nn.Sequential`` of the stages, ``"a.b"`` names nested as child ``b`` of ``a``; a stage
    named ``a`` after ``a.*`` stages becomes ``a.rest``: a point is a stage's name, for
    ``splitans.split``."""
    from torch import nn

    top: "OrderedDict[str, object]" = OrderedDict()
    for name, module in zip(names, modules):
        outer, dot, inner = name.partition(".")
        if dot:
            top.setdefault(outer, OrderedDict())[inner] = module
        elif outer in top:
            top[outer]["rest"] = module
        else:
            top[outer] = module
    seq = nn.Sequential(OrderedDict((k, nn.Sequential(v) if isinstance(v, OrderedDict) else v) for k, v in top.items()))
    seq.add_module("classifier", classifier)
    return seq


def _modules():
    """The architectures, defined lazily so that importing this module needs no torch."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Staged(nn.Module):
        """A model as an ordered chain of named stages ending in a classifier. Split points are
        stage boundaries: nothing but the activation at the point crosses it (no skip
        connection spans a split point, so the server needs only what the edge sends). The
        halves are ``splitans.split``'s, of the model as an ``nn.Sequential`` of its stages
        (`sequential_of_stages`), sharing its modules: the harness cuts as a user would."""

        family = ""

        def __init__(self, stages: List[Tuple[str, nn.Module]], classifier: nn.Module):
            super().__init__()
            self.names = [n for n, _ in stages]
            self.chain = nn.ModuleList([m for _, m in stages])
            self.classifier = classifier
            self._cuts: Dict[str, Split] = {}  # a plain dict: the halves are no submodules of their own

        def cut(self, point: str) -> Split:
            """``(head, tail)`` at the stage named `point` (a KeyError names the stages)."""
            if point not in self.names:
                raise KeyError(f"{self.family}: unknown split point {point!r}; stages: {', '.join(self.names)}")
            if point not in self._cuts:
                seq = sequential_of_stages(self.names, list(self.chain), self.classifier)
                # A new Sequential is in training mode, and split() gives its halves the
                # model's mode: set it to this model's first, or the shared modules would switch.
                self._cuts[point] = split(seq.train(self.training), point, check=False)
            return self._cuts[point]

        def head(self, x, point: str):
            """The edge side: the input through the stage named `point`."""
            return self.cut(point).head(x)

        def tail(self, a, point: str):
            """The server side: the stages after `point`, then the classifier."""
            return self.cut(point).tail(a)

        def forward(self, x):
            for m in self.chain:
                x = m(x)
            return self.classifier(x)

    def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)

    class PoolFC(nn.Module):
        def __init__(self, c, classes=10):
            super().__init__()
            self.fc = nn.Linear(c, classes)

        def forward(self, a):
            return self.fc(a.mean((2, 3)))

    # ---- ResNet: basic blocks, 16-32-64 channels (the network MODELS.md measured).
    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, 1, act=None))
            self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return F.relu(self.body(x) + self.short(x))

    def resnet():
        return [
            ("stem", conv_bn(1, 16)),
            ("layer1", nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))),
            ("layer2", nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))),
            ("layer3", nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1))),
        ], PoolFC(64)

    # ---- VGG: 3x3 conv-BN-ReLU pairs and max pooling, then a two-layer classifier.
    def vgg():
        return [
            ("pool1", nn.Sequential(conv_bn(1, 32), conv_bn(32, 32), nn.MaxPool2d(2))),
            ("pool2", nn.Sequential(conv_bn(32, 64), conv_bn(64, 64), nn.MaxPool2d(2))),
            ("pool3", nn.Sequential(conv_bn(64, 128), nn.MaxPool2d(2), nn.Flatten())),
            ("fc1", nn.Sequential(nn.Linear(128 * 9, 256), nn.ReLU(), nn.Dropout(0.3))),
        ], nn.Linear(256, 10)

    # ---- MobileNetV2 / EfficientNet: inverted residual (MBConv) blocks. A block with a
    # residual is one stage; a block without one (stride 2 or a width change) is two, so that
    # its expansion output (after ReLU6 or SiLU) is a split point.
    class SqueezeExcite(nn.Module):
        def __init__(self, c, squeeze):
            super().__init__()
            self.reduce, self.expand = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

        def forward(self, x):
            s = F.silu(self.reduce(x.mean((2, 3), keepdim=True)))
            return x * torch.sigmoid(self.expand(s))

    class MBConv(nn.Module):
        def __init__(self, cin, cout, expand, k, stride, act, se, expand_stage=False):
            super().__init__()
            mid = cin * expand
            self.expand = conv_bn(cin, mid, 1, act=act) if expand != 1 else nn.Identity()
            self.rest = nn.Sequential(
                conv_bn(mid, mid, k, stride, groups=mid, act=act),
                SqueezeExcite(mid, max(1, cin // 4)) if se else nn.Identity(),
                conv_bn(mid, cout, 1, act=None),
            )
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.rest(self.expand(x))
            return x + y if self.residual else y

    def mbconv_stages(spec, cin, act, se):
        stages, n = [], 0
        for expand, cout, repeats, stride, k in spec:
            for r in range(repeats):
                n += 1
                block = MBConv(cin, cout, expand, k, stride if r == 0 else 1, act, se)
                if block.residual:
                    stages.append((f"block{n}.out", block))
                else:
                    stages.append((f"block{n}.expand", block.expand))
                    stages.append((f"block{n}.out", block.rest))
                cin = cout
        return stages, cin

    def mobilenetv2():
        # (expand, channels, repeats, stride, kernel)
        spec = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 32, 2, 2, 3), (6, 64, 1, 1, 3)]
        stages, c = mbconv_stages(spec, 16, nn.ReLU6, se=False)
        return [("stem", conv_bn(1, 16, act=nn.ReLU6))] + stages + [("head", conv_bn(c, 256, 1, act=nn.ReLU6))], PoolFC(256)

    def efficientnet():
        spec = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 1, 1, 3)]
        stages, c = mbconv_stages(spec, 16, nn.SiLU, se=True)
        return [("stem", conv_bn(1, 16, act=nn.SiLU))] + stages + [("head", conv_bn(c, 256, 1, act=nn.SiLU))], PoolFC(256)

    # ---- DenseNet: bottleneck dense layers (BN-ReLU-1x1-BN-ReLU-3x3), growth 12; transitions
    # BN-ReLU-1x1-avgpool, whose BN-ReLU output is a stage so it can be a split point.
    class DenseLayer(nn.Module):
        def __init__(self, cin, growth):
            super().__init__()
            self.body = nn.Sequential(
                nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
            )

        def forward(self, x):
            return torch.cat([x, self.body(x)], 1)

    def densenet(growth=12, layers=4):
        stages, c = [("stem", nn.Conv2d(1, 24, 3, 1, 1, bias=False))], 24
        for b in range(1, 4):
            block = []
            for _ in range(layers):
                block.append(DenseLayer(c, growth))
                c += growth
            stages.append((f"dense{b}", nn.Sequential(*block)))
            if b < 3:
                stages.append((f"transition{b}.relu", nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())))
                stages.append((f"transition{b}", nn.Sequential(nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2))))
                c //= 2
        stages.append(("final", nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())))
        return stages, PoolFC(c)

    # ---- Swin-style: patch embedding, windowed multi-head self-attention with shifted windows
    # and relative position bias, GELU MLPs, patch merging. Activations are (N, H, W, C).
    class WindowAttention(nn.Module):
        def __init__(self, dim, heads, window):
            super().__init__()
            self.heads, self.window = heads, window
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.bias = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
            coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
            rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
            self.register_buffer("index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

        def forward(self, x, mask):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1) + self.bias[:, self.index]
            if mask is not None:
                attn = attn.view(-1, mask.shape[0], self.heads, n, n) + mask[None, :, None]
                attn = attn.view(-1, self.heads, n, n)
            return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))

    class SwinBlock(nn.Module):
        def __init__(self, dim, heads, window, shift, size):
            super().__init__()
            self.window, self.shift = window, shift
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = WindowAttention(dim, heads, window)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
            mask = None
            if shift:
                region = torch.zeros(size, size)
                cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
                for i, (hs, ws) in enumerate((h, w) for h in cuts for w in cuts):
                    region[hs, ws] = i
                r = self._windows(region[None, :, :, None]).squeeze(-1)
                mask = (r[:, None, :] != r[:, :, None]).float() * -100.0
            self.register_buffer("mask", mask, persistent=False)

        def _windows(self, x):
            b, h, w, c = x.shape
            s = self.window
            return x.view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)

        def forward(self, x):
            b, h, w, c = x.shape
            y = self.norm1(x)
            if self.shift:
                y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
            y = self.attn(self._windows(y), self.mask)
            s = self.window
            y = y.view(b, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
            if self.shift:
                y = torch.roll(y, (self.shift, self.shift), (1, 2))
            x = x + y
            return x + self.mlp(self.norm2(x))

    class PatchEmbed(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.proj, self.norm = nn.Conv2d(1, dim, 2, 2), nn.LayerNorm(dim)

        def forward(self, x):
            return self.norm(self.proj(x).permute(0, 2, 3, 1))

    class PatchMerge(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm, self.reduce = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

        def forward(self, x):
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
            return self.reduce(self.norm(x))

    class SwinHead(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm, self.fc = nn.LayerNorm(dim), nn.Linear(dim, 10)

        def forward(self, x):
            return self.fc(self.norm(x).mean((1, 2)))

    def swin(dim=48):
        return [
            ("embed", PatchEmbed(dim)),
            ("stage1", nn.Sequential(SwinBlock(dim, 3, 7, 0, 14), SwinBlock(dim, 3, 7, 3, 14))),
            ("merge1", PatchMerge(dim)),
            ("stage2", nn.Sequential(SwinBlock(2 * dim, 6, 7, 0, 7), SwinBlock(2 * dim, 6, 7, 0, 7))),
        ], SwinHead(2 * dim)

    return Staged, dict(resnet=resnet, vgg=vgg, mobilenetv2=mobilenetv2, densenet=densenet, swin=swin,
                        efficientnet=efficientnet)


def build(family: str):
    """An untrained model of `family` (one of FAMILIES), in eval mode."""
    if family not in POINTS:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    Staged, makers = _modules()
    stages, classifier = makers[family]()
    model = Staged(stages, classifier)
    model.family = family
    missing = [p for p in POINTS[family] if p not in model.names]
    assert not missing, (family, missing, model.names)
    return model.eval()


def checkpoint_dir() -> str:
    """Where checkpoints live: $SPLITANS_CHECKPOINTS, else benches/checkpoints/fmnist in the
    source tree this package was installed from when it is there, else ~/.cache/splitans/fmnist."""
    env = os.environ.get("SPLITANS_CHECKPOINTS")
    if env:
        return env
    here = os.path.join(os.getcwd(), "benches", "checkpoints", "fmnist")
    if os.path.isdir(here):
        return here
    return os.path.join(os.path.expanduser("~"), ".cache", "splitans", "fmnist")


def predict(model, x, batch: int = 1000):
    """Class predictions (int64 numpy) of `model` on `x`, in batches, without gradients."""
    import torch

    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()


def load(family: str, directory: Optional[str] = None):
    """The trained `family` model from `directory` (default `checkpoint_dir()`). A missing
    checkpoint raises FileNotFoundError naming the command that trains it
    (``splitans train-fmnist``, `splitans.eval.train`)."""
    import torch

    directory = directory or checkpoint_dir()
    path = os.path.join(directory, f"{family}.npz")
    model = build(family)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint {path}; run `splitans train-fmnist --families {family}`")
    # Plain arrays, no pickle: nothing in a checkpoint can run code (torch.load's weights-only
    # unpickler also refuses its own files in some processes, seen after NVRTC was loaded).
    with np.load(path, allow_pickle=False) as data:
        state = {k: torch.from_numpy(data[k]) for k in data.files}
    model.load_state_dict(state, strict=True)
    return model.eval()


def save(model, path: str) -> None:
    """The state dict of `model` as an .npz of plain arrays."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
