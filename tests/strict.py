"""Skip or fail for a missing test dependency.

Outside CI a missing dependency skips the test that needs it. With SPLITANS_REQUIRE_DATA=1
(set by .ci/run, which installs everything) it fails instead, so CI cannot pass with part of
the suite skipped; only the real-GPU tests (tests/test_gpu.py) may skip there."""

import importlib
import os

import pytest

STRICT = os.environ.get("SPLITANS_REQUIRE_DATA") == "1"


def need(condition, why: str, module_level: bool = False) -> None:
    if not condition:
        if STRICT:
            pytest.fail(why + " (SPLITANS_REQUIRE_DATA=1: CI installs every test dependency)", pytrace=False)
        pytest.skip(why, allow_module_level=module_level)


def need_module(name: str, install: str = "", module_level: bool = False):
    """The module, imported; or skip (fail in CI) saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        need(False, f"{name} is not installed ({install or 'pip install ' + name}): {e}", module_level)
