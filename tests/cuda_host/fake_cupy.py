"""A stand-in for CuPy that runs ``splitans.gpu.pipelines.CupyOps`` itself on the host.

Arrays are numpy arrays with CuPy's ``.get()``. ``RawModule(code=...)`` keeps the source that CuPy
would hand to NVRTC, and every launch of one of its kernels is first checked against that kernel's
``extern "C"`` signature in that very source (argument count, the exact numpy type of every scalar,
since CuPy packs a scalar by its dtype, and the element type of every array) and against the launch
rules (grid and block limits, shared memory and its opt-in attribute, enough warps or threads for
the work), then executed by the host build of the same kernel (``driver.cpp``). This checks the
Python side of the kernel ABI, which the host-ops tests bypass.
"""

from __future__ import annotations

import re
import types
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

_SIGNATURE = re.compile(r'extern "C" __global__ void(?:\s+__launch_bounds__\([^)]*\))?\s+(\w+)\s*\(([^)]*)\)', re.S)
_TYPES = {
    "u8": np.uint8,
    "u16": np.uint16,
    "u32": np.uint32,
    "u64": np.uint64,
    "int": np.int32,
    "float": np.float32,
    "double": np.float64,
    "unsigned long long": np.uint64,
    "EncSym": np.uint64,  # 16 bytes per symbol, allocated as 2 u64
    "void": None,  # any array
}
# Static shared memory of each kernel (bytes), next to its dynamic shared memory.
_STATIC_SHARED = {
    "rans_encode_u8": 4 * 1024 + 256 * 16,
    "rans_encode_u16": 4 * 1024 * 2,
    "rans_decode_u8": 4 * 1024 * 2,
    "rans_decode_u16": 4 * 1024 * 2,
    "feature_minmax": 3 * 8 * 4,
}
_DEFAULT_SHARED = 48 * 1024


_LAUNCH_BOUNDS = re.compile(r'extern "C" __global__ void\s+__launch_bounds__\(([^)]*)\)\s+(\w+)\s*\(')
_CONSTANT = re.compile(r"constexpr u32 (\w+) = (\d+)u?;")
# Kernels that index their work as blockIdx.x * (warps per block) + warp: the block must be
# exactly their launch bound.
_EXACT_BLOCK = {
    "rans_encode_u8", "rans_encode_u16", "rans_pack", "rans_decode_u8", "rans_decode_u16",
    "pctx_encode", "pctx_pack", "pctx_decode",
}


def launch_bounds(code: str) -> Dict[str, int]:
    """name -> the value of its __launch_bounds__ (the source's u32 constants substituted)."""
    consts = {k: int(v) for k, v in _CONSTANT.findall(code)}
    out = {}
    for expr, name in _LAUNCH_BOUNDS.findall(code):
        for k, v in consts.items():
            expr = re.sub(rf"\b{k}\b", str(v), expr)
        assert re.fullmatch(r"[\d\s*+()]+", expr), f"{name}: cannot evaluate __launch_bounds__({expr})"
        out[name] = int(eval(expr))  # digits and * + ( ) only
    return out


def signatures(code: str) -> Dict[str, List[Tuple[bool, Any]]]:
    """name -> [(is_pointer, numpy type or None)] for every extern "C" kernel of `code`."""
    out = {}
    for name, params in _SIGNATURE.findall(code):
        args = []
        for p in params.split(","):
            p = " ".join(p.replace("__restrict__", " ").replace("const", " ").split())
            pointer = "*" in p
            base = p.split("*")[0].strip() if pointer else p.rsplit(" ", 1)[0].strip()
            if base not in _TYPES:
                raise AssertionError(f"{name}: unknown parameter type {p!r}")
            args.append((pointer, _TYPES[base]))
        out[name] = args
    return out


class FakeArray(np.ndarray):
    """A numpy array with CuPy's device-to-host copy."""

    def get(self, stream=None, order="C", out=None):
        if out is None:
            return np.array(self, copy=True)
        assert isinstance(out, np.ndarray) and out.shape == self.shape and out.dtype == self.dtype
        out[...] = self
        return out


def _wrap(a) -> FakeArray:
    return np.asarray(a).view(FakeArray)


class FakeKernel:
    def __init__(self, name: str, signature, bound: Optional[int], lib, device: "FakeDevice", launches: list):
        self.name, self.signature, self.bound, self.lib, self.device, self.launches = (
            name,
            signature,
            bound,
            lib,
            device,
            launches,
        )
        self.max_dynamic_shared_size_bytes = 0

    def __call__(self, grid, block, args, shared_mem: int = 0):
        name = self.name
        assert len(args) == len(self.signature), f"{name}: {len(args)} arguments for {len(self.signature)} parameters"
        for i, (a, (pointer, t)) in enumerate(zip(args, self.signature)):
            if pointer:
                assert isinstance(a, FakeArray), f"{name} argument {i}: expected a device array, got {type(a).__name__}"
                assert a.flags.c_contiguous, f"{name} argument {i}: not contiguous"
                assert (
                    t is None or a.dtype == t
                ), f"{name} argument {i}: array of {a.dtype}, the kernel reads {np.dtype(t)}"
            else:
                assert type(a) is t, f"{name} argument {i}: {type(a).__name__} packed, the kernel takes {np.dtype(t)}"
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        threads = block[0] * block[1] * block[2]
        assert all(isinstance(g, int) and g >= 1 for g in grid + block), f"{name}: grid {grid} block {block}"
        assert grid[0] < 2**31 and grid[1] <= 65535 and grid[2] <= 65535, f"{name}: grid {grid}"
        assert threads <= 1024 and threads % 32 == 0, f"{name}: block {block}"
        if self.bound is not None:
            assert threads <= self.bound, f"{name}: {threads} threads, __launch_bounds__({self.bound})"
        if name in _EXACT_BLOCK:
            assert threads == self.bound, f"{name}: {threads} threads, the kernel assumes {self.bound} per block"
        total_shared = shared_mem + _STATIC_SHARED.get(name, 0)
        limit = max(_DEFAULT_SHARED, self.max_dynamic_shared_size_bytes + _STATIC_SHARED.get(name, 0))
        assert total_shared <= limit, f"{name}: {total_shared} bytes of shared memory, {limit} allowed"
        assert self.max_dynamic_shared_size_bytes <= self.device.attributes["MaxSharedMemoryPerBlockOptin"]
        self.launches.append((name, grid, block, shared_mem))
        _RUN[name](self, grid, block, shared_mem, args)


def _p(a) -> int:
    return a.ctypes.data


def _covers(name: str, units: int, have: int, what: str) -> None:
    assert have >= units, f"{name}: {have} {what} for {units}"


def _hist(k, grid, block, smem, a):
    syms, n, part_bits, counts = a
    width = syms.itemsize
    assert grid[1] == 1 << (8 * width - int(part_bits)), f"{k.name}: grid.y {grid[1]} for part_bits {part_bits}"
    assert smem == 4 << int(part_bits)
    assert grid[0] * block[0] * 2**31 >= int(n) * block[0], "blocks along x must keep each below 2^31 symbols"
    k.lib.spn_histogram(_p(syms), width, int(n), _p(counts))


def _warps(grid, block) -> int:
    return grid[0] * (block[0] // 32)


def _enc(k, grid, block, smem, a):
    syms, n, c, lanes, p, table, chunks, states, scratch, n_words = a
    _covers(k.name, int(chunks), _warps(grid, block), "warps")
    assert table.size == 2 << (8 * syms.itemsize) and scratch.size >= int(n) and states.size == int(chunks) * int(lanes)
    k.lib.spn_encode(
        _p(syms), syms.itemsize, int(n), int(c), int(lanes), int(p), _p(table), _p(states), _p(scratch), _p(n_words)
    )


def _pack(k, grid, block, smem, a):
    states, scratch, n_words, offsets, n, c, lanes, chunks, out = a
    _covers(k.name, int(chunks), _warps(grid, block), "warps")
    k.lib.spn_pack(_p(states), _p(scratch), _p(n_words), _p(offsets), int(n), int(c), int(lanes), int(chunks), _p(out))


def _enc_table(k, grid, block, smem, a):
    s, f, c, m, table = a
    _covers(k.name, int(m), grid[0] * block[0], "threads")
    k.lib.spn_enc_table(_p(s), _p(f), _p(c), int(m), _p(table))


def _dec_table(k, grid, block, smem, a):
    s, f, c, m, p, fb, dsym = a
    _covers(k.name, 1 << int(p), grid[0] * block[0], "threads")
    k.lib.spn_dec_table(_p(s), _p(f), _p(c), int(m), int(p), _p(fb), _p(dsym))


def _dec(k, grid, block, smem, a):
    blob, so, wo, wc, n, c, lanes, p, fb, dsym, shared, chunks, out, status = a
    _covers(k.name, int(chunks), _warps(grid, block), "warps")
    assert smem == ((6 << int(p)) if shared else 0), f"{k.name}: {smem} bytes of dynamic shared memory"
    assert fb.size == 1 << int(p) and dsym.size == 1 << int(p)
    k.lib.spn_decode(
        _p(blob),
        _p(so),
        _p(wo),
        _p(wc),
        int(n),
        int(c),
        int(lanes),
        int(p),
        _p(fb),
        _p(dsym),
        out.itemsize,
        _p(out),
        _p(status),
    )


def _minmax(k, grid, block, smem, a):
    x, n, ch, inner, keys, flag = a
    assert keys.size == 2 * int(ch)
    k.lib.spn_minmax(_p(x), int(n), int(ch), int(inner), _p(keys), _p(flag))


def _quantize(k, grid, block, smem, a):
    x, n, ch, inner, s, z, bits, ranges, count, q, outside, flag = a
    assert s.size == int(ch) and z.size == int(ch) and (not count or ranges.size == 2 * int(ch))
    k.lib.spn_quantize(
        _p(x),
        int(n),
        int(ch),
        int(inner),
        _p(s),
        _p(z),
        int(bits),
        _p(ranges),
        int(count),
        q.itemsize,
        _p(q),
        _p(outside),
        _p(flag),
    )


def _dequantize(k, grid, block, smem, a):
    q, n, ch, inner, s, z, bits, f64, out, bad = a
    assert out.dtype == (np.float64 if int(f64) else np.float32)
    k.lib.spn_dequantize(
        _p(q), q.itemsize, int(n), int(ch), int(inner), _p(s), _p(z), int(bits), int(f64), _p(out), _p(bad)
    )


def _f64(k, grid, block, smem, a):
    x, n, out = a
    k.lib.spn_f64_to_f32(_p(x), int(n), _p(out))


def _f16(k, grid, block, smem, a):
    x, n, out = a
    k.lib.spn_f16_to_f32(_p(x), int(n), _p(out))


def _flags(k, grid, block, smem, a):
    q, n, ch, inner, z, flags = a
    k.lib.spn_csr_flags(_p(q), q.itemsize, int(n), int(ch), int(inner), _p(z), _p(flags))


def _compact(k, grid, block, smem, a):
    q, n, flags, prefix, cols, col_idx, values = a
    assert values.dtype == q.dtype
    k.lib.spn_csr_compact(_p(q), q.itemsize, int(n), _p(flags), _p(prefix), int(cols), _p(col_idx), _p(values))


def _positions(k, grid, block, smem, a):
    n, flags, prefix, pos = a
    k.lib.spn_csr_positions(int(n), _p(flags), _p(prefix), _p(pos))


def _row_counts(k, grid, block, smem, a):
    prefix, rows, cols, counts = a
    k.lib.spn_csr_row_counts(_p(prefix), int(rows), int(cols), _p(counts))


def _fill(k, grid, block, smem, a):
    out, n, ch, inner, z = a
    k.lib.spn_csr_fill_zero_points(_p(out), out.itemsize, int(n), int(ch), int(inner), _p(z))


def _scatter(k, grid, block, smem, a):
    counts, row_start, rows, cols, col_idx, values, out, bad = a
    assert values.dtype == out.dtype
    k.lib.spn_csr_scatter(
        _p(counts), _p(row_start), int(rows), int(cols), _p(col_idx), _p(values), out.itemsize, _p(out), _p(bad)
    )


def _pctx_chunks(k, n, plane) -> int:
    return int(k.lib.spn_pctx_chunks(int(n), int(plane)))


def _pctx_tables(a):
    geo, ctx_g, ctx_a, ctx_b, ctx_c, cmap, cums, fill = a
    assert geo.size == 12 and geo.dtype == np.uint64
    return [_p(v) for v in (geo, ctx_g, ctx_a, ctx_b, ctx_c, cmap, cums, fill)]


def _pctx_encode(k, grid, block, smem, a):
    q, n, *tables, states, scratch, n_words = a
    chunks = _pctx_chunks(k, n, tables[0][11])
    _covers(k.name, chunks, _warps(grid, block), "warps")
    assert states.size == 32 * chunks and scratch.size >= int(n) and n_words.size == chunks
    k.lib.spn_pctx_encode(_p(q), int(n), *_pctx_tables(tables), _p(states), _p(scratch), _p(n_words))


def _pctx_pack(k, grid, block, smem, a):
    states, scratch, n_words, offsets, n, plane, out = a
    chunks = _pctx_chunks(k, n, plane)
    _covers(k.name, chunks, _warps(grid, block), "warps")
    assert offsets.size == chunks and n_words.size == chunks
    k.lib.spn_pctx_pack(_p(states), _p(scratch), _p(n_words), _p(offsets), int(n), int(plane), _p(out))


def _pctx_decode(k, grid, block, smem, a):
    blob, so, wo, wc, n, *tables, q, status = a
    chunks = _pctx_chunks(k, n, tables[0][11])
    _covers(k.name, chunks, _warps(grid, block), "warps")
    assert wc.size == chunks and q.size == int(n)
    k.lib.spn_pctx_decode(
        _p(blob), _p(so), _p(wo), _p(wc), int(n), *_pctx_tables(tables), _p(q), _p(status)
    )


_RUN = {
    "pctx_encode": _pctx_encode,
    "pctx_pack": _pctx_pack,
    "pctx_decode": _pctx_decode,
    "histogram_u8": _hist,
    "histogram_u16": _hist,
    "rans_enc_table": _enc_table,
    "rans_encode_u8": _enc,
    "rans_encode_u16": _enc,
    "rans_pack": _pack,
    "rans_dec_table": _dec_table,
    "rans_decode_u8": _dec,
    "rans_decode_u16": _dec,
    "feature_minmax": _minmax,
    "quantize_u8": _quantize,
    "quantize_u16": _quantize,
    "dequantize_u8": _dequantize,
    "dequantize_u16": _dequantize,
    "f64_to_f32": _f64,
    "f16_to_f32": _f16,
    "csr_flags_u8": _flags,
    "csr_flags_u16": _flags,
    "csr_compact_u8": _compact,
    "csr_compact_u16": _compact,
    "csr_positions": _positions,
    "csr_row_counts": _row_counts,
    "csr_fill_zero_points_u8": _fill,
    "csr_fill_zero_points_u16": _fill,
    "csr_scatter_u8": _scatter,
    "csr_scatter_u16": _scatter,
}


class FakeModule:
    def __init__(self, code: str, options: Tuple[str, ...], lib, device, launches, compiled):
        self.code, self.options = code, options
        self.signatures = signatures(code)
        self.bounds = launch_bounds(code)
        self.lib, self.device, self.launches = lib, device, launches
        compiled.append((code, options))

    def get_function(self, name: str) -> FakeKernel:
        assert name in self.signatures, f'no extern "C" kernel {name} in the module\'s source'
        return FakeKernel(name, self.signatures[name], self.bounds.get(name), self.lib, self.device, self.launches)


class FakeDevice:
    def __init__(self, id: Optional[int] = None, attributes: Optional[dict] = None):
        self.id = 0 if id is None else id
        self.attributes = attributes or {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _garbage(shape, dtype=float) -> FakeArray:
    """Like device memory from cudaMalloc: not zeroed (a recognizable pattern instead)."""
    a = np.empty(shape, dtype)
    a.reshape(-1).view(np.uint8)[...] = 0xA5
    return _wrap(a)


def make(lib, sms: int = 132, smem_optin: int = 232448) -> types.ModuleType:
    """A `cupy` module backed by the host build `lib` (a HostOps.lib). `launches` and `compiled`
    record the kernel launches and the (source, options) of each module."""
    cp = types.ModuleType("cupy")
    attributes = {"MultiProcessorCount": sms, "MaxSharedMemoryPerBlockOptin": smem_optin}
    cp.launches = []
    cp.compiled = []
    device = FakeDevice(0, attributes)
    cp.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        Device=lambda id=None: FakeDevice(id, attributes),
    )
    cp.RawModule = lambda code, options=(), **kw: FakeModule(
        code, tuple(options), lib, device, cp.launches, cp.compiled
    )
    for t in ("uint8", "uint16", "uint32", "uint64", "int32", "float16", "float32", "float64"):
        setattr(cp, t, getattr(np, t))
    cp.asnumpy = lambda a: np.array(a, copy=True)
    cp.asarray = lambda a, dtype=None: (
        _wrap(np.array(a, dtype=dtype, copy=True))
        if not isinstance(a, FakeArray)
        else (a if dtype is None else _wrap(a.astype(dtype)))
    )
    cp.zeros = lambda shape, dtype=float: _wrap(np.zeros(shape, dtype))
    cp.empty = _garbage
    cp.full = lambda shape, value, dtype=None: _wrap(np.full(shape, value, dtype))
    cp.ascontiguousarray = lambda a: _wrap(np.ascontiguousarray(a))
    cp.concatenate = lambda arrs: _wrap(np.concatenate(arrs))
    cp.cumsum = lambda a, dtype=None: _wrap(np.cumsum(a, dtype=dtype))
    cp.flatnonzero = lambda a: _wrap(np.flatnonzero(a))
    cp.isfinite = lambda a: _wrap(np.isfinite(a))
    return cp
