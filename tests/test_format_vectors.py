"""The CPU encoder against docs/FORMAT.md itself: every test vector (5.7, 6.10, 10.6: length, CRC
and the streams column), the worked blobs of 4.5, 6.9 and 10.7 and the table of 3.4, byte for byte, all
read from the document's text. A change of encoder policy that moves a byte fails here (the GPU
tests only compare the GPU with this encoder). Update the document and these numbers together."""

import math
import pathlib
import re
import struct
import zlib

import numpy as np
import pytest

import splitans

DOC = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md").read_text()


def section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n### ", start + len(title))
    return DOC[start : end if end > 0 else None]


def namespace():
    ns = {"np": np, "splitans": splitans, "compress": splitans.compress, "rans_encode": splitans.rans_encode}
    for title in ("### 5.7 Test vectors", "### 6.10 Test vectors"):
        for block in re.findall(r"```python\n(.*?)```", section(title), re.S):
            exec(block, ns)
    return ns


def table_rows(text: str):
    """The rows of the first Markdown table in `text`, as lists of cells (header skipped)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


def code(cell: str) -> str:
    m = re.fullmatch(r"`(.*)`", cell)
    assert m, cell
    return m.group(1)


def crc_ok(blob: bytes) -> bool:
    return zlib.crc32(blob[:8] + blob[12:]) == struct.unpack_from("<I", blob, 8)[0]


VECTORS_57 = table_rows(section("### 5.7 Test vectors").split("```\n", 2)[-1])
VECTORS_610 = table_rows(section("### 6.10 Test vectors").split("```\n", 2)[-1])


def test_the_document_has_its_vectors():
    assert len(VECTORS_57) == 4 and len(VECTORS_610) == 9 and len(VECTORS_106) == 11


@pytest.mark.parametrize("row", VECTORS_57, ids=[r[0][:60] for r in VECTORS_57])
def test_symbol_and_array_vectors(row):
    call, total_len, crc, streams = row
    blob = eval(code(call), namespace())
    assert len(blob) == int(total_len)
    assert crc_ok(blob) and f"{struct.unpack_from('<I', blob, 8)[0]:08x}" == code(crc)
    want = re.findall(r"\((\w+), (\d+), (\d+), (\d+)\)", streams)
    info = splitans.inspect(blob)["streams"]
    got = [(s["mode"], str(s["precision_bits"]), str(s["lanes"]), str(math.ceil(s["symbols"] / s["chunk_symbols"])))
           for s in info]
    assert got == [tuple(w) for w in want]


@pytest.mark.parametrize("row", VECTORS_610, ids=[r[0][:60] for r in VECTORS_610])
def test_feature_vectors(row):
    call, total_len, crc, mode_rows, clamped, streams = row
    blob = eval(code(call), namespace())
    assert len(blob) == int(total_len)
    assert crc_ok(blob) and f"{struct.unpack_from('<I', blob, 8)[0]:08x}" == code(crc)
    info = splitans.inspect(blob)
    mode, _, rows = mode_rows.partition(", ")
    assert info["mode"] == mode and info["rows"] == (int(rows) if rows else None)
    assert info["clamped"] == int(clamped)
    assert [s["mode"] for s in info["streams"]] == streams.split(", ")


def offset_table(text: str) -> bytes:
    """The bytes of an `| offset | bytes | field |` table: a cell `` `02 00 … 00` `` is a u64 (or
    whatever fills the span to the next offset, shared by the cell's parts)."""
    rows = [(int(r[0]), re.findall(r"`([^`]*)`", r[1])) for r in table_rows(text) if r[0].isdigit()]
    out = bytearray()
    for i, (offset, parts) in enumerate(rows):
        assert offset == len(out), (offset, len(out))
        span = rows[i + 1][0] - offset if i + 1 < len(rows) else None
        for p in parts:
            if "…" in p:
                first = bytes.fromhex(p.split("…")[0])
                width = span // len(parts)
                out += first + bytes(width - len(first))
            else:
                out += bytes.fromhex(p)
    return bytes(out)


def test_worked_example_6_9_byte_for_byte():
    text = section("### 6.9 Worked example")
    ns = {"np": np, "splitans": splitans}
    exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), ns)
    want = offset_table("| offset | bytes" + text.split("| offset | bytes")[1])
    assert len(want) == 175 and ns["blob"] == want
    # ... and what decompress and plan report about it.
    x = ns["x"]
    s = np.float32(4) / np.float32(15)
    q = np.array([10, 2, 11, 5, 15, 0, 7])
    y = splitans.decompress(want)
    np.testing.assert_array_equal(y[x != 0], ((q - 4).astype(np.float32) * s))
    assert (y[x == 0] == 0).all()
    p = splitans.plan(x, bits=4, mode="csr", reshape=6)
    assert (p["dense_bytes"], p["values_bytes"], p["csr_bytes"]) == (42, 25, 87)
    # "With the defaults the same x is stored dense: dense = 8 + 34 = 42": header 48, section
    # record 8 + 32, stream record 42.
    auto = splitans.compress(x, bits=4, version=1)
    assert splitans.inspect(auto)["mode"] == "dense" and len(auto) == 48 + 40 + 42


VECTORS_106 = table_rows(section("### 10.6 Test vectors"))


def compact_crc_ok(blob: bytes) -> bool:
    return blob[0] == 0xF3 and zlib.crc32(blob[:1] + blob[5:]) == struct.unpack_from("<I", blob, 1)[0]


@pytest.mark.parametrize("row", VECTORS_106, ids=[r[0][:60] for r in VECTORS_106])
def test_compact_vectors(row):
    call, total_len, crc, mode_rows, clamped, streams, v1_len = row
    blob = eval(code(call), namespace())
    assert len(blob) == int(total_len)
    assert compact_crc_ok(blob) and f"{struct.unpack_from('<I', blob, 1)[0]:08x}" == code(crc)
    info = splitans.inspect(blob)
    mode, _, rows = mode_rows.partition(", ")
    assert info["format_version"] == 3 and info["mode"] == mode and info["rows"] == (int(rows) if rows else None)
    assert info["clamped"] == int(clamped)
    assert [s["mode"] for s in info["streams"]] == streams.split(", ")
    v1_call = code(call)[:-1] + ", version=1)"
    if v1_len == "—":
        with pytest.raises(ValueError, match="compact container"):
            eval(v1_call, namespace())
    else:
        v1 = eval(v1_call, namespace())
        assert len(v1) == int(v1_len) and crc_ok(v1)
        np.testing.assert_array_equal(splitans.decompress(v1), splitans.decompress(blob))


def test_worked_example_10_7_byte_for_byte():
    text = section("### 10.7 Worked example")
    want = bytes.fromhex(re.search(r"```text\n(.*?)```", text, re.S).group(1).replace("\n", " "))
    ns = {"np": np, "splitans": splitans}
    exec(re.search(r"```python\n(.*?)```", section("### 6.9 Worked example"), re.S).group(1), ns)
    x = ns["x"]
    blob = splitans.compress(x, bits=4, mode="csr", reshape=6)
    assert len(want) == 58 and blob == want and compact_crc_ok(blob)
    np.testing.assert_array_equal(splitans.decompress(blob), splitans.decompress(ns["blob"]))
    # Each row of the field table names the bytes at its offset.
    rows = [(int(r[0]), re.findall(r"`([^`]*)`", r[1])) for r in table_rows(text) if r[0].isdigit()]
    assert [o for o, _ in rows] == sorted(o for o, _ in rows) and rows[-1][0] < len(want)
    for offset, parts in rows:
        first = bytes.fromhex(parts[0])
        assert want[offset : offset + len(first)] == first, (offset, parts)
    # The defaults' 43 bytes: the prefix given, then the 24 codes.
    m = re.search(r"is (\d+) bytes:\n`([0-9a-f ]+)`", text)
    auto = splitans.compress(x, bits=4)
    assert len(auto) == int(m.group(1)) and auto.startswith(bytes.fromhex(m.group(2)))
    assert len(auto) == len(bytes.fromhex(m.group(2))) + 24


def test_worked_example_4_5_byte_for_byte():
    text = section("### 4.5 Worked example")
    want = offset_table("| offset | bytes" + text.split("| offset | bytes")[1])
    blob = splitans.rans_encode(np.array([7, 7, 3, 7] * 5, dtype=np.uint16), precision_bits=2)
    assert len(want) == 72 and blob == want


def test_table_example_3_4_byte_for_byte():
    text = section("### 3.4 Frequency table")
    table = bytes.fromhex(re.search(r"The whole table is 12 bytes:\n?`([0-9A-F ]+)`", text).group(1))
    blob = splitans.rans_encode(np.repeat(np.uint8([0, 1, 2, 5, 6, 9]), [4, 4, 80, 12, 24, 4]), precision_bits=5)
    # Header 32 bytes, the stream's length 8, its header 10 and parameters 4, then the table.
    assert blob[54 : 54 + 12] == table and blob[50] == 5


def test_fitted_vector_of_an_axis_of_length_0():
    """FORMAT.md 9.5: the codec and the 13-byte blob of a sample whose quantizer axis (the
    variable axis) has length 0 — one (scale, zero point) pair all the same."""
    text = section("### 9.5 Fitted blob")
    text = text[text.index("**Test vector: an axis of length 0.**"):]
    codec_bytes = bytes.fromhex(re.search(r"```text\n(.*?)```", text, re.S).group(1).replace("\n", " "))
    blob = bytes.fromhex(re.search(r"is the 13-byte blob `([0-9a-f ]+)`", text).group(1))
    codec = splitans.Codec.from_bytes(codec_bytes)
    assert len(codec_bytes) == 108 and codec.id.startswith("f7ea43dc")
    assert codec.compress(np.zeros((0, 3), np.float32)) == blob and len(blob) == 13
    y = codec.decompress(blob)
    assert y.shape == (0, 3) and y.dtype == np.float32
    info = codec.inspect(blob)
    assert info["scale"] == [0.0] and info["zero_point"] == [0] and info["kind"] == "raw"
    with pytest.raises(splitans.CorruptDataError):
        codec.decompress(blob[:-5] + blob[-1:])  # no pair: truncated


def _fix_compact_crc(b: bytes) -> bytes:
    b = bytearray(b)
    struct.pack_into("<I", b, 1, zlib.crc32(bytes(b[:1]) + bytes(b[5:])))
    return bytes(b)


def test_compact_first_bytes_and_the_empty_pcontext_container():
    """FORMAT.md 10 and 10.4 step 1: 0xF0-0xF2 start no container, 0xF4 and later are newer
    versions even in one byte; 10.2: an empty pcontext container has an empty body."""
    for first in (0xF0, 0xF1, 0xF2):
        with pytest.raises(splitans.CorruptDataError, match="not a splitans container"):
            splitans.decompress(bytes([first]) + bytes(20))
    for data in (b"\xf4", b"\xff" + bytes(20)):
        with pytest.raises(splitans.UnsupportedVersionError):
            splitans.decompress(data)
    x = np.maximum(np.random.default_rng(0).normal(size=(4, 8)), 0).astype(np.float32)
    full = bytearray(splitans.compress(x, bits=4, mode="pcontext"))
    body = splitans.inspect(bytes(full))["streams"][0]["compressed_bytes"]
    assert full[7:10] == b"\x02\x04\x08"  # ndim 2, shape 4 x 8
    full[8] = 0  # 0 x 8
    empty = _fix_compact_crc(bytes(full[: len(full) - body]))
    assert splitans.decompress(empty).shape == (0, 8)
    with pytest.raises(splitans.CorruptDataError, match="after the last chunk"):
        splitans.decompress(_fix_compact_crc(bytes(full)))
