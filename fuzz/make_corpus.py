"""Writes the seed corpus: small valid blobs of every kind and mode, and the pieces of them that
the narrower targets take (bare streams, frequency tables). Deterministic; run from the repo
root with the package installed: python fuzz/make_corpus.py"""

import hashlib
import pathlib
import struct

import numpy as np

import splitans

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def blobs():
    rng = np.random.default_rng(1)
    skew8 = (rng.geometric(0.3, 700) % 40).astype(np.uint8)
    yield "rans_u8", splitans.rans_encode(skew8)
    yield "rans_u8_chunks", splitans.rans_encode(skew8, chunk_symbols=256, precision_bits=9)
    yield "rans_u16", splitans.rans_encode((rng.geometric(0.01, 900) % 5000).astype(np.uint16))
    yield "raw_u8", splitans.rans_encode(rng.integers(0, 256, 60, dtype=np.uint8))
    yield "constant", splitans.compress(np.full((3, 5), 7, np.int8))
    yield "empty", splitans.compress(np.zeros((0, 2), np.uint16))
    yield "scalar", splitans.compress(np.array(-3, np.int64))
    yield "int32_planes", splitans.compress(rng.integers(-70_000, 70_000, (6, 40)).astype(np.int32))
    x = np.maximum(rng.normal(size=(2, 4, 6, 6)), 0).astype(np.float32)
    # Version 1 and 2 containers (FORMAT.md 6).
    yield "feature_dense", splitans.compress(x, bits=8, mode="dense", version=1)
    yield "feature_csr", splitans.compress(x, bits=4, mode="csr", reshape=8, version=1)
    yield "feature_csr_m1", splitans.compress(x, bits=2, mode="csr", reshape=x.size, version=1)
    yield "feature_channel", splitans.compress(x, bits=12, axis=1, mode="csr", reshape=48, version=1)
    yield "feature_clip", splitans.compress(x.astype(np.float16), bits=3, clip=(0.0, 1.0), version=1)
    yield "feature_context", splitans.compress(x, bits=6, mode="context", axis=1, version=1)
    yield "feature_context_empty", splitans.compress(np.zeros((0, 3), np.float32), bits=4, mode="context", version=1)
    yield "feature_scalar", splitans.compress(np.float64(2.5), bits=16, version=1)
    # Compact containers (FORMAT.md 10), the default for float tensors.
    yield "compact_dense", splitans.compress(x, bits=8, mode="dense")
    yield "compact_csr", splitans.compress(x, bits=4, mode="csr", reshape=8)
    yield "compact_channel", splitans.compress(x, bits=12, axis=1, mode="csr", reshape=48)
    yield "compact_context", splitans.compress(x, bits=6, mode="context", axis=1)
    yield "compact_pcontext", splitans.compress(x, bits=4, mode="pcontext", axis=1)
    yield "compact_pcontext_flat", splitans.compress(x.ravel(), bits=2, mode="pcontext")
    yield "compact_scalar", splitans.compress(np.float64(2.5), bits=16)


def records(blob):
    """The length-prefixed records after a container's header."""
    header_len = struct.unpack_from("<H", blob, 6)[0]
    pos, out = header_len, []
    while pos < len(blob):
        (n,) = struct.unpack_from("<Q", blob, pos)
        out.append(blob[pos + 8 : pos + 8 + n])
        pos += 8 + n
    return out


def write(target, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def main():
    for name, blob in blobs():
        for target in ("container_header", "decompress"):
            write(target, blob)
        write("inspect_agrees", b"\x01" + blob)
        if blob[0] == 0xF3:
            continue  # compact: no records (its streams are version 1's less 9 bytes, 10.3)
        kind = blob[20]
        recs = records(blob)
        streams = recs[1:] if kind == 3 else recs
        if kind == 3 and recs[0][1] == 2:
            streams = []  # context mode: record 1 is a context body, not a stream
        for s in streams:
            width = s[1]
            write("stream_decode", bytes([0 if width == 1 else 1]) + s)
            if s[0] == 3:  # rANS: precision byte, then the table after 4 parameter bytes
                precision = s[10]
                alphabet_flag = 0 if width == 1 else 32
                write("freq_table", bytes([precision | alphabet_flag]) + s[14:])
    # structured: its bytes are choices, not a container; any bytes make a case.
    rng = np.random.default_rng(2)
    for n in (16, 64, 256, 1024, 1024, 4096):
        write("structured", rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    print(f"corpus in {ROOT}: " + ", ".join(f"{d.name} {len(list(d.iterdir()))}" for d in sorted(ROOT.iterdir())))


if __name__ == "__main__":
    main()
