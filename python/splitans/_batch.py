"""compress_many / decompress_many: many tensors in one call, the interpreter released once and the
items spread over threads, each coded exactly as ``compress`` / ``decompress`` code it."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from . import _core, _feature
from ._codec import (
    _INTEGER_DTYPES,
    DEFAULT_MAX_OUTPUT_BYTES,
    _as_bytes,
    _as_numpy,
    _check_output_for_out,
    _is_float,
    _max_output,
    _native,
    _out_view,
    _threads,
    _to_output,
)
from ._options import Options, options_of

__all__ = ["compress_many", "decompress_many"]


def compress_many(arrays: Sequence[Any], options: Optional[Options] = None, **keywords: Any) -> List[bytes]:
    """``[compress(a, ...) for a in arrays]`` in one call: the same bytes, item for item.

    ``options`` and ``keywords`` as for ``compress``. Every option applies to every array (``clip=Percentile(...)`` is computed per array;
    ``version`` as for ``compress``, float arrays only). Float
    arrays need ``bits``; integer arrays are compressed losslessly and take none of the lossy
    options (a list may hold both kinds). The interpreter is released once for the whole list;
    ``threads`` (``None``: every core) spreads the arrays over threads, one array per thread at a
    time. An invalid or failing array raises its error, its message prefixed with ``item i:``.

    >>> import numpy as np, splitans
    >>> xs = [np.full((4, 4), v, np.float32) for v in (0.5, 1.5, 2.5)]
    >>> splitans.compress_many(xs, bits=8) == [splitans.compress(x, bits=8) for x in xs]
    True
    """
    o = options_of(options, keywords)
    arrays = list(arrays)
    floats = [i for i, a in enumerate(arrays) if _is_float(a)]
    ints = [i for i in range(len(arrays)) if i not in set(floats)]
    out: List[Any] = [None] * len(arrays)
    if floats:
        if o.bits is None:
            raise TypeError(f"item {floats[0]}: compress_many() of float arrays needs bits= (1..16), e.g. bits=8")
        items = _feature.prepare_many([arrays[i] for i in floats], o)
        try:
            blobs = _core.encode_feature_many(items, o._native)
        except Exception as e:  # noqa: BLE001 - re-raised with the caller's item index
            raise _renumber(e, floats) from None
        for i, b in zip(floats, blobs):
            out[i] = b
    if ints:
        # A list may mix both kinds: the lossy options are refused, as compress refuses them,
        # only when no array takes them.
        if not floats:
            o._refuse_lossy(_as_numpy(arrays[ints[0]]).dtype.name)
        prepared, names = [], []
        for i in ints:
            a = _as_numpy(arrays[i])
            if a.dtype.name not in _INTEGER_DTYPES:
                raise TypeError(
                    f"item {i}: compress_many() supports float arrays and the integer dtypes "
                    f"{', '.join(_INTEGER_DTYPES)}; got {a.dtype}"
                )
            if a.ndim > _core.MAX_NDIM:
                raise ValueError(f"item {i}: compress_many() supports up to {_core.MAX_NDIM} dimensions, got {a.ndim}")
            prepared.append(_native(a))
            names.append(a.dtype.name)
        try:
            blobs = _core.encode_many(prepared, names, o._native)
        except Exception as e:  # noqa: BLE001 - re-raised with the caller's item index
            raise _renumber(e, ints) from None
        for i, b in zip(ints, blobs):
            out[i] = b
    return out


def _renumber(e: Exception, index: List[int]) -> Exception:
    """`e` with the ``item k:`` of a sub-list's position replaced by the caller's index."""
    msg = str(e)
    if msg.startswith("item "):
        k, _, rest = msg[5:].partition(":")
        if k.isdigit() and int(k) < len(index):
            msg = f"item {index[int(k)]}:{rest}"
    return type(e)(msg)


def decompress_many(
    blobs: Sequence[Any],
    *,
    out: Optional[Sequence[Any]] = None,
    max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    threads: Optional[int] = None,
    output: Optional[str] = None,
) -> List[Any]:
    """``[decompress(b, ...) for b in blobs]`` in one call: the same arrays, item for item.

    The interpreter is released once; ``threads`` (``None``: every core) spreads the blobs over
    threads. ``out``: one buffer per blob, as ``decompress(..., out=)`` takes it (shapes and
    dtypes are checked for every blob before any is decoded); the call then allocates no output
    and returns ``out``'s objects. ``max_output_bytes`` caps each blob. A damaged blob raises its
    error (``CorruptDataError`` ...), its message prefixed with ``item i:``.

    >>> import numpy as np, splitans
    >>> blobs = [splitans.compress(np.arange(6, dtype=np.int16) * k) for k in range(3)]
    >>> [a.tolist() for a in splitans.decompress_many(blobs)]
    [[0, 0, 0, 0, 0, 0], [0, 1, 2, 3, 4, 5], [0, 2, 4, 6, 8, 10]]
    """
    data = []
    for i, b in enumerate(blobs):
        try:
            data.append(_as_bytes(b))
        except (TypeError, ValueError) as e:
            raise type(e)(f"item {i}: {e}") from None
    cap, t = _max_output(max_output_bytes), _threads(threads)
    if out is not None:
        outs = list(out)
        if len(outs) != len(data):
            raise ValueError(f"out holds {len(outs)} buffers for {len(data)} blobs")
        views = []
        for i, o in enumerate(outs):
            try:
                _check_output_for_out(output, o)
                views.append(_out_view(o))
            except (TypeError, ValueError) as e:
                raise type(e)(f"item {i}: {e}") from None
        _core.decode_many(data, [v[1] for v in views], [v[2] for v in views], cap, t)
        return [v[0] for v in views]
    output = "numpy" if output is None else output
    if output not in ("numpy", "torch"):
        raise ValueError(f"output must be 'numpy' or 'torch', got {output!r}")
    decoded = _core.decode_many(data, None, None, cap, t, output == "torch")
    return [_to_output(a, shape, dtype, output) for _, a, shape, dtype in decoded]
