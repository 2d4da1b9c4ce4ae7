"""The supabase_devices plugin's pure parts: rows to devices, hostnames, group names, secrets.

Everything that talks to the registry is tested for real in tests/integration/test_inventory.py.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from ansible._internal._datatag._tags import TrustedAsTemplate
from ansible_collections.javia.voice_fleet.plugins.filter import maintenance_window as filters
from ansible_collections.javia.voice_fleet.plugins.inventory import supabase_devices as plugin

ROOT = Path(__file__).resolve().parents[2]


ZONES = plugin.timezone_names()


def row(uuid: str = "u-1", **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "device_uuid": uuid,
        "device_name": "kitchen",
        "timezone": "Europe/Berlin",
        "status": "online",
        "current_version": "2.4.0",
        "last_seen": "2026-11-20T08:30:00+00:00",
        "registered_at": "2026-01-01T00:00:00+00:00",
        "metadata": {"ip_address": "192.0.2.1"},
        "ansible_host": None,
    }
    base.update(fields)
    return base


def device(uuid: str = "u-1", **fields: object):
    findings = plugin.Findings()
    result = plugin.device_from_row(row(uuid, **fields), ZONES, findings)
    return result, findings.items


# --- group names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "lower", "expected"),
    [
        ("Europe/Berlin", True, "europe_berlin"),
        ("America/Argentina/Buenos_Aires", True, "america_argentina_buenos_aires"),
        ("America/Port-au-Prince", True, "america_port_au_prince"),
        ("Etc/GMT+5", True, "etc_gmtplus5"),
        ("Etc/GMT-5", True, "etc_gmt_5"),
        ("2.4.0", False, "2_4_0"),
        ("2.4.1-rc.1", False, "2_4_1_rc_1"),
        ("2.4.0+build.7", False, "2_4_0plusbuild_7"),
        ("1.0 RC Ü", False, "1_0_RC__"),
        ("  online  ", False, "online"),
    ],
)
def test_group_part_keeps_only_letters_digits_and_underscores(value, lower, expected):
    assert plugin.group_part(value, lower=lower) == expected


def test_device_groups_follow_the_fixed_names():
    result, findings = device(timezone="America/Argentina/Buenos_Aires", current_version="2.4.1-rc.1")
    assert result.groups == (
        "status_online",
        "tz_america_argentina_buenos_aires",
        "version_2_4_1_rc_1",
        "management_push",
    )
    assert findings == {}


def test_every_group_name_is_a_valid_ansible_group_name():
    weird = ["2.4.0+build.7", "ü/ß", "a b", "{{ x }}", "version'\"", "x" * 3]
    for version, timezone in itertools.product(weird, [*sorted(ZONES)[:50], "Etc/GMT+12"]):
        result, _ = device(current_version=version, timezone=timezone, status="online")
        for group in result.groups:
            assert group.isidentifier() and group.isascii(), group


# --- timezones ------------------------------------------------------------------------------


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", None, "europe/berlin", "Factory", " UTC"])
def test_a_timezone_that_is_not_an_iana_zone_joins_invalid_timezone(timezone):
    result, findings = device(timezone=timezone)
    assert result.hostvars["timezone_valid"] is False
    assert result.hostvars["timezone"] == timezone
    assert "invalid_timezone" in result.groups
    assert not any(g.startswith("tz_") for g in result.groups)
    assert findings[plugin.BAD_TIMEZONE] == [f"u-1 ({timezone!r})"]


def test_the_zone_database_is_the_one_the_maintenance_window_filters_use():
    assert plugin.timezone_names is filters.timezone_names  # one database, one "not a place" rule
    assert {"Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"} <= ZONES
    assert not {"Factory", "localtime", "posixrules"} & ZONES


# --- addresses, metadata, uuids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "metadata", "expected"),
    [
        ("192.0.2.9", {"ip_address": "192.0.2.1", "hostname": "a.local"}, "192.0.2.9"),
        (None, {"ip_address": "192.0.2.1", "hostname": "a.local"}, "192.0.2.1"),
        ("  ", {"ip_address": "", "hostname": "a.local"}, "a.local"),
        (None, {"ip_address": 3221225985, "hostname": " a.local "}, "a.local"),
    ],
)
def test_ansible_host_is_the_column_then_ip_address_then_hostname(column, metadata, expected):
    result, _ = device(ansible_host=column, metadata=metadata)
    assert result.hostvars["ansible_host"] == expected


@pytest.mark.parametrize("metadata", [None, {}, {"ip_address": ""}, {"hostname": None}, "192.0.2.1", [1]])
def test_a_row_without_any_address_is_skipped_naming_its_uuid(metadata):
    result, findings = device(metadata=metadata, ansible_host=None)
    assert result is None
    assert findings[plugin.NO_ADDRESS] == ["u-1"]


@pytest.mark.parametrize(
    ("column", "metadata", "expected"),
    [
        # The simulated fleet: sshd published on the controller's loopback, the port in metadata.
        ("127.0.0.1", {"ansible_port": 2201}, "127.0.0.1"),
        ("::1", {}, "::1"),
        ("2001:db8::7", {}, "2001:db8::7"),
        ("fe80::1%eth0", {}, "fe80::1%eth0"),
        (None, {"hostname": "Kitchen-Pi.local."}, "Kitchen-Pi.local."),
        (None, {"ip_address": "10.0.0.7"}, "10.0.0.7"),
        ("xn--kche-0ra.example", {}, "xn--kche-0ra.example"),
    ],
)
def test_ip_addresses_and_dns_hostnames_are_addresses(column, metadata, expected):
    result, findings = device(ansible_host=column, metadata=metadata)
    assert result is not None, findings
    assert result.hostvars["ansible_host"] == expected
    assert findings == {}


BAD_ADDRESSES = [
    "-oProxyCommand=touch /tmp/pwned",
    "-oProxyCommand=id",
    "-p2222",
    "pi@192.0.2.1",
    "192.0.2.1; id",
    "$(id).local",
    "`id`",
    "host|id",
    "a&b",
    "kitchen local",
    "kitchen\tlocal",
    "../../etc/passwd",
    "/tmp/sock",
    "a..b",
    ".",
    "kitchen_pi.local",
    "küche.local",
    "-kitchen",
    "kitchen-",
    "x" * 64 + ".local",
    ".".join(["a" * 63] * 4),  # 255 characters
    "2130706433",  # 127.0.0.1 in disguise
    "010.0.0.1",
    "192.0.2.256",
    "fe80::1%eth0;id",
    "{{ lookup('pipe','id') }}",
]


@pytest.mark.parametrize("value", BAD_ADDRESSES)
@pytest.mark.parametrize("field", ["ansible_host", "metadata.ip_address", "metadata.hostname"])
def test_an_address_that_is_no_ip_or_hostname_skips_the_device_naming_uuid_and_value(field, value):
    if field == "ansible_host":
        result, findings = device(ansible_host=value, metadata={})
    else:
        result, findings = device(ansible_host=None, metadata={field.split(".")[1]: value})
    assert result is None
    assert findings == {plugin.BAD_ADDRESS: [f"u-1 ({field} {value.strip()!r})"]}


def test_a_bad_column_is_not_papered_over_by_a_good_ip_address():
    result, findings = device(ansible_host="-oProxyCommand=id", metadata={"ip_address": "192.0.2.1"})
    assert result is None
    assert findings[plugin.BAD_ADDRESS] == ["u-1 (ansible_host '-oProxyCommand=id')"]


@pytest.mark.parametrize(
    ("name", "uuid", "shown"),
    [
        ("localhost", "u-1", "localhost"),
        ("LOCALHOST", "u-1", "LOCALHOST"),
        ("LocalHost", "u-1", "LocalHost"),
        ("  localhost \t", "u-1", "localhost"),
        ("localhost.", "u-1", "localhost."),
        ("127.0.0.1", "u-1", "127.0.0.1"),
        ("::1", "u-1", "::1"),
        (None, "localhost", "localhost"),
        ("   ", "Localhost", "Localhost"),
    ],
)
def test_a_device_named_like_the_controller_is_skipped_naming_its_uuid(name, uuid, shown):
    result, findings = device(uuid, device_name=name, ansible_host="192.0.2.1")
    assert result is None
    assert findings == {plugin.CONTROLLER_NAME: [f"{uuid} ({shown!r})"]}


@pytest.mark.parametrize(
    "name", ["localhost-kitchen", "my-localhost", "127.0.0.2", "localhost2", "loc alhost"]
)
def test_names_that_only_look_like_localhost_are_kept(name):
    result, findings = device(device_name=name, ansible_host="127.0.0.1")
    assert result is not None
    assert result.candidate == name
    assert findings == {}


def test_controller_names_never_become_hosts_even_among_duplicates():
    rows = [row("u-1", device_name="localhost"), row("u-2", device_name="localhost"), row("u-3")]
    findings = plugin.Findings()
    devices = plugin.devices_from_rows(rows, ZONES, findings)
    names = plugin.assign_hostnames(devices, findings)
    assert names == {"u-3": "kitchen"}
    assert findings.items[plugin.CONTROLLER_NAME] == ["u-1 ('localhost')", "u-2 ('localhost')"]
    assert plugin.DUPLICATE_NAME not in findings.items


def test_the_default_statuses_keep_updating_devices():
    """DESIGN: a device left `updating` by a run that died stays reachable by the next run."""
    import yaml  # noqa: PLC0415

    options = yaml.safe_load(plugin.DOCUMENTATION)["options"]
    assert options["statuses"]["default"] == ["online", "updating"]


@pytest.mark.parametrize(
    ("metadata", "kind"), [("junk", "a JSON string"), ([1, 2], "a JSON array"), (7, "a JSON number")]
)
def test_metadata_that_is_not_an_object_becomes_an_empty_mapping(metadata, kind):
    result, findings = device(metadata=metadata, ansible_host="192.0.2.1")
    assert result.hostvars["metadata"] == {}
    assert findings[plugin.BAD_METADATA] == [f"u-1 ({kind})"]


def test_null_metadata_is_an_empty_mapping_without_a_warning():
    result, findings = device(metadata=None, ansible_host="192.0.2.1")
    assert result.hostvars["metadata"] == {}
    assert findings == {}


@pytest.mark.parametrize("uuid", [None, "", "   "])
def test_a_row_without_device_uuid_is_skipped(uuid):
    result, findings = device(uuid)
    assert result is None
    assert findings[plugin.NO_UUID] == ["device_name 'kitchen'"]


def test_repeated_rows_for_one_device_count_once():
    findings = plugin.Findings()
    devices = plugin.devices_from_rows([row("b"), row("a"), row("b")], ZONES, findings)
    assert [d.uuid for d in devices] == ["a", "b"]
    assert findings.items[plugin.DUPLICATE_ROW] == ["b"]


# --- hostnames ------------------------------------------------------------------------------


def hostnames(rows: list[dict[str, object]]) -> dict[str, str]:
    findings = plugin.Findings()
    devices = plugin.devices_from_rows(rows, ZONES, findings)
    return plugin.assign_hostnames(devices, findings)


def test_the_suffix_is_the_tail_of_the_uuid_because_uuid7_heads_are_timestamps():
    assert plugin.uuid_suffix("0192f0a1-5c3e-7a10-9b2e-4D1C000000AB") == "000000ab"
    assert plugin.uuid_suffix("0192f0a1-5c3e-7a10-9b2e-4d1c000000ac") != plugin.uuid_suffix(
        "0192f0a1-5c3e-7a10-9b2e-4d1c000000ab"
    )
    assert plugin.uuid_suffix("---") == "---"


def test_blank_names_use_the_device_uuid():
    names = hostnames([row("u-1", device_name=None), row("u-2", device_name=""), row("u-3", device_name=" ")])
    assert names == {"u-1": "u-1", "u-2": "u-2", "u-3": "u-3"}


def test_names_are_kept_as_registered_apart_from_surrounding_blanks():
    names = hostnames([row("u-1", device_name=" Küche 🎙️ "), row("u-2", device_name='Tom\'s "pi"')])
    assert names == {"u-1": "Küche 🎙️", "u-2": 'Tom\'s "pi"'}


def test_the_first_registered_device_keeps_a_duplicate_name():
    rows = [
        row("0192-aaaa-0001", registered_at="2026-03-01T00:00:00+00:00"),
        row("0192-aaaa-0002", registered_at="2025-06-01T00:00:00+00:00"),
        row("0192-aaaa-0003", registered_at="2026-03-01T00:00:00+01:00"),  # earlier than the first
    ]
    assert hostnames(rows) == {
        "0192-aaaa-0002": "kitchen",
        "0192-aaaa-0003": "kitchen-aaaa0003",
        "0192-aaaa-0001": "kitchen-aaaa0001",
    }


def test_unknown_registration_sorts_last_and_ties_go_to_the_smaller_uuid():
    rows = [
        row("u-2", registered_at=None),
        row("u-3", registered_at="not a date"),
        row("u-1", registered_at=None),
    ]
    names = hostnames(rows)
    assert names["u-1"] == "kitchen"
    assert {names["u-2"], names["u-3"]} == {"kitchen-u2", "kitchen-u3"}


def test_a_real_name_wins_over_a_suffix_and_the_suffix_grows_to_the_whole_uuid():
    rows = [
        row("x-0001", registered_at="2026-01-01T00:00:00+00:00"),
        row("x-0002", registered_at="2026-01-02T00:00:00+00:00"),
        row("x-0003", device_name="kitchen-x0002", registered_at="2026-01-03T00:00:00+00:00"),
    ]
    assert hostnames(rows) == {"x-0001": "kitchen", "x-0002": "kitchen-x-0002", "x-0003": "kitchen-x0002"}


def test_a_device_named_like_another_uuid_does_not_take_its_hostname():
    rows = [
        row("u-1", device_name=None, registered_at="2026-02-01T00:00:00+00:00"),
        row("u-2", device_name="u-1"),
    ]
    names = hostnames(rows)
    assert len(set(names.values())) == 2
    assert names["u-2"] == "u-1"  # registered first
    assert names["u-1"] == "u-1-u1"


def test_hostnames_do_not_depend_on_the_order_of_the_rows():
    rows = [
        row("a-1", registered_at="2026-01-01T00:00:00+00:00"),
        row("a-2", registered_at="2026-01-01T00:00:00+00:00"),
        row("a-3", device_name="kitchen-a2"),
        row("a-4", device_name=None),
        row("a-5", device_name="a-4"),
        row("a-6", device_name="kitchen", registered_at=None),
    ]
    results = {tuple(sorted(hostnames(list(p)).items())) for p in itertools.permutations(rows)}
    assert len(results) == 1
    (only,) = results
    assert len({name for _, name in only}) == len(rows)


def test_a_rename_is_reported_with_both_devices():
    findings = plugin.Findings()
    devices = plugin.devices_from_rows([row("u-1"), row("u-2")], ZONES, findings)
    plugin.assign_hostnames(devices, findings)
    assert findings.items[plugin.DUPLICATE_NAME] == ["u-2 is 'kitchen-u2' ('kitchen' is u-1)"]


# --- unsafe, secrets, cache key ---------------------------------------------------------------


def test_make_unsafe_reaches_every_string_and_keeps_other_values():
    def trusted(text: str) -> str:
        tagged = TrustedAsTemplate().tag(text)
        assert TrustedAsTemplate.is_tagged_on(tagged)
        return tagged

    value = {
        trusted("a"): trusted("{{ x }}"),
        "b": [1, trusted("{{ y }}"), {"c": trusted("{{ z }}"), "d": None, "e": True, "f": 1.5}],
    }
    result = plugin.make_unsafe(value)
    assert result == {"a": "{{ x }}", "b": [1, "{{ y }}", {"c": "{{ z }}", "d": None, "e": True, "f": 1.5}]}

    def strings(obj):
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                yield k
                yield from strings(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from strings(v)

    found = list(strings(result))
    assert len(found) == 9  # 6 keys, 3 values
    assert not any(TrustedAsTemplate.is_tagged_on(s) for s in found)


def test_the_redactor_removes_the_key_and_the_url_password():
    redact = plugin.Redactor("secret-key-value", "hunter22", None, "")
    assert redact("key secret-key-value and hunter22") == "key <redacted> and <redacted>"
    assert (
        plugin.display_url("https://user:hunter22@example.test:8443/x")
        == "https://user:***@example.test:8443/x"
    )
    assert plugin.display_url("http://127.0.0.1:54321") == "http://127.0.0.1:54321"


def settings(**changes: object):
    base = {
        "url": "http://127.0.0.1:54321",
        "key": "k1.k2.k3",
        "table": "devices",
        "statuses": ("online",),
        "page_size": 1000,
        "timeout": 30.0,
        "validate_certs": True,
    }
    base.update(changes)
    return plugin.Settings(**base)


def test_the_cache_key_covers_url_table_statuses_and_columns_but_not_the_key(monkeypatch):
    base = settings().cache_id()
    assert settings(key="other.key.value").cache_id() == base
    assert settings(page_size=10).cache_id() == base
    assert settings(url="http://127.0.0.1:55321").cache_id() != base
    assert settings(table="devices_view").cache_id() != base
    assert settings(statuses=("online", "updating")).cache_id() != base
    monkeypatch.setattr(plugin, "COLUMNS", (*plugin.COLUMNS, "extra"))
    assert settings().cache_id() != base
    assert "k1.k2.k3" not in base


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("supabase.yml", True),
        ("fleet.supabase.yaml", True),
        ("devices.yml", False),
        ("supabase.yml.bak", False),
        ("supabase.json", False),
    ],
)
def test_verify_file_accepts_only_supabase_configs(tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: supabase_devices\n")
    assert plugin.InventoryModule().verify_file(str(path)) is accepted


def test_verify_file_refuses_a_missing_file(tmp_path):
    assert plugin.InventoryModule().verify_file(str(tmp_path / "absent.supabase.yml")) is False


def test_pull_devices_are_marked_and_grouped_for_the_push_plays_to_leave_alone():
    pull, _ = device(management="pull")
    assert pull.hostvars["voice_management"] == "pull" and "management_pull" in pull.groups
    legacy, _ = device(management=None)
    assert legacy.hostvars["voice_management"] == "push", "a project without the column is all push"
    assert "management_push" in legacy.groups
