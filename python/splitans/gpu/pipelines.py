"""The GPU pipelines: symbols and integer arrays (kinds 1 and 2), features (kind 3), and the
public calls, written against the device operations (``CupyOps``: the stage mixins on CuPy)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .. import _core, _feature
from .._codec import DEFAULT_MAX_OUTPUT_BYTES, _as_bytes, _chunk_log2, _expected, _max_output, _precision
from .._options import GPU_MODES, Options, options_of
from .._core import CorruptDataError
from .arrays import as_torch, empty_like_input, feature_output, to_device
from .histogram import HistogramOps
from .loader import OpsBase
from .pctx import PctxOps
from .quantize import QuantizeOps, first_nonfinite, resolve
from .rans import RansOps, decode_stream, encode_stream, join
from .sparse import SparseOps, search_rows


#: The dtypes of the two container families (FORMAT.md 2.3): features, and integer arrays.
FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")
INT_NAMES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")
#: Columns of a CSR row at most (FORMAT.md 6.8).
MAX_COLS = 65535


class CupyOps(HistogramOps, QuantizeOps, RansOps, SparseOps, PctxOps, OpsBase):
    """The kernels on the current CUDA device, through CuPy."""


def ops_for(device: Any = None) -> CupyOps:
    return CupyOps(device)


# --------------------------------------------------------------------------------------------
# Symbols and integer arrays (kinds 1 and 2)


def _encode_symbols(ops, a, kind: str, shape: Sequence[int], name: str, precision_bits, chunk_log2) -> bytes:
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
    streams = [
        join(ops, encode_stream(ops, pl, width, ops.histogram(pl, width), precision_bits, chunk_log2)) for pl in planes
    ]
    return _core.gpu_array_container(kind, name, tuple(shape), streams)


def _decode_ints(ops, blob, lay: Dict[str, Any]):
    xp = ops.xp
    dtype = np.dtype(lay["dtype"])
    width = min(dtype.itemsize, 2)
    planes = [decode_stream(ops, blob, st, width) for st in lay["streams"]]
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


def _compress_feature(ops, x, name: str, shape: Tuple[int, ...], options: Options) -> bytes:
    xp = ops.xp
    bits = options.bits
    ndim = len(shape)
    axis = _feature._axis(options.axis, ndim)
    nonfinite, mode, reshape, version = options.nonfinite, options.mode, options.reshape, options.version or 3
    clip, scale, zero_point = options.clip, options.scale, options.zero_point
    precision_bits, chunk_log2 = options._native.precision_bits, options._native.chunk_log2
    if isinstance(clip, _feature.Percentile):
        raise ValueError(
            "clip=Percentile(...) is not supported by the GPU path (numpy computes percentiles on the host); "
            "pass clip=(low, high) per tensor or per channel, or a calibrated scale=/zero_point="
        )
    if ndim > 32:
        raise ValueError(f"compress() supports up to 32 dimensions, got {ndim}")
    total = int(np.prod(shape, dtype=np.int64)) if ndim else 1
    if total and isinstance(reshape, int) and (total % reshape or total // reshape > MAX_COLS):
        raise ValueError(f"reshape={reshape} must divide the {total} elements into rows of at most {MAX_COLS} columns")
    if axis is None:
        channels, inner = 1, 1
    else:
        channels, inner = shape[axis], max(1, int(np.prod(shape[axis + 1 :], dtype=np.int64)))
    # Options holds one pair as (low, high), per-channel pairs as a tuple of them.
    clip_pairs = None if clip is None else [clip] if isinstance(clip[0], float) else list(clip)
    x = ops.to_f32(x).reshape(-1)
    s, z, ranges, finite = resolve(ops, x, bits, channels, inner, clip_pairs, scale, zero_point)
    if finite is False and nonfinite == "error":
        raise ValueError(first_nonfinite(ops, x))
    q, outside, has_nonfinite = ops.quantize(x, channels, inner, s, z, bits, ranges)
    if has_nonfinite and nonfinite == "error":
        raise ValueError(first_nonfinite(ops, x))
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
            rows = search_rows(ops, flags, prefix, total, nnz)
        cols = total // rows
        col_idx, values = ops.csr_compact(q, flags, prefix, cols, nnz)
        counts = ops.csr_row_counts(prefix, rows, cols)
        values_hist = ops.histogram(values, width)
        row_hist = ops.histogram(counts, 2)
        col_hist = ops.histogram(col_idx, 2)
        parts = (est(row_hist, 2), est(col_hist, 2), est(values_hist, width))
        compared = (dense_bytes, sum(parts))
        if version == 3:
            # FORMAT.md 6.8 step 7: the compact container's framing is what auto compares.
            compared = _core.gpu_compact_estimates(dense_bytes, *parts, rows, int(nnz))
        if mode == "csr" or _core.gpu_auto_takes_csr(*compared):
            csr = (rows, counts, row_hist, col_idx, col_hist, values, values_hist)
    # The container (FORMAT.md 6.2, or the compact one of 10) is written by Rust around the streams.
    if csr is None:
        streams = [join(ops, encode_stream(ops, q, width, dense_hist, precision_bits, chunk_log2))]
        layout, rows, nnz = "dense", 0, 0
    else:
        rows, counts, row_hist, col_idx, col_hist, values, values_hist = csr
        streams = [
            join(ops, encode_stream(ops, syms, w, hist, precision_bits, chunk_log2))
            for syms, w, hist in ((counts, 2, row_hist), (col_idx, 2, col_hist), (values, width, values_hist))
        ]
        layout, nnz = "csr", int(values.size)
    return _core.gpu_feature_container(
        version,
        name,
        tuple(shape),
        bits,
        layout,
        axis,
        [float(v) for v in s],
        [int(v) for v in z],
        int(clamped),
        rows,
        nnz,
        streams,
    )


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
        q = decode_stream(ops, blob, lay["streams"][0], width)
    else:
        recs = lay["records"]
        rows = f["rows"]
        compact = bool(lay.get("compact"))
        counts = decode_stream(ops, blob, _core.gpu_stream_layout(data, *recs[1], 0, rows, 2, compact), 2)
        nnz = ops.scalar(counts.sum(dtype=xp.uint64))
        if compact and nnz != f["nnz"]:
            raise CorruptDataError(
                f"corrupt data: row counts add up to {nnz} nonzeros, the column indices and values hold {f['nnz']}"
            )
        if nnz > n:
            raise CorruptDataError(f"corrupt data: {nnz} nonzeros in {n} elements")
        col_idx = decode_stream(ops, blob, _core.gpu_stream_layout(data, *recs[2], 1, nnz, 2, compact), 2)
        values = decode_stream(ops, blob, _core.gpu_stream_layout(data, *recs[3], 2, nnz, width, compact), width)
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
    ops = _ops_ or ops_for(device)
    with ops.context():
        a, name = to_device(ops, symbols)
        if name not in ("uint8", "uint16"):
            raise TypeError(f"rans_encode() takes uint8 or uint16 symbols, got {name}")
        if a.ndim != 1:
            raise ValueError(f"rans_encode() takes a 1-D array of symbols, got {a.ndim} dimensions")
        return _encode_symbols(
            ops, a, "symbols", a.shape, name, _precision(precision_bits), _chunk_log2(chunk_symbols)
        )


def rans_decode_gpu(
    data: Any, *, max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES, device: Any = None, _ops_=None
):
    """``splitans.rans_decode`` on the GPU: the symbols as a 1-D CuPy array on the device."""
    ops = _ops_ or ops_for(device)
    data = _as_bytes(data)
    lay = _core.gpu_layout(data, _max_output(max_output_bytes))
    with ops.context():
        blob = ops.to_device(np.frombuffer(data, np.uint8))
        # Decoded (and so verified) whatever the kind, as the CPU path does, before the kind check.
        out = _decode_feature(ops, data, blob, lay) if lay["kind"] == "feature" else _decode_ints(ops, blob, lay)
    if lay["kind"] != "symbols":
        raise ValueError(f"rans_decode() takes data from rans_encode(); this holds a {lay['kind']} (use decompress())")
    return out


def compress_gpu(x: Any, options: Optional[Options] = None, *, device: Any = None, _ops_=None, **keywords: Any) -> bytes:
    """``splitans.compress`` on the GPU, with the same options and the identical bytes: a CuPy
    array or CUDA torch tensor, float (quantized to ``bits``, dense or CSR) or integer
    (lossless). Everything but the histograms and the coded bytes stays on the device.
    ``options``/``keywords`` as for ``compress`` (``threads`` does not apply);
    ``clip=splitans.Percentile(...)`` is not supported here."""
    o = options_of(options, keywords)
    ops = _ops_ or ops_for(device)
    with ops.context():
        return _compress(ops, x, o)


def _compress(ops, x, o: Options) -> bytes:
    a, name = to_device(ops, x)
    if name not in FLOAT_NAMES:
        if name not in INT_NAMES:
            raise TypeError(
                f"compress() supports float arrays and the integer dtypes {', '.join(INT_NAMES)}; got {name}"
            )
        o._refuse_lossy(name)  # what compress refuses, refused alike
        if a.ndim > 32:
            raise ValueError(f"compress() supports up to 32 dimensions, got {a.ndim}")
        n = o._native
        return _encode_symbols(ops, a, "array", a.shape, name, n.precision_bits, n.chunk_log2)
    if o.bits is None:
        raise TypeError("compress() of a float array needs bits= (1..16), the quantization bit width, e.g. bits=8")
    if o.mode not in GPU_MODES:
        raise ValueError(
            f"mode={o.mode!r} runs on the CPU only (splitans.compress): its model is fitted or adapted "
            f"on the host; the GPU path codes {', '.join(map(repr, GPU_MODES))}"
        )
    shape = tuple(int(d) for d in a.shape)
    if 0 in shape:
        # Nothing to move or code: the CPU path writes the (header-only) container.
        from .._codec import compress

        return compress(empty_like_input(x, shape, name), o)
    return _compress_feature(ops, a, name, shape, o)


def decompress_gpu(
    data: Any,
    *,
    max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES,
    output: str = "cupy",
    device: Any = None,
    expect_shape: Any = None,
    expect_dtype: Any = None,
    _ops_=None,
):
    """``splitans.decompress`` on the GPU: any container to an array on the device, with its
    shape (a CuPy array; ``output="torch"``: a CUDA torch tensor). A feature comes back in the
    dtype it had: float16 and float64 as such, bfloat16 as float32 (CuPy has no bfloat16; as
    bfloat16 with ``output="torch"``). Raises the CPU path's errors (``CorruptDataError``, ...),
    ``expect_shape=`` and ``expect_dtype=`` included."""
    if output not in ("cupy", "torch"):
        raise ValueError(f"output must be 'cupy' or 'torch', got {output!r}")
    want_shape, want_dtype = _expected(expect_shape, expect_dtype)
    ops = _ops_ or ops_for(device)
    data = _as_bytes(data)
    # The expectations are checked on the validated header, before anything is allocated.
    lay = _core.gpu_layout(data, _max_output(max_output_bytes), want_shape, want_dtype)
    with ops.context():
        blob = ops.to_device(np.frombuffer(data, np.uint8))
        if lay["kind"] != "feature":
            out = _decode_ints(ops, blob, lay)
            return as_torch(out) if output == "torch" else out
        if lay["feature"]["mode"] in ("context", "pcontext"):
            # The context coder is serial (one adaptive state): no GPU kernel; decoded on the
            # CPU, then copied to the device.
            from .._codec import decompress

            host = decompress(data, max_output_bytes=max_output_bytes, threads=0)
            flat = ops.to_device(np.ascontiguousarray(host, dtype=np.float32).ravel())
        else:
            flat = _decode_feature(ops, data, blob, lay)
        return feature_output(ops, flat, tuple(lay["shape"]), lay["dtype"], output)
