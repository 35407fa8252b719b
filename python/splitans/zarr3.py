"""splitans as a Zarr v3 codec: an array-to-bytes codec (a "serializer"), one container per chunk.

It wraps ``splitans.numcodecs.Splitans`` — same parameters, same bytes — and is stored in the
array metadata the way zarr-python stores every numcodecs codec in v3 arrays (as
``zarr.codecs.numcodecs`` does for zstd, blosc, ...): name ``numcodecs.splitans``, configuration
the numcodecs config without its id. zarr finds it when reading through the ``zarr.codecs``
entry point; importing this module registers it as well. It is a serializer, not a
bytes-to-bytes compressor, because it needs the chunk's dtype and shape: it quantizes floats.

>>> import numpy as np, zarr
>>> from splitans.zarr3 import Splitans
>>> z = zarr.create_array(store={}, shape=(8, 64), chunks=(2, 64), dtype="float32",
...                       serializer=Splitans(bits=8), compressors=None)
>>> x = np.linspace(-1, 1, 512, dtype=np.float32).reshape(8, 64)
>>> z[:] = x
>>> bool(np.abs(z[:] - x).max() <= 2 / 255 / 2 + 1e-6)
True
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.registry import register_codec

import splitans

from .numcodecs import Splitans as _Numcodec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["NAME", "Splitans"]

#: The codec's name in zarr.json: zarr-python's convention for a numcodecs codec in a v3 array.
NAME = "numcodecs.splitans"


@dataclass(frozen=True)
class Splitans(ArrayBytesCodec):
    """Zarr v3 serializer: integer chunks lossless, float chunks quantized to ``bits`` (1..16).

    ``zarr.create_array(..., serializer=Splitans(bits=8), compressors=None)``; the parameters are
    those of ``splitans.numcodecs.Splitans``.
    """

    is_fixed_size = False

    bits: Optional[int]
    mode: str
    axis: Optional[int]

    def __init__(self, *, bits: Optional[int] = None, mode: str = "auto", axis: Optional[int] = None) -> None:
        codec = _Numcodec(bits=bits, mode=mode, axis=axis)  # validates, once: every chunk reuses it
        object.__setattr__(self, "bits", codec.bits)
        object.__setattr__(self, "mode", codec.mode)
        object.__setattr__(self, "axis", codec.axis)
        object.__setattr__(self, "_numcodec", codec)

    @property
    def numcodec(self) -> _Numcodec:
        return self._numcodec

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Splitans":
        if data.get("name") != NAME:
            raise ValueError(f"expected a codec named {NAME!r}, got {data.get('name')!r}")
        config = dict(data.get("configuration") or {})
        config.pop("id", None)
        return cls(**config)

    def to_dict(self) -> Dict[str, Any]:
        config = self.numcodec.get_config()
        config.pop("id")
        return {"name": NAME, "configuration": config}

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        native = np.dtype(dtype.to_native_dtype())
        if native.kind == "f" and native.itemsize in (2, 4, 8):
            if self.bits is None:
                raise ValueError(f"Splitans(bits=None) stores integers losslessly; a {native} array needs bits (1..16)")
            if self.axis is not None and not -len(shape) <= self.axis < len(shape):
                raise ValueError(f"axis {self.axis} is out of range for a {len(shape)}-dimensional array")
        elif not (native.kind in "iu" and native.itemsize in (1, 2, 4, 8)):
            raise ValueError(f"Splitans stores integer and float16/32/64 arrays, not {native}")

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: "ArraySpec") -> int:
        raise NotImplementedError  # variable size, as every compressor

    def _encode_sync(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "Buffer":
        a = np.asarray(chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(self.numcodec.encode(a))

    def _decode_sync(self, chunk_bytes: "Buffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        expected = np.dtype(chunk_spec.dtype.to_native_dtype())
        # The chunk's shape and dtype are known: a chunk declaring anything else is refused
        # from its header, before anything as large as what it declares is allocated.
        try:
            a = splitans.decompress(chunk_bytes.to_bytes(), expect_shape=tuple(chunk_spec.shape), expect_dtype=expected)
        except (splitans.CorruptDataError, splitans.OutputTooLargeError):
            raise
        except ValueError as e:
            raise ValueError(f"the chunk does not hold the array's {expected} {tuple(chunk_spec.shape)}: {e}") from None
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(a)

    # The coding runs with the interpreter released: chunks proceed in parallel in threads.
    async def _encode_single(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "Buffer":
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: "Buffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)


register_codec(NAME, Splitans, qualname="splitans.zarr3.Splitans")
