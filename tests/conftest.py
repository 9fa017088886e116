"""Test configuration: an on-disk compile cache shared by the run, and the compile mode.

Tests run on the interpreter tier (TRACEGRAD_COMPILE=never: the same IR the compiler gets, run with
the NumPy impls, no compile time); tests marked `compiled` wait for native code
(TRACEGRAD_COMPILE=sync). `TG_TEST_COMPILE=sync python -m pytest` runs every test compiled (a slow
sweep worth running when lowerings change).
"""
import os
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("TRACEGRAD_CACHE_DIR", str(_ROOT / ".cache" / "tracegrad-tests"))


def pytest_configure(config):
    config.addinivalue_line("markers", "compiled: the test runs with native code (TRACEGRAD_COMPILE=sync)")


@pytest.fixture(autouse=True)
def _compile_mode(request, monkeypatch):
    mode = "sync" if request.node.get_closest_marker("compiled") else os.environ.get("TG_TEST_COMPILE", "never")
    monkeypatch.setenv("TRACEGRAD_COMPILE", mode)
