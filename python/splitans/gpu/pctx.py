"""Fitted codecs on the device (pctx.cu): the parallel context coder of FORMAT.md 9.4, one warp
per chunk, with quantization and dequantization by the kernels of quantize.cu.

Everything that picks a byte comes from the Rust codec: the tables and the layout words of a
sample shape (``_core.Codec.gpu_tables`` / ``gpu_geometry``), the choice between a coded, raw or
constant body, and the blob's header, parameters and CRC (``gpu_assemble``); decoding, the
header, CRC and chunk offsets are checked by the Rust parser (``gpu_parse``) before any kernel
reads the blob. So ``codec.compress_gpu(x)`` is byte for byte ``codec.compress(x)``.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

import numpy as np

from .. import _core
from .._codec import DEFAULT_MAX_OUTPUT_BYTES, _as_bytes, _max_output
from .._core import CorruptDataError
from .arrays import feature_output, to_device
from .loader import blocks, u64
from .quantize import first_nonfinite, from_order_key
from .rans import STATUS

__all__ = ["PctxOps", "compress", "decompress"]

#: Chunks (warps) per block of the pctx kernels (PCTX_WARPS in pctx.cu).
PCTX_WARPS = 4

_TABLE_KEYS = ("ctx_g", "ctx_a", "ctx_b", "ctx_c", "context_map", "cums")
_tables_lock = threading.Lock()
_tables_cache: Dict[Any, Dict[str, Any]] = {}


class PctxOps:
    """The kernels of pctx.cu (mixed into the device operations, ``pipelines.CupyOps``)."""

    def pctx_tables(self, codec) -> Dict[str, Any]:
        """The model's tables on this device, uploaded once per codec and device."""
        key = (codec.id, getattr(getattr(self, "device", None), "id", None))
        with _tables_lock:
            hit = _tables_cache.get(key)
        if hit is None:
            host = codec.gpu_tables()
            hit = {k: self.to_device(host[k]) for k in _TABLE_KEYS}
            with _tables_lock:
                if len(_tables_cache) > 64:
                    _tables_cache.clear()
                _tables_cache[key] = hit
        return hit

    def _pctx_args(self, geo, tables, fill):
        cp = self.cp
        return (cp.asarray(geo), *(tables[k] for k in _TABLE_KEYS), cp.asarray(fill))

    def pctx_encode(self, q, n: int, geo: np.ndarray, tables, fill: np.ndarray, chunks: int):
        cp = self.cp
        states = cp.empty(32 * chunks, dtype=cp.uint32)
        scratch = cp.empty(n, dtype=cp.uint16)
        n_words = cp.empty(chunks, dtype=cp.uint32)
        self._k("pctx.cu", "pctx_encode")(
            (blocks(chunks, PCTX_WARPS),),
            (PCTX_WARPS * 32,),
            (q, u64(n), *self._pctx_args(geo, tables, fill), states, scratch, n_words),
        )
        return states, scratch, n_words

    def pctx_pack(self, states, scratch, n_words, offsets: np.ndarray, n: int, plane: int, total: int):
        cp = self.cp
        chunks = len(offsets)
        out = cp.zeros(total, dtype=cp.uint8)
        self._k("pctx.cu", "pctx_pack")(
            (blocks(chunks, PCTX_WARPS),),
            (PCTX_WARPS * 32,),
            (states, scratch, n_words, cp.asarray(offsets), u64(n), u64(plane), out),
        )
        return out

    def pctx_decode(self, blob, lay: Dict[str, Any], n: int, geo: np.ndarray, tables, fill: np.ndarray):
        cp = self.cp
        chunks = len(lay["word_counts"])
        q = cp.empty(n, dtype=cp.uint8)
        status = cp.empty(chunks, dtype=cp.uint32)
        self._k("pctx.cu", "pctx_decode")(
            (blocks(chunks, PCTX_WARPS),),
            (PCTX_WARPS * 32,),
            (
                blob,
                cp.asarray(lay["state_offsets"]),
                cp.asarray(lay["word_offsets"]),
                cp.asarray(lay["word_counts"]),
                u64(n),
                *self._pctx_args(geo, tables, fill),
                q,
                status,
            ),
        )
        return q, cp.asnumpy(status)


def _core_of(codec):
    """The native codec of a ``splitans.Codec`` (or a native one), if the device path codes
    its quantizer: the affine grids of kinds 0 and 1 (FORMAT.md 9.2). The dead zone and trained
    levels of kinds 2 and 3 are coded on the CPU only."""
    c = getattr(codec, "_c", codec)
    kind = c.describe()["quantizer"]
    if kind not in ("per-sample", "fixed"):
        raise NotImplementedError(
            f"the GPU path codes fitted codecs with a per-sample or fixed quantizer; this codec's is "
            f"{kind!r} (FORMAT.md 9.2): use codec.compress / codec.decompress on the CPU"
        )
    return c


def _params(ops, c, x32, shape, bits: int):
    """Per-channel scale and zero point: the codec's fixed ones, or the sample's min/max (the
    range scan on the device, the rule in Rust) with a flag for non-finite input."""
    geo, (channels, inner) = c.gpu_geometry(list(shape))
    d = c.describe()
    if d["quantizer"] == "fixed":
        s = np.asarray(d["scale"], np.float32)
        z = np.asarray(d["zero_point"], np.int32)
        return geo, channels, inner, s, z, None
    keys, nonfinite = ops.minmax(x32, channels, inner)
    pairs = []
    for k in range(channels):
        klo, khi = int(keys[2 * k]), int(keys[2 * k + 1])
        pairs.append((0.0, 0.0) if klo == 0xFFFFFFFF else (float(from_order_key(klo)), float(from_order_key(khi))))
    params = [_core.gpu_affine_from_range(lo, hi, bits) for lo, hi in pairs]
    s = np.array([a[0] for a in params], np.float32)
    z = np.array([a[1] for a in params], np.int32)
    return geo, channels, inner, s, z, nonfinite


def compress(ops, codec, x, *, nonfinite: str = "error") -> bytes:
    """``codec.compress(x)`` on the device: the same blob, byte for byte."""
    if nonfinite not in ("error", "clamp"):
        raise ValueError(f"nonfinite must be 'error' or 'clamp', got {nonfinite!r}")
    c = _core_of(codec)
    a, name = to_device(ops, x)
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise TypeError(f"a fitted codec compresses float samples, got {name}")
    shape = tuple(int(d) for d in a.shape)
    c.check_shape(list(shape))
    bits = c.bits
    x32 = ops.to_f32(a).reshape(-1)
    n = int(x32.size)
    geo, channels, inner, s, z, nonfinite_seen = _params(ops, c, x32, shape, bits)
    if nonfinite_seen and nonfinite == "error":
        raise ValueError(first_nonfinite(ops, x32))
    q, _, has_nonfinite = ops.quantize(x32, channels, inner, s, z, bits, None)
    if has_nonfinite and nonfinite == "error":
        raise ValueError(first_nonfinite(ops, x32))
    args = (list(shape), s.tolist(), z.astype(np.int64).tolist())
    if n == 0:
        return c.gpu_assemble("raw", *args, b"")
    hist = ops.histogram(q, 1)
    present = np.flatnonzero(hist)
    if len(present) == 1:
        return c.gpu_assemble("constant", *args, bytes([int(present[0])]))
    tables = ops.pctx_tables(c)
    fill = z.astype(np.uint8)
    # The lanes of each chunk (FORMAT.md 9.4), from the Rust layout.
    lanes = np.asarray(c.gpu_chunk_lanes(list(shape)), np.int64)
    states, scratch, n_words_dev = ops.pctx_encode(q, n, geo, tables, fill, len(lanes))
    n_words = ops.to_host(n_words_dev).astype(np.int64)
    chunk_bytes = 4 * lanes + 2 * n_words
    directory = 4 * len(lanes) if len(lanes) > 1 else 0
    body_len = directory + int(chunk_bytes.sum())
    if body_len >= c.raw_len(n):
        codes = ops.to_host(q)
        bits_le = np.unpackbits(codes[:, None], axis=1, count=8, bitorder="little")[:, :bits]
        return c.gpu_assemble("raw", *args, np.packbits(bits_le.ravel(), bitorder="little").tobytes())
    offsets = (directory + np.concatenate([[0], np.cumsum(chunk_bytes[:-1])])).astype(np.uint64)
    body = ops.pctx_pack(states, scratch, n_words_dev, offsets, n, int(geo[11]), body_len)
    host = bytearray(ops.to_host(body).tobytes())
    if directory:
        host[:directory] = n_words.astype("<u4").tobytes()
    return c.gpu_assemble("coded", *args, bytes(host))


def decompress(
    ops, codec, data, *, output: str = "cupy", max_output_bytes: Optional[int] = DEFAULT_MAX_OUTPUT_BYTES
):
    """``codec.decompress(blob)`` on the device: the sample in the codec's dtype, as a CuPy
    array (``output="torch"``: a CUDA torch tensor)."""
    if output not in ("cupy", "torch"):
        raise ValueError(f"output must be 'cupy' or 'torch', got {output!r}")
    c = _core_of(codec)
    data = _as_bytes(data)
    lay = c.gpu_parse(data, _max_output(max_output_bytes))
    shape = tuple(lay["shape"])
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    geo, (channels, inner) = c.gpu_geometry(list(shape))
    s = np.asarray(lay["scale"], np.float32)
    z = np.asarray(lay["zero_point"], np.int32)
    bits = c.bits
    body = np.frombuffer(data, np.uint8)[lay["header_bytes"] :]
    xp = ops.xp
    if lay["kind"] == "raw":
        if len(body) != c.raw_len(n):
            raise CorruptDataError(f"corrupt data: raw body of {len(body)} bytes, {c.raw_len(n)} expected")
        bits_le = np.unpackbits(body, bitorder="little")
        if bits_le[n * bits :].any():
            raise CorruptDataError("corrupt data: raw body has nonzero padding bits")
        codes = (bits_le[: n * bits].reshape(n, bits).astype(np.uint8) << np.arange(bits, dtype=np.uint8)).sum(
            axis=1, dtype=np.uint8
        )
        q = ops.to_device(codes)
    elif lay["kind"] == "constant":
        if len(body) != 1 or n == 0 or int(body[0]) > (1 << bits) - 1:
            raise CorruptDataError(f"corrupt data: constant body of {len(body)} bytes")
        q = xp.full(n, int(body[0]), dtype=xp.uint8)
    else:
        blob = ops.to_device(np.frombuffer(data, np.uint8))
        q, status = ops.pctx_decode(blob, lay, n, geo, ops.pctx_tables(c), z.astype(np.uint8))
        bad = np.flatnonzero(status)
        if bad.size:
            k = int(bad[0])
            raise CorruptDataError(f"corrupt data: chunk {k}: {STATUS.get(int(status[k]), 'bad context chunk')}")
    out, _ = ops.dequantize(q, channels, inner, s, z, bits, c.dtype == "float64")
    return feature_output(ops, out, shape, c.dtype, output)


