"""Small model factories for the runtime's tests, importable by name (``runtime_models:tiny``)
in this process and in a `splitans serve` child (whose PYTHONPATH holds tests/).

Each is a 1 x 8 x 8 input -> conv (4 channels) -> ReLU -> a linear classifier of 5 classes, with
the same weights in every process; split after ``"1"`` (the ReLU) the activation is 4 x 8 x 8."""

import numpy as np
import torch
from torch import nn

SPLIT = "1"
ACTIVATION = (4, 8, 8)


def _net():
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 5))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net.eval()


def inputs(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def tiny():
    """With example inputs."""
    net = _net()
    net.example_input = inputs(4, seed=7)
    return net


def tiny_input_shape():
    """Without example inputs; the model says its input shape."""
    net = _net()
    net.input_shape = (1, 8, 8)
    return net


def tiny_bare():
    """Neither: the server needs --input-shape."""
    return _net()


def to_input(img: np.ndarray) -> torch.Tensor:
    """This model's own preprocessing of an 8 x 8 grayscale image: to [-1, 1]."""
    return torch.from_numpy(np.asarray(img, np.float32)[..., 0] / 127.5 - 1)[None, None]


def tiny_preprocess():
    """With example inputs and a preprocess for images sent whole."""
    net = tiny()
    net.preprocess = to_input
    return net
