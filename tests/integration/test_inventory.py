"""The supabase_devices inventory plugin against the real registry stack.

Every test runs the real `ansible-inventory` (or `ansible-playbook`) with the repository's
ansible.cfg against PostgREST + PostgreSQL, and counts the plugin's HTTP requests in the
gateway's access log (the plugin sends its own User-Agent).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack import stack_dir  # tests/conftest.py puts tools/ on sys.path

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FIXTURES = ROOT / "tests" / "fixtures" / "inventory"
GOLDEN = FIXTURES / "golden_list.json"
# The default inventory of ansible.cfg, as cron, AWX and operators use it: the tests read this very
# file, with their own SUPABASE_URL / SUPABASE_SERVICE_KEY, never a look-alike of their own.
DEFAULT_INVENTORY = ROOT / "inventory" / "supabase.yml"
# What a test configuration may set differently from production: where the registry is and how to
# reach the devices.
CONNECTION_OPTIONS = {"url", "key", "timeout", "validate_certs"}
CONNECTION_VARS = {"ansible_port", "ansible_user", "ansible_host"}
UPDATE_GOLDEN = "VF_UPDATE_GOLDEN"
USER_AGENT = "voice-fleet-inventory (supabase_devices)"
COLUMNS = (
    "device_uuid,device_name,timezone,status,current_version,last_seen,registered_at,metadata,ansible_host"
)
HOSTVARS = {
    "device_uuid",
    "device_name",
    "timezone",
    "timezone_valid",
    "device_status",
    "current_version",
    "last_seen",
    "metadata",
    "ansible_host",
    "voice_management",
}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    requests: list[str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def inventory(self) -> dict[str, Any]:
        assert self.returncode == 0, self.output
        return json.loads(self.stdout)


def access_log() -> Path:
    return stack_dir() / "log" / "nginx-access.log"


def run(stack_env: dict[str, str], tool: str, *args: str, env: dict[str, str | None] | None = None) -> Run:
    """Run an Ansible CLI from the repository root; collect the plugin's requests meanwhile."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ANSIBLE_INVENTORY"))}
    environ.update(
        SUPABASE_URL=stack_env["SUPABASE_URL"],
        SUPABASE_SERVICE_KEY=stack_env["SUPABASE_SERVICE_KEY"],
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
    )
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    log = access_log()
    start = log.stat().st_size
    proc = subprocess.run(
        [str(BIN / tool), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    with log.open("rb") as fh:
        fh.seek(start)
        lines = fh.read().decode(errors="replace").splitlines()
    return Run(proc.returncode, proc.stdout, proc.stderr, [line for line in lines if USER_AGENT in line])


def inventory(stack_env: dict[str, str], source: Path, *args: str, **kwargs: Any) -> Run:
    return run(stack_env, "ansible-inventory", "-i", str(source), "--list", *args, **kwargs)


def write_config(directory: Path, name: str = "test.supabase.yml", **options: Any) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({"plugin": "supabase_devices", **options}, sort_keys=False))
    return path


def plain(value: Any) -> Any:
    """A --list value without its `__ansible_unsafe` wrappers."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def hostvars(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return plain(listing["_meta"]["hostvars"])


def members(listing: dict[str, Any], group: str) -> set[str]:
    return set(listing.get(group, {}).get("hosts", []))


def normalized(listing: dict[str, Any]) -> dict[str, Any]:
    """Stable form of a --list: sorted member lists, last_seen as a UTC instant."""
    out = json.loads(json.dumps(listing))
    for name, group in out.items():
        if name != "_meta":
            for key in ("hosts", "children"):
                if key in group:
                    group[key] = sorted(group[key])
    for host in out["_meta"]["hostvars"].values():
        seen = host.get("last_seen")
        if isinstance(seen, dict):
            instant = dt.datetime.fromisoformat(seen["__ansible_unsafe"]).astimezone(dt.UTC)
            seen["__ansible_unsafe"] = instant.isoformat()
    return out


def seed_devices(db: Any, count: int, *, status: str = "online", start: int = 1) -> None:
    """`count` ordinary devices, made by the database itself."""
    db.execute(
        """
        INSERT INTO public.devices (device_uuid, device_name, timezone, status, current_version, metadata)
        SELECT format('bulk-%%s', lpad(i::text, 6, '0')), format('pi-%%s', i), 'Europe/Berlin', %s, '2.4.0',
               jsonb_build_object('ip_address', format('10.0.%%s.%%s', i / 256, i %% 256))
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (status, start, start + count - 1),
    )


def insert(db: Any, **row: Any) -> None:
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    values = [json.dumps(v) if k == "metadata" else v for k, v in row.items()]
    db.execute(f"INSERT INTO public.devices ({columns}) VALUES ({marks})", values)  # noqa: S608 (test data)


# --- the golden file ------------------------------------------------------------------------


def compare_with_golden(actual: Any, golden: Path = GOLDEN) -> None:
    """Compare `actual` with the checked-in expectation; never both write and compare.

    VF_UPDATE_GOLDEN=1 is the only way to rewrite the file: it writes `actual` and fails the
    test, so a regenerated expectation is reviewed (git diff) before any run may pass on it.
    """
    if os.environ.get(UPDATE_GOLDEN) == "1":
        golden.write_text(json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        pytest.fail(
            f"{UPDATE_GOLDEN}=1: rewrote {golden} from this run's output instead of comparing; "
            f"review the change (git diff {golden.name}) and run again without {UPDATE_GOLDEN}"
        )
    expected = json.loads(golden.read_text())
    assert actual == expected, f"differs from {golden}; regenerate on purpose with {UPDATE_GOLDEN}=1"


def test_list_matches_the_golden_file(empty_registry, stack_env):
    empty_registry.execute((FIXTURES / "seed.sql").read_text())
    result = inventory(stack_env, DEFAULT_INVENTORY)
    compare_with_golden(normalized(result.inventory()))
    # One request, for the columns the inventory needs, filtered by the server.
    assert len(result.requests) == 1
    assert f"select={COLUMNS.replace(',', '%2C')}" in result.requests[0]
    assert "status=in.%28online%2Cupdating%29" in result.requests[0]
    assert "Traceback" not in result.stderr


def test_a_normal_run_compares_and_never_writes_the_golden_file(tmp_path, monkeypatch):
    golden = tmp_path / "golden.json"
    golden.write_text('{"expected": true}\n')
    monkeypatch.delenv(UPDATE_GOLDEN, raising=False)
    with pytest.raises(AssertionError):
        compare_with_golden({"expected": False}, golden)
    assert golden.read_text() == '{"expected": true}\n'
    compare_with_golden({"expected": True}, golden)
    # Only "1" opts in: a stray value in CI compares like a normal run.
    monkeypatch.setenv(UPDATE_GOLDEN, "0")
    with pytest.raises(AssertionError):
        compare_with_golden({"expected": False}, golden)
    assert golden.read_text() == '{"expected": true}\n'


def test_regenerating_the_golden_file_writes_it_and_fails_the_run(tmp_path, monkeypatch):
    golden = tmp_path / "golden.json"
    golden.write_text('{"expected": true}\n')
    monkeypatch.setenv(UPDATE_GOLDEN, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        compare_with_golden({"expected": False}, golden)
    assert json.loads(golden.read_text()) == {"expected": False}
    assert "rewrote" in str(failed.value)
    assert "review" in str(failed.value)
    # Even when nothing changed: a run that writes the expectation never passes.
    with pytest.raises(pytest.fail.Exception):
        compare_with_golden({"expected": False}, golden)


def test_the_golden_rows_warn_about_what_they_skip_rename_and_regroup(empty_registry, stack_env):
    empty_registry.execute((FIXTURES / "seed.sql").read_text())
    result = inventory(stack_env, DEFAULT_INVENTORY)
    assert result.returncode == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("[WARNING]")]
    uuid = "0192f0a1-5c3e-7a10-9b2e-4d1c0000"
    expected = [
        "skipped 2 device row(s) without a device_uuid: device_name 'ghost'; device_name 'ghost-blank'",
        f"skipped 2 device(s) with no address (no ansible_host column, metadata.ip_address or "
        f"metadata.hostname): {uuid}0019; {uuid}0020",
        f"5 device(s) have a timezone that is not an IANA zone and joined group invalid_timezone: "
        f"{uuid}0004 ('Mars/Olympus_Mons'); {uuid}0027 (None); {uuid}0028 (''); "
        f"{uuid}0029 ('europe/berlin'); {uuid}0030 ('Factory')",
        f"2 device(s) have metadata that is not a JSON object; their metadata var is {{}}: "
        f"{uuid}0017 (a JSON string); {uuid}0018 (a JSON array)",
        f"2 device(s) share a hostname with a device registered earlier and got a suffix: "
        f"{uuid}0008 is 'bedroom-00000008' ('bedroom' is {uuid}0010); "
        f"{uuid}0009 is 'bedroom-{uuid}0009' ('bedroom' is {uuid}0010)",
    ]
    assert warnings == [f"[WARNING]: supabase_devices: {line}" for line in expected]


def test_the_golden_file_holds_what_the_design_promises():
    """The checked-in expectation itself, read as the rules say (so a bad regeneration shows)."""
    listing = json.loads(GOLDEN.read_text())
    hosts = hostvars(listing)
    assert all(set(v) == HOSTVARS for v in hosts.values())
    assert hosts["kitchen"]["ansible_host"] == "192.0.2.10"
    assert hosts["living-room"]["ansible_host"] == "192.0.2.11"
    assert hosts["office"]["ansible_host"] == "office.local"
    assert hosts["blankcolumn"]["ansible_host"] == "192.0.2.31"
    assert hosts["numericip"]["ansible_host"] == "numericip.local"
    assert {"noaddress", "blankaddress", "ghost", "ghost-blank"}.isdisjoint(hosts)
    assert {"offline-one", "retired-one"}.isdisjoint(hosts)
    # A device left `updating` by a run that died stays reachable by the next run.
    assert hosts["updating-one"]["device_status"] == "updating"
    assert members(listing, "status_updating") == {"updating-one"}
    for tail in ("05", "06", "07"):
        assert f"0192f0a1-5c3e-7a10-9b2e-4d1c000000{tail}" in hosts
    assert hosts["bedroom"]["device_uuid"].endswith("0010")
    assert members(listing, "invalid_timezone") == {"garage", "notz", "emptytz", "lowertz", "factorytz"}
    assert members(listing, "tz_etc_gmtplus5") == {"0192f0a1-5c3e-7a10-9b2e-4d1c00000007"}
    assert members(listing, "tz_etc_gmt_5") == {"bedroom-00000008"}
    assert members(listing, "version_2_4_1_rc_1") == {"living-room"}
    assert members(listing, "tz_america_argentina_buenos_aires") == {"patio"}
    for name in ("nullmeta", "stringmeta", "arraymeta"):
        assert hosts[name]["metadata"] == {}
    jinja = hosts["{{ lookup('pipe','id') }}"]
    assert jinja["metadata"]["nested"]["list"] == ["{% if true %}x{% endif %}", 1, True, None]
    # Strings are marked unsafe in the listing; booleans and numbers are not strings.
    raw = listing["_meta"]["hostvars"]["kitchen"]
    assert raw["device_name"] == {"__ansible_unsafe": "kitchen"}
    assert raw["timezone_valid"] is True
    assert raw["metadata"]["ansible_port"] == 22


def test_statuses_choose_the_devices(empty_registry, stack_env, tmp_path):
    empty_registry.execute((FIXTURES / "seed.sql").read_text())
    config = write_config(tmp_path, statuses=["offline", "updating", "retired"])
    result = inventory(stack_env, config)
    listing = result.inventory()
    assert set(hostvars(listing)) == {"offline-one", "retired-one", "updating-one"}
    assert members(listing, "status_offline") == {"offline-one"}
    assert members(listing, "status_retired") == {"retired-one"}
    assert members(listing, "status_updating") == {"updating-one"}
    assert "status=in.%28offline%2Cupdating%2Cretired%29" in result.requests[0]


def test_the_default_inventory_of_ansible_cfg_is_the_registry(empty_registry, stack_env):
    seed_devices(empty_registry, 3)
    result = run(stack_env, "ansible-inventory", "--list")
    assert set(hostvars(result.inventory())) == {"pi-1", "pi-2", "pi-3"}


def test_the_default_inventory_keeps_a_device_left_updating(empty_registry, stack_env):
    """DESIGN: a device left `updating` by a run that died stays reachable by the next run."""
    seed_devices(empty_registry, 1, start=1)
    seed_devices(empty_registry, 1, status="updating", start=2)
    seed_devices(empty_registry, 1, status="offline", start=3)
    seed_devices(empty_registry, 1, status="retired", start=4)
    result = inventory(stack_env, DEFAULT_INVENTORY)
    listing = result.inventory()
    hosts = hostvars(listing)
    assert set(hosts) == {"pi-1", "pi-2"}
    assert hosts["pi-2"]["device_status"] == "updating"
    assert members(listing, "status_updating") == {"pi-2"}
    assert "status=in.%28online%2Cupdating%29" in result.requests[0]


@pytest.mark.parametrize("with_pull", [True, False], ids=["a pull device", "push only"])
def test_the_push_plays_leave_pull_devices_to_their_agent(empty_registry, stack_env, with_pull):
    """rollout.yml and rollback.yml never reach a pull device (its SSH is off: it would fail the
    batch); site.yml provisions it. Without pull devices, the exclusion says nothing."""
    seed_devices(empty_registry, 3)
    if with_pull:
        empty_registry.execute("UPDATE public.devices SET management = 'pull' WHERE device_name = 'pi-2'")
    for playbook, expected in (
        ("rollout.yml", {"pi-1", "pi-3"} if with_pull else {"pi-1", "pi-2", "pi-3"}),
        ("rollback.yml", {"pi-1", "pi-3"} if with_pull else {"pi-1", "pi-2", "pi-3"}),
        ("site.yml", {"pi-1", "pi-2", "pi-3"}),
    ):
        result = run(stack_env, "ansible-playbook", f"playbooks/{playbook}", "--list-hosts")
        assert result.returncode == 0, result.stderr
        listed = {line.strip() for line in result.stdout.splitlines() if line.strip().startswith("pi-")}
        assert listed == expected, (playbook, result.stdout)
        assert "Could not match supplied host pattern" not in result.stderr, (playbook, result.stderr)


def production_settings(path: Path) -> dict[str, Any]:
    """A supabase_devices config less what only says where the registry and the devices are."""
    config = yaml.safe_load(path.read_text())
    settings = {k: v for k, v in config.items() if k not in CONNECTION_OPTIONS}
    compose = {k: v for k, v in settings.pop("compose", {}).items() if k not in CONNECTION_VARS}
    if compose:
        settings["compose"] = compose
    if "compose" not in settings and not {"groups", "keyed_groups"} & set(settings):
        # strict only decides what a failed compose/groups expression does: with connection
        # vars alone left, it is part of how the devices are reached.
        settings.pop("strict", None)
    return settings


def test_the_simulated_fleet_runs_on_the_default_inventorys_settings():
    """Tests of the simulated fleet see what production sees; only connection details differ."""
    default = production_settings(DEFAULT_INVENTORY)
    simulated = production_settings(ROOT / "inventory" / "examples" / "simulated.supabase.yml")
    assert simulated == default


def test_registry_rows_never_become_the_controller_or_a_bad_address(empty_registry, stack_env, tmp_path):
    marker = tmp_path / "proxycommand-ran"
    bad = {
        "bad-column": ("ansible_host", f"-oProxyCommand=touch {marker}", {}),
        "bad-ip": ("metadata.ip_address", "192.0.2.5; id", {"ip_address": "192.0.2.5; id"}),
        "bad-hostname": ("metadata.hostname", "pi@evil.example", {"hostname": "pi@evil.example"}),
        "bad-path": ("ansible_host", "../../etc/passwd", {}),
    }
    for uuid, (field, value, metadata) in bad.items():
        column = value if field == "ansible_host" else None
        insert(empty_registry, device_uuid=uuid, device_name=uuid, metadata=metadata, ansible_host=column)
    controller = {"lh-1": "localhost", "lh-2": " LocalHost ", "lh-3": "127.0.0.1", "lh-4": "::1"}
    for uuid, name in controller.items():
        insert(empty_registry, device_uuid=uuid, device_name=name, ansible_host="192.0.2.7")
    insert(empty_registry, device_uuid="localhost", device_name=None, ansible_host="192.0.2.8")
    # The simulated fleet's way: the controller's loopback address with a port is a device.
    insert(
        empty_registry,
        device_uuid="sim-1",
        device_name="sim-pi-1",
        ansible_host="127.0.0.1",
        metadata={"ansible_port": 2201},
    )
    insert(empty_registry, device_uuid="ok-1", device_name="kitchen", metadata={"hostname": "kitchen.local"})

    result = inventory(stack_env, DEFAULT_INVENTORY)
    listing = result.inventory()
    hosts = hostvars(listing)
    assert set(hosts) == {"sim-pi-1", "kitchen"}
    assert hosts["sim-pi-1"]["ansible_host"] == "127.0.0.1"
    assert hosts["kitchen"]["ansible_host"] == "kitchen.local"
    assert not ({"localhost", "127.0.0.1", "::1"} & set(listing["all"].get("hosts", [])))
    warnings = "\n".join(line for line in result.stderr.splitlines() if line.startswith("[WARNING]"))
    for uuid, (field, value, _) in bad.items():
        assert f"{uuid} ({field} {value!r})" in warnings
    for uuid, name in {**controller, "localhost": "localhost"}.items():
        assert f"{uuid} ({name.strip()!r})" in warnings
    assert not marker.exists()


# --- never templated --------------------------------------------------------------------------


def test_jinja_from_the_registry_is_printed_never_run(empty_registry, stack_env, tmp_path):
    ran_name = tmp_path / "name-was-templated"
    ran_meta = tmp_path / "metadata-was-templated"
    name = f"{{{{ lookup('pipe', 'touch {ran_name}') }}}}"
    note = f"{{{{ lookup('pipe', 'touch {ran_meta}') }}}}"
    insert(
        empty_registry,
        device_uuid="jinja-1",
        device_name=name,
        timezone="UTC",
        metadata={"ip_address": "192.0.2.1", "note": note, "deep": [{"x": note}]},
    )
    playbook = tmp_path / "print.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Print what the registry said",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Print the host vars",
                            "ansible.builtin.debug": {
                                "msg": "NAME<{{ device_name }}> HOST<{{ inventory_hostname }}> "
                                "NOTE<{{ metadata.note }}> DEEP<{{ metadata.deep[0].x }}>"
                            },
                        }
                    ],
                }
            ]
        )
    )
    result = run(
        stack_env,
        "ansible-playbook",
        "-c",
        "local",
        "-i",
        str(write_config(tmp_path)),
        str(playbook),
        env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},  # one line per message, nothing wrapped
    )
    assert result.returncode == 0, result.output
    assert f"NAME<{name}>" in result.stdout
    assert f"HOST<{name}>" in result.stdout
    assert f"NOTE<{note}>" in result.stdout
    assert f"DEEP<{note}>" in result.stdout
    assert not ran_name.exists()
    assert not ran_meta.exists()


# --- constructed options ------------------------------------------------------------------------


@pytest.fixture
def modelled_fleet(empty_registry):
    for n, model, port in [
        (1, "Raspberry Pi 5", 2201),
        (2, "Raspberry Pi 5", 2202),
        (3, "Pi Zero 2 W", None),
    ]:
        metadata: dict[str, Any] = {"ip_address": "127.0.0.1", "hardware_model": model}
        if port:
            metadata["ansible_port"] = port
        version = "2.4.0" if n < 3 else "2.3.0"
        insert(
            empty_registry,
            device_uuid=f"m-{n}",
            device_name=f"pi-{n}",
            current_version=version,
            metadata=metadata,
        )
    return empty_registry


def test_compose_groups_and_keyed_groups(modelled_fleet, stack_env, tmp_path):
    config = write_config(
        tmp_path,
        keyed_groups=[{"key": "metadata.hardware_model | lower", "prefix": "model"}],
        groups={"behind": "current_version != '2.4.0'"},
        compose={
            "ansible_port": "metadata.ansible_port | default(22) | int",
            "uuid_upper": "device_uuid | upper",
        },
    )
    listing = inventory(stack_env, config).inventory()
    assert members(listing, "model_raspberry_pi_5") == {"pi-1", "pi-2"}
    assert members(listing, "model_pi_zero_2_w") == {"pi-3"}
    assert members(listing, "behind") == {"pi-3"}
    hosts = hostvars(listing)
    assert {h: v["ansible_port"] for h, v in hosts.items()} == {"pi-1": 2201, "pi-2": 2202, "pi-3": 22}
    assert hosts["pi-1"]["uuid_upper"] == "M-1"


def test_non_strict_skips_a_bad_expression(modelled_fleet, stack_env, tmp_path):
    config = write_config(
        tmp_path,
        strict=False,
        compose={"ansible_port": "metadata.ansible_port | int"},
        keyed_groups=[{"key": "metadata.no_such_key.deeper", "prefix": "broken"}],
    )
    listing = inventory(stack_env, config).inventory()
    hosts = hostvars(listing)
    assert hosts["pi-1"]["ansible_port"] == 2201
    assert "ansible_port" not in hosts["pi-3"]
    assert not [g for g in listing if g.startswith("broken")]


def test_strict_fails_on_a_bad_expression(modelled_fleet, stack_env, tmp_path):
    config = write_config(tmp_path, strict=True, compose={"ansible_port": "metadata.ansible_port | int"})
    result = inventory(stack_env, config)
    assert result.returncode != 0
    assert "Could not set ansible_port for host pi-3" in result.stderr
    assert "Traceback" not in result.stderr
    # `auto` offers the source back to this plugin: answered from memory, not re-read.
    assert len(result.requests) == 1


# --- paging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [(0, 10, 1), (25, 10, 3), (25, 5, 5), (25, 25, 1)],
    ids=lambda c: "{} devices, pages of {}".format(*c),
)
def test_pages_end_without_an_extra_request(empty_registry, stack_env, tmp_path, case):
    devices, page_size, requests = case
    seed_devices(empty_registry, devices)
    seed_devices(empty_registry, 7, status="retired", start=1000)  # filtered out by the server
    result = inventory(stack_env, write_config(tmp_path, page_size=page_size))
    assert len(hostvars(result.inventory())) == devices
    assert len(result.requests) == requests
    assert "order=device_uuid.asc" in result.requests[0]


def test_a_server_cap_below_page_size_loses_no_device(empty_registry, stack_env, tmp_path):
    """PostgREST (like Supabase) answers at most 1000 rows, whatever was asked for."""
    seed_devices(empty_registry, 2345)
    result = inventory(stack_env, write_config(tmp_path, page_size=5000))
    hosts = hostvars(result.inventory())
    assert len(hosts) == 2345
    assert {"pi-1", "pi-1000", "pi-1001", "pi-2345"} <= set(hosts)
    assert len(result.requests) == 3


# --- cache --------------------------------------------------------------------------------------


def test_the_cache_spares_the_registry_until_flushed(empty_registry, stack_env, tmp_path):
    seed_devices(empty_registry, 3)
    cache = {
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
    }
    config = write_config(tmp_path, **cache)

    first = inventory(stack_env, config)
    assert len(first.requests) == 1
    assert set(hostvars(first.inventory())) == {"pi-1", "pi-2", "pi-3"}

    seed_devices(empty_registry, 1, start=4)
    second = inventory(stack_env, config)
    assert second.requests == []
    assert second.inventory() == first.inventory()

    flushed = inventory(stack_env, config, "--flush-cache")
    assert len(flushed.requests) == 1
    assert set(hostvars(flushed.inventory())) == {"pi-1", "pi-2", "pi-3", "pi-4"}

    after = inventory(stack_env, config)
    assert after.requests == []
    assert set(hostvars(after.inventory())) == {"pi-1", "pi-2", "pi-3", "pi-4"}

    # Other statuses are other rows: not served from this cache entry.
    other = inventory(stack_env, write_config(tmp_path, "other.supabase.yml", statuses=["retired"], **cache))
    assert len(other.requests) == 1
    assert hostvars(other.inventory()) == {}


# --- failures -------------------------------------------------------------------------------------


def assert_one_clear_error(result: Run, message: str, *secrets: str) -> None:
    assert result.returncode != 0
    first = next(line for line in result.stderr.splitlines() if line.startswith("[WARNING]: Failed to parse"))
    assert first.startswith("[WARNING]: Failed to parse inventory with 'supabase_devices' plugin: ")
    assert message in first, result.stderr
    assert "Traceback" not in result.output
    for secret in secrets:
        assert secret not in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_registry_is_named_without_its_password(stack_env, tmp_path):
    port = free_port()
    url = f"http://fleet-admin:pw-s3cret@127.0.0.1:{port}"
    result = inventory(stack_env, write_config(tmp_path), env={"SUPABASE_URL": url})
    assert_one_clear_error(
        result,
        f"cannot reach the registry at http://fleet-admin:***@127.0.0.1:{port}: ",
        "pw-s3cret",
        stack_env["SUPABASE_SERVICE_KEY"],
    )
    assert "Connection refused" in result.stderr


@pytest.mark.parametrize("which", ["anon", "forged"])
def test_a_refused_key_is_said_without_showing_it(stack_env, tmp_path, which):
    head, payload, _ = stack_env["SUPABASE_SERVICE_KEY"].split(".")
    key = (
        stack_env["SUPABASE_ANON_KEY"] if which == "anon" else f"{head}.{payload}.c2lnbmF0dXJlLW9mLW5vYm9keQ"
    )
    result = inventory(stack_env, write_config(tmp_path), env={"SUPABASE_SERVICE_KEY": key})
    assert_one_clear_error(
        result,
        f"the registry at {stack_env['SUPABASE_URL']} refused the key (HTTP 401",
        key,
        stack_env["SUPABASE_SERVICE_KEY"],
    )
    assert "service role key" in result.stderr
    assert len(result.requests) == 1


def test_a_key_given_in_the_config_is_never_shown_even_at_vvvv(stack_env, tmp_path):
    key = stack_env["SUPABASE_ANON_KEY"]
    config = write_config(tmp_path, key=key)
    failed = inventory(stack_env, config, "-vvvv", env={"SUPABASE_SERVICE_KEY": None})
    assert failed.returncode != 0
    assert "refused the key" in failed.stderr
    assert key not in failed.output
    no_url = inventory(stack_env, config, "-vvvv", env={"SUPABASE_SERVICE_KEY": None, "SUPABASE_URL": None})
    assert "no registry URL" in no_url.stderr
    assert key not in no_url.output


def test_the_service_key_is_never_shown_at_vvvv(empty_registry, stack_env, tmp_path):
    seed_devices(empty_registry, 2)
    result = inventory(stack_env, write_config(tmp_path), "-vvvv")
    assert result.returncode == 0, result.output
    assert stack_env["SUPABASE_SERVICE_KEY"] not in result.output
    assert "supabase_devices: 2 row(s) of 'devices'" in result.stdout + result.stderr


def test_a_missing_table_is_named(stack_env, tmp_path):
    result = inventory(stack_env, write_config(tmp_path, table="no_such_devices"))
    assert_one_clear_error(result, "has no table 'no_such_devices'", stack_env["SUPABASE_SERVICE_KEY"])


@pytest.fixture
def legacy_table(registry_db):
    """A Javia-era devices table: no ansible_host column, no constraints."""
    registry_db.execute(
        "DROP TABLE IF EXISTS public.inventory_test_legacy;"
        "CREATE TABLE public.inventory_test_legacy (device_uuid text, device_name text,"
        " timezone text, status text, current_version text, last_seen timestamptz,"
        " registered_at timestamptz, metadata jsonb)"
    )
    yield registry_db
    registry_db.execute("DROP TABLE IF EXISTS public.inventory_test_legacy")


def test_a_missing_column_is_named(legacy_table, stack_env, tmp_path):
    result = inventory(stack_env, write_config(tmp_path, table="inventory_test_legacy"))
    assert_one_clear_error(result, "table 'inventory_test_legacy' at", stack_env["SUPABASE_SERVICE_KEY"])
    assert "has no column 'ansible_host'" in result.stderr
    assert "Apply supabase/migrations/" in result.stderr


@pytest.fixture
def loose_table(legacy_table):
    """A table (or view) with none of the registry's constraints: NULL uuids, repeats, odd statuses."""
    db = legacy_table
    db.execute("ALTER TABLE public.inventory_test_legacy ADD COLUMN ansible_host text")
    rows = [
        (None, "no-uuid", "online"),
        ("loose-1", "first", "online"),
        ("loose-1", "repeat", "online"),
        ("loose-2", "odd status", "on line/ok"),
    ]
    for uuid, name, status in rows:
        db.execute(
            "INSERT INTO public.inventory_test_legacy"
            " (device_uuid, device_name, timezone, status, ansible_host)"
            " VALUES (%s, %s, 'UTC', %s, '192.0.2.1')",
            (uuid, name, status),
        )
    return db


def test_rows_without_the_registry_constraints_are_skipped_with_warnings(loose_table, stack_env, tmp_path):
    config = write_config(tmp_path, table="inventory_test_legacy", statuses=["online", "on line/ok"])
    result = inventory(stack_env, config)
    listing = result.inventory()
    assert set(hostvars(listing)) == {"first", "odd status"}
    assert members(listing, "status_on_line_ok") == {"odd status"}
    assert "skipped 1 device row(s) without a device_uuid: device_name 'no-uuid'" in result.stderr
    assert "ignored 1 repeated row(s) for the same device_uuid: loose-1" in result.stderr


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({}, {"SUPABASE_URL": None}, "no registry URL: set url in"),
        ({"url": "ftp://127.0.0.1/"}, {}, "url 'ftp://127.0.0.1/' is not an http(s) URL"),
        ({}, {"SUPABASE_SERVICE_KEY": None}, "no registry key: set key in"),
        ({"key": "two words"}, {}, "the registry key contains spaces or control characters"),
        ({"statuses": []}, {}, "statuses must list at least one device status, got []"),
        ({"page_size": 0}, {}, "page_size must be at least 1, got 0"),
    ],
)
def test_bad_settings_are_named(stack_env, tmp_path, options, env, message):
    result = inventory(stack_env, write_config(tmp_path, **options), env=env)
    assert_one_clear_error(result, message, stack_env["SUPABASE_SERVICE_KEY"])
    assert result.requests == []


# --- a vault-encrypted key -----------------------------------------------------------------------


def test_a_vault_encrypted_key(empty_registry, stack_env, tmp_path):
    seed_devices(empty_registry, 1)
    password = tmp_path / "vault-password"
    password.write_text("correct horse battery staple\n")
    encrypted = subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "encrypt_string",
            "--vault-password-file",
            str(password),
            "--stdin-name",
            "key",
        ],
        input=stack_env["SUPABASE_SERVICE_KEY"] + "\n",  # a trailing newline, as pasted keys often have
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = tmp_path / "vault.supabase.yml"
    config.write_text(f"plugin: supabase_devices\n{encrypted}\n")
    no_env = {"SUPABASE_SERVICE_KEY": None}
    result = inventory(stack_env, config, "--vault-password-file", str(password), env=no_env)
    assert set(hostvars(result.inventory())) == {"pi-1"}
    locked = inventory(stack_env, config, env=no_env)
    assert locked.returncode != 0
    assert "no vault secrets" in locked.stderr
    assert stack_env["SUPABASE_SERVICE_KEY"] not in locked.output


# --- documentation and examples ------------------------------------------------------------------


def test_ansible_doc_renders_the_plugin(stack_env):
    result = run(stack_env, "ansible-doc", "-t", "inventory", "supabase_devices")
    assert result.returncode == 0, result.output
    for word in ("SUPABASE_SERVICE_KEY", "page_size", "statuses", "keyed_groups", "cache_plugin", "EXAMPLES"):
        assert word in result.stdout


def test_the_static_example_has_the_plugins_shape(stack_env):
    source = ROOT / "inventory" / "examples" / "static.yml"
    listing = inventory(stack_env, source).inventory()
    hosts = hostvars(listing)
    assert hosts
    for name, variables in hosts.items():
        assert set(variables) == HOSTVARS, name
        zone = variables["timezone"].lower().replace("/", "_").replace("-", "_")
        version = variables["current_version"].replace(".", "_").replace("-", "_")
        tz_group = f"tz_{zone}" if variables["timezone_valid"] else "invalid_timezone"
        for group in (f"status_{variables['device_status']}", tz_group, f"version_{version}"):
            assert name in members(listing, group), (name, group)


def test_the_constructed_example_groups_a_static_fleet(stack_env):
    examples = ROOT / "inventory" / "examples"
    result = run(
        stack_env,
        "ansible-inventory",
        "-i",
        str(examples / "static.yml"),
        "-i",
        str(examples / "constructed.yml"),
        "--list",
    )
    listing = result.inventory()
    assert members(listing, "model_raspberry_pi_5_model_b_rev_1_0") == {"kitchen"}
    assert members(listing, "needs_attention") == {"garage"}
    assert members(listing, "prerelease") == {"living-room"}


def test_the_simulated_fleet_example_takes_the_port_from_the_heartbeat(empty_registry, stack_env):
    for n in (1, 2):
        insert(
            empty_registry,
            device_uuid=f"sim-{n}",
            device_name=f"sim-pi-{n}",
            timezone="UTC",
            ansible_host="127.0.0.1",
            metadata={"ansible_port": 2200 + n, "hostname": f"sim-pi-{n}"},
        )
    result = inventory(stack_env, ROOT / "inventory" / "examples" / "simulated.supabase.yml")
    hosts = hostvars(result.inventory())
    assert {h: (v["ansible_host"], v["ansible_port"]) for h, v in hosts.items()} == {
        "sim-pi-1": ("127.0.0.1", 2201),
        "sim-pi-2": ("127.0.0.1", 2202),
    }


def test_the_grouped_example_runs(modelled_fleet, stack_env):
    source = ROOT / "inventory" / "examples" / "grouped.supabase.yml"
    listing = inventory(stack_env, source, "--flush-cache").inventory()
    assert members(listing, "model_raspberry_pi_5") == {"pi-1", "pi-2"}
    assert members(listing, "never_seen") == set()
