"""The structure-aware generator (rust/tests/blobgen) through the Python bindings.

Rust writes 3,000 generated cases (valid containers of every kind, mode and version, mutated field by
field behind a recomputed CRC) with what its decoder made of each (`cargo test --release --test
structured dump_cases_for_python -- --ignored`; built already when `cargo test --release` ran
first, as in .ci/run). Each must come out of `splitans.decompress` as an array of the declared
shape and dtype, or as the documented exception for the Rust error with the same message, and
`splitans.inspect` must agree. Needs cargo and the repository (skipped, or failed in CI, without).
"""

import json
import os
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest

import splitans
import reference
from strict import need, need_module

ROOT = pathlib.Path(__file__).resolve().parents[1]
CAP = 64 << 20
DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16", 5: "uint32", 6: "int32", 7: "uint64", 8: "int64",
          9: "float16", 10: "float32", 11: "float32", 12: "float64"}
ERRORS = {"Corrupt": splitans.CorruptDataError, "UnsupportedVersion": splitans.UnsupportedVersionError,
          "OutputTooLarge": splitans.OutputTooLargeError}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    need(shutil.which("cargo") and (ROOT / "rust" / "tests" / "blobgen" / "mod.rs").exists(),
         "the generator needs cargo and the repository's rust/tests")
    out = tmp_path_factory.mktemp("blobgen")
    run = subprocess.run(
        ["cargo", "test", "--release", "--test", "structured", "dump_cases_for_python", "--", "--ignored", "--exact"],
        cwd=ROOT, env=dict(os.environ, SPLITANS_BLOBGEN_DIR=str(out)), capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads((out / "cases.json").read_text())
    return [(r, (out / r["file"]).read_bytes()) for r in rows]


def varints(data: bytes, pos: int, count: int):
    """`count` LEB128 varints from `pos` (FORMAT.md 10)."""
    out = []
    for _ in range(count):
        v, pos = reference.varint(data, pos)
        out.append(v)
    return tuple(out)


def declared(data: bytes):
    """Shape and dtype from the header, read here from the bytes (FORMAT.md 2.1 or 10.1)."""
    if data[0] == 0xF3:
        return varints(data, 8, data[7]), DTYPES[data[5]]
    ndim = data[22]
    return tuple(struct.unpack_from(f"<{ndim}Q", data, 24)), DTYPES[data[21]]


def dtype_code(data: bytes) -> int:
    return data[5] if data[0] == 0xF3 else data[21]


def outcome(fn):
    try:
        return "decoded", fn()
    except splitans.CorruptDataError as e:  # UnsupportedVersionError included
        return type(e), str(e)
    except splitans.OutputTooLargeError as e:
        return type(e), str(e)


def test_generated_cases_decode_to_their_shape_or_the_documented_error(cases):
    assert len(cases) == 3000
    seen = set()
    for row, data in cases:
        kind, value = outcome(lambda: splitans.decompress(data, max_output_bytes=CAP))
        seen.add(row["outcome"])
        if row["outcome"] == "decoded":
            assert kind == "decoded", (row, value)
            shape, dtype = declared(data)
            assert value.shape == shape and value.dtype == np.dtype(dtype), (row, value.shape, value.dtype)
            assert value.size == int(row["message"])
        else:
            assert kind is ERRORS[row["outcome"]], (row, kind, value)
            assert value == row["message"], (row, value)
        # inspect accepts and refuses exactly what decompress does, with the same message.
        ikind, ivalue = outcome(lambda: splitans.inspect(data, max_output_bytes=CAP))
        assert (ikind == "decoded") == (kind == "decoded"), (row, ivalue)
        if kind != "decoded":
            assert ikind is kind and ivalue == value, (row, ivalue)
    assert seen == {"decoded", "Corrupt", "UnsupportedVersion", "OutputTooLarge"}


def test_generated_features_decode_to_torch_too(cases):
    torch = need_module("torch")
    n = 0
    for row, data in cases:
        if row["outcome"] != "decoded" or (data[0] != 0xF3 and data[20] != 3):
            continue
        t = splitans.decompress(data, max_output_bytes=CAP, output="torch")
        shape, dtype = declared(data)
        want = {9: torch.float16, 10: torch.bfloat16, 11: torch.float32, 12: torch.float64}[dtype_code(data)]
        assert tuple(t.shape) == shape and t.dtype == want, row
        n += 1
    assert n >= 20
