"""Fuzzes the Python layer with atheris: decompress, inspect and rans_decode on mutated valid
blobs of every kind (numpy and torch outputs). Any exception other than the documented ones
(CorruptDataError, UnsupportedVersionError, OutputTooLargeError, and ValueError from
rans_decode on a non-symbols container) is a finding, as is an output of another shape than the
header declares, or inspect accepting or refusing differently from decompress.

    python fuzz/python_fuzz.py -max_total_time=600 fuzz/work/python fuzz/corpus/decompress
"""

import sys
import zlib

import atheris

with atheris.instrument_imports():
    import numpy as np

    import splitans

LIMIT = 64 << 20
ALLOWED = (splitans.CorruptDataError, splitans.OutputTooLargeError)


def refresh(blob: bytearray) -> bytes:
    if blob[:1] == b"\xf3" and len(blob) >= 5:  # compact (FORMAT.md 10.1)
        blob[1:5] = zlib.crc32(bytes(blob[:1]) + bytes(blob[5:])).to_bytes(4, "little")
    elif len(blob) >= 12:
        blob[8:12] = zlib.crc32(bytes(blob[:8]) + bytes(blob[12:])).to_bytes(4, "little")
    return bytes(blob)


def declared_shape(blob: bytes):
    """The shape in the header, read here from the bytes (FORMAT.md 2.1 or 10.1)."""
    if blob[0] != 0xF3:
        return tuple(int.from_bytes(blob[24 + 8 * i : 32 + 8 * i], "little") for i in range(blob[22]))
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
    return tuple(shape)


def one_input(data: bytes) -> None:
    # The input is the blob itself (so the seeds are valid containers); options come from a
    # hash of it: half the inputs get their checksum repaired to reach the parsers behind it.
    h = zlib.adler32(data)
    output = "torch" if h & 2 else "numpy"
    blob = refresh(bytearray(data)) if h & 1 else data
    failed = None
    try:
        out = splitans.decompress(blob, max_output_bytes=LIMIT, output=output)
        assert tuple(out.shape) == declared_shape(blob)
    except ALLOWED as e:
        failed = (type(e), str(e))
    try:
        info = splitans.inspect(blob, max_output_bytes=LIMIT)
        assert info["format_version"] in (1, 2, 3)
        assert failed is None, f"inspect accepts what decompress refuses: {failed}"
    except ALLOWED as e:
        # inspect refuses exactly what decompress refuses, with the same error.
        assert failed == (type(e), str(e)), (failed, e)
    try:
        s = splitans.rans_decode(blob, max_output_bytes=LIMIT)
        assert s.ndim == 1 and s.dtype in (np.uint8, np.uint16)
    except ALLOWED:
        pass
    except ValueError as e:
        if "rans_decode() takes data from rans_encode()" not in str(e):
            raise


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
