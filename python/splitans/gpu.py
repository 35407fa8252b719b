"""The GPU path: the same containers as the CPU path, byte for byte, produced and consumed on a
CUDA device through CuPy.

    import cupy as cp, splitans.gpu as sg
    blob = sg.compress_gpu(x_cuda, bits=8)          # == splitans.compress(x_cuda.get(), bits=8)
    y = sg.decompress_gpu(blob)                       # a CuPy array on the device
    blob = sg.rans_encode_gpu(symbols_cuda)           # == splitans.rans_encode(symbols)
    s = sg.rans_decode_gpu(blob)

What runs where:

* On the device (the kernels in ``splitans/cuda/*.cu``): the range scan, quantization and
  clamped count, the histograms, the CSR flags / prefix sums / compaction, the encoder and
  decoder tables, the rANS chunk coding (one warp per chunk, FORMAT.md 4.3-4.4), the packing of
  the coded chunks into the stream body, the CSR scatter and the dequantization.
* On the host: every decision that picks a byte, by the same Rust functions the CPU encoder
  calls (``splitans._core.gpu_*``): the frequency table and its precision (from the histogram,
  which is the only data besides the coded bytes that crosses to the host), the chunk size, the
  lanes, the raw fallback, the quantization parameters of a range, the CSR row count and mode.
  Then the container is assembled around the coded bytes with ``zlib.crc32``. Decoding, the
  container is validated by the Rust parser before any kernel sees an offset; the kernels check
  the end-of-chunk conditions and the CSR columns, so corrupt input raises
  ``splitans.CorruptDataError`` as on the CPU.

So the output is bit-identical to ``splitans.compress`` / ``splitans.rans_encode`` with the
same options (``threads`` does not apply). Not supported here: ``clip=splitans.Percentile(...)``
(numpy computes percentiles on the host; pass ``clip=(low, high)`` or a calibrated
``scale``/``zero_point``). Empty tensors are handed to the CPU path (nothing to move).

CuPy is optional: importing ``splitans`` never needs it. The kernels ship in the package and
are compiled once per device with NVRTC by ``cupy.RawModule`` on first use (CuPy adds the
device's architecture and caches the binary on disk).
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
import struct
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core, _feature
from ._codec import DEFAULT_MAX_OUTPUT_BYTES, _as_bytes, _chunk_log2, _max_output, _precision
from ._core import CorruptDataError

__all__ = [
    "COMPILE_OPTIONS",
    "INSTALL_HINT",
    "KERNELS",
    "KERNEL_FILES",
    "available",
    "compress_gpu",
    "decompress_gpu",
    "kernel_source",
    "rans_decode_gpu",
    "rans_encode_gpu",
]

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
HEADER_FILES = ("rans_common.cuh", "feature_common.cuh")
#: NVRTC options. CuPy appends the device's -arch and -ftz=true; the float arithmetic that
#: decides a code is inline PTX, which -ftz cannot change (feature_common.cuh).
COMPILE_OPTIONS = ("-std=c++17", "--fmad=false")

_FLOAT_CODES = {"float16": 9, "bfloat16": 10, "float32": 11, "float64": 12}
_INT_CODES = {"uint8": 1, "int8": 2, "uint16": 3, "int16": 4, "uint32": 5, "int32": 6, "uint64": 7, "int64": 8}
_KIND_SYMBOLS, _KIND_ARRAY, _KIND_FEATURE = 1, 2, 3
_NO_AXIS = 255
_MAX_COLS = 65535
_HEADER_BYTES = 24
_STATUS = {
    1: "rANS state below 2^16",
    2: "rANS chunk ran out of words",
    3: "rANS chunk has unread words",
    4: "rANS chunk does not end in the initial state",
}
#: Decoder tables up to 2^12 slots (24 KB) go to shared memory.
_DEC_SHARED_MAX_BITS = 12
_ENC_WARPS = 4
_DEC_WARPS = 4
_BLOCK = 256


# --------------------------------------------------------------------------------------------
# Kernel sources and modules

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def _read_packaged(name: str) -> str:
    return importlib.resources.files(__package__).joinpath("cuda").joinpath(name).read_text(encoding="utf-8")


def kernel_source(name: str, read: Optional[Callable[[str], str]] = None) -> str:
    """The source of kernel file ``name`` with its ``#include "..."`` headers inlined (each
    once; ``#line`` directives keep compiler messages pointing at the real files), as it is
    given to NVRTC. ``read(name)`` returns a file's text (default: the packaged copy)."""
    read = read or _read_packaged
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


def _cupy():
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
        _cupy()
    except RuntimeError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _module(name: str, device_id: int):
    """The compiled module of one kernel file on one device (compiled on first use)."""
    cp = _cupy()
    with cp.cuda.Device(device_id):
        return cp.RawModule(code=kernel_source(name), options=COMPILE_OPTIONS)


@functools.lru_cache(maxsize=None)
def _kernel(file: str, name: str, device_id: int):
    return _module(file, device_id).get_function(name)


@functools.lru_cache(maxsize=None)
def _device_info(device_id: int) -> Tuple[int, int]:
    """(multiprocessors, shared memory a block can opt in to) of a device."""
    attrs = _cupy().cuda.Device(device_id).attributes
    return int(attrs.get("MultiProcessorCount", 80)), int(attrs.get("MaxSharedMemoryPerBlockOptin", 48 * 1024))


# --------------------------------------------------------------------------------------------
# Device operations. The pipeline below is written against this interface (`xp` is the array
# module); the test suite runs the very same pipeline with a host implementation whose kernels
# are the .cu headers compiled with g++ (tests/cuda_host).


def _u64(v: int) -> np.uint64:
    return np.uint64(v)


def _u32(v: int) -> np.uint32:
    return np.uint32(v)


def _blocks(n: int, per: int) -> int:
    return max(1, -(-n // per))


class _CupyOps:
    """The kernels on the current CUDA device, through CuPy."""

    def __init__(self, device: Any = None):
        cp = _cupy()
        self.cp = self.xp = cp
        self.device = cp.cuda.Device(_device_id(device))
        self.sms, self.smem_optin = _device_info(self.device.id)

    def context(self):
        return self.device

    def _k(self, file: str, name: str):
        assert name in KERNELS[file], (file, name)
        return _kernel(file, name, self.device.id)

    def _grid(self, n: int) -> int:
        return min(_blocks(n, _BLOCK), self.sms * 32)

    # transfers
    def to_host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a)

    def to_device(self, a: np.ndarray):
        return self.cp.asarray(a)

    def copy_to_host(self, a, out: np.ndarray) -> None:
        a.get(out=out)

    def scalar(self, a) -> int:
        return int(a)

    # histograms (histogram.cu)
    def histogram(self, syms, width: int, bins: Optional[int] = None) -> np.ndarray:
        cp = self.cp
        counts = cp.zeros(1 << (8 * width), dtype=cp.uint64)
        n = int(syms.size)
        if n:
            if width == 1:
                part_bits = 8
            else:
                part_bits = 16
                while (4 << part_bits) > self.smem_optin:
                    part_bits -= 1
            smem = 4 << part_bits
            kernel = self._k("histogram.cu", "histogram_u8" if width == 1 else "histogram_u16")
            if smem > 48 * 1024:
                kernel.max_dynamic_shared_size_bytes = smem
            block = 512
            gx = max(min(_blocks(n, block), self.sms * 4), -(-n // (1 << 31)))
            kernel(
                (gx, 1 << (8 * width - part_bits)), (block,), (syms, _u64(n), _u32(part_bits), counts), shared_mem=smem
            )
        if bins is not None:
            counts = counts[:bins]
        return cp.asnumpy(counts)

    # rANS (rans_encode.cu, rans_decode.cu)
    def enc_table(self, plan: Dict[str, Any], width: int):
        cp = self.cp
        table = cp.zeros(2 << (8 * width), dtype=cp.uint64)  # EncSym: u64 rcp, u32 freq, u32 cum
        m = len(plan["symbols"])
        args = [cp.asarray(plan[k], dtype=cp.uint32) for k in ("symbols", "freqs", "cum_freqs")]
        self._k("rans_encode.cu", "rans_enc_table")((_blocks(m, _BLOCK),), (_BLOCK,), (*args, _u32(m), table))
        return table

    def encode(self, syms, width: int, n: int, chunk_log2: int, lanes: int, p: int, table):
        cp = self.cp
        chunks = -(-n // (1 << chunk_log2))
        states = cp.empty(chunks * lanes, dtype=cp.uint32)
        scratch = cp.empty(n, dtype=cp.uint16)
        n_words = cp.empty(chunks, dtype=cp.uint32)
        kernel = self._k("rans_encode.cu", "rans_encode_u8" if width == 1 else "rans_encode_u16")
        kernel(
            (_blocks(chunks, _ENC_WARPS),),
            (_ENC_WARPS * 32,),
            (syms, _u64(n), _u32(chunk_log2), _u32(lanes), _u32(p), table, _u64(chunks), states, scratch, n_words),
        )
        return states, scratch, n_words

    def pack(self, states, scratch, n_words, offsets: np.ndarray, n: int, chunk_log2: int, lanes: int, total: int):
        cp = self.cp
        chunks = len(offsets)
        out = cp.empty(total, dtype=cp.uint8)
        self._k("rans_encode.cu", "rans_pack")(
            (_blocks(chunks, _ENC_WARPS),),
            (_ENC_WARPS * 32,),
            (states, scratch, n_words, cp.asarray(offsets), _u64(n), _u32(chunk_log2), _u32(lanes), _u64(chunks), out),
        )
        return out

    def dec_table(self, st: Dict[str, Any]):
        cp = self.cp
        p = st["precision_bits"]
        fb = cp.empty(1 << p, dtype=cp.uint32)
        dsym = cp.empty(1 << p, dtype=cp.uint16)
        m = len(st["symbols"])
        args = [cp.asarray(st[k], dtype=cp.uint32) for k in ("symbols", "freqs", "cum_freqs")]
        self._k("rans_decode.cu", "rans_dec_table")(
            (_blocks(1 << p, _BLOCK),), (_BLOCK,), (*args, _u32(m), _u32(p), fb, dsym)
        )
        return fb, dsym

    def decode(self, blob, st: Dict[str, Any], fb, dsym, width: int):
        cp = self.cp
        n, p, lanes, c = st["n"], st["precision_bits"], st["lanes"], st["chunk_log2"]
        chunks = len(st["word_counts"])
        out = cp.empty(n, dtype=cp.uint8 if width == 1 else cp.uint16)
        status = cp.empty(chunks, dtype=cp.uint32)
        shared = p <= _DEC_SHARED_MAX_BITS
        kernel = self._k("rans_decode.cu", "rans_decode_u8" if width == 1 else "rans_decode_u16")
        kernel(
            (_blocks(chunks, _DEC_WARPS),),
            (_DEC_WARPS * 32,),
            (
                blob,
                cp.asarray(st["state_offsets"]),
                cp.asarray(st["word_offsets"]),
                cp.asarray(st["word_counts"]),
                _u64(n),
                _u32(c),
                _u32(lanes),
                _u32(p),
                fb,
                dsym,
                _u32(shared),
                _u64(chunks),
                out,
                status,
            ),
            shared_mem=(6 << p) if shared else 0,
        )
        return out, cp.asnumpy(status)

    # features (quantize.cu)
    def to_f32(self, x):
        cp = self.cp
        if x.dtype == cp.float32:
            return cp.ascontiguousarray(x)
        x = cp.ascontiguousarray(x)
        out = cp.empty(x.shape, dtype=cp.float32)
        n = int(x.size)
        if n:
            if x.dtype == cp.float64:
                self._k("quantize.cu", "f64_to_f32")((self._grid(n),), (_BLOCK,), (x, _u64(n), out))
            elif x.dtype == cp.float16:
                self._k("quantize.cu", "f16_to_f32")((self._grid(n),), (_BLOCK,), (x.view(cp.uint16), _u64(n), out))
            else:
                raise TypeError(f"expected a float array, got {x.dtype}")
        return out

    def minmax(self, x, channels: int, inner: int) -> Tuple[np.ndarray, bool]:
        cp = self.cp
        keys = cp.empty(2 * channels, dtype=cp.uint32)
        keys[0::2] = 0xFFFFFFFF
        keys[1::2] = 0
        flag = cp.zeros(1, dtype=cp.uint32)
        n = int(x.size)
        gy = min(channels, 65535)
        gx = max(1, min(_blocks(n // channels, _BLOCK), (self.sms * 16) // gy))
        self._k("quantize.cu", "feature_minmax")(
            (gx, gy), (_BLOCK,), (x, _u64(n), _u32(channels), _u64(inner), keys, flag)
        )
        return cp.asnumpy(keys), bool(int(flag[0]))

    def quantize(
        self,
        x,
        channels: int,
        inner: int,
        scale: np.ndarray,
        zero_point: np.ndarray,
        bits: int,
        ranges: Optional[np.ndarray],
    ):
        cp = self.cp
        n = int(x.size)
        q = cp.empty(n, dtype=cp.uint8 if bits <= 8 else cp.uint16)
        outside = cp.zeros(1, dtype=cp.uint64)
        flag = cp.zeros(1, dtype=cp.uint32)
        r = cp.asarray(ranges if ranges is not None else np.zeros(2, np.float32))
        kernel = self._k("quantize.cu", "quantize_u8" if bits <= 8 else "quantize_u16")
        kernel(
            (self._grid(n),),
            (_BLOCK,),
            (
                x,
                _u64(n),
                _u32(channels),
                _u64(inner),
                cp.asarray(scale),
                cp.asarray(zero_point),
                _u32(bits),
                r,
                _u32(ranges is not None),
                q,
                outside,
                flag,
            ),
        )
        host = cp.asnumpy(cp.concatenate([outside, flag.astype(cp.uint64)]))
        return q, int(host[0]), bool(host[1])

    def dequantize(self, q, channels: int, inner: int, scale: np.ndarray, zero_point: np.ndarray, bits: int, f64: bool):
        cp = self.cp
        n = int(q.size)
        out = cp.empty(n, dtype=cp.float64 if f64 else cp.float32)
        bad = cp.zeros(1, dtype=cp.uint32)
        if n:
            kernel = self._k("quantize.cu", "dequantize_u8" if q.dtype == cp.uint8 else "dequantize_u16")
            kernel(
                (self._grid(n),),
                (_BLOCK,),
                (
                    q,
                    _u64(n),
                    _u32(channels),
                    _u64(inner),
                    cp.asarray(scale),
                    cp.asarray(zero_point),
                    _u32(bits),
                    _u32(f64),
                    out,
                    bad,
                ),
            )
        return out, bool(int(bad[0]))

    # CSR (sparse.cu)
    def _w(self, a) -> str:
        return "u8" if a.dtype == self.cp.uint8 else "u16"

    def csr_flags(self, q, channels: int, inner: int, zero_point: np.ndarray):
        cp = self.cp
        n = int(q.size)
        flags = cp.empty(n, dtype=cp.uint32)
        self._k("sparse.cu", "csr_flags_" + self._w(q))(
            (self._grid(n),), (_BLOCK,), (q, _u64(n), _u32(channels), _u64(inner), cp.asarray(zero_point), flags)
        )
        return flags

    def csr_compact(self, q, flags, prefix, cols: int, nnz: int):
        cp = self.cp
        n = int(q.size)
        col_idx = cp.empty(nnz, dtype=cp.uint16)
        values = cp.empty(nnz, dtype=q.dtype)
        if nnz:
            self._k("sparse.cu", "csr_compact_" + self._w(q))(
                (self._grid(n),), (_BLOCK,), (q, _u64(n), flags, prefix, _u64(cols), col_idx, values)
            )
        return col_idx, values

    def csr_positions(self, flags, prefix, nnz: int):
        cp = self.cp
        n = int(flags.size)
        pos = cp.empty(nnz, dtype=cp.uint64)
        if nnz:
            self._k("sparse.cu", "csr_positions")((self._grid(n),), (_BLOCK,), (_u64(n), flags, prefix, pos))
        return pos

    def csr_row_counts(self, prefix, rows: int, cols: int):
        cp = self.cp
        counts = cp.empty(rows, dtype=cp.uint16)
        self._k("sparse.cu", "csr_row_counts")((self._grid(rows),), (_BLOCK,), (prefix, _u64(rows), _u64(cols), counts))
        return counts

    def csr_fill(self, n: int, channels: int, inner: int, zero_point: np.ndarray, width: int):
        cp = self.cp
        out = cp.empty(n, dtype=cp.uint8 if width == 1 else cp.uint16)
        if n:
            self._k("sparse.cu", "csr_fill_zero_points_" + self._w(out))(
                (self._grid(n),), (_BLOCK,), (out, _u64(n), _u32(channels), _u64(inner), cp.asarray(zero_point))
            )
        return out

    def csr_scatter(self, counts, row_start, cols: int, col_idx, values, out) -> bool:
        cp = self.cp
        rows = int(counts.size)
        bad = cp.zeros(1, dtype=cp.uint32)
        warps = _BLOCK // 32
        grid = min(_blocks(rows, warps), self.sms * 64)
        self._k("sparse.cu", "csr_scatter_" + self._w(out))(
            (grid,), (_BLOCK,), (counts, row_start, _u64(rows), _u64(cols), col_idx, values, out, bad)
        )
        return bool(int(bad[0]))


def _device_id(device: Any) -> Optional[int]:
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


def _ops(device: Any = None) -> _CupyOps:
    return _CupyOps(device)


# --------------------------------------------------------------------------------------------
# Container assembly (FORMAT.md 2, 3.1). A container is built from parts: host bytes, or device
# byte arrays that are copied straight into the final buffer.

Part = Any


def _stream_header(mode: int, width: int, n: int) -> bytes:
    return struct.pack("<BBQ", mode, width, n)


def _parts_len(parts: Sequence[Part]) -> int:
    return sum(len(p) if isinstance(p, (bytes, bytearray)) else int(p.size) for p in parts)


def _record(parts: Sequence[Part]) -> List[Part]:
    return [struct.pack("<Q", _parts_len(parts)), *parts]


def _finish(
    ops, kind: int, dtype_code: int, shape: Sequence[int], n_streams: int, records: Sequence[Sequence[Part]]
) -> bytes:
    header = b"SPNS" + struct.pack(
        "<BBHIQBBBB", 1, 0, _HEADER_BYTES + 8 * len(shape), 0, 0, kind, dtype_code, len(shape), n_streams
    )
    header += b"".join(struct.pack("<Q", d) for d in shape)
    parts: List[Part] = [header]
    for rec in records:
        parts += _record(rec)
    total = _parts_len(parts)
    out = bytearray(total)
    view = np.frombuffer(out, dtype=np.uint8)
    pos = 0
    for p in parts:
        if isinstance(p, (bytes, bytearray)):
            out[pos : pos + len(p)] = p
            pos += len(p)
        else:
            size = int(p.size)
            if size:
                ops.copy_to_host(p, view[pos : pos + size])
            pos += size
    struct.pack_into("<Q", out, 12, total)
    mv = memoryview(out)
    crc = zlib.crc32(mv[12:], zlib.crc32(mv[:8]))
    struct.pack_into("<I", out, 8, crc)
    return bytes(out)


def _as_u8(ops, syms):
    return syms.view(ops.xp.uint8)


def _encode_stream(
    ops, syms, width: int, counts: np.ndarray, precision_bits: Optional[int], chunk_log2: Optional[int]
) -> List[Part]:
    """One stream (FORMAT.md 5.2) of the device symbols `syms` whose histogram is `counts`."""
    n = int(syms.size)
    plan = _core.gpu_plan_stream(counts, width, precision_bits, chunk_log2)
    mode = plan["mode"]
    if mode == "empty":
        return [_stream_header(0, width, 0)]
    if mode == "constant":
        return [_stream_header(1, width, n) + struct.pack("<H", plan["symbol"])]
    if mode == "raw":
        return [_stream_header(2, width, n), _as_u8(ops, syms)]
    c, lanes, p = plan["chunk_log2"], plan["lanes"], plan["precision_bits"]
    chunks = plan["chunks"]
    table = ops.enc_table(plan, width)
    states, scratch, n_words_dev = ops.encode(syms, width, n, c, lanes, p, table)
    n_words = ops.to_host(n_words_dev).astype(np.int64)
    chunk_bytes = 4 * lanes + 2 * n_words
    body_len = int(chunk_bytes.sum())
    table_bytes = plan["table_bytes"]
    if 10 + 4 + len(table_bytes) + 4 * chunks + body_len >= plan["raw_len"]:
        return [_stream_header(2, width, n), _as_u8(ops, syms)]
    offsets = np.zeros(chunks, dtype=np.uint64)
    np.cumsum(chunk_bytes[:-1], out=offsets[1:])
    body = ops.pack(states, scratch, n_words_dev, offsets, n, c, lanes, body_len)
    head = _stream_header(3, width, n) + bytes([p, lanes, c, 0]) + table_bytes + n_words.astype("<u4").tobytes()
    return [head, body]


def _decode_stream(ops, blob, st: Dict[str, Any], width: int):
    """The symbols of one parsed stream (a dict from gpu_layout / gpu_stream_layout)."""
    xp = ops.xp
    mode, n = st["mode"], st["n"]
    dtype = xp.uint8 if width == 1 else xp.uint16
    if mode == "empty":
        return xp.zeros(0, dtype=dtype)
    if mode == "constant":
        return xp.full(n, st["symbol"], dtype=dtype)
    if mode == "raw":
        off = st["data_offset"]
        return blob[off : off + n * width].copy().view(dtype)
    fb, dsym = ops.dec_table(st)
    out, status = ops.decode(blob, st, fb, dsym, width)
    bad = np.flatnonzero(status)
    if bad.size:
        k = int(bad[0])
        raise CorruptDataError(f"corrupt data: chunk {k}: {_STATUS.get(int(status[k]), 'bad rANS chunk')}")
    return out


# --------------------------------------------------------------------------------------------
# Inputs


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _to_device(ops, x: Any) -> Tuple[Any, str]:
    """A C-contiguous device array of `x` (CuPy array, CUDA torch tensor, or host array) and
    its dtype name (a torch bfloat16 tensor comes as float32 named "bfloat16")."""
    xp = ops.xp
    if _is_torch(x):
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


# --------------------------------------------------------------------------------------------
# Symbols and integer arrays (kinds 1 and 2)


def _encode_symbols(ops, a, kind: int, shape: Sequence[int], name: str, precision_bits, chunk_log2) -> bytes:
    """Kinds 1 and 2 (FORMAT.md 2.4): 8-bit dtypes as one stream of bytes, wider ones as
    16-bit planes, least significant first."""
    xp = ops.xp
    itemsize = np.dtype(name).itemsize
    flat = a.reshape(-1)
    if itemsize <= 2:
        planes = [flat.view(xp.uint8 if itemsize == 1 else xp.uint16)]
    else:
        wide = xp.uint32 if itemsize == 4 else xp.uint64
        unsigned = flat.view(wide)
        planes = [xp.ascontiguousarray((unsigned >> wide(16 * k)).astype(xp.uint16)) for k in range(itemsize // 2)]
    width = min(itemsize, 2)
    records = [_encode_stream(ops, pl, width, ops.histogram(pl, width), precision_bits, chunk_log2) for pl in planes]
    return _finish(ops, kind, _INT_CODES[name], shape, len(records), records)


def _decode_ints(ops, blob, lay: Dict[str, Any]):
    xp = ops.xp
    dtype = np.dtype(lay["dtype"])
    width = min(dtype.itemsize, 2)
    planes = [_decode_stream(ops, blob, st, width) for st in lay["streams"]]
    if dtype.itemsize <= 2:
        flat = planes[0].view(dtype.name)
    else:
        wide = xp.uint32 if dtype.itemsize == 4 else xp.uint64
        acc = planes[0].astype(wide)
        for k, plane in enumerate(planes[1:], 1):
            acc |= plane.astype(wide) << wide(16 * k)
        flat = acc.view(dtype.name)
    return flat.reshape(tuple(lay["shape"]))


# --------------------------------------------------------------------------------------------
# Features (kind 3; FORMAT.md 6)


def _resolve(ops, x, bits: int, channels: int, inner: int, clip, scale, zero_point):
    """Per-channel (scale, zero_point), the range outside which an element counts as clamped
    (None: none can be), and the non-finite flag when already known (rust feature.rs
    resolve_params; FORMAT.md 6.7.2, 6.7.5)."""
    top = (1 << bits) - 1

    def per_channel(n: int, what: str) -> None:
        if n != channels and n != 1:
            raise ValueError(f"{what} has {n} entries, expected 1 or {channels}")

    if scale is not None:
        s, z = _feature._params(scale, zero_point)
        if len(s) != len(z):
            raise ValueError("scale and zero_point differ in length")
        per_channel(len(s), "scale/zero_point")
        for sc, zp in zip(s, z):
            if not (math.isfinite(sc) and sc >= 0.0) or zp < 0 or zp > top:
                raise ValueError(
                    f"scale {sc} / zero_point {zp} invalid for {bits} bits (scale finite and >= 0, zero_point in 0..={top})"
                )
        s = [s[min(c, len(s) - 1)] for c in range(channels)]
        z = [z[min(c, len(z) - 1)] for c in range(channels)]
        ranges = []
        with np.errstate(over="ignore", invalid="ignore"):
            for sc, zp in zip(s, z):
                sc32 = np.float32(sc)
                half = sc32 / np.float32(2.0)
                ranges.append(((-np.float32(zp)) * sc32 - half, np.float32(top - zp) * sc32 + half))
        return np.array(s, np.float32), np.array(z, np.int32), np.array(ranges, np.float32).reshape(-1), None
    if clip is not None:
        pairs = [(np.float32(lo), np.float32(hi)) for lo, hi in clip]
        per_channel(len(pairs), "clip")
        for lo, hi in pairs:
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"clip range ({lo}, {hi}) is not finite lo <= hi")
        pairs = [pairs[min(c, len(pairs) - 1)] for c in range(channels)]
        finite = None
        may_clip = True
    else:
        keys, nonfinite = ops.minmax(x, channels, inner)
        pairs = []
        for c in range(channels):
            klo, khi = int(keys[2 * c]), int(keys[2 * c + 1])
            if klo == 0xFFFFFFFF:
                pairs.append((np.float32(0.0), np.float32(0.0)))
            else:
                pairs.append((_from_order_key(klo), _from_order_key(khi)))
        finite = not nonfinite
        may_clip = nonfinite
    params = [_core.gpu_affine_from_range(float(lo), float(hi), bits) for lo, hi in pairs]
    s = np.array([a[0] for a in params], np.float32)
    z = np.array([a[1] for a in params], np.int32)
    ranges = None
    if may_clip:
        ranges = np.array(
            [(min(lo, np.float32(0.0)), max(hi, np.float32(0.0))) for lo, hi in pairs], np.float32
        ).reshape(-1)
    return s, z, ranges, finite


def _from_order_key(k: int) -> np.float32:
    bits = (k & 0x7FFFFFFF) if k & 0x80000000 else (~k & 0xFFFFFFFF)
    return np.array([bits], np.uint32).view(np.float32)[0]


def _first_nonfinite(ops, x) -> str:
    xp = ops.xp
    bad = xp.flatnonzero(~xp.isfinite(x.reshape(-1)))
    i = int(ops.to_host(bad[:1])[0])
    v = float(ops.to_host(x.reshape(-1)[i : i + 1])[0])
    return (
        f"input holds NaN or infinity (first at flat index {i}, value {v}); "
        'pass nonfinite="clamp" to map NaN to 0 and infinities to the range ends'
    )


def _compress_feature(
    ops,
    x,
    name: str,
    shape: Tuple[int, ...],
    *,
    bits,
    axis,
    scale,
    zero_point,
    clip,
    mode,
    reshape,
    nonfinite,
    precision_bits,
    chunk_log2,
) -> bytes:
    xp = ops.xp
    bits = _feature._check_bits(bits)
    ndim = len(shape)
    axis = _feature._axis(axis, ndim)
    if nonfinite not in ("error", "clamp"):
        raise ValueError(f"nonfinite must be 'error' or 'clamp', got {nonfinite!r}")
    if mode not in ("dense", "csr", "auto"):
        raise ValueError(f"mode must be 'dense', 'csr' or 'auto', got {mode!r}")
    if clip is not None and scale is not None:
        raise ValueError("pass clip= or scale=/zero_point=, not both")
    if isinstance(clip, _feature.Percentile):
        raise ValueError(
            "clip=Percentile(...) is not supported by the GPU path (numpy computes percentiles on the host); "
            "pass clip=(low, high) per tensor or per channel, or a calibrated scale=/zero_point="
        )
    reshape = _feature._check_reshape(reshape)
    if ndim > 32:
        raise ValueError(f"compress() supports up to 32 dimensions, got {ndim}")
    total = int(np.prod(shape, dtype=np.int64)) if ndim else 1
    if total and isinstance(reshape, int) and (total % reshape or total // reshape > _MAX_COLS):
        raise ValueError(f"reshape={reshape} must divide the {total} elements into rows of at most {_MAX_COLS} columns")
    if axis is None:
        channels, inner = 1, 1
    else:
        channels, inner = shape[axis], max(1, int(np.prod(shape[axis + 1 :], dtype=np.int64)))
    clip_pairs = None
    if clip is not None:
        arr = np.asarray(clip, dtype=np.float64)
        if arr.shape == (2,):
            clip_pairs = [(float(arr[0]), float(arr[1]))]
        elif arr.ndim == 2 and arr.shape[1] == 2:
            clip_pairs = [(float(lo), float(hi)) for lo, hi in arr]
        else:
            raise ValueError(f"clip must be (low, high) or a list of per-channel (low, high); got {clip!r}")
    x = ops.to_f32(x).reshape(-1)
    s, z, ranges, finite = _resolve(ops, x, bits, channels, inner, clip_pairs, scale, zero_point)
    if finite is False and nonfinite == "error":
        raise ValueError(_first_nonfinite(ops, x))
    q, outside, has_nonfinite = ops.quantize(x, channels, inner, s, z, bits, ranges)
    if has_nonfinite and nonfinite == "error":
        raise ValueError(_first_nonfinite(ops, x))
    clamped = outside if ranges is not None else 0
    width = 1 if bits <= 8 else 2

    def est(h: np.ndarray, w: int) -> float:
        return float(8 + _core.gpu_estimated_len(h, w, precision_bits, chunk_log2))

    dense_hist = ops.histogram(q, width)
    dense_bytes = est(dense_hist, width)
    csr = None
    if mode != "dense":
        zps = z
        flags = ops.csr_flags(q, channels, inner, zps)
        prefix = xp.cumsum(flags, dtype=xp.uint64)
        nnz = ops.scalar(prefix[-1])
        if isinstance(reshape, int):
            rows = reshape
        elif reshape == "model":
            rows = _core.gpu_model_rows(total, nnz)
        else:
            rows = _search_rows(ops, flags, prefix, total, nnz)
        cols = total // rows
        col_idx, values = ops.csr_compact(q, flags, prefix, cols, nnz)
        counts = ops.csr_row_counts(prefix, rows, cols)
        values_hist = ops.histogram(values, width)
        row_hist = ops.histogram(counts, 2)
        col_hist = ops.histogram(col_idx, 2)
        csr_bytes = est(row_hist, 2) + est(col_hist, 2) + est(values_hist, width)
        if mode == "csr" or _core.gpu_auto_takes_csr(dense_bytes, csr_bytes):
            csr = (rows, counts, row_hist, col_idx, col_hist, values, values_hist)
    section = struct.pack(
        "<BBBBQQI",
        bits,
        1 if csr else 0,
        _NO_AXIS if axis is None else axis,
        0,
        clamped,
        csr[0] if csr else 0,
        channels,
    )
    section += b"".join(struct.pack("<fi", float(sc), int(zp)) for sc, zp in zip(s, z))
    records: List[List[Part]] = [[section]]
    if csr is None:
        records.append(_encode_stream(ops, q, width, dense_hist, precision_bits, chunk_log2))
    else:
        _, counts, row_hist, col_idx, col_hist, values, values_hist = csr
        records.append(_encode_stream(ops, counts, 2, row_hist, precision_bits, chunk_log2))
        records.append(_encode_stream(ops, col_idx, 2, col_hist, precision_bits, chunk_log2))
        records.append(_encode_stream(ops, values, width, values_hist, precision_bits, chunk_log2))
    return _finish(ops, _KIND_FEATURE, _FLOAT_CODES[name], shape, len(records) - 1, records)


def _search_rows(ops, flags, prefix, total: int, nnz: int) -> int:
    """reshape="search": the first candidate with the least search_cost (FORMAT.md 6.8)."""
    xp = ops.xp
    positions = ops.csr_positions(flags, prefix, nnz)
    best, best_cost = total, math.inf
    for rows in _core.gpu_candidate_rows(total):
        cols = total // rows
        row_hist = ops.histogram(ops.csr_row_counts(prefix, rows, cols), 2, bins=cols + 1)
        columns = xp.ascontiguousarray((positions % xp.uint64(cols)).astype(xp.uint16))
        col_hist = ops.histogram(columns, 2, bins=cols)
        cost = _core.gpu_search_cost(row_hist, col_hist)
        if cost < best_cost:
            best, best_cost = rows, cost
    return best


def _decode_feature(ops, data: bytes, blob, lay: Dict[str, Any]):
    xp = ops.xp
    f = lay["feature"]
    n = lay["count"]
    bits = f["bits"]
    width = 1 if bits <= 8 else 2
    scale = np.array(f["scale"], np.float32)
    zps = np.array(f["zero_point"], np.int32)
    channels, inner = f["channels"], f["inner"]
    if f["mode"] == "dense":
        q = _decode_stream(ops, blob, lay["streams"][0], width)
    else:
        recs = lay["records"]
        rows = f["rows"]
        counts = _decode_stream(ops, blob, _core.gpu_stream_layout(data, *recs[1], 0, rows, 2), 2)
        nnz = ops.scalar(counts.sum(dtype=xp.uint64))
        if nnz > n:
            raise CorruptDataError(f"corrupt data: {nnz} nonzeros in {n} elements")
        col_idx = _decode_stream(ops, blob, _core.gpu_stream_layout(data, *recs[2], 1, nnz, 2), 2)
        values = _decode_stream(ops, blob, _core.gpu_stream_layout(data, *recs[3], 2, nnz, width), width)
        q = ops.csr_fill(n, channels, inner, zps, width)
        ends = xp.cumsum(counts, dtype=xp.uint64)
        row_start = xp.concatenate([xp.zeros(1, dtype=xp.uint64), ends[:-1]])
        if ops.csr_scatter(counts, row_start, n // rows, col_idx, values, q):
            raise CorruptDataError("corrupt data: a column out of order or range in a CSR row")
    out, bad = ops.dequantize(q, channels, inner, scale, zps, bits, lay["dtype"] == "float64")
    if bad and bits < 16:
        raise CorruptDataError(f"corrupt data: a code exceeds the {bits}-bit range")
    return out


# --------------------------------------------------------------------------------------------
# Public API


def rans_encode_gpu(
    symbols: Any,
    *,
    precision_bits: Optional[int] = None,
    chunk_symbols: Optional[int] = None,
    device: Any = None,
    _ops_=None,
) -> bytes:
    """``splitans.rans_encode`` on the GPU: a 1-D uint8 or uint16 CuPy array (or CUDA torch
    tensor) to the identical container bytes. Only the histogram and the coded bytes cross to
    the host."""
    ops = _ops_ or _ops(device)
    with ops.context():
        a, name = _to_device(ops, symbols)
        if name not in ("uint8", "uint16"):
            raise TypeError(f"rans_encode() takes uint8 or uint16 symbols, got {name}")
        if a.ndim != 1:
            raise ValueError(f"rans_encode() takes a 1-D array of symbols, got {a.ndim} dimensions")
        return _encode_symbols(
            ops, a, _KIND_SYMBOLS, a.shape, name, _precision(precision_bits), _chunk_log2(chunk_symbols)
        )


def rans_decode_gpu(
    data: Any, *, max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES, device: Any = None, _ops_=None
):
    """``splitans.rans_decode`` on the GPU: the symbols as a 1-D CuPy array on the device."""
    ops = _ops_ or _ops(device)
    data = _as_bytes(data)
    lay = _core.gpu_layout(data, _max_output(max_output_bytes))
    with ops.context():
        blob = ops.to_device(np.frombuffer(data, np.uint8))
        # Decoded (and so verified) whatever the kind, as the CPU path does, before the kind check.
        out = _decode_feature(ops, data, blob, lay) if lay["kind"] == "feature" else _decode_ints(ops, blob, lay)
    if lay["kind"] != "symbols":
        raise ValueError(f"rans_decode() takes data from rans_encode(); this holds a {lay['kind']} (use decompress())")
    return out


def compress_gpu(
    x: Any,
    *,
    bits: Optional[int] = None,
    axis: Optional[int] = None,
    scale: Any = None,
    zero_point: Any = None,
    clip: Any = None,
    mode: str = "auto",
    reshape: Any = "model",
    nonfinite: str = "error",
    precision_bits: Optional[int] = None,
    chunk_symbols: Optional[int] = None,
    device: Any = None,
    _ops_=None,
) -> bytes:
    """``splitans.compress`` on the GPU, with the same options and the identical bytes: a CuPy
    array or CUDA torch tensor, float (quantized to ``bits``, dense or CSR) or integer
    (lossless). Everything but the histograms and the coded bytes stays on the device.
    ``clip=splitans.Percentile(...)`` is not supported here."""
    ops = _ops_ or _ops(device)
    with ops.context():
        return _compress(
            ops,
            x,
            bits=bits,
            axis=axis,
            scale=scale,
            zero_point=zero_point,
            clip=clip,
            mode=mode,
            reshape=reshape,
            nonfinite=nonfinite,
            precision_bits=precision_bits,
            chunk_symbols=chunk_symbols,
        )


def _compress(
    ops, x, *, bits, axis, scale, zero_point, clip, mode, reshape, nonfinite, precision_bits, chunk_symbols
) -> bytes:
    a, name = _to_device(ops, x)
    if name not in _FLOAT_CODES:
        lossy = dict(bits=bits, axis=axis, scale=scale, zero_point=zero_point, clip=clip)
        given = [k for k, v in lossy.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to float arrays; integer arrays are compressed losslessly")
        if name not in _INT_CODES:
            raise TypeError(
                f"compress() supports float arrays and the integer dtypes {', '.join(_INT_CODES)}; got {name}"
            )
        if a.ndim > 32:
            raise ValueError(f"compress() supports up to 32 dimensions, got {a.ndim}")
        return _encode_symbols(
            ops, a, _KIND_ARRAY, a.shape, name, _precision(precision_bits), _chunk_log2(chunk_symbols)
        )
    if bits is None:
        raise TypeError("compress() of a float array needs bits= (1..16), the quantization bit width, e.g. bits=8")
    if mode in ("context", "best"):
        raise ValueError(
            f"mode={mode!r} runs on the CPU only (splitans.compress): the context coder is serial; "
            "the GPU path codes 'auto', 'dense' and 'csr'"
        )
    shape = tuple(int(d) for d in a.shape)
    if 0 in shape:
        # Nothing to move or code: the CPU path writes the (header-only) container.
        from ._codec import compress

        empty = _empty_like_input(x, shape, name)
        return compress(
            empty,
            bits=bits,
            axis=axis,
            scale=scale,
            zero_point=zero_point,
            clip=clip,
            mode=mode,
            reshape=reshape,
            nonfinite=nonfinite,
            precision_bits=precision_bits,
            chunk_symbols=chunk_symbols,
        )
    return _compress_feature(
        ops,
        a,
        name,
        shape,
        bits=bits,
        axis=axis,
        scale=scale,
        zero_point=zero_point,
        clip=clip,
        mode=mode,
        reshape=reshape,
        nonfinite=nonfinite,
        precision_bits=_precision(precision_bits),
        chunk_log2=_chunk_log2(chunk_symbols),
    )


def _empty_like_input(x: Any, shape: Tuple[int, ...], name: str):
    if _is_torch(x):
        import torch

        return torch.empty(shape, dtype=getattr(torch, name))
    return np.empty(shape, dtype=name)


def decompress_gpu(
    data: Any,
    *,
    max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    output: str = "cupy",
    device: Any = None,
    _ops_=None,
):
    """``splitans.decompress`` on the GPU: any container to an array on the device, with its
    shape (a CuPy array; ``output="torch"``: a CUDA torch tensor). A feature comes back in the
    dtype it had: float16 and float64 as such, bfloat16 as float32 (CuPy has no bfloat16; as
    bfloat16 with ``output="torch"``). Raises the CPU path's errors (``CorruptDataError``, ...)."""
    if output not in ("cupy", "torch"):
        raise ValueError(f"output must be 'cupy' or 'torch', got {output!r}")
    ops = _ops_ or _ops(device)
    data = _as_bytes(data)
    lay = _core.gpu_layout(data, _max_output(max_output_bytes))
    with ops.context():
        blob = ops.to_device(np.frombuffer(data, np.uint8))
        if lay["kind"] != "feature":
            out = _decode_ints(ops, blob, lay)
            return _torch(out) if output == "torch" else out
        if lay["feature"]["mode"] == "context":
            # The context coder is serial (one adaptive state): no GPU kernel; decoded on the
            # CPU, then copied to the device.
            from ._codec import decompress

            host = decompress(data, max_output_bytes=max_output_bytes, threads=0)
            flat = ops.to_device(np.ascontiguousarray(host, dtype=np.float32).ravel())
        else:
            flat = _decode_feature(ops, data, blob, lay)
        return _feature_output(ops, flat, tuple(lay["shape"]), lay["dtype"], output)


def _feature_output(ops, flat, shape: Tuple[int, ...], dtype: str, output: str):
    if output == "torch":
        import torch

        t = _torch(flat).reshape(shape)
        return t.to(getattr(torch, dtype)) if dtype in ("float16", "bfloat16") else t
    if dtype == "float16":
        flat = flat.astype(ops.xp.float16)
    return flat.reshape(shape)


def _torch(a):
    import torch

    return torch.from_dlpack(a)
