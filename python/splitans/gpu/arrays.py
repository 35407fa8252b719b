"""Arrays in and out of the GPU path: device copies of CuPy arrays, CUDA torch tensors and host
arrays, and results in the caller's dtype as CuPy arrays or torch tensors."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def to_device(ops, x: Any) -> Tuple[Any, str]:
    """A C-contiguous device array of `x` (CuPy array, CUDA torch tensor, or host array) and
    its dtype name (a torch bfloat16 tensor comes as float32 named "bfloat16")."""
    xp = ops.xp
    if is_torch(x):
        name = str(x.dtype).replace("torch.", "")
        t = x.detach()
        if name == "bfloat16":
            t = t.float()  # exact; CuPy has no bfloat16
        t = t.contiguous()
        if xp is np:
            return t.cpu().numpy(), name
        if not t.is_cuda:
            raise ValueError("the GPU path takes CUDA tensors; for a CPU tensor use splitans.compress")
        return xp.from_dlpack(t), name
    a = xp.asarray(x)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    # Not ascontiguousarray: it makes a 0-d array 1-d.
    return (a if a.flags.c_contiguous else a.copy(order="C")), a.dtype.name


def empty_like_input(x: Any, shape: Tuple[int, ...], name: str):
    if is_torch(x):
        import torch

        return torch.empty(shape, dtype=getattr(torch, name))
    return np.empty(shape, dtype=name)


#: The largest finite float16 and bfloat16: a conversion saturates there instead of reaching
#: infinity, as the CPU path does (quant::f16_bits, quant::bf16_bits in the Rust core).
HALF_MAX = {"float16": 65504.0, "bfloat16": float(np.uint32(0x7F7F0000).view(np.float32))}


def feature_output(ops, flat, shape: Tuple[int, ...], dtype: str, output: str):
    if output == "torch":
        import torch

        t = as_torch(flat).reshape(shape)
        if dtype in HALF_MAX:
            return t.clamp(-HALF_MAX[dtype], HALF_MAX[dtype]).to(getattr(torch, dtype))
        return t
    if dtype == "float16":
        flat = flat.clip(-HALF_MAX[dtype], HALF_MAX[dtype]).astype(ops.xp.float16)
    return flat.reshape(shape)


def as_torch(a):
    import torch

    return torch.from_dlpack(a)
