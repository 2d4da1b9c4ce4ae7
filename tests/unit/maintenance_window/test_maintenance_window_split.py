"""maintenance_window_split / hosts_in_maintenance_window: hosts judged in their own zones at one instant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager
from mw_plugin import mw

# 2026-03-08T07:30:00Z, hand-derived local times:
#   America/New_York: 03:30 EDT, 30 min after the spring-forward jump at 07:00Z -> inside
#   Europe/London:    07:30 GMT -> outside, next 9 March 02:00 GMT = 02:00Z (18h30m = 66600 s)
#   Asia/Kolkata:     13:00 IST -> outside, next 9 March 02:00 IST = 8 March 20:30Z (13 h = 46800 s)
#   Pacific/Chatham:  21:15 +13:45 -> outside, next 9 March 02:00 +13:45 = 8 March 12:15Z (4h45m = 17100 s)
NOW = "2026-03-08T07:30:00Z"

HOSTVARS: dict[str, dict[str, Any]] = {
    "pi-nyc": {"timezone": "America/New_York", "timezone_valid": True},
    "pi-london": {"timezone": "Europe/London", "timezone_valid": True},
    "pi-kolkata": {"timezone": "Asia/Kolkata"},
    "pi-chatham": {"timezone": "Pacific/Chatham", "timezone_valid": True},
    "pi-mars": {"timezone": "Mars/Olympus_Mons", "timezone_valid": False},
    "pi-flagged": {"timezone": "America/New_York", "timezone_valid": False},
    "pi-typo": {"timezone": "America/NewYork"},
    "pi-empty": {"timezone": ""},
    "pi-number": {"timezone": 5},
    "pi-no-zone": {"device_name": "pi-no-zone"},
}


def test_split_puts_every_host_in_exactly_one_place() -> None:
    split = mw.maintenance_window_split(list(HOSTVARS), HOSTVARS, now=NOW)
    assert split["now"] == "2026-03-08T07:30:00+00:00"
    assert split["in_window"] == ["pi-nyc"]
    assert split["outside"] == [
        {
            "host": "pi-london",
            "timezone": "Europe/London",
            "opens_at": "2026-03-09T02:00:00+00:00",
            "opens_local": "2026-03-09T02:00:00+00:00",
            "seconds_until_start": 66600,
        },
        {
            "host": "pi-kolkata",
            "timezone": "Asia/Kolkata",
            "opens_at": "2026-03-08T20:30:00+00:00",
            "opens_local": "2026-03-09T02:00:00+05:30",
            "seconds_until_start": 46800,
        },
        {
            "host": "pi-chatham",
            "timezone": "Pacific/Chatham",
            "opens_at": "2026-03-08T12:15:00+00:00",
            "opens_local": "2026-03-09T02:00:00+13:45",
            "seconds_until_start": 17100,
        },
    ]
    invalid = {entry["host"]: entry for entry in split["invalid"]}
    assert list(invalid) == ["pi-mars", "pi-flagged", "pi-typo", "pi-empty", "pi-number", "pi-no-zone"]
    assert invalid["pi-mars"]["timezone"] == "Mars/Olympus_Mons"
    assert "timezone_valid: false" in invalid["pi-mars"]["error"]
    # the inventory's verdict wins even when the name would parse here
    assert "timezone_valid: false" in invalid["pi-flagged"]["error"]
    assert "unknown timezone 'America/NewYork'" in invalid["pi-typo"]["error"]
    assert "Did you mean 'America/New_York'" in invalid["pi-typo"]["error"]
    assert "timezone is empty" in invalid["pi-empty"]["error"]
    assert "int 5" in invalid["pi-number"]["error"]
    assert invalid["pi-no-zone"] == {
        "host": "pi-no-zone",
        "timezone": None,
        "error": "host variable 'timezone' is not set",
    }


def test_hosts_in_maintenance_window_is_the_in_window_list() -> None:
    assert mw.hosts_in_maintenance_window(list(HOSTVARS), HOSTVARS, now=NOW) == ["pi-nyc"]
    # 2026-03-09T02:30Z: inside London's 02:00 GMT window; 08:00 IST, 22:30 EDT, 16:15 in Chatham
    assert mw.hosts_in_maintenance_window(list(HOSTVARS), HOSTVARS, now="2026-03-09T02:30:00Z") == [
        "pi-london"
    ]


def test_window_settings_apply_to_every_host() -> None:
    # hour 13 for 60 min: Kolkata 13:00-14:00 IST = 07:30-08:30Z holds 07:30Z; New York 13:00 EDT does not
    assert mw.hosts_in_maintenance_window(list(HOSTVARS), HOSTVARS, now=NOW, hour=13) == ["pi-kolkata"]


def test_order_is_kept_and_duplicates_are_judged_once() -> None:
    hosts = ["pi-london", "pi-nyc", "pi-london", "pi-kolkata"]
    split = mw.maintenance_window_split(hosts, HOSTVARS, now=NOW)
    assert split["in_window"] == ["pi-nyc"]
    assert [entry["host"] for entry in split["outside"]] == ["pi-london", "pi-kolkata"]


def test_hosts_missing_from_hostvars_are_invalid() -> None:
    split = mw.maintenance_window_split(["pi-nyc", "pi-ghost"], HOSTVARS, now=NOW)
    assert split["in_window"] == ["pi-nyc"]
    assert split["invalid"] == [
        {"host": "pi-ghost", "timezone": None, "error": "'pi-ghost' is not in the inventory"}
    ]


def test_timezone_var_names_another_host_variable() -> None:
    hostvars = {"a": {"device_tz": "America/New_York"}, "b": {"timezone": "America/New_York"}}
    split = mw.maintenance_window_split(["a", "b"], hostvars, now=NOW, timezone_var="device_tz")
    assert split["in_window"] == ["a"]
    assert split["invalid"] == [
        {"host": "b", "timezone": None, "error": "host variable 'device_tz' is not set"}
    ]


def test_every_host_is_judged_at_the_same_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    # now=None reads the clock once: a second call would land after the New York window closed
    readings = iter([1772955000.0, 1772960000.0])  # 07:30Z, then 08:53:20Z
    monkeypatch.setattr(mw.time, "time", lambda: next(readings))
    hostvars = {"a": {"timezone": "America/New_York"}, "b": {"timezone": "America/New_York"}}
    assert mw.hosts_in_maintenance_window(["a", "b"], hostvars) == ["a", "b"]


@pytest.mark.parametrize(
    ("hosts", "hostvars", "kwargs", "fragment"),
    [
        ("pi-nyc", HOSTVARS, {}, "expects a list of inventory host names"),
        (HOSTVARS, HOSTVARS, {}, "(e.g. ansible_play_hosts_all), got dict"),
        ([5], HOSTVARS, {}, "host names must be strings, got int 5"),
        (["pi-nyc"], ["pi-nyc"], {}, "the first argument must be hostvars, got list"),
        (["pi-nyc"], HOSTVARS, {"timezone_var": ""}, "timezone_var must name a host variable, got str ''"),
        (["pi-nyc"], HOSTVARS, {"hour": 25}, "hour must be a whole number in 0..23, got int 25"),
        (["pi-nyc"], HOSTVARS, {"now": "2026-03-08 07:30"}, "now '2026-03-08 07:30' has no UTC offset"),
    ],
)
@pytest.mark.parametrize("split_filter", [mw.maintenance_window_split, mw.hosts_in_maintenance_window])
def test_bad_arguments_fail_the_whole_call(split_filter, hosts, hostvars, kwargs, fragment) -> None:
    kwargs = {"now": NOW, **kwargs}
    with pytest.raises(AnsibleFilterError) as caught:
        split_filter(hosts, hostvars, **kwargs)
    assert caught.value.message.startswith(f"{split_filter.__name__}: ")
    assert fragment in caught.value.message


def test_real_hostvars_with_templated_and_broken_zones(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        """\
all:
  vars:
    site_zone: Australia/Sydney
  hosts:
    pi-sydney:
      timezone: "{{ site_zone }}"
    pi-broken:
      timezone: "{{ no_such_variable }}"
    pi-nyc:
      timezone: America/New_York
"""
    )
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(inventory)])
    hostvars = HostVars(inventory=manager, variable_manager=VariableManager(loader, manager), loader=loader)
    # 2026-10-03T16:30:00Z: Sydney 03:30 AEDT, 30 min after the jump at 16:00Z -> inside
    split = mw.maintenance_window_split(
        ["pi-sydney", "pi-broken", "pi-nyc"], hostvars, now="2026-10-03T16:30:00Z"
    )
    assert split["in_window"] == ["pi-sydney"]
    assert [entry["host"] for entry in split["outside"]] == ["pi-nyc"]
    assert [entry["host"] for entry in split["invalid"]] == ["pi-broken"]
    assert "no_such_variable" in split["invalid"][0]["error"]
