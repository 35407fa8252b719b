"""Byte-identical output through the fast paths of issue 15: every case of tests/golden/cases.py
(the FORMAT.md test vectors, a spread of tensors, options and dtypes, and every container of the
fuzz corpora, decoded and inspected) gives what the build before those changes gave, recorded in
tests/golden/outputs.json by tests/golden/make_golden.py."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import cases  # noqa: E402

RECORD = json.loads((Path(__file__).resolve().parent / "golden" / "outputs.json").read_text())["cases"]


def test_every_recorded_case_is_still_produced(results):
    missing = sorted(set(RECORD) - set(results))
    assert not missing, f"cases no longer produced: {missing[:10]}"


@pytest.fixture(scope="module")
def results():
    return dict(cases.all_cases())


@pytest.mark.parametrize("name", sorted(RECORD))
def test_output_is_unchanged(name, results):
    assert results.get(name) == RECORD[name]
