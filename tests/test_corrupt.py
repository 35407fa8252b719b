"""Damaged input: always a specific exception, never a crash, hang or silently wrong array."""

import struct
import zlib

import numpy as np
import pytest

import splitans


def small_blobs():
    rng = np.random.default_rng(10)
    return [
        splitans.rans_encode((rng.geometric(0.2, 600) % 30).astype(np.uint8)),
        splitans.rans_encode((rng.geometric(0.01, 700) % 3000).astype(np.uint16)),
        splitans.compress(rng.integers(-70_000, 70_000, size=(12, 25)).astype(np.int32)),
        splitans.compress(np.full((9, 9), 4, np.int8)),
        splitans.compress(np.zeros((0, 3), np.uint16)),
    ]


def feature_blobs():
    rng = np.random.default_rng(30)
    x = (np.maximum(rng.normal(size=(3, 8, 9)), 0)).astype(np.float32)
    blobs = []
    for version in (None, 1):  # compact (FORMAT.md 10) and version 1/2 (6)
        blobs += [
            splitans.compress(x, bits=4, mode="dense", version=version),
            splitans.compress(x, bits=8, mode="csr", reshape=24, version=version),
            splitans.compress(x, bits=12, mode="csr", reshape=216, axis=1, version=version),
            splitans.compress(x, bits=3, mode="context", version=version),
            splitans.compress(x, bits=7, mode="context", axis=1, version=version),
        ]
    blobs += [
        splitans.compress(x, bits=4, mode="pcontext"),
        splitans.compress(x, bits=2, mode="pcontext", axis=0),
    ]
    return blobs


DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16", 5: "uint32", 6: "int32", 7: "uint64", 8: "int64",
          9: "float16", 10: "float32", 11: "float32", 12: "float64"}


def compact(blob) -> bool:
    return blob[0] == 0xF3


def declared(blob: bytes):
    """The shape and dtype a container's header declares (bfloat16 decodes to float32)."""
    if compact(blob):  # FORMAT.md 10.1: ndim at byte 7, then LEB128 dimensions
        shape, pos = [], 8
        for _ in range(blob[7]):
            v, shift = 0, 0
            while True:
                b = blob[pos]
                pos += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            shape.append(v)
        return tuple(shape), np.dtype(DTYPES[blob[5]])
    ndim = blob[22]
    return tuple(struct.unpack_from(f"<{ndim}Q", blob, 24)), np.dtype(DTYPES[blob[21]])


def refresh_checksum(blob: bytearray) -> bytes:
    """Recomputes the CRC so that damage reaches the parsers behind the checksum (FORMAT.md 2.2,
    or 10.1 for a compact container)."""
    if compact(blob):
        blob[1:5] = struct.pack("<I", zlib.crc32(bytes(blob[:1]) + bytes(blob[5:])))
        return bytes(blob)
    crc = zlib.crc32(bytes(blob[:8]) + bytes(blob[12:]))
    blob[8:12] = struct.pack("<I", crc)
    return bytes(blob)


def first_behind_checksum(blob) -> int:
    return 5 if compact(blob) else 12


@pytest.mark.parametrize("blob", small_blobs() + feature_blobs())
def test_every_truncation(blob):
    for n in range(len(blob)):
        with pytest.raises(splitans.CorruptDataError):
            splitans.decompress(blob[:n])
    with pytest.raises(splitans.CorruptDataError):
        splitans.decompress(blob + b"\0")


@pytest.mark.parametrize("blob", small_blobs() + feature_blobs())
def test_every_bit_flip(blob):
    for bit in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(splitans.CorruptDataError):
            splitans.decompress(bytes(bad))


def test_damage_behind_a_valid_checksum():
    rng = np.random.default_rng(11)
    for blob in small_blobs():
        original = splitans.decompress(blob)
        for _ in range(300):
            bad = bytearray(blob)
            for i in rng.integers(12, len(bad), size=rng.integers(1, 4)):
                bad[i] = rng.integers(0, 256)
            bad = refresh_checksum(bad)
            try:
                out = splitans.decompress(bad)
            except (splitans.CorruptDataError, splitans.OutputTooLargeError):
                continue
            # Damage that still decodes (a raw byte, a shape change) decodes to what the header
            # declares.
            assert (out.shape, out.dtype) == declared(bad)
            if bad == blob:
                np.testing.assert_array_equal(out, original)


def test_random_bytes():
    rng = np.random.default_rng(12)
    for n in (0, 1, 3, 4, 8, 24, 100, 5000):
        for _ in range(30):
            junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            with pytest.raises(splitans.CorruptDataError):
                splitans.decompress(junk)
            with pytest.raises(splitans.CorruptDataError):
                splitans.inspect(junk)


def test_unknown_version():
    bad = bytearray(small_blobs()[0])
    bad[4] = 9
    with pytest.raises(splitans.UnsupportedVersionError, match="version 9"):
        splitans.decompress(bytes(bad))
    assert issubclass(splitans.UnsupportedVersionError, splitans.CorruptDataError)
    assert issubclass(splitans.CorruptDataError, ValueError)


def test_declared_size_far_beyond_the_data():
    # A valid checksum over a header that claims 2^40 elements: refused before any allocation.
    blob = bytearray(splitans.compress(np.zeros(10, np.uint8)))
    blob[24:32] = struct.pack("<Q", 1 << 40)
    bad = refresh_checksum(blob)
    with pytest.raises(splitans.OutputTooLargeError):
        splitans.decompress(bad)
    with pytest.raises(splitans.CorruptDataError):
        splitans.decompress(bad, max_output_bytes=None)


def test_max_output_bytes_guards_bombs():
    blob = splitans.compress(np.zeros((1000, 1000), np.uint8))
    assert len(blob) < 100
    with pytest.raises(splitans.OutputTooLargeError):
        splitans.decompress(blob, max_output_bytes=999_999)
    assert splitans.decompress(blob, max_output_bytes=1_000_000).shape == (1000, 1000)
    with pytest.raises(splitans.OutputTooLargeError):
        splitans.inspect(blob, max_output_bytes=10)


def test_feature_damage_behind_a_valid_checksum():
    rng = np.random.default_rng(31)
    for blob in feature_blobs():
        for _ in range(400):
            bad = bytearray(blob)
            for i in rng.integers(first_behind_checksum(blob), len(bad), size=rng.integers(1, 4)):
                bad[i] = rng.integers(0, 256)
            bad = refresh_checksum(bad)
            try:
                out = splitans.decompress(bad)
            except (splitans.CorruptDataError, splitans.OutputTooLargeError) as e:
                assert "checksum" not in str(e), "the damage must reach behind the checksum"
                continue
            assert (out.shape, out.dtype) == declared(bad)
