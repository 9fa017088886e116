"""Test configuration: an on-disk compile cache shared by the run, and backend fixtures."""
import os
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("TRACEGRAD_CACHE_DIR", str(_ROOT / ".cache" / "tracegrad-tests"))


@pytest.fixture
def interpret(monkeypatch):
    """Run transforms through the NumPy interpreter instead of Numba (same IR, no compile time).

    TG_TEST_BACKEND=numba runs these tests compiled instead (a slow sweep that has found real bugs)."""
    monkeypatch.setenv("TRACEGRAD_BACKEND", os.environ.get("TG_TEST_BACKEND", "interpret"))


@pytest.fixture
def numba_backend(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_BACKEND", "numba")
