"""Fixtures of the unit tests."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wh():
    """The action plugin javia.voice_fleet.voice_wheelhouse (its helpers), by its full name."""
    from ansible_collections.javia.voice_fleet.plugins.action import voice_wheelhouse  # noqa: PLC0415

    return voice_wheelhouse


@pytest.fixture(scope="session")
def publish():
    """tools/publish.py, loaded from its file (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("vf_publish", ROOT / "tools" / "publish.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def store(tmp_path):
    """A release store at <tmp>/www/store, served over real HTTP on the loopback for the test:
    (its directory, its base URL http://127.0.0.1:<port>/store)."""
    root = tmp_path / "www"
    (root / "store").mkdir(parents=True)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root / "store", f"http://127.0.0.1:{server.server_address[1]}/store"
    server.shutdown()
    server.server_close()
