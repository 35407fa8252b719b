"""Lossless compression of integer arrays and rANS coding of symbol arrays."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from . import _core

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
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
            raise ValueError("CUDA tensors are not supported yet; move the tensor to the CPU with .cpu()")
        return x.detach().numpy()
    return np.asarray(x)


def _chunk_log2(chunk_symbols: int) -> int:
    if (
        not isinstance(chunk_symbols, (int, np.integer))
        or chunk_symbols < 256
        or chunk_symbols > 1 << 24
        or chunk_symbols & (chunk_symbols - 1)
    ):
        raise ValueError(f"chunk_symbols must be a power of two from 256 to 2**24, got {chunk_symbols!r}")
    return int(chunk_symbols).bit_length() - 1


def _threads(threads: Optional[int]) -> int:
    if threads is None:
        return 0
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None (all cores), got {threads!r}")
    return int(threads)


def _precision(precision_bits: Optional[int]) -> Optional[int]:
    if precision_bits is None:
        return None
    if not isinstance(precision_bits, (int, np.integer)) or not 1 <= precision_bits <= 16:
        raise ValueError(f"precision_bits must be in 1..16 or None (chosen per stream), got {precision_bits!r}")
    return int(precision_bits)


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
    if max_output_bytes is None:
        return (1 << 64) - 1
    if not isinstance(max_output_bytes, (int, np.integer)) or max_output_bytes < 0:
        raise ValueError(f"max_output_bytes must be a non-negative integer or None, got {max_output_bytes!r}")
    return int(max_output_bytes)


def compress(
    array: Any,
    *,
    precision_bits: Optional[int] = None,
    chunk_symbols: int = 1 << 16,
    threads: Optional[int] = None,
) -> bytes:
    """Compress an integer array losslessly; ``decompress`` restores dtype, shape and values.

    Any shape (0-d and empty too) and any memory layout of uint8, int8, uint16, int16, uint32,
    int32, uint64 or int64. 8-bit types are coded as one stream of byte symbols, wider types as
    16-bit planes. The result is never larger than ``max_compressed_size``.

    >>> import numpy as np, splitans
    >>> x = np.arange(12, dtype=np.int16).reshape(3, 4)
    >>> y = splitans.decompress(splitans.compress(x))
    >>> bool((x == y).all()) and y.dtype == x.dtype and y.shape == x.shape
    True
    """
    a = _as_numpy(array)
    name = a.dtype.name
    if a.dtype.kind == "f" or name in ("bfloat16",):
        raise TypeError(
            f"compress() got a {name} array: lossless compression covers integer arrays. "
            "Lossy compression of float features needs a quantization bit width, bits= (e.g. bits=8)."
        )
    if name not in _INTEGER_DTYPES:
        raise TypeError(f"compress() supports the integer dtypes {', '.join(_INTEGER_DTYPES)}; got {a.dtype}")
    if a.ndim > _core.MAX_NDIM:
        raise ValueError(f"compress() supports up to {_core.MAX_NDIM} dimensions, got {a.ndim}")
    a = _native(a)
    return _core.encode(a, name, _KIND_ARRAY, _precision(precision_bits), _chunk_log2(chunk_symbols), _threads(threads))


def decompress(
    data: Any,
    *,
    max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Decode what ``compress`` or ``rans_encode`` produced into a new numpy array.

    Raises ``CorruptDataError`` (a ``ValueError``) for anything that is not a valid container,
    ``UnsupportedVersionError`` for a newer format, and ``OutputTooLargeError`` before
    allocating when the result would exceed ``max_output_bytes`` (``None``: no limit).
    """
    _, flat, shape = _core.decode(_as_bytes(data), _max_output(max_output_bytes), _threads(threads))
    return flat.reshape(shape)


def rans_encode(
    symbols: Any,
    *,
    precision_bits: Optional[int] = None,
    chunk_symbols: int = 1 << 16,
    threads: Optional[int] = None,
) -> bytes:
    """rANS-code a 1-D array of uint8 or uint16 symbols (alphabets up to 65,536) as one stream.

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
    kind, flat, _ = _core.decode(_as_bytes(data), _max_output(max_output_bytes), _threads(threads))
    if kind != "symbols":
        raise ValueError(f"rans_decode() takes data from rans_encode(); this holds a {kind} (use decompress())")
    return flat


def inspect(data: Any, *, max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES) -> Dict[str, Any]:
    """Describe a container without returning its array.

    Format version, kind, dtype, shape, and for each coded stream: mode (rans, raw, constant,
    empty), symbol count, distinct symbols, alphabet size, precision bits, lanes, chunk size,
    compressed bytes, and the order-0 entropy bound (n·H/8 bytes) of its symbols. The streams
    are decoded (and so verified) to measure their entropy.
    """
    return _core.inspect(_as_bytes(data), _max_output(max_output_bytes))


def max_compressed_size(n: int, dtype: Any = "uint8", ndim: int = 1) -> int:
    """The most bytes ``compress``/``rans_encode`` return for ``n`` elements of ``dtype``."""
    name = np.dtype(dtype).name
    if name not in _INTEGER_DTYPES:
        raise TypeError(f"max_compressed_size() takes an integer dtype, got {name}")
    if n < 0 or ndim < 0 or ndim > _core.MAX_NDIM:
        raise ValueError("n must be non-negative and ndim in 0..32")
    return _core.max_compressed_size(int(n), name, int(ndim))
