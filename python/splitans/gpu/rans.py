"""rANS on the device (rans_encode.cu, rans_decode.cu): encoder and decoder tables, one warp per
chunk (FORMAT.md 4.3-4.4), the packing of coded chunks into a stream body, and the stream
level around them (FORMAT.md 3, 5.2), whose bytes `_core.gpu_stream_head` writes."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .. import _core
from .._core import CorruptDataError
from .loader import BLOCK, blocks, u32, u64

#: A piece of a coded stream: host bytes, or a device byte array (copied to the host by ``join``).
Part = Any

STATUS = {
    1: "rANS state below 2^16",
    2: "rANS chunk ran out of words",
    3: "rANS chunk has unread words",
    4: "rANS chunk does not end in the initial state",
}
#: Decoder tables up to 2^12 slots (24 KB) go to shared memory.
_DEC_SHARED_MAX_BITS = 12
_ENC_WARPS = 4
_DEC_WARPS = 4


class RansOps:
    """The kernels of rans_encode.cu and rans_decode.cu (mixed into the device operations, ``pipelines.CupyOps``)."""

    def enc_table(self, plan: Dict[str, Any], width: int):
        cp = self.cp
        table = cp.zeros(2 << (8 * width), dtype=cp.uint64)  # EncSym: u64 rcp, u32 freq, u32 cum
        m = len(plan["symbols"])
        args = [cp.asarray(plan[k], dtype=cp.uint32) for k in ("symbols", "freqs", "cum_freqs")]
        self._k("rans_encode.cu", "rans_enc_table")((blocks(m, BLOCK),), (BLOCK,), (*args, u32(m), table))
        return table

    def encode(self, syms, width: int, n: int, chunk_log2: int, lanes: int, p: int, table):
        cp = self.cp
        chunks = -(-n // (1 << chunk_log2))
        states = cp.empty(chunks * lanes, dtype=cp.uint32)
        scratch = cp.empty(n, dtype=cp.uint16)
        n_words = cp.empty(chunks, dtype=cp.uint32)
        kernel = self._k("rans_encode.cu", "rans_encode_u8" if width == 1 else "rans_encode_u16")
        kernel(
            (blocks(chunks, _ENC_WARPS),),
            (_ENC_WARPS * 32,),
            (syms, u64(n), u32(chunk_log2), u32(lanes), u32(p), table, u64(chunks), states, scratch, n_words),
        )
        return states, scratch, n_words

    def pack(self, states, scratch, n_words, offsets: np.ndarray, n: int, chunk_log2: int, lanes: int, total: int):
        cp = self.cp
        chunks = len(offsets)
        out = cp.empty(total, dtype=cp.uint8)
        self._k("rans_encode.cu", "rans_pack")(
            (blocks(chunks, _ENC_WARPS),),
            (_ENC_WARPS * 32,),
            (states, scratch, n_words, cp.asarray(offsets), u64(n), u32(chunk_log2), u32(lanes), u64(chunks), out),
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
            (blocks(1 << p, BLOCK),), (BLOCK,), (*args, u32(m), u32(p), fb, dsym)
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
            (blocks(chunks, _DEC_WARPS),),
            (_DEC_WARPS * 32,),
            (
                blob,
                cp.asarray(st["state_offsets"]),
                cp.asarray(st["word_offsets"]),
                cp.asarray(st["word_counts"]),
                u64(n),
                u32(c),
                u32(lanes),
                u32(p),
                fb,
                dsym,
                u32(shared),
                u64(chunks),
                out,
                status,
            ),
            shared_mem=(6 << p) if shared else 0,
        )
        return out, cp.asnumpy(status)


def join(ops, parts: Sequence[Part]) -> bytearray:
    """A stream's parts as one host buffer, each device part copied straight into it; the
    container around the streams is written by Rust (``_core.gpu_*_container``)."""
    out = bytearray(sum(len(p) if isinstance(p, (bytes, bytearray)) else int(p.size) for p in parts))
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
    return out


def as_u8(ops, syms):
    return syms.view(ops.xp.uint8)


def encode_stream(
    ops, syms, width: int, counts: np.ndarray, precision_bits: Optional[int], chunk_log2: Optional[int]
) -> List[Part]:
    """One stream (FORMAT.md 5.2) of the device symbols `syms` whose histogram is `counts`."""
    n = int(syms.size)
    plan = _core.gpu_plan_stream(counts, width, precision_bits, chunk_log2)
    mode = plan["mode"]
    # Every byte but the device's (coded chunks, raw symbols) is written by Rust, as the CPU
    # encoder writes it.
    if mode in ("empty", "constant"):
        return [_core.gpu_stream_head(mode, width, n, symbol=plan.get("symbol"))]
    if mode == "raw":
        return [_core.gpu_stream_head("raw", width, n), as_u8(ops, syms)]
    c, lanes, p = plan["chunk_log2"], plan["lanes"], plan["precision_bits"]
    chunks = plan["chunks"]
    table = ops.enc_table(plan, width)
    states, scratch, n_words_dev = ops.encode(syms, width, n, c, lanes, p, table)
    n_words = ops.to_host(n_words_dev).astype(np.int64)
    chunk_bytes = 4 * lanes + 2 * n_words
    body_len = int(chunk_bytes.sum())
    head = _core.gpu_stream_head(
        "rans", width, n, coded=(p, lanes, c, plan["table_bytes"], n_words.astype(np.uint32), body_len)
    )
    if head is None:  # not shorter than the raw stream (FORMAT.md 5.2 step 7)
        return [_core.gpu_stream_head("raw", width, n), as_u8(ops, syms)]
    offsets = np.zeros(chunks, dtype=np.uint64)
    np.cumsum(chunk_bytes[:-1], out=offsets[1:])
    body = ops.pack(states, scratch, n_words_dev, offsets, n, c, lanes, body_len)
    return [head, body]


def decode_stream(ops, blob, st: Dict[str, Any], width: int):
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
        raise CorruptDataError(f"corrupt data: chunk {k}: {STATUS.get(int(status[k]), 'bad rANS chunk')}")
    return out

