"""The simulated fleet reads its devices with production's inventory settings (issue 13, item 1).

tools/fleet.py writes the fleet's inventory from inventory/supabase.yml, the file cron, AWX and
operators use, adding only how to reach a simulated device and groups naming the simulation: a
device production would drop (a status it does not list) drops out of every e2e test too.
"""

from __future__ import annotations

import fleet  # tests/conftest.py puts tools/ on sys.path
import pytest
import yaml


def test_every_production_setting_is_the_fleet_s():
    production = yaml.safe_load(fleet.PRODUCTION_INVENTORY.read_text())
    source = fleet.fleet_inventory_source()
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
    monkeypatch.setattr(fleet, "PRODUCTION_INVENTORY", changed)
    source = fleet.fleet_inventory_source()
    assert source["statuses"] == ["online"]
    assert source["compose"] == {
        "ansible_host": "metadata.address",
        "ansible_port": "metadata.ansible_port | int",
    }


def test_the_fleet_never_overrides_a_production_setting(tmp_path, monkeypatch):
    clashing = tmp_path / "supabase.yml"
    clashing.write_text("plugin: supabase_devices\ncompose:\n  ansible_port: '2222'\n")
    monkeypatch.setattr(fleet, "PRODUCTION_INVENTORY", clashing)
    with pytest.raises(fleet.FleetError, match=r"sets compose \['ansible_port'\]"):
        fleet.fleet_inventory_source()
