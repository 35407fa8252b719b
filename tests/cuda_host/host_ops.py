"""The device operations of ``splitans.gpu`` run on the host, for tests without a GPU.

``build()`` compiles ``driver.cpp`` (the kernels' own headers, ``rans_common.cuh`` and
``feature_common.cuh``, with a host driver) into a shared library with g++; ``HostOps`` wraps it
with the same interface as ``splitans.gpu.pipelines.CupyOps``, on numpy arrays. Passing
``_ops_=HostOps(...)`` to ``compress_gpu`` & co. runs the real GPU pipeline (planning through the
Rust bindings, container assembly, CRC, error handling) with the kernels' logic on the CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import pathlib
import shutil
import subprocess
from typing import Any, Dict, Optional

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CUDA_DIR = ROOT / "python" / "splitans" / "cuda"
DRIVER = HERE / "driver.cpp"
# Strict warnings; IEEE arithmetic without contraction (x86-64 SSE, no -ffast-math).
CXXFLAGS = [
    "-std=c++17",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Wconversion",
    "-Wno-sign-conversion",
    "-Werror",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-shared",
    "-fPIC",
]

_P = ctypes.c_void_p
_U32 = ctypes.c_uint32
_U64 = ctypes.c_uint64

_SIGNATURES = {
    "spn_histogram": [_P, _U32, _U64, _P],
    "spn_enc_table": [_P, _P, _P, _U32, _P],
    "spn_encode": [_P, _U32, _U64, _U32, _U32, _U32, _P, _P, _P, _P],
    "spn_pack": [_P, _P, _P, _P, _U64, _U32, _U32, _U64, _P],
    "spn_dec_table": [_P, _P, _P, _U32, _U32, _P, _P],
    "spn_decode": [_P, _P, _P, _P, _U64, _U32, _U32, _U32, _P, _P, _U32, _P, _P],
    "spn_minmax": [_P, _U64, _U32, _U64, _P, _P],
    "spn_quantize": [_P, _U64, _U32, _U64, _P, _P, _U32, _P, _U32, _U32, _P, _P, _P],
    "spn_dequantize": [_P, _U32, _U64, _U32, _U64, _P, _P, _U32, _U32, _P, _P],
    "spn_f64_to_f32": [_P, _U64, _P],
    "spn_f16_to_f32": [_P, _U64, _P],
    "spn_csr_flags": [_P, _U32, _U64, _U32, _U64, _P, _P],
    "spn_csr_compact": [_P, _U32, _U64, _P, _P, _U64, _P, _P],
    "spn_csr_positions": [_U64, _P, _P, _P],
    "spn_csr_row_counts": [_P, _U64, _U64, _P],
    "spn_csr_fill_zero_points": [_P, _U32, _U64, _U32, _U64, _P],
    "spn_csr_scatter": [_P, _P, _U64, _U64, _P, _P, _U32, _P, _P],
    "spn_pctx_encode": [_P, _U64, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P],
    "spn_pctx_pack": [_P, _P, _P, _P, _U64, _U64, _P],
    "spn_pctx_decode": [_P, _P, _P, _P, _U64, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P],
    "spn_pctx_chunks": [_U64, _U64],
    "spn_sizeof_encsym": [],
    "spn_enc_tile": [],
    "spn_dec_ring": [],
}


def compiler() -> Optional[str]:
    return shutil.which("g++")


def build(out_dir: pathlib.Path) -> pathlib.Path:
    """Compiles the driver into out_dir; raises RuntimeError with the compiler's output."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("g++ not found")
    lib = out_dir / "libsplitans_cuda_host.so"
    cmd = [cxx, *CXXFLAGS, "-I", str(CUDA_DIR), str(DRIVER), "-o", str(lib)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return lib


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous, "kernel arguments must be C-contiguous"
    return a.ctypes.data


def _scalar_array(n: int, dtype) -> np.ndarray:
    return np.zeros(n, dtype=dtype)


class HostOps:
    """splitans.gpu.pipelines.CupyOps on the host (numpy arrays, the kernels' logic via ctypes)."""

    xp = np

    def __init__(self, lib_path: pathlib.Path):
        self.lib = ctypes.CDLL(str(lib_path))
        for name, args in _SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.argtypes = args
            fn.restype = (
                _U64
                if name == "spn_pctx_chunks"
                else _U32
                if name in ("spn_sizeof_encsym", "spn_enc_tile", "spn_dec_ring")
                else None
            )
        assert self.lib.spn_sizeof_encsym() == 16, "EncSym must be 16 bytes (2 u64 per symbol)"

    def context(self):
        return contextlib.nullcontext()

    # transfers
    def to_host(self, a) -> np.ndarray:
        return np.array(a, copy=True)

    def to_device(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    def copy_to_host(self, a, out: np.ndarray) -> None:
        out[...] = a

    def scalar(self, a) -> int:
        return int(a)

    # histogram.cu
    def histogram(self, syms, width: int, bins: Optional[int] = None) -> np.ndarray:
        counts = np.zeros(1 << (8 * width), dtype=np.uint64)
        self.lib.spn_histogram(_ptr(syms), width, syms.size, _ptr(counts))
        return counts[:bins] if bins is not None else counts

    # rans_encode.cu / rans_decode.cu
    def enc_table(self, plan: Dict[str, Any], width: int) -> np.ndarray:
        table = np.zeros(2 << (8 * width), dtype=np.uint64)
        s, f, c = (np.ascontiguousarray(plan[k], dtype=np.uint32) for k in ("symbols", "freqs", "cum_freqs"))
        self.lib.spn_enc_table(_ptr(s), _ptr(f), _ptr(c), len(s), _ptr(table))
        return table

    def encode(self, syms, width: int, n: int, chunk_log2: int, lanes: int, p: int, table):
        chunks = -(-n // (1 << chunk_log2))
        states = np.zeros(chunks * lanes, dtype=np.uint32)
        scratch = np.zeros(n, dtype=np.uint16)
        n_words = np.zeros(chunks, dtype=np.uint32)
        self.lib.spn_encode(
            _ptr(syms), width, n, chunk_log2, lanes, p, _ptr(table), _ptr(states), _ptr(scratch), _ptr(n_words)
        )
        return states, scratch, n_words

    def pack(self, states, scratch, n_words, offsets: np.ndarray, n: int, chunk_log2: int, lanes: int, total: int):
        out = np.zeros(total, dtype=np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.uint64)
        self.lib.spn_pack(
            _ptr(states), _ptr(scratch), _ptr(n_words), _ptr(offsets), n, chunk_log2, lanes, len(offsets), _ptr(out)
        )
        return out

    def dec_table(self, st: Dict[str, Any]):
        p = st["precision_bits"]
        fb = np.zeros(1 << p, dtype=np.uint32)
        dsym = np.zeros(1 << p, dtype=np.uint16)
        s, f, c = (np.ascontiguousarray(st[k], dtype=np.uint32) for k in ("symbols", "freqs", "cum_freqs"))
        self.lib.spn_dec_table(_ptr(s), _ptr(f), _ptr(c), len(s), p, _ptr(fb), _ptr(dsym))
        return fb, dsym

    def decode(self, blob, st: Dict[str, Any], fb, dsym, width: int):
        n = st["n"]
        so, wo, wc = (np.ascontiguousarray(st[k]) for k in ("state_offsets", "word_offsets", "word_counts"))
        out = np.zeros(n, dtype=np.uint8 if width == 1 else np.uint16)
        status = np.zeros(len(wc), dtype=np.uint32)
        self.lib.spn_decode(
            _ptr(blob),
            _ptr(so),
            _ptr(wo),
            _ptr(wc),
            n,
            st["chunk_log2"],
            st["lanes"],
            st["precision_bits"],
            _ptr(fb),
            _ptr(dsym),
            width,
            _ptr(out),
            _ptr(status),
        )
        return out, status

    # pctx.cu
    _PCTX_TABLES = ("ctx_g", "ctx_a", "ctx_b", "ctx_c", "context_map", "cums")

    def pctx_tables(self, codec) -> Dict[str, np.ndarray]:
        host = codec.gpu_tables()
        return {k: np.ascontiguousarray(host[k]) for k in self._PCTX_TABLES}

    def _pctx_ptrs(self, geo, tables, fill):
        geo = np.ascontiguousarray(geo, dtype=np.uint64)
        fill = np.ascontiguousarray(fill, dtype=np.uint8)
        self._keep = (geo, fill)
        return [_ptr(geo), *(_ptr(tables[k]) for k in self._PCTX_TABLES), _ptr(fill)]

    def pctx_encode(self, q, n: int, geo, tables, fill, chunks: int):
        assert chunks == self.lib.spn_pctx_chunks(n, int(geo[11]))
        states = np.zeros(32 * chunks, dtype=np.uint32)
        scratch = np.zeros(n, dtype=np.uint16)
        n_words = np.zeros(chunks, dtype=np.uint32)
        self.lib.spn_pctx_encode(
            _ptr(q), n, *self._pctx_ptrs(geo, tables, fill), _ptr(states), _ptr(scratch), _ptr(n_words)
        )
        return states, scratch, n_words

    def pctx_pack(self, states, scratch, n_words, offsets, n: int, plane: int, total: int):
        out = np.zeros(total, dtype=np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.uint64)
        assert len(offsets) == self.lib.spn_pctx_chunks(n, plane)
        self.lib.spn_pctx_pack(_ptr(states), _ptr(scratch), _ptr(n_words), _ptr(offsets), n, plane, _ptr(out))
        return out

    def pctx_decode(self, blob, lay: Dict[str, Any], n: int, geo, tables, fill):
        so, wo, wc = (np.ascontiguousarray(lay[k]) for k in ("state_offsets", "word_offsets", "word_counts"))
        q = np.zeros(n, dtype=np.uint8)
        status = np.zeros(len(wc), dtype=np.uint32)
        self.lib.spn_pctx_decode(
            _ptr(blob), _ptr(so), _ptr(wo), _ptr(wc), n, *self._pctx_ptrs(geo, tables, fill), _ptr(q), _ptr(status)
        )
        return q, status

    # quantize.cu
    def to_f32(self, x):
        x = np.ascontiguousarray(x)
        if x.dtype == np.float32:
            return x
        out = np.empty(x.shape, dtype=np.float32)
        if x.dtype == np.float64:
            self.lib.spn_f64_to_f32(_ptr(x), x.size, _ptr(out))
        elif x.dtype == np.float16:
            self.lib.spn_f16_to_f32(_ptr(x.view(np.uint16)), x.size, _ptr(out))
        else:
            raise TypeError(f"expected a float array, got {x.dtype}")
        return out

    def minmax(self, x, channels: int, inner: int):
        keys = np.zeros(2 * channels, dtype=np.uint32)
        keys[0::2] = 0xFFFFFFFF
        flag = _scalar_array(1, np.uint32)
        self.lib.spn_minmax(_ptr(x), x.size, channels, inner, _ptr(keys), _ptr(flag))
        return keys, bool(flag[0])

    def quantize(self, x, channels: int, inner: int, scale, zero_point, bits: int, ranges):
        width = 1 if bits <= 8 else 2
        q = np.zeros(x.size, dtype=np.uint8 if width == 1 else np.uint16)
        outside = _scalar_array(1, np.uint64)
        flag = _scalar_array(1, np.uint32)
        r = np.ascontiguousarray(ranges if ranges is not None else np.zeros(2), dtype=np.float32)
        s = np.ascontiguousarray(scale, dtype=np.float32)
        z = np.ascontiguousarray(zero_point, dtype=np.int32)
        self.lib.spn_quantize(
            _ptr(x),
            x.size,
            channels,
            inner,
            _ptr(s),
            _ptr(z),
            bits,
            _ptr(r),
            int(ranges is not None),
            width,
            _ptr(q),
            _ptr(outside),
            _ptr(flag),
        )
        return q, int(outside[0]), bool(flag[0])

    def dequantize(self, q, channels: int, inner: int, scale, zero_point, bits: int, f64: bool):
        out = np.zeros(q.size, dtype=np.float64 if f64 else np.float32)
        bad = _scalar_array(1, np.uint32)
        s = np.ascontiguousarray(scale, dtype=np.float32)
        z = np.ascontiguousarray(zero_point, dtype=np.int32)
        self.lib.spn_dequantize(
            _ptr(q), q.itemsize, q.size, channels, inner, _ptr(s), _ptr(z), bits, int(f64), _ptr(out), _ptr(bad)
        )
        return out, bool(bad[0])

    # sparse.cu
    def csr_flags(self, q, channels: int, inner: int, zero_point):
        flags = np.zeros(q.size, dtype=np.uint32)
        z = np.ascontiguousarray(zero_point, dtype=np.int32)
        self.lib.spn_csr_flags(_ptr(q), q.itemsize, q.size, channels, inner, _ptr(z), _ptr(flags))
        return flags

    def csr_compact(self, q, flags, prefix, cols: int, nnz: int):
        col_idx = np.zeros(nnz, dtype=np.uint16)
        values = np.zeros(nnz, dtype=q.dtype)
        self.lib.spn_csr_compact(
            _ptr(q), q.itemsize, q.size, _ptr(flags), _ptr(prefix), cols, _ptr(col_idx), _ptr(values)
        )
        return col_idx, values

    def csr_positions(self, flags, prefix, nnz: int):
        pos = np.zeros(nnz, dtype=np.uint64)
        self.lib.spn_csr_positions(flags.size, _ptr(flags), _ptr(prefix), _ptr(pos))
        return pos

    def csr_row_counts(self, prefix, rows: int, cols: int):
        counts = np.zeros(rows, dtype=np.uint16)
        self.lib.spn_csr_row_counts(_ptr(prefix), rows, cols, _ptr(counts))
        return counts

    def csr_fill(self, n: int, channels: int, inner: int, zero_point, width: int):
        out = np.zeros(n, dtype=np.uint8 if width == 1 else np.uint16)
        z = np.ascontiguousarray(zero_point, dtype=np.int32)
        self.lib.spn_csr_fill_zero_points(_ptr(out), width, n, channels, inner, _ptr(z))
        return out

    def csr_scatter(self, counts, row_start, cols: int, col_idx, values, out) -> bool:
        bad = _scalar_array(1, np.uint32)
        self.lib.spn_csr_scatter(
            _ptr(counts),
            _ptr(row_start),
            counts.size,
            cols,
            _ptr(col_idx),
            _ptr(values),
            out.itemsize,
            _ptr(out),
            _ptr(bad),
        )
        return bool(bad[0])
