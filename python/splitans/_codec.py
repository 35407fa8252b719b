"""compress / decompress / inspect: integer arrays losslessly, float features through `_feature`, and
the bare rANS coder (`rans_encode` / `rans_decode`)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from . import _core, _feature
from ._options import _BUILT
from ._options import DEFAULT as _DEFAULT
from ._options import MAX_THREADS, Options, _chunk_log2, _integer, _precision, _threads, options_of  # noqa: F401

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "Options",
    "compress",
    "decompress",
    "inspect",
    "max_compressed_size",
    "rans_decode",
    "rans_encode",
]

#: Decoding refuses to produce more than this many bytes unless told otherwise (4 GiB).
DEFAULT_MAX_OUTPUT_BYTES = 1 << 32

_INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")
_SYMBOL_DTYPES = ("uint8", "uint16")
_KIND_SYMBOLS = 1
_KIND_ARRAY = 2


def _as_numpy(x: Any) -> np.ndarray:
    """A numpy view of `x` (numpy array, torch CPU tensor, or anything with ``__array__``)."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        if getattr(x, "is_cuda", False):
            raise ValueError("compress() runs on the CPU: use splitans.compress_gpu for a CUDA tensor, or .cpu() first")
        return x.detach().numpy()
    return np.asarray(x)


def _native(a: np.ndarray) -> np.ndarray:
    """C-contiguous, native byte order, same shape (``np.ascontiguousarray`` would make 0-d 1-d)."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a if a.flags.c_contiguous else a.copy(order="C")


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        return data.tobytes()
    raise TypeError(f"expected bytes-like compressed data, got {type(data).__name__}")


def _max_output(max_output_bytes: Optional[int]) -> int:
    if type(max_output_bytes) is int and 0 <= max_output_bytes < 1 << 64:
        return max_output_bytes  # the common case, checked without the calls below
    if max_output_bytes is None:
        return (1 << 64) - 1
    what = "a non-negative integer (bytes) or None (no limit)"
    n = _integer(max_output_bytes, "max_output_bytes", what)
    if not 0 <= n < 1 << 64:
        raise ValueError(f"max_output_bytes must be {what} below 2**64, got {max_output_bytes!r}")
    return n


def compress(array: Any, options: Optional[Options] = None, **keywords: Any) -> bytes:
    """Compress an array: integers losslessly, float features by quantizing to ``bits`` bits.

    Integer arrays (uint8 ... int64, any shape, 0-d and empty too, any memory layout) are coded
    exactly: 8-bit types as one stream of byte symbols, wider types as 16-bit planes.

    The options come as a ``splitans.Options`` (validated once, when built: build it once and
    reuse it) or as its fields by keyword, ``compress(x, bits=8)``; keywords beside an
    ``Options`` replace its fields for this call. An invalid value raises ``ValueError`` (or
    ``TypeError`` for a value of the wrong type) before the array is looked at.

    Float arrays (numpy float16/32/64, torch float16/bfloat16/float32) need ``bits`` (1..16):

    - asymmetric quantization ``q = clamp(round(x / scale) + zero_point, 0, 2**bits - 1)``, per
      tensor or per channel along ``axis``, from the data's min/max (widened to include 0, so
      zero stays exact), from ``clip=(low, high)`` / per-channel pairs /
      ``splitans.Percentile(low, high)``, or from ``scale``/``zero_point`` calibrated ahead of
      time. Every element inside the range comes back within ``scale / 2`` (plus float32
      rounding); elements outside are clamped and counted (``inspect(...)["clamped"]``).
    - ``mode="dense"`` codes every quantized symbol; ``"csr"`` stores the tensor reshaped to
      N x M as per-row nonzero counts, column indices and nonzero values; ``"auto"`` takes the
      smaller (a stream that does not pay is stored raw). These three are fast (GB/s) and run
      on the GPU too. ``"context"`` (``bits <= 8``) codes each element with an adaptive table
      chosen by its left and upper neighbours (last two axes): no table bytes, and 15-40%
      smaller on sparse ReLU maps sent one image at a time, but serial (~tens of MB/s, CPU
      only). ``"pcontext"`` (``bits <= 8``) fits a context model (the parallel context coder
      of ``splitans.Codec``) to this tensor and stores it in the container: it pays on large
      tensors. ``"best"`` codes every form and keeps the shortest container.
    - ``version``: a float tensor is written as a compact container (format version 3: about
      25 bytes of header and framing on a small tensor, FORMAT.md 10); ``version=1`` writes the
      older layout (version 1, or 2 in context mode) for readers that predate it. Integer
      arrays are always version 1.
    - ``reshape``: an explicit N, ``"model"`` (predict from the density, no coding) or
      ``"search"`` (exact empirical entropies of every candidate N).
    - NaN or infinity raise ``ValueError``; ``nonfinite="clamp"`` maps NaN to 0 and infinities
      to the range ends.

    The result is never larger than ``max_compressed_size`` for integer input.

    >>> import numpy as np, splitans
    >>> x = np.arange(12, dtype=np.int16).reshape(3, 4)
    >>> y = splitans.decompress(splitans.compress(x))
    >>> bool((x == y).all()) and y.dtype == x.dtype and y.shape == x.shape
    True
    >>> f = np.linspace(-1, 3, 1000, dtype=np.float32).reshape(10, 100)
    >>> g = splitans.decompress(splitans.compress(f, bits=8))
    >>> bool(np.abs(f - g).max() <= 4 / 255 / 2 + 1e-6)
    True
    """
    if options is not None:
        o = options_of(options, keywords)
    elif not keywords:
        o = _DEFAULT
    else:
        # `compress(x, bits=b)`, the commonest call, by one lookup (valid widths only: at most
        # 16 entries); else options_of's cache, looked up here: a call costs a microsecond on
        # a small map.
        bits = keywords.get("bits") if len(keywords) == 1 else None
        o = _BY_BITS.get(bits) if type(bits) is int else None
        if o is None:
            try:
                o = _BUILT[(*keywords.items(), *map(type, keywords.values()))]
            except (KeyError, TypeError):
                o = options_of(None, keywords)
            if type(bits) is int:
                _BY_BITS[bits] = o
    if (
        type(array) is np.ndarray
        and array.dtype.char == "f"
        and o._direct
        and array.flags.c_contiguous
        and array.dtype.isnative
    ):
        # A contiguous float32 array with nothing for numpy to compute first (the common call):
        # straight to the codec, which checks the rest.
        if o.bits is None:
            raise TypeError(_NEEDS_BITS)
        return _core.compress_feature(array, "float32", o._native, None, None, None, None)
    if _is_float(array):
        if o.bits is None:
            raise TypeError(_NEEDS_BITS)
        return _feature.compress_bytes(array, o)
    a = _as_numpy(array)
    name = a.dtype.name
    if name not in _INTEGER_DTYPES:
        raise TypeError(f"compress() supports float arrays and the integer dtypes {', '.join(_INTEGER_DTYPES)}; got {a.dtype}")
    o._refuse_lossy(name)
    if a.ndim > _core.MAX_NDIM:
        raise ValueError(f"compress() supports up to {_core.MAX_NDIM} dimensions, got {a.ndim}")
    a = _native(a)
    n = o._native
    return _core.encode(a, name, _KIND_ARRAY, n.precision_bits, n.chunk_log2, n.threads)


#: `compress`'s options by `bits` when that is its only keyword (an int).
_BY_BITS: Dict[int, Options] = {}

_NEEDS_BITS = "compress() of a float array needs bits= (1..16), the quantization bit width, e.g. bits=8"


def _is_float(x: Any) -> bool:
    if type(x).__module__.startswith("torch"):
        return bool(getattr(x, "is_floating_point", lambda: False)())
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    try:
        return np.dtype(dtype).kind == "f"
    except TypeError:
        return False


def _to_output(flat: np.ndarray, shape: Any, dtype: str, output: str):
    """The decoded array (flat, or already of its shape) as numpy or torch, in the container's
    dtype. The codec has already converted a feature's values (float16 and bfloat16 come as
    their bits, saturating)."""
    if dtype == "float16":
        flat = flat.view(np.float16)
    if output == "torch":
        import torch

        if dtype == "bfloat16":
            return torch.from_numpy(flat.view(np.int16)).view(torch.bfloat16).reshape(tuple(shape))
        return torch.from_numpy(flat).reshape(tuple(shape))
    return flat if flat.shape == tuple(shape) else flat.reshape(shape)


#: numpy dtype names by (kind, itemsize): `dtype.name` is computed in Python (a microsecond).
_DTYPE_NAMES = {
    ("f", 2): "float16", ("f", 4): "float32", ("f", 8): "float64",
    ("u", 1): "uint8", ("i", 1): "int8", ("u", 2): "uint16", ("i", 2): "int16",
    ("u", 4): "uint32", ("i", 4): "int32", ("u", 8): "uint64", ("i", 8): "int64",
}  # fmt: skip


def _out_view(out: Any):
    """The caller's output buffer as (the object to return, a numpy view of its memory in the
    storage dtype the codec writes, the dtype it stands for). A numpy array or a torch CPU
    tensor, C-contiguous and writable; float16 and bfloat16 as their bits (uint16)."""
    if isinstance(out, np.ndarray):
        dt = out.dtype
        a, name = out, _DTYPE_NAMES.get((dt.kind, dt.itemsize)) or dt.name
    elif type(out).__module__.startswith("torch"):
        import torch

        if out.device.type != "cpu":
            raise ValueError("out= takes a CPU tensor: decompress_gpu decodes on the GPU")
        name = str(out.dtype).replace("torch.", "")
        t = out.detach()
        a = t.view(torch.int16).numpy().view(np.uint16) if name == "bfloat16" else t.numpy()
    else:
        raise TypeError(f"out must be a numpy array or a torch CPU tensor, got {type(out).__name__}")
    if not a.flags.c_contiguous or not a.flags.writeable or not a.dtype.isnative:
        raise ValueError("out must be C-contiguous, writable and in native byte order")
    if name == "float16":
        a = a.view(np.uint16)
    return out, a, name


def _check_output_for_out(output: Optional[str], out: Any) -> None:
    """With ``out=``, the result is ``out`` itself: an ``output=`` naming the other kind of array
    is a mistake, not something to ignore."""
    if output is None:
        return
    if output not in ("numpy", "torch"):
        raise ValueError(f"output must be 'numpy' or 'torch', got {output!r}")
    is_torch = type(out).__module__.startswith("torch")
    if out is not None and (output == "torch") != is_torch:
        kind = "a torch tensor" if is_torch else f"a {type(out).__name__}"
        raise ValueError(f"output={output!r} with out= {kind}: the result is out itself; drop output= or pass out= of that kind")


def _expected(expect_shape: Any, expect_dtype: Any):
    shape = None
    if expect_shape is not None:
        try:
            shape = [int(d) for d in expect_shape]
        except TypeError:
            raise TypeError(f"expect_shape must be a sequence of integers, got {expect_shape!r}") from None
        if any(d < 0 or d >= 1 << 64 for d in shape):
            raise ValueError(f"expect_shape must hold dimensions from 0 to 2**64-1, got {expect_shape!r}")
    dtype = None
    if expect_dtype is not None:
        if isinstance(expect_dtype, str) and expect_dtype == "bfloat16":
            dtype = "bfloat16"
        elif type(expect_dtype).__module__.startswith("torch"):
            dtype = str(expect_dtype).replace("torch.", "")
        else:
            try:
                dtype = np.dtype(expect_dtype).name
            except TypeError:
                raise TypeError(f"expect_dtype must be a dtype or dtype name, got {expect_dtype!r}") from None
    return shape, dtype


def decompress(
    data: Any,
    *,
    max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    threads: Optional[int] = None,
    output: Optional[str] = None,
    expect_shape: Any = None,
    expect_dtype: Any = None,
    out: Any = None,
):
    """Decode what ``compress`` or ``rans_encode`` produced into a new array, or into ``out``.

    Integer data comes back exactly, with its dtype and shape. A float feature comes back
    dequantized, ``(q - zero_point) * scale``, in the dtype it had (bfloat16, which numpy lacks,
    as float32 in numpy); float16 and bfloat16 saturate at their largest finite value instead of
    overflowing to infinity. ``output="torch"`` returns a torch tensor instead, in the original
    dtype (bfloat16 included); ``output=None`` means numpy.

    Raises ``CorruptDataError`` (a ``ValueError``) for anything that is not a valid container,
    ``UnsupportedVersionError`` for a newer format, and ``OutputTooLargeError`` before
    allocating when the result would exceed ``max_output_bytes`` (``None``: no limit; the cap
    also counts the working buffer of streams coded in chunks above 2**21 symbols).
    ``MemoryError`` if the allocator refuses the output (only with a cap above what the machine
    holds). ``expect_shape=`` / ``expect_dtype=`` refuse (``ValueError``), before allocating,
    a container holding anything else: a server that knows what it receives bounds each
    blob's output that way.

    ``out=`` decodes into the caller's buffer instead, allocating nothing as large as it: a numpy
    array or a torch CPU tensor, C-contiguous and writable, of the container's shape and of the
    dtype this call would return (a bfloat16 feature: float32 in numpy, or a bfloat16 tensor).
    Anything else raises ``ValueError`` (or ``TypeError`` for an object of another type) before
    decoding; a container that turns out damaged leaves ``out`` partly written. Returns ``out``.

    >>> import numpy as np, splitans
    >>> x = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    >>> buf = np.empty_like(x)
    >>> splitans.decompress(splitans.compress(x, bits=8), out=buf) is buf
    True
    """
    if out is not None:
        _check_output_for_out(output, out)
        obj, view, name = _out_view(out)
        shape, dtype = _expected(expect_shape, expect_dtype)
        _core.decode_into(_as_bytes(data), view, name, _max_output(max_output_bytes), _threads(threads), shape, dtype)
        return obj
    output = "numpy" if output is None else output
    if output not in ("numpy", "torch"):
        raise ValueError(f"output must be 'numpy' or 'torch', got {output!r}")
    if expect_shape is None and expect_dtype is None:
        shape = dtype = None
    else:
        shape, dtype = _expected(expect_shape, expect_dtype)
    _, array, shape, dtype = _core.decode(
        _as_bytes(data), _max_output(max_output_bytes), _threads(threads), shape, dtype, output == "torch"
    )
    if output == "numpy" and dtype != "float16":
        return array  # `_core.decode` allocates it in its shape and dtype
    return _to_output(array, shape, dtype, output)


def rans_encode(
    symbols: Any,
    *,
    precision_bits: Optional[int] = None,
    chunk_symbols: Optional[int] = None,
    threads: Optional[int] = None,
) -> bytes:
    """rANS-code a 1-D array of uint8 or uint16 symbols (alphabets up to 65,536) as one stream.

    ``precision_bits`` (1..16) fixes the frequency-table precision, chosen per stream by default;
    ``chunk_symbols`` (a power of two, 256..2**24) fixes the size of the independently coded
    chunks, by default about n/64 between 2**16 and 2**18. ``threads``: ``None`` uses every
    core; the bytes never depend on it.

    >>> import numpy as np, splitans
    >>> s = np.array([0, 0, 1, 0, 3, 0, 0, 1], dtype=np.uint8)
    >>> splitans.rans_decode(splitans.rans_encode(s)).tolist()
    [0, 0, 1, 0, 3, 0, 0, 1]
    """
    a = _as_numpy(symbols)
    if a.dtype.name not in _SYMBOL_DTYPES:
        raise TypeError(f"rans_encode() takes uint8 or uint16 symbols, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"rans_encode() takes a 1-D array of symbols, got {a.ndim} dimensions")
    a = _native(a)
    return _core.encode(
        a, a.dtype.name, _KIND_SYMBOLS, _precision(precision_bits), _chunk_log2(chunk_symbols), _threads(threads)
    )


def rans_decode(
    data: Any,
    *,
    max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Decode what ``rans_encode`` produced: a 1-D uint8 or uint16 array."""
    kind, flat, _, _ = _core.decode(_as_bytes(data), _max_output(max_output_bytes), _threads(threads))
    if kind != "symbols":
        raise ValueError(f"rans_decode() takes data from rans_encode(); this holds a {kind} (use decompress())")
    return flat


def inspect(data: Any, *, max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES) -> Dict[str, Any]:
    """Describe a container without returning its array.

    Format version, kind (symbols, array, feature), dtype, shape, and for each coded stream:
    its name, mode (rans, raw, constant, empty), symbol count, distinct symbols, alphabet size,
    precision bits, lanes, chunk size, compressed bytes, and the order-0 entropy bound
    (n·H/8 bytes) of its symbols. A feature also reports bits, mode (dense, csr or context), rows and
    cols of the CSR reshape, axis, scale and zero_point, and the clamped count and fraction.
    The streams are decoded, block by block, to measure their entropy: ``inspect`` checks
    everything ``decompress`` checks, in the same order, and raises the same error for the
    same data (``max_output_bytes`` included), without holding the decoded array.
    """
    return _core.inspect(_as_bytes(data), _max_output(max_output_bytes))


def max_compressed_size(n: int, dtype: Any = "uint8", ndim: int = 1) -> int:
    """The most bytes ``compress``/``rans_encode`` return for ``n`` elements of ``dtype``."""
    name = np.dtype(dtype).name
    if name not in _INTEGER_DTYPES:
        raise TypeError(f"max_compressed_size() takes an integer dtype, got {name}")
    n = _integer(n, "n", "a non-negative integer (elements)")
    ndim = _integer(ndim, "ndim", f"an integer from 0 to {_core.MAX_NDIM}")
    if n < 0 or not 0 <= ndim <= _core.MAX_NDIM:
        raise ValueError(f"n must be non-negative and ndim in 0..{_core.MAX_NDIM}, got n={n}, ndim={ndim}")
    if n >= 1 << 64:
        raise ValueError(f"no {name} array of {n} elements fits in memory: the size bound overflows")
    return _core.max_compressed_size(n, name, ndim)
