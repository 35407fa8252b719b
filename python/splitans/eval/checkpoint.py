"""A torch state dict read from a legacy-format (pre-1.6, not zip) checkpoint without running
code from the file: an unpickler that resolves only the names a state dict uses (an ordered
dict, the tensor rebuild function, the storage types) and refuses every other global.

Why not ``torch.load(..., weights_only=True)``: for the legacy format its result depends on the
process — in the test suite, after the CUDA host tests and the demo had run, the same file was
refused ("Trying to call reduce for unrecognized function ('storage', ...)") — and
``weights_only=False`` unpickles arbitrary code. This reader is small enough to read in full.

Format (torch/serialization.py ``_legacy_load``): three small pickles (magic number 0x1950a86a20f9469cfc6c,
protocol 1001, system info), the object pickle whose persistent ids name storages
``('storage', type, key, location, numel[, view])``, a pickle of the storage keys in file order, then
per key a little-endian u64 element count and that many elements.
"""

from __future__ import annotations

import collections
import pickle
import struct
from typing import Any, Dict, NamedTuple

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Storage(NamedTuple):
    key: str
    dtype: Any
    numel: int


class _Tensor(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor whose storage is not a storage")
    return _Tensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")

    def __init__(self, f):
        super().__init__(f)
        self.storages: Dict[str, _Storage] = {}

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and pid[1] in _DTYPES):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        storage = _Storage(str(pid[2]), _DTYPES[pid[1]], int(pid[4]))
        return self.storages.setdefault(storage.key, storage)


def _plain(f) -> Any:
    class Plain(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"{module}.{name} in a checkpoint header")

    return Plain(f).load()


def load_state_dict(path) -> "collections.OrderedDict[str, Any]":
    """The checkpoint's state dict as CPU torch tensors (torch is imported here only)."""
    import torch

    with open(path, "rb") as f:
        if _plain(f) != MAGIC or _plain(f) != PROTOCOL:
            raise ValueError(f"{path}: not a legacy-format torch checkpoint")
        _plain(f)  # system info: byte order and type sizes
        unpickler = _StateDictUnpickler(f)
        state = unpickler.load()
        arrays = {}
        for key in _plain(f):
            storage = unpickler.storages[str(key)]
            (count,) = struct.unpack("<Q", f.read(8))
            if count != storage.numel:
                raise ValueError(f"{path}: storage {key} holds {count} elements, its tensors say {storage.numel}")
            itemsize = np.dtype(storage.dtype).itemsize
            raw = f.read(count * itemsize)
            if len(raw) != count * itemsize:
                raise ValueError(f"{path}: truncated in storage {key}")
            arrays[storage.key] = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    out = collections.OrderedDict()
    for name, t in state.items():
        if not isinstance(t, _Tensor):
            raise ValueError(f"{path}: entry {name!r} is not a tensor")
        a = arrays[t.storage.key]
        itemsize = a.itemsize
        view = np.lib.stride_tricks.as_strided(
            a[t.offset:], shape=t.size, strides=tuple(s * itemsize for s in t.stride), writeable=False
        )
        out[name] = torch.from_numpy(np.array(view, dtype=a.dtype.newbyteorder("=")))
    return out
