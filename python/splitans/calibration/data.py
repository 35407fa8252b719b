"""Samples in and logits out, as a calibration handles them: the calibration samples as float32
(one array, or a list when their shapes differ), the channel axis a sample most likely has, and
the tail's outputs as float64 logits with their divergence from the uncompressed ones."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .. import _feature


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _logits(out: Any) -> np.ndarray:
    if _is_torch(out):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, np.float64)


def _kl(ref: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Per-sample KL(softmax(ref) || softmax(new))."""
    a = ref - ref.max(1, keepdims=True)
    b = new - new.max(1, keepdims=True)
    la = a - np.log(np.exp(a).sum(1, keepdims=True))
    lb = b - np.log(np.exp(b).sum(1, keepdims=True))
    return (np.exp(la) * (la - lb)).sum(1)


def _auto_axis(shape: Sequence[Optional[int]]) -> Optional[int]:
    """The channel axis of a sample: the only axis of a vector, the last of a 2-d sample
    (tokens x features), the first of a 3-d map unless its first two axes are equal and the last
    differs (H x W x C)."""
    d = len(shape)
    if d == 0:
        return None
    if d == 1:
        return 0
    if d == 2:
        return 1
    if d == 3 and shape[0] == shape[1] and shape[1] != shape[2]:
        return 2
    return 0


def _samples(activations: Any):
    """(float32 samples: an array with samples along axis 0, or a list of arrays when their
    shapes differ; the float dtype's name)."""
    if isinstance(activations, np.ndarray) or _is_torch(activations):
        arr, name = _feature.to_float32(activations)
        if arr.ndim == 0:
            raise ValueError("activations must hold samples along the first axis")
        return np.ascontiguousarray(arr), name
    items, names = [], set()
    for a in activations:
        x, n = _feature.to_float32(a)
        items.append(np.ascontiguousarray(x))
        names.add(n)
    if not items:
        raise ValueError("calibrate needs calibration samples")
    if len(names) > 1:
        raise TypeError(f"calibration samples of several dtypes: {sorted(names)}")
    if all(x.shape == items[0].shape for x in items):
        return np.stack(items), names.pop()
    return items, names.pop()
