#!/usr/bin/env python3
"""Peak memory of decoding bombs: tiny valid containers that declare the largest output a cap
allows, each decoded in a fresh interpreter whose peak RSS is reported.

    python benches/peak_rss.py                   # the default cap (4 GiB) and 64 MiB
    python benches/peak_rss.py --cap 64MiB       # one cap
    python benches/peak_rss.py --cap 64MiB --check   # exit 1 if a peak exceeds cap*1.1 + 64 MiB

The cap is meant to bound what decoding holds, not only what it returns: every row should stay
within cap x 1.1 + 64 MiB (the interpreter, numpy and splitans take about 30 MiB of that). Each
bomb is a few dozen bytes to a few kilobytes: constant streams (or, for the context coder, a
context body of zeros) declaring as many elements as fit the cap, for each kind of output the
decoder builds (8- to 64-bit integers, float16/32/64 features, dense, CSR and context), and
fitted-codec blobs (FORMAT.md 9.5) of float16/32/64 codecs: 12-byte constant bodies, and a coded
body, decoded with `Codec.decompress` and described with `Codec.inspect`. A bomb that the
decoder refuses before allocating (OutputTooLargeError) is reported as such.
tests/test_hardening.py runs the 64 MiB cap in CI.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import zlib

MiB = 1 << 20
GiB = 1 << 30


def _with_crc(blob: bytes) -> bytes:
    blob = bytearray(blob)
    struct.pack_into("<Q", blob, 12, len(blob))
    struct.pack_into("<I", blob, 8, zlib.crc32(bytes(blob[:8]) + bytes(blob[12:])))
    return bytes(blob)


def _header(kind: int, dtype: int, shape, streams: int, version: int = 1) -> bytes:
    h = b"SPNS" + struct.pack("<BBHIQBBBB", version, 0, 24 + 8 * len(shape), 0, 0, kind, dtype, len(shape), streams)
    return h + b"".join(struct.pack("<Q", d) for d in shape)


def _record(body: bytes) -> bytes:
    return struct.pack("<Q", len(body)) + body


def _constant(width: int, n: int, symbol: int) -> bytes:
    return _record(struct.pack("<BBQH", 1, width, n, symbol))


INT_CODES = {"uint8": (1, 1), "uint16": (3, 2), "uint32": (5, 4), "uint64": (7, 8)}
FLOAT_CODES = {"float16": (9, 4), "float32": (11, 4), "float64": (12, 8)}


def int_bomb(dtype: str, n: int) -> bytes:
    """An integer array (kind 2) of n elements, every plane a constant stream."""
    code, itemsize = INT_CODES[dtype]
    planes = max(itemsize // 2, 1)
    width = min(itemsize, 2)
    body = b"".join(_constant(width, n, 0x1234 & ((1 << (8 * width)) - 1)) for _ in range(planes))
    return _with_crc(_header(2, code, [n], planes) + body)


def _section(bits: int, mode: int, rows: int, scale: float = 0.5, zero_point: int = 3) -> bytes:
    return _record(struct.pack("<BBBBQQI", bits, mode, 255, 0, 0, rows, 1) + struct.pack("<fi", scale, zero_point))


def dense_bomb(dtype: str, n: int, bits: int = 8) -> bytes:
    """A dense feature of n elements whose codes are one constant stream."""
    code, _ = FLOAT_CODES[dtype]
    width = 1 if bits <= 8 else 2
    return _with_crc(_header(3, code, [n], 1) + _section(bits, 0, 0) + _constant(width, n, 7))


def csr_bomb(dtype: str, n: int, bits: int = 12) -> bytes:
    """A CSR feature of n elements in n rows of one column, every element nonzero: row counts,
    column indices and values are three constant streams as long as the output."""
    code, _ = FLOAT_CODES[dtype]
    width = 1 if bits <= 8 else 2
    body = _section(bits, 1, n) + _constant(2, n, 1) + _constant(2, n, 0) + _constant(width, n, 9)
    return _with_crc(_header(3, code, [n], 3) + body)


def _rans_copies(pattern, copies: int) -> bytes:
    """A rANS stream record (FORMAT.md 3.3) of `copies` chunks of 2^24 symbols (or one shorter
    chunk), each the coding of `pattern`: coded once by splitans, then repeated."""
    import numpy as np

    import splitans
    from splitans import _core

    blob = splitans.rans_encode(np.asarray(pattern, np.uint16), precision_bits=16, chunk_symbols=1 << 24)
    st = _core.gpu_layout(blob, 1 << 62)["streams"][0]
    assert st["mode"] == "rans" and len(st["word_counts"]) == 1, st["mode"]
    start, states, words = st["offset"], int(st["state_offsets"][0]), int(st["word_offsets"][0])
    table = blob[start + 14 : states - 4]
    chunk = blob[states : words + 2 * int(st["word_counts"][0])]
    n = len(pattern) * copies
    body = struct.pack("<BBQBBBB", 3, 2, n, 16, st["lanes"], 24, 0) + table
    body += struct.pack("<I", int(st["word_counts"][0])) * copies + chunk * copies
    return _record(body)


def csr_big_chunks_bomb(dtype: str, n: int, bits: int = 12) -> bytes:
    """A CSR feature of n elements in n/2 rows of two columns, every element nonzero, whose three
    streams are rANS-coded in chunks of 2^24 symbols (chunk_symbols=2**24): the decoder must
    hold a whole chunk of each, which the cap counts."""
    import numpy as np

    code, _ = FLOAT_CODES[dtype]
    rows = n // 2
    per = min(rows, 1 << 24)
    counts = np.ones(per, np.uint16)
    counts[0], counts[-1] = 2, 0  # each chunk of rows holds `per` nonzeros
    cols = np.zeros(per, np.uint16)
    cols[1] = 1
    values = np.full(per, 5, np.uint16)
    values[7] = 6
    copies = rows // per
    body = _section(bits, 1, rows) + _rans_copies(counts, copies) + _rans_copies(cols, copies)
    body += _rans_copies(values, copies)
    return _with_crc(_header(3, code, [n], 3) + body)


def context_bomb(n: int) -> bytes:
    """A context-mode (version 2) feature of n zeros (FORMAT.md 6.11), coded by splitans."""
    import numpy as np

    import splitans

    side = 1 << 12
    return splitans.compress(np.zeros((n // side, side), np.float32), bits=8, mode="context")


def bombs(cap: int):
    """(name, blob) of every bomb for a cap, each declaring the most elements the cap allows."""
    out = []
    for dtype, (_, itemsize) in INT_CODES.items():
        out.append((f"{dtype} array, constant planes", int_bomb(dtype, cap // itemsize)))
    for dtype, (_, itemsize) in FLOAT_CODES.items():
        out.append((f"{dtype} feature, dense 8-bit", dense_bomb(dtype, cap // itemsize)))
    out.append(("float32 feature, dense 12-bit", dense_bomb("float32", cap // 4, bits=12)))
    out.append(("float32 feature, CSR 12-bit, one column", csr_bomb("float32", cap // 4)))
    out.append(("float64 feature, CSR 8-bit, one column", csr_bomb("float64", cap // 8, bits=8)))
    # The context encoder holds about 10 bytes an element while it writes the bomb: at most 2^28.
    n = min(cap // 4, 1 << 28) // 4096 * 4096
    out.append((f"float32 feature, context 8-bit{'' if n == cap // 4 else ', 2^28 elements'}", context_bomb(n)))
    # Half the cap's elements, so that the chunks held beside the output fit the cap too.
    out.append(("float32 feature, CSR 12-bit, 2^24-symbol rANS chunks", csr_big_chunks_bomb("float32", cap // 8)))
    out.append(("same, all the cap's elements", csr_big_chunks_bomb("float32", cap // 4)))
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fitted_codec(dtype: str):
    """A 4-bit codec of (rows, 4) samples whose first axis varies: each blob states its rows."""
    import numpy as np

    import splitans

    rng = np.random.default_rng(0)
    return splitans.Codec.fit([np.maximum(rng.standard_normal((k, 4)), 0).astype(dtype) for k in (3, 5, 7)], bits=4)


def fitted_constant_bomb(codec, rows: int, code: int = 0) -> bytes:
    """A constant fitted blob (kind 2) of `rows` x 4 elements: 7 header bytes, a varint, a code."""
    cid = bytes.fromhex(codec.id)
    head, body = bytes([0xE2]) + cid[:2], _varint(rows) + bytes([code])
    return head + struct.pack("<I", zlib.crc32(cid + head + body)) + body


def fitted_coded_bomb(codec, rows: int) -> bytes:
    """A coded fitted blob (kind 0): zeros with one nonzero code, coded by splitans."""
    import numpy as np

    x = np.zeros((rows, 4), codec.dtype)
    x[0, 0] = 1
    blob = codec.compress(x)
    assert blob[0] == 0xE0, "expected a coded body"
    return blob


def fitted_bombs(cap: int):
    """(name, codec bytes, blob, "decompress" | "inspect") of fitted blobs declaring the most
    elements the cap allows (the decoded itemsize is 4 for float16, 6.1)."""
    out = []
    for dtype, itemsize in (("float32", 4), ("float16", 4), ("float64", 8)):
        codec = fitted_codec(dtype)
        rows = cap // itemsize // 4
        blob = fitted_constant_bomb(codec, rows)
        out.append((f"fitted {dtype}, constant body", codec.to_bytes(), blob, "decompress"))
        out.append((f"fitted {dtype}, constant body, inspect", codec.to_bytes(), blob, "inspect"))
        out.append((f"fitted {dtype}, one element past the cap", codec.to_bytes(), fitted_constant_bomb(codec, rows + 1), "decompress"))
    codec = fitted_codec("float32")
    blob = fitted_coded_bomb(codec, min(cap // 16, 1 << 24))
    out.append(("fitted float32, coded body", codec.to_bytes(), blob, "decompress"))
    out.append(("fitted float32, coded body, inspect", codec.to_bytes(), blob, "inspect"))
    return out


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across
# fork and exec, while VmHWM belongs to this process's own address space.
CHILD = r"""
import json, sys
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
import splitans
blob = sys.stdin.buffer.read()
cap = int(sys.argv[1])
before = hwm()
try:
    out = splitans.decompress(blob, max_output_bytes=cap)
    result = f"{out.dtype} {out.nbytes / 2**20:.0f} MiB"
except splitans.OutputTooLargeError:
    result = "OutputTooLargeError"
print(json.dumps({"result": result, "peak": hwm(), "baseline": before}))
"""


FITTED_CHILD = r"""
import json, sys
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
import splitans
n = int(sys.argv[2])
data = sys.stdin.buffer.read()
codec, blob = splitans.Codec.from_bytes(data[:n]), data[n:]
cap, what = int(sys.argv[1]), sys.argv[3]
before = hwm()
try:
    if what == "inspect":
        result = "inspect: " + str(codec.inspect(blob, max_output_bytes=cap)["shape"])
    else:
        out = codec.decompress(blob, max_output_bytes=cap)
        result = f"{out.dtype} {out.nbytes / 2**20:.0f} MiB"
except splitans.OutputTooLargeError:
    result = "OutputTooLargeError"
print(json.dumps({"result": result, "peak": hwm(), "baseline": before}))
"""


def measure(blob: bytes, cap: int, codec: bytes = b"", what: str = "decompress") -> dict:
    """Decodes `blob` (a fitted blob of `codec` when given) in a fresh interpreter; its peak RSS
    (bytes) and what it decoded."""
    args = [FITTED_CHILD, str(cap), str(len(codec)), what] if codec else [CHILD, str(cap)]
    out = subprocess.run([sys.executable, "-c", *args], input=codec + blob, capture_output=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the decoding process failed ({out.returncode}): {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def limit(cap: int) -> int:
    return int(cap * 1.1) + 64 * MiB


def _size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": MiB, "GiB": GiB}
    for u, m in units.items():
        if text.endswith(u):
            return int(float(text[: -len(u)]) * m)
    return int(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cap", action="append", help="output cap, e.g. 64MiB or 4GiB (repeatable; default: 4GiB and 64MiB)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a peak exceeds cap x 1.1 + 64 MiB")
    args = ap.parse_args()
    caps = [_size(c) for c in args.cap] if args.cap else [4 * GiB, 64 * MiB]
    print("| cap | bomb | blob bytes | decoded | peak RSS | baseline RSS | limit (cap x 1.1 + 64 MiB) | within |")
    print("|---|---|---:|---|---:|---:|---:|---|")
    ok = True
    for cap in caps:
        rows = [(name, blob, b"", "decompress") for name, blob in bombs(cap)] + fitted_bombs(cap)
        for name, blob, codec, what in rows:
            m = measure(blob, cap, codec, what)
            within = m["peak"] <= limit(cap)
            ok &= within
            print(
                f"| {cap / MiB:,.0f} MiB | {name} | {len(blob):,} | {m['result']} | {m['peak'] / MiB:,.1f} MiB | "
                f"{m['baseline'] / MiB:,.1f} MiB | {limit(cap) / MiB:,.1f} MiB | {'yes' if within else 'NO'} |",
                flush=True,
            )
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
