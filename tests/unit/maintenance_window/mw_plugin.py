"""The filter plugin under test, imported from its file as Ansible does (filter_plugins/ is no package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PLUGIN_PATH = Path(__file__).resolve().parents[3] / "filter_plugins" / "maintenance_window.py"
_NAME = "voice_fleet_filter_maintenance_window"


def _load() -> ModuleType:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, PLUGIN_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


mw = _load()
