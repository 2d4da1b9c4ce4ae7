"""The fleet's inventory: production's inventory/supabase.yml plus how to reach a simulated device.

`up` writes it to <state dir>/inventory and checks through it that every device answers as root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from stack import run

from simfleet.model import ROOT, VOICE_ALIAS, VOICE_PORT, Fleet, FleetError, display_path
from simfleet.ssh import connection_vars

PRODUCTION_INVENTORY = ROOT / "inventory" / "supabase.yml"


def fleet_inventory_source() -> dict[str, Any]:
    """inventory/supabase.yml, the settings cron, AWX and operators use, plus what the simulation adds.

    Which rows become hosts (statuses, filters, the table) is production's own; the fleet adds only
    how to reach a device (its published sshd port) and groups naming the simulation, so a test on
    the fleet sees the devices production would.
    """
    source = yaml.safe_load(PRODUCTION_INVENTORY.read_text())
    extra_compose = {"ansible_port": "metadata.ansible_port | int"}
    extra_groups = {"simulated": "metadata.simulated | default(false)"}
    for key, extra in (("compose", extra_compose), ("groups", extra_groups)):
        clash = sorted(set(extra) & set(source.get(key) or {}))
        if clash:
            raise FleetError(f"{PRODUCTION_INVENTORY} sets {key} {clash}: the fleet would override it")
        source[key] = {**(source.get(key) or {}), **extra}
    fleet_group = {"key": "metadata.fleet", "prefix": "fleet"}
    source["keyed_groups"] = [*(source.get("keyed_groups") or []), fleet_group]
    return source


def inventory_files(fleet: Fleet, health_seconds: int | None = None) -> dict[Path, str]:
    """The inventory's files; health_seconds, when given, sets the devices' release health gate."""
    header = (
        "---\n"
        f"# Written by tools/fleet.py for the simulated fleet {fleet.prefix!r}; rewritten by every `up`.\n"
    )
    source = fleet_inventory_source()
    group_vars = {
        **connection_vars(fleet),
        "voice_service_server_url": f"http://{VOICE_ALIAS}:{VOICE_PORT}",
        "voice_service_gpio_pin_factory": "mock",
        "voice_service_simulated_audio": True,
        # Pull mode (roles/voice_agent): the registry and the store through the fleet's relay.
        "voice_agent_registry_url": fleet.relay_url,
        "voice_agent_store_url": f"{fleet.relay_url}/store",
    }
    if health_seconds is not None:
        group_vars["voice_release_health_seconds"] = health_seconds
    return {
        fleet.inventory / "fleet.supabase.yml": header
        + "# Every online (or updating) device of the registry at SUPABASE_URL, read with\n"
        "# SUPABASE_SERVICE_KEY (from the environment, never from this file); the\n"
        "# simulated devices publish their sshd on 127.0.0.1:<metadata.ansible_port>.\n"
        "# A row without a port keeps the default (22), so a bad row fails alone.\n"
        + yaml.safe_dump(source, sort_keys=False),
        fleet.inventory / "group_vars" / "all.yml": header
        + "# How Ansible reaches the simulated devices, and what they are (no sound card,\n"
        "# no GPIO chip, the stand-in voice server on the fleet's network).\n"
        + yaml.safe_dump(group_vars, sort_keys=False, width=1000),
    }


def ansible_env(env: dict[str, str]) -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    return {
        **os.environ,
        "SUPABASE_URL": env["SUPABASE_URL"],
        "SUPABASE_SERVICE_KEY": env["SUPABASE_SERVICE_KEY"],
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
    }


def verify_with_ansible(fleet: Fleet, env: dict[str, str], names: list[str]) -> None:
    """Every device, through the Supabase inventory: SSH as pi with the fleet's key, become root."""
    cmd = [str(ROOT / ".venv" / "bin" / "ansible"), ",".join(names), "-i", str(fleet.inventory)]
    cmd += ["-m", "ansible.builtin.command", "-a", "id", "--become"]
    json_env = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    proc = run(cmd, what="ansible", check=False, timeout=600, cwd=ROOT, env=ansible_env(env) | json_env)
    try:
        plays = json.loads(proc.stdout).get("plays") or []
        hosts = plays[0]["tasks"][0]["hosts"] if plays and plays[0]["tasks"] else {}
    except (ValueError, KeyError, IndexError):
        hosts = {}
    problems = []
    for name in names:
        result = hosts.get(name)
        if result is None:
            problems.append(f"{name}: not in the inventory (is its registry row there?)")
        elif "uid=0(root)" not in result.get("stdout", ""):
            problems.append(f"{name}: {result.get('msg') or result.get('stderr') or result.get('stdout')}")
    if problems or proc.returncode != 0:
        detail = "\n  ".join(problems) or proc.stderr.strip()[-2000:]
        raise FleetError(
            f"Ansible could not run `id` as root through {display_path(fleet.inventory)}:\n  {detail}"
        )
