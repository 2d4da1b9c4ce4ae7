"""The simulated fleet reads its devices with production's inventory settings (issue 13, item 1).

tools/fleet.py (tools/simfleet/inventory.py) writes the fleet's inventory from
inventory/supabase.yml, the file cron, AWX and operators use, adding only how to reach a
simulated device and groups naming the simulation: a device production would drop (a status it
does not list) drops out of every e2e test too.
"""

from __future__ import annotations

import pytest
import yaml
from simfleet import inventory  # tests/conftest.py puts tools/ on sys.path
from simfleet.model import FleetError


def test_every_production_setting_is_the_fleet_s():
    production = yaml.safe_load(inventory.PRODUCTION_INVENTORY.read_text())
    source = inventory.fleet_inventory_source()
    for key, value in production.items():
        if key in ("compose", "groups"):
            assert source[key].items() >= value.items(), key
        elif key == "keyed_groups":
            assert source[key][: len(value)] == value
        else:
            assert source[key] == value, key
    assert "updating" in source["statuses"], "a device a dead run left updating stays in the fleet's runs"


def test_a_change_to_production_is_the_fleet_s(tmp_path, monkeypatch):
    changed = tmp_path / "supabase.yml"
    changed.write_text(
        "plugin: supabase_devices\nstatuses: [online]\ncompose:\n  ansible_host: metadata.address\n"
    )
    monkeypatch.setattr(inventory, "PRODUCTION_INVENTORY", changed)
    source = inventory.fleet_inventory_source()
    assert source["statuses"] == ["online"]
    assert source["compose"] == {
        "ansible_host": "metadata.address",
        "ansible_port": "metadata.ansible_port | int",
    }


def test_the_fleet_never_overrides_a_production_setting(tmp_path, monkeypatch):
    clashing = tmp_path / "supabase.yml"
    clashing.write_text("plugin: supabase_devices\ncompose:\n  ansible_port: '2222'\n")
    monkeypatch.setattr(inventory, "PRODUCTION_INVENTORY", clashing)
    with pytest.raises(FleetError, match=r"sets compose \['ansible_port'\]"):
        inventory.fleet_inventory_source()
