"""Lossy compression of float feature tensors: quantize, pick dense or CSR, rANS-code."""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, _quantizers

__all__ = ["Percentile", "compress_feature", "plan", "to_float32"]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


class Percentile(NamedTuple):
    """Clip to the ``low``-th and ``high``-th percentiles of the data before quantizing
    (per channel with ``axis=``): ``clip=splitans.Percentile(0.1, 99.9)``."""

    low: float
    high: float


ClipArg = Union[None, Tuple[float, float], Sequence[Tuple[float, float]], Percentile]


def to_float32(x: Any) -> Tuple[np.ndarray, str]:
    """A C-contiguous float32 numpy array of ``x`` and the name of its float dtype."""
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


def _params(scale: Any, zero_point: Any, bits: int) -> Tuple[Optional[list], Optional[list]]:
    if scale is None and zero_point is None:
        return None, None
    if scale is None or zero_point is None:
        raise ValueError("scale= and zero_point= go together")
    with np.errstate(over="ignore"):  # a scale beyond float32 becomes inf, refused by the codec
        s = np.atleast_1d(np.asarray(scale, dtype=np.float32)).ravel().tolist()
    z = np.atleast_1d(np.asarray(zero_point)).ravel()
    if z.dtype == object or not np.issubdtype(z.dtype, np.integer) or z.dtype == np.bool_:
        raise TypeError(f"zero_point must be an integer or integers, got {zero_point!r}")
    levels = (1 << bits) - 1
    bad = [int(v) for v in z.tolist() if not 0 <= int(v) <= levels]
    if bad:
        raise ValueError(f"zero_point {bad[0]} is out of range for {bits} bits: it must be in 0..{levels}")
    return s, [int(v) for v in z.tolist()]


def _axis(axis: Optional[int], ndim: int) -> Optional[int]:
    if axis is None:
        return None
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis!r} out of range for a {ndim}-d tensor")
    return int(axis) % ndim


def _check_bits(bits: Any) -> int:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 1 to 16, got {bits!r}")
    return int(bits)


def _check_reshape(reshape: Any) -> Any:
    if isinstance(reshape, (int, np.integer)) and not isinstance(reshape, (bool, np.bool_)):
        if not 1 <= reshape < 1 << 63:
            raise ValueError(
                f"reshape must be a positive row count that divides the element count, 'model' or 'search', got {reshape}"
            )
        return int(reshape)
    if reshape in ("model", "search"):
        return reshape
    raise ValueError(f"reshape must be a positive row count, 'model' or 'search', got {reshape!r}")


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


def _prepare(x, bits, axis, scale, zero_point, clip, nonfinite):
    a, dtype = to_float32(x)
    bits = _check_bits(bits)
    axis = _axis(axis, a.ndim)
    if nonfinite not in ("error", "clamp"):
        raise ValueError(f"nonfinite must be 'error' or 'clamp', got {nonfinite!r}")
    if nonfinite == "error" and dtype == "float64":
        i = _beyond_float32(x, a)
        if i is not None:
            v = np.asarray(x.detach().numpy() if type(x).__module__.startswith("torch") else x).ravel()[i]
            raise ValueError(
                f"input holds {float(v)!r} at flat index {i}, beyond the float32 range (about ±3.4e38) in which the codec "
                "quantizes: scale or clip it first, or pass nonfinite='clamp' to clamp it to the range end like an infinity"
            )
    if clip is not None and scale is not None:
        raise ValueError("pass clip= or scale=/zero_point=, not both")
    if nonfinite == "error" and clip is not None and not np.isfinite(a).all():
        # Percentiles of NaN are NaN: name the real problem.
        bad = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
        raise ValueError(f"input holds NaN or infinity (first at flat index {bad}); pass nonfinite='clamp'")
    ranges = _clip_ranges(a, clip, axis, nonfinite)
    s, z = _params(scale, zero_point, bits)
    if a.size == 0:
        # An empty tensor has no channels to parameterize: it is written per tensor.
        axis = None
        ranges = ranges[:1] if ranges else ranges
        s, z = (s[:1], z[:1]) if s is not None else (s, z)
    return a, dtype, bits, axis, ranges, s, z


def compress_feature(
    x: Any,
    *,
    bits: int,
    axis: Optional[int],
    scale: Any,
    zero_point: Any,
    clip: ClipArg,
    mode: str,
    reshape: Any,
    nonfinite: str,
    precision_bits: Optional[int],
    chunk_log2: Optional[int],
    threads: int,
    version: int = 3,
) -> Tuple[bytes, Dict[str, Any]]:
    a, dtype, bits, axis, ranges, s, z = _prepare(x, bits, axis, scale, zero_point, clip, nonfinite)
    return _core.encode_feature(
        a, dtype, bits, axis, ranges, s, z, mode, _check_reshape(reshape), nonfinite, precision_bits, chunk_log2, threads,
        version,
    )


def compress_bytes(x, bits, axis, scale, zero_point, clip, mode, reshape, nonfinite, precision_bits, chunk_log2, threads,
                   version: int = 3) -> bytes:
    """`compress_feature` without the plan: the container only."""
    a, dtype, bits, axis, ranges, s, z = _prepare(x, bits, axis, scale, zero_point, clip, nonfinite)
    return _core.compress_feature(
        a, dtype, bits, axis, ranges, s, z, mode, _check_reshape(reshape), nonfinite, precision_bits, chunk_log2, threads,
        version,
    )


def prepare_many(xs, bits, axis, scale, zero_point, clip, nonfinite):
    """`_prepare` of every tensor of a batch: the items `_core.encode_feature_many` takes."""
    items = []
    for i, x in enumerate(xs):
        try:
            a, dtype, b, ax, ranges, s, z = _prepare(x, bits, axis, scale, zero_point, clip, nonfinite)
        except (TypeError, ValueError) as e:
            raise type(e)(f"item {i}: {e}") from None
        items.append((a, dtype, ax, ranges, s, z))
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
    a, _, bits, axis, ranges, s, z = _prepare(x, bits, axis, scale, zero_point, clip, nonfinite)
    if mode not in ("dense", "csr", "auto"):
        raise ValueError(f"plan() predicts 'dense', 'csr' or 'auto' (the context coder is sized by coding), got {mode!r}")
    return _core.plan_feature(a, bits, axis, ranges, s, z, mode, _check_reshape(reshape), nonfinite, bool(search))
