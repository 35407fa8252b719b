"""The GPU path's loader: kernel sources, their NVRTC compilation through CuPy, the device's
properties, and the base of the device operations (transfers, launch helpers).

CuPy is optional: nothing here imports it until a kernel is needed. The kernels ship in the
package (``splitans/cuda``) and are compiled once per device with NVRTC by ``cupy.RawModule`` on
first use (CuPy adds the device's architecture and caches the binary on disk).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

INSTALL_HINT = "splitans GPU path needs CuPy and a CUDA device: pip install cupy-cuda13x"

#: The kernels of each file (each file is compiled as one module; they include the headers).
KERNELS = {
    "histogram.cu": ("histogram_u8", "histogram_u16"),
    "quantize.cu": (
        "feature_minmax",
        "quantize_u8",
        "quantize_u16",
        "dequantize_u8",
        "dequantize_u16",
        "f64_to_f32",
        "f16_to_f32",
    ),
    "rans_encode.cu": ("rans_enc_table", "rans_encode_u8", "rans_encode_u16", "rans_pack"),
    "rans_decode.cu": ("rans_dec_table", "rans_decode_u8", "rans_decode_u16"),
    "pctx.cu": ("pctx_encode", "pctx_pack", "pctx_decode"),
    "sparse.cu": (
        "csr_flags_u8",
        "csr_flags_u16",
        "csr_compact_u8",
        "csr_compact_u16",
        "csr_positions",
        "csr_row_counts",
        "csr_fill_zero_points_u8",
        "csr_fill_zero_points_u16",
        "csr_scatter_u8",
        "csr_scatter_u16",
    ),
}
KERNEL_FILES = tuple(KERNELS)
HEADER_FILES = ("rans_common.cuh", "feature_common.cuh", "pctx_common.cuh")
#: NVRTC options. CuPy appends the device's -arch and -ftz=true; the float arithmetic that
#: decides a code is inline PTX, which -ftz cannot change (feature_common.cuh).
COMPILE_OPTIONS = ("-std=c++17", "--fmad=false")
BLOCK = 256

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def read_packaged(name: str) -> str:
    return importlib.resources.files("splitans").joinpath("cuda").joinpath(name).read_text(encoding="utf-8")


def kernel_source(name: str, read: Optional[Callable[[str], str]] = None) -> str:
    """The source of kernel file ``name`` with its ``#include "..."`` headers inlined (each
    once; ``#line`` directives keep compiler messages pointing at the real files), as it is
    given to NVRTC. ``read(name)`` returns a file's text (default: the packaged copy)."""
    read = read or read_packaged
    seen: set = set()

    def expand(fname: str) -> List[str]:
        if fname in seen:
            return []
        seen.add(fname)
        out = [f'#line 1 "{fname}"']
        for lineno, line in enumerate(read(fname).splitlines(), 1):
            m = _INCLUDE.match(line)
            if m:
                out += expand(m.group(1))
                out.append(f'#line {lineno + 1} "{fname}"')
            elif line.strip() == "#pragma once":
                out.append("")
            else:
                out.append(line)
        return out

    return "\n".join(expand(name)) + "\n"


def cupy_module():
    try:
        import cupy
    except Exception as e:  # ImportError, or a CuPy that cannot load its CUDA libraries
        raise RuntimeError(INSTALL_HINT) from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        raise RuntimeError(f"{INSTALL_HINT} (no usable CUDA device: {e})") from e
    if count == 0:
        raise RuntimeError(f"{INSTALL_HINT} (no CUDA device found)")
    return cupy


def available() -> bool:
    """Whether the GPU path can run here (CuPy importable and a CUDA device present)."""
    try:
        cupy_module()
    except RuntimeError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def module(name: str, device_id: int):
    """The compiled module of one kernel file on one device (compiled on first use)."""
    cp = cupy_module()
    with cp.cuda.Device(device_id):
        return cp.RawModule(code=kernel_source(name), options=COMPILE_OPTIONS)


@functools.lru_cache(maxsize=None)
def kernel(file: str, name: str, device_id: int):
    return module(file, device_id).get_function(name)


@functools.lru_cache(maxsize=None)
def device_info(device_id: int) -> Tuple[int, int]:
    """(multiprocessors, shared memory a block can opt in to) of a device."""
    attrs = cupy_module().cuda.Device(device_id).attributes
    return int(attrs.get("MultiProcessorCount", 80)), int(attrs.get("MaxSharedMemoryPerBlockOptin", 48 * 1024))


# --------------------------------------------------------------------------------------------
# Launch helpers and the base of the device operations. The pipelines are written against the
# operations' interface (`xp` is the array module); the test suite runs the very same pipelines
# with a host implementation whose kernels are the .cu headers compiled with g++ (tests/cuda_host).


def u64(v: int) -> np.uint64:
    return np.uint64(v)


def u32(v: int) -> np.uint32:
    return np.uint32(v)


def blocks(n: int, per: int) -> int:
    return max(1, -(-n // per))


def device_id(device: Any) -> Optional[int]:
    if device is None:
        return None
    if isinstance(device, (int, np.integer)):
        return int(device)
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        return int(device[5:]) if ":" in device else None
    index = getattr(device, "index", None)  # torch.device
    if getattr(device, "type", None) == "cuda":
        return index
    raise ValueError(f"device must be a CUDA device index, 'cuda' or 'cuda:N', got {device!r}")


class OpsBase:
    """The current CUDA device through CuPy: transfers and kernel launch helpers. The stage
    mixins (histogram, quantize, rans, sparse) add the kernels of their .cu file."""

    def __init__(self, device: Any = None):
        cp = cupy_module()
        self.cp = self.xp = cp
        self.device = cp.cuda.Device(device_id(device))
        self.sms, self.smem_optin = device_info(self.device.id)

    def context(self):
        return self.device

    def _k(self, file: str, name: str):
        assert name in KERNELS[file], (file, name)
        return kernel(file, name, self.device.id)

    def _grid(self, n: int) -> int:
        return min(blocks(n, BLOCK), self.sms * 32)

    # transfers
    def to_host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a)

    def to_device(self, a: np.ndarray):
        return self.cp.asarray(a)

    def copy_to_host(self, a, out: np.ndarray) -> None:
        a.get(out=out)

    def scalar(self, a) -> int:
        return int(a)

