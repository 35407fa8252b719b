"""Hostile and careless input: no abort, no unbounded allocation, no infinity from finite input,
exact errors. Cases that could take the interpreter down run in a child process, which must
exit normally having caught the documented exception."""

import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import splitans


def with_crc(blob) -> bytes:
    """Sets total_len and the CRC, as a writer does (FORMAT.md 2.2)."""
    blob = bytearray(blob)
    struct.pack_into("<Q", blob, 12, len(blob))
    struct.pack_into("<I", blob, 8, zlib.crc32(bytes(blob[:8]) + bytes(blob[12:])))
    return bytes(blob)


def header(kind, dtype, shape, streams, version=1):
    return b"SPNS" + struct.pack("<BBHIQBBBB", version, 0, 24 + 8 * len(shape), 0, 0, kind, dtype, len(shape), streams) + b"".join(
        struct.pack("<Q", d) for d in shape
    )


def record(body: bytes) -> bytes:
    return struct.pack("<Q", len(body)) + body


def stream(mode, width, n, body=b"") -> bytes:
    return struct.pack("<BBQ", mode, width, n) + body


def empty_csr_bomb(rows: int) -> bytes:
    """FORMAT.md 6: a CSR feature container of an empty tensor (shape (0,)) whose row-count
    stream declares `rows` symbols (a constant stream: 12 bytes). 128 bytes."""
    section = struct.pack("<BBBBQQI", 8, 1, 255, 0, 0, rows, 1) + struct.pack("<fi", 0.0, 0)
    blob = header(3, 11, [0], 3) + record(section)
    blob += record(stream(1, 2, rows, struct.pack("<H", 0))) + record(stream(0, 2, 0)) + record(stream(0, 1, 0))
    return with_crc(blob)


def run_child(code: str, address_space_gb: float = 3.0, timeout: float = 60.0) -> dict:
    """Runs `code` in a fresh interpreter under an address-space limit; it prints one JSON line."""
    prelude = textwrap.dedent(
        f"""
        import json, resource, sys, time
        limit = int({address_space_gb} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import numpy as np, splitans
        from splitans import _core
        def outcome(fn):
            t = time.perf_counter()
            try:
                fn()
                name = "ok"
            except Exception as e:
                name = type(e).__name__ + ": " + str(e)[:200]
            return [name, time.perf_counter() - t]
        """
    )
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"child died with {out.returncode}: {out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("rows", [1 << 30, 1 << 36, 1 << 62])
def test_empty_csr_row_count_bomb_is_corrupt_quickly(rows):
    blob = empty_csr_bomb(rows)
    assert len(blob) == 128
    got = run_child(
        f"""
        blob = bytes.fromhex({blob.hex()!r})
        res = {{
            "decompress": outcome(lambda: splitans.decompress(blob)),
            "decompress_uncapped": outcome(lambda: splitans.decompress(blob, max_output_bytes=None)),
            "inspect": outcome(lambda: splitans.inspect(blob, max_output_bytes=None)),
            "gpu_layout": outcome(lambda: _core.gpu_layout(blob, 2**64 - 1)),
            "stages": outcome(lambda: _core.decode_feature_stages(blob, 1)),
        }}
        print(json.dumps(res))
        """
    )
    for call, (what, seconds) in got.items():
        assert what.startswith("CorruptDataError"), (call, what)
        assert f"{rows} rows invalid for 0 elements" in what, (call, what)
        assert seconds < 1.0, (call, seconds)
