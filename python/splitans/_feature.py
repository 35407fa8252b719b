"""Lossy compression of float feature tensors: quantize, pick dense or CSR, rANS-code."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, _quantizers
from ._options import GPU_MODES, Options, Percentile, _check_bits, _check_reshape  # noqa: F401 - re-exported

__all__ = ["Percentile", "compress_feature", "plan", "to_float32"]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


ClipArg = Union[None, Tuple[float, float], Sequence[Tuple[float, float]], Percentile]


def to_float32(x: Any) -> Tuple[np.ndarray, str]:
    """A C-contiguous float32 numpy array of ``x`` and the name of its float dtype."""
    if type(x) is np.ndarray and x.dtype.char == "f" and x.dtype.isnative and x.flags.c_contiguous:
        # Already what is wanted (the common call): no errstate context (~4 µs), no dtype.name.
        return x, "float32"
    if type(x).__module__.startswith("torch"):
        if getattr(x, "is_cuda", False):
            raise ValueError("compress() runs on the CPU: use splitans.compress_gpu for a CUDA tensor, or .cpu() first")
        name = str(x.dtype).replace("torch.", "")
        if name not in FLOAT_DTYPES:
            raise TypeError(f"expected a float tensor, got {x.dtype}")
        a = x.detach().float().contiguous().numpy()
        return a, name
    a = np.asarray(x)
    name = a.dtype.name
    if name not in FLOAT_DTYPES:
        raise TypeError(f"expected a float array, got {a.dtype}")
    with np.errstate(over="ignore"):  # float64 beyond float32 becomes ±inf: handled in _prepare
        a = a.astype(np.float32, copy=False)
    return (a if a.flags.c_contiguous else a.copy(order="C")), name


def _clip_ranges(a: np.ndarray, clip: ClipArg, axis: Optional[int], nonfinite: str) -> Optional[list]:
    if clip is None:
        return None
    if isinstance(clip, Percentile):
        return _quantizers.clip_ranges([a], axis, clip, nonfinite=nonfinite)
    arr = np.asarray(clip, dtype=np.float64)
    if arr.shape == (2,):
        return [(float(arr[0]), float(arr[1]))]
    if arr.ndim == 2 and arr.shape[1] == 2:
        return [(float(l), float(h)) for l, h in arr]
    raise ValueError(f"clip must be (low, high), a list of per-channel (low, high), or Percentile(low, high); got {clip!r}")


def _axis(axis: Optional[int], ndim: int) -> Optional[int]:
    if axis is None:
        return None
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis!r} out of range for a {ndim}-d tensor")
    return int(axis) % ndim


def _beyond_float32(x: Any, a: np.ndarray) -> Optional[int]:
    """Flat index of the first finite value of float64 input `x` that float32 `a` holds as an
    infinity (its magnitude is beyond the float32 range), if any."""
    if type(x).__module__.startswith("torch"):
        if x.dtype.is_floating_point and x.element_size() == 8:
            x = x.detach().numpy()
        else:
            return None
    x = np.asarray(x)
    if x.dtype != np.float64 or np.isfinite(a).all():
        return None
    over = np.flatnonzero(np.isinf(a).ravel() & np.isfinite(x).ravel())
    return int(over[0]) if over.size else None


def _prepare(x, options):
    """`x` as float32 with what the codec takes for it under `options` (a validated
    ``splitans.Options``): dtype name, channel axis, clip ranges, scale and zero point."""
    a, dtype = to_float32(x)
    axis = _axis(options.axis, a.ndim)
    nonfinite = options.nonfinite
    clip = options.clip
    if nonfinite == "error" and dtype == "float64":
        i = _beyond_float32(x, a)
        if i is not None:
            v = np.asarray(x.detach().numpy() if type(x).__module__.startswith("torch") else x).ravel()[i]
            raise ValueError(
                f"input holds {float(v)!r} at flat index {i}, beyond the float32 range (about ±3.4e38) in which the codec "
                "quantizes: scale or clip it first, or pass nonfinite='clamp' to clamp it to the range end like an infinity"
            )
    if nonfinite == "error" and clip is not None and not np.isfinite(a).all():
        # Percentiles of NaN are NaN: name the real problem.
        bad = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
        raise ValueError(f"input holds NaN or infinity (first at flat index {bad}); pass nonfinite='clamp'")
    ranges = _clip_ranges(a, clip, axis, nonfinite)
    s, z = (None, None) if options.scale is None else (list(options.scale), list(options.zero_point))
    if a.size == 0:
        # An empty tensor has no channels to parameterize: it is written per tensor.
        axis = None
        ranges = ranges[:1] if ranges else ranges
        s, z = (s[:1], z[:1]) if s is not None else (s, z)
    return a, dtype, axis, ranges, s, z


def compress_feature(x: Any, options: Any) -> Tuple[bytes, Dict[str, Any]]:
    """The container of float `x` under `options` (a ``splitans.Options`` with bits) and the plan."""
    a, dtype, axis, ranges, s, z = _prepare(x, options)
    return _core.encode_feature(a, dtype, options._native, axis, ranges, s, z)


def compress_bytes(x: Any, options: Any) -> bytes:
    """`compress_feature` without the plan: the container only."""
    a, dtype, axis, ranges, s, z = _prepare(x, options)
    return _core.compress_feature(a, dtype, options._native, axis, ranges, s, z)


def prepare_many(xs, options):
    """`_prepare` of every tensor of a batch: the items `_core.encode_feature_many` takes."""
    items = []
    for i, x in enumerate(xs):
        try:
            items.append(_prepare(x, options))
        except (TypeError, ValueError) as e:
            raise type(e)(f"item {i}: {e}") from None
    return items


def plan(
    x: Any,
    bits: int = 8,
    *,
    axis: Optional[int] = None,
    scale: Any = None,
    zero_point: Any = None,
    clip: ClipArg = None,
    mode: str = "auto",
    reshape: Any = "model",
    nonfinite: str = "error",
    search: bool = True,
) -> Dict[str, Any]:
    """What ``compress(x, bits=..., ...)`` would do, without coding anything.

    Returns the quantization parameters, the number of nonzeros (elements off the zero point),
    the predicted bytes of the dense stream, and for every candidate row count N (divisors of
    the element count with at most 65,535 columns) the CSR size predicted by the approximate
    model and, with ``search=True``, by exact empirical entropies; then the N that ``reshape``
    picks, the mode ``mode`` picks, and why.

    >>> import numpy as np, splitans
    >>> x = np.maximum(np.random.default_rng(0).normal(size=(1, 8, 16, 16)), 0).astype(np.float32)
    >>> p = splitans.plan(x, bits=4)
    >>> p["mode"] in ("dense", "csr") and p["rows"] in [c["rows"] for c in p["candidates"]]
    True
    """
    options = Options(bits=bits, axis=axis, scale=scale, zero_point=zero_point, clip=clip, mode=mode, reshape=reshape,
                      nonfinite=nonfinite)
    if mode not in GPU_MODES:
        raise ValueError(f"plan() predicts 'dense', 'csr' or 'auto' (the context coder is sized by coding), got {mode!r}")
    a, _, axis, ranges, s, z = _prepare(x, options)
    return _core.plan_feature(a, options._native, axis, ranges, s, z, bool(search))
