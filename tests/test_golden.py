"""Byte-identical output through the fast paths of issue 15: every case of tests/golden/cases.py
(the FORMAT.md test vectors, a spread of tensors, options and dtypes, and every container of the
fuzz corpora, decoded and inspected) gives what the build before those changes gave, recorded in
tests/golden/outputs.json by tests/golden/make_golden.py.

The inputs are built with integer-exact operations (cases.py), so the record holds on every
numpy version and architecture: `.ci/run` replays it on the newest numpy too, and in an
emulated aarch64 root. Without torch (a light edge install) the torch cases skip, by name."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import cases  # noqa: E402
from strict import need  # noqa: E402

RECORD = json.loads((Path(__file__).resolve().parent / "golden" / "outputs.json").read_text())["cases"]


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


HAS_TORCH = _has_torch()


def test_every_recorded_case_is_still_produced(results):
    missing = sorted(k for k in set(RECORD) - set(results) if HAS_TORCH or "torch_" not in k)
    assert not missing, f"cases no longer produced: {missing[:10]}"


@pytest.fixture(scope="module")
def results():
    return dict(cases.all_cases())


@pytest.mark.parametrize("name", sorted(RECORD))
def test_output_is_unchanged(name, results):
    if not HAS_TORCH and ":torch_" in name:
        need(False, "torch is not installed here (the record was made with it)")
    assert results.get(name) == RECORD[name]
