"""Facts that must be written in more than one file agree in every copy.

Each fact has one source and copies that cannot import it: the device runs the modules and the pull
agent without the collection's Python, role defaults and argument specs are YAML, the registry's
CHECK constraints are SQL. This test is the link between them. Where a copy could be derived from
its source instead, it is (the inventory plugin takes its zone database from the window filter).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.javia.voice_fleet.plugins.module_utils import voice_registry_client as registry
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"

# The device layout, as ../shared/DESIGN.md fixes it (outside checks read these paths).
LAYOUT = {
    "base": "/opt/voice-client",
    "current": "/opt/voice-client/current",
    "releases": "/opt/voice-client/releases",
    "env_file": "/etc/voice-client/voice-client.env",
    "config_dir": "/etc/voice-client",
    "state_dir": "/var/lib/voice-client",
    "identity_file": "/var/lib/voice-client/device_uuid",
    "executable": "/opt/voice-client/current/venv/bin/voice-client",
    "marker": "/opt/voice-client/current/.build-complete",
}
# A variable or option name ending like this holds that layout path.
NAME_TO_FACT = [
    (re.compile(r"(^|_)base(_dir)?$"), "base"),
    (re.compile(r"(^|_)current$"), "current"),
    (re.compile(r"(^|_)releases$"), "releases"),
    (re.compile(r"(^|_)env_file$"), "env_file"),
    (re.compile(r"(^|_)config_dir$"), "config_dir"),
    (re.compile(r"(^|_)state_dir$"), "state_dir"),
    (re.compile(r"(^|_)identity_file$"), "identity_file"),
    (re.compile(r"(^|_)(executable|client)$"), "executable"),
]
DEVICE_ROOTS = ("/opt/voice-client", "/etc/voice-client", "/var/lib/voice-client")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _module_options(path: Path) -> dict[str, Any]:
    """The options of a module's DOCUMENTATION (the literal Ansible shows and validate-modules checks)."""
    return yaml.safe_load(_assigned(path, "DOCUMENTATION"))["options"]


def _assigned(path: Path, name: str) -> Any:
    """The literal value assigned to ``name`` at the top of a Python file (without importing it)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path}: no {name} = ...")


def _device_path_copies() -> list[tuple[str, str, str]]:
    """(where, name, value) of every device path a role variable or a module option holds."""
    found = []
    for path in sorted(ROLES.glob("*/vars/main.yml")) + sorted(ROLES.glob("*/defaults/main.yml")):
        for name, value in _yaml(path).items():
            if isinstance(value, str) and value.startswith(DEVICE_ROOTS):
                found.append((str(path.relative_to(ROOT)), name, value))
    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        for name, spec in _module_options(path).items():
            value = spec.get("default")
            if isinstance(value, str) and value.startswith(DEVICE_ROOTS):
                found.append((str(path.relative_to(ROOT)), name, value))
    for name, value in _assigned(ROLES / "voice_agent" / "files" / "voice_agent.py", "DEFAULTS").items():
        if isinstance(value, str) and value.startswith(DEVICE_ROOTS):
            found.append(("roles/voice_agent/files/voice_agent.py", name.lower(), value))
    return found


def test_every_copy_of_a_device_layout_path_is_the_fixed_one():
    copies = _device_path_copies()
    checked, wrong = [], []
    for where, name, value in copies:
        for pattern, fact in NAME_TO_FACT:
            if pattern.search(name):
                checked.append(fact)
                if value != LAYOUT[fact]:
                    wrong.append(f"{where}: {name} = {value} (the layout's {fact} is {LAYOUT[fact]})")
    assert not wrong, "\n".join(wrong)
    # The copies this test exists for are found (a rename would otherwise make it check nothing).
    assert {"base", "current", "env_file", "identity_file", "executable", "state_dir"} <= set(checked)


def test_every_device_path_lies_under_the_fixed_layout_or_is_one_of_its_paths():
    layout_dirs = {LAYOUT["base"], LAYOUT["config_dir"], LAYOUT["state_dir"]}
    strays = [
        f"{where}: {name} = {value}"
        for where, name, value in _device_path_copies()
        if value not in LAYOUT.values() and not any(value.startswith(d + "/") for d in layout_dirs)
    ]
    assert not strays, "\n".join(strays)


def test_the_registry_statuses_are_the_same_in_the_schema_the_client_and_the_roles():
    sql = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "supabase" / "migrations").glob("*.sql"))
    )

    def check(constraint: str) -> tuple[str, ...]:
        match = re.search(constraint + r"\s+CHECK \(status IN \(([^)]*)\)\)", sql)
        assert match, f"no {constraint} in supabase/migrations"
        return tuple(v.strip().strip("'") for v in match.group(1).split(","))

    assert check("devices_status_check") == registry.DEVICE_STATUSES
    assert check("device_updates_status_check") == registry.DEVICE_UPDATE_STATUSES
    assert set(registry.FINAL_STATUSES) < set(registry.DEVICE_UPDATE_STATUSES)

    specs = _yaml(ROLES / "voice_registry" / "meta" / "argument_specs.yml")["argument_specs"]
    options = {name: spec for entry in specs.values() for name, spec in entry["options"].items()}
    assert tuple(options["voice_registry_status"]["choices"]) == registry.DEVICE_STATUSES
    assert tuple(options["voice_registry_update_status"]["choices"]) == registry.DEVICE_UPDATE_STATUSES


def _client_dependencies() -> list[str]:
    """The client's runtime distributions every platform installs (pyproject.toml, the source)."""
    import tomllib  # noqa: PLC0415

    project = tomllib.loads((ROOT / "voice_client" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [canonicalize_name(r.name) for r in map(Requirement, project["dependencies"]) if r.marker is None]


def test_the_self_check_imports_every_runtime_dependency_of_the_client():
    modules = _assigned(ROOT / "voice_client" / "src" / "voice_client" / "selfcheck.py", "RUNTIME_MODULES")
    assert sorted(canonicalize_name(dist) for _, dist in modules) == sorted(_client_dependencies())


@pytest.mark.parametrize("role", ["voice_release", "voice_agent"])
def test_a_release_is_import_checked_for_the_modules_the_self_check_imports(role):
    modules = _assigned(ROOT / "voice_client" / "src" / "voice_client" / "selfcheck.py", "RUNTIME_MODULES")
    expected = ["voice_client", *(name for name, _ in modules)]
    assert _yaml(ROLES / role / "defaults" / "main.yml")[f"{role}_import_check"] == expected


@pytest.mark.parametrize("role", sorted(p.parents[1].name for p in ROLES.glob("*/meta/argument_specs.yml")))
def test_argument_spec_defaults_are_the_role_defaults(role):
    """ansible-doc shows the spec's default, the role uses defaults/main.yml: they must be one value."""
    defaults_file = ROLES / role / "defaults" / "main.yml"
    defaults = _yaml(defaults_file) if defaults_file.exists() else {}
    differ = []
    for entry, spec in _yaml(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"].items():
        for name, option in (spec.get("options") or {}).items():
            if "default" in option and name in defaults and option["default"] != defaults[name]:
                differ.append(f"{entry}: {name}: spec {option['default']!r}, defaults {defaults[name]!r}")
    assert not differ, f"roles/{role}: " + "; ".join(differ)
