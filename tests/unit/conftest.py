"""Fixtures of the unit tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def publish():
    """tools/publish.py, loaded from its file (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("vf_publish", ROOT / "tools" / "publish.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
