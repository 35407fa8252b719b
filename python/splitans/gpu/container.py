"""Container assembly for the GPU path (FORMAT.md 2, 3.1): a container is built from parts,
host bytes or device byte arrays that are copied straight into the final buffer, and closed
with its length and CRC."""

from __future__ import annotations

import struct
import zlib
from typing import Any, List, Sequence

import numpy as np

FLOAT_CODES = {"float16": 9, "bfloat16": 10, "float32": 11, "float64": 12}
INT_CODES = {"uint8": 1, "int8": 2, "uint16": 3, "int16": 4, "uint32": 5, "int32": 6, "uint64": 7, "int64": 8}
KIND_SYMBOLS, KIND_ARRAY, KIND_FEATURE = 1, 2, 3
NO_AXIS = 255
MAX_COLS = 65535
HEADER_BYTES = 24

Part = Any


def stream_header(mode: int, width: int, n: int) -> bytes:
    return struct.pack("<BBQ", mode, width, n)


def parts_len(parts: Sequence[Part]) -> int:
    return sum(len(p) if isinstance(p, (bytes, bytearray)) else int(p.size) for p in parts)


def record(parts: Sequence[Part]) -> List[Part]:
    return [struct.pack("<Q", parts_len(parts)), *parts]


def varint(v: int) -> bytes:
    """Unsigned LEB128, least significant group first (FORMAT.md 3.4, 10)."""
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def compact_stream(parts: Sequence[Part]) -> List[Part]:
    """A stream's parts (its first part starting with the 10-byte header) as a compact stream
    (FORMAT.md 10.3): the mode byte, then the body."""
    head = bytes(parts[0])
    return [head[:1] + head[10:], *parts[1:]]


def _join(ops, parts: Sequence[Part]) -> bytearray:
    out = bytearray(parts_len(parts))
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


def finish_compact(ops, dtype_code: int, bits: int, mode: int, shape: Sequence[int], parts: Sequence[Part]) -> bytes:
    """A compact feature container (FORMAT.md 10.1): the header through the shape, then `parts`
    (axis, parameters, clamped count, payload), then the CRC of byte 0 and bytes 5 on."""
    head = bytes([0xF3, 0, 0, 0, 0, dtype_code, (bits - 1) | mode << 4, len(shape)])
    head += b"".join(varint(int(d)) for d in shape)
    out = _join(ops, [head, *parts])
    mv = memoryview(out)
    struct.pack_into("<I", out, 1, zlib.crc32(mv[5:], zlib.crc32(mv[:1])))
    return bytes(out)


def finish(
    ops, kind: int, dtype_code: int, shape: Sequence[int], n_streams: int, records: Sequence[Sequence[Part]]
) -> bytes:
    header = b"SPNS" + struct.pack(
        "<BBHIQBBBB", 1, 0, HEADER_BYTES + 8 * len(shape), 0, 0, kind, dtype_code, len(shape), n_streams
    )
    header += b"".join(struct.pack("<Q", d) for d in shape)
    parts: List[Part] = [header]
    for rec in records:
        parts += record(rec)
    total = parts_len(parts)
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
