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


def test_the_health_gate_is_written_only_when_asked_for(tmp_path):
    from simfleet.model import Fleet  # noqa: PLC0415

    fleet = Fleet("vf-unit", 2901, tmp_path)
    group_vars = fleet.inventory / "group_vars" / "all.yml"
    default = yaml.safe_load(inventory.inventory_files(fleet)[group_vars])
    assert "voice_release_health_seconds" not in default, "the role's own default applies"
    asked = yaml.safe_load(inventory.inventory_files(fleet, health_seconds=5)[group_vars])
    assert asked["voice_release_health_seconds"] == 5
    assert asked.items() >= default.items()


def test_a_bad_health_gate_is_refused_naming_the_value(tmp_path):
    import fleet as fleet_cli  # noqa: PLC0415 (tools/fleet.py)

    args = fleet_cli.parse_args(["up", "--health-seconds", "0", "--state-dir", str(tmp_path)])
    with pytest.raises(FleetError, match=r"--health-seconds must be 1\.\.600, got 0"):
        fleet_cli.validate(args)
