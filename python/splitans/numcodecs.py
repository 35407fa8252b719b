"""splitans as a numcodecs codec, for zarr and anything else that takes numcodecs codecs.

Each chunk becomes one splitans container, so a chunk decodes with ``splitans.decompress`` alone.
Integer chunks are coded losslessly. Float chunks are quantized to ``bits`` bits (lossy, every
element within scale/2 of the chunk's own range), and only when ``bits`` is given: without it a
float chunk is refused, never silently rounded. Decoding restores the chunk's dtype and shape
(a Fortran-ordered chunk: its bytes in memory order, as the C-ordered transpose).

The codec is registered under the id ``"splitans"`` through the ``numcodecs.codecs`` entry point,
so ``numcodecs.get_codec({"id": "splitans", "bits": 8})`` and zarr v2 metadata find it once
splitans is installed; importing this module registers it too. ``import splitans`` never imports
numcodecs. For zarr v3 arrays use ``splitans.zarr3.Splitans`` as the serializer.

>>> import numpy as np
>>> from splitans.numcodecs import Splitans
>>> codec = Splitans(bits=8)
>>> x = np.linspace(0, 6, 4096, dtype=np.float32).reshape(64, 64)
>>> y = codec.decode(codec.encode(x))
>>> y.dtype, y.shape, bool(np.abs(y - x).max() <= 6 / 255 / 2 + 1e-6)
(dtype('float32'), (64, 64), True)
>>> q = np.arange(100, dtype=np.int32)
>>> bool((Splitans(bits=4).decode(Splitans(bits=4).encode(q)) == q).all())  # integers: exact
True
"""

from __future__ import annotations

from typing import Any, Optional

from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_ndarray, ndarray_copy
from numcodecs.registry import register_codec

import splitans
from splitans._options import MODES, Options  # noqa: F401 - MODES: the modes, as `_core` names them

__all__ = ["Splitans"]


class Splitans(Codec):
    """numcodecs codec: integer chunks lossless, float chunks quantized to ``bits`` (1..16).

    ``mode`` (``auto``, ``dense``, ``csr``, ``context``, ``pcontext``, ``best``) and ``axis`` (per-channel
    quantization along that axis of the chunk) apply to float chunks, as in
    ``splitans.compress``; integer chunks ignore all three parameters.
    """

    codec_id = "splitans"

    def __init__(self, bits: Optional[int] = None, mode: str = "auto", axis: Optional[int] = None):
        # Validated once, as every door's options are; the config keeps its three fields (what
        # zarr metadata stores), the options they make are private (get_config skips `_` names).
        if not isinstance(mode, str):
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._options = Options(bits=bits, mode=mode, axis=axis)
        self.bits = self._options.bits
        self.mode = self._options.mode
        self.axis = self._options.axis

    @classmethod
    def from_config(cls, config: dict) -> "Splitans":
        config = dict(config)
        if config.pop("id", cls.codec_id) != cls.codec_id:
            raise ValueError(f"not a splitans codec config: {config!r}")
        return cls(**config)

    def encode(self, buf: Any) -> bytes:
        a = ensure_ndarray(buf)
        axis = self.axis
        if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous:
            # A Fortran-ordered chunk is stored in its memory order, as numcodecs codecs store
            # bytes: zarr v2 (order="F") and ndarray_copy read a decoded chunk in memory order.
            # It decodes to the C-ordered transpose, the same bytes.
            a = a.T
            axis = None if axis is None else (a.ndim - 1 - axis if axis >= 0 else -1 - axis)
        kind = a.dtype.kind
        if kind in "iu":
            return splitans.compress(a)
        if kind == "f":
            if self.bits is None:
                raise ValueError(
                    f"Splitans(bits=None) codes integer chunks losslessly; this chunk is {a.dtype}, which "
                    "splitans quantizes: give bits (1..16), e.g. Splitans(bits=8)"
                )
            return splitans.compress(a, self._options if axis == self.axis else self._options.replace(axis=axis))
        raise TypeError(f"Splitans codes integer and float16/32/64 chunks, not {a.dtype}")

    def decode(self, buf: Any, out: Any = None) -> Any:
        """The chunk, or the chunk copied into ``out``. With ``out``, a chunk that declares more
        than ``out`` can hold is refused (``splitans.OutputTooLargeError``) before anything is
        allocated, and one of another size raises ``ValueError`` naming both; an object-dtype
        ``out`` raises ``TypeError``."""
        data = ensure_bytes(buf)
        if out is None:
            return splitans.decompress(data)
        dest = ensure_ndarray(out)
        if dest.dtype.hasobject:
            raise TypeError("Splitans decodes into a numeric buffer, not an object-dtype array")
        # Twice the destination: a float16 chunk decodes through float32 (FORMAT.md 6.1).
        try:
            a = splitans.decompress(data, max_output_bytes=2 * dest.nbytes)
        except splitans.OutputTooLargeError as e:
            raise splitans.OutputTooLargeError(
                f"the chunk declares more than the {dest.nbytes}-byte destination holds ({e})"
            ) from None
        if a.nbytes != dest.nbytes:
            raise ValueError(
                f"the chunk holds {a.dtype} {a.shape} ({a.nbytes} bytes); the destination holds {dest.nbytes} bytes"
            )
        return ndarray_copy(a, out)


register_codec(Splitans)
