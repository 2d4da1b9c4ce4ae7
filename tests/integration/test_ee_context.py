"""The execution environment: `ansible-builder create` on execution-environment.yml, for real.

No image is built (no registry here to pull the base image from); the generated build
context is what the image would be built from, so the checks read it: the Containerfile's
base image and pins, and the Python, collection and system requirements under _build/.
What the plays need is derived from the repository itself (plugin imports, task FQCNs),
so a new dependency that is not in the EE fails here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bindep.depends import Depends
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Controller-side plugin code: it runs inside the EE. (plugins/modules run on the devices.)
PLUGIN_GLOBS = (
    "plugins/action/*.py",
    "plugins/filter/*.py",
    "plugins/inventory/*.py",
    "plugins/callback/*.py",
    "plugins/module_utils/*.py",
    "inventory/plugins/*.py",
    "filter_plugins/*.py",
    "callback_plugins/*.py",
    "lookup_plugins/*.py",
    "roles/*/lookup_plugins/*.py",
    "playbooks/*_plugins/*.py",
)
# Imported by the plugins but provided by the EE's ansible-core itself.
# ansible-core, and the collections (this one among them: plugins/module_utils by its full name).
PROVIDED = {"ansible", "ansible_collections"}
NOT_AT_RUN_TIME = {
    "pytest",
    "hypothesis",
    "molecule",
    "ansible-lint",
    "ruff",
    "yamllint",
    "matplotlib",
    "psycopg",
}
FQCN = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")
JINJA_FQCN = re.compile(
    r"(?:(?:lookup|query|q)\(\s*['\"]|\|\s*|\bis\s+(?:not\s+)?)([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*"
)
RPM_PROFILES = ["platform:rpm", "platform:redhat", "platform:centos", "default"]


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (hashes and comments ignored)."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\#]+)", line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run(
        [
            *(str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml"),
            *("-c", str(out), "--output-filename", "Containerfile"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "execution-environment.yml").read_text())


def test_containerfile_builds_on_the_pinned_core_and_runner(context: Path, definition: dict) -> None:
    containerfile = (context / "Containerfile").read_text()
    controller = pins(ROOT / "requirements.txt")
    base = definition["images"]["base_image"]["name"]
    assert f'ARG EE_BASE_IMAGE="{base}"' in containerfile
    refs = f"ansible-core=={controller['ansible-core']} ansible-runner=={controller['ansible-runner']}"
    assert f'ARG ANSIBLE_INSTALL_REFS="{refs}"' in containerfile
    # ansible-core 2.19 needs Python >= 3.11: the interpreter is installed and used explicitly.
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert 'ARG PYPKG="python3.11"' in containerfile
    # CRB (portaudio-devel) is enabled before any package is installed.
    assert containerfile.index("config-manager --set-enabled crb") < containerfile.index(
        "$PKGMGR install $PYPKG"
    )
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in (
        containerfile
    )
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    assert "RUN /output/scripts/check_ansible $PYCMD" in containerfile


def test_collections_are_those_of_requirements_yml(context: Path) -> None:
    built = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    wanted = yaml.safe_load((ROOT / "requirements.yml").read_text())
    assert built == wanted
    assert {c["name"] for c in built["collections"]} >= {"ansible.posix", "community.general"}


def test_python_requirements_are_the_controller_pins_without_tooling(context: Path) -> None:
    ee = pins(context / "_build" / "requirements.txt")
    controller = pins(ROOT / "requirements.txt")
    assert ee == pins(ROOT / "requirements-ee.txt")
    assert {
        "supabase",
        "postgrest",
        "httpx",
        "tzdata",
        "packaging",
        "ansible-core",
        "ansible-runner",
    } <= ee.keys()
    different = {
        name: (version, controller.get(name))
        for name, version in ee.items()
        if controller.get(name) != version
    }
    assert not different, f"EE pins that differ from requirements.txt (run make lock): {different}"
    assert not (NOT_AT_RUN_TIME & ee.keys()), "test and lint tools do not belong in the EE"
    # The build's pip sees plain pins: no hashes or line continuations for introspect to mangle.
    text = (context / "_build" / "requirements.txt").read_text()
    assert "--hash" not in text
    assert "\\\n" not in text


def plugin_imports() -> dict[str, set[str]]:
    """Top-level module -> plugin files importing it (at module level or inside functions)."""
    found: dict[str, set[str]] = {}
    for pattern in PLUGIN_GLOBS:
        for path in ROOT.glob(pattern):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def requirement_closure(names: set[str]) -> set[str]:
    """The distributions `names` need at run time here (Linux, this Python), transitively."""
    env = {"extra": ""}
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return seen


def test_every_third_party_import_of_the_plugins_is_in_the_ee() -> None:
    imports = plugin_imports()
    assert {"supabase", "packaging", "tzdata"} <= imports.keys(), sorted(imports)
    third_party = {
        m for m in imports if m not in sys.stdlib_module_names and m not in PROVIDED | {"__future__"}
    }
    owners = importlib.metadata.packages_distributions()
    unknown = {m: sorted(imports[m]) for m in third_party if m not in owners}
    assert not unknown, f"imported but installed by no distribution: {unknown}"
    needed: dict[str, set[str]] = {}
    for module in third_party:
        for dist in owners[module]:
            needed.setdefault(canonicalize_name(dist), set()).update(imports[module])
    ee = pins(ROOT / "requirements-ee.txt")
    missing = {dist: sorted(files) for dist, files in needed.items() if dist not in ee}
    assert not missing, f"add to requirements-ee.in and run make lock: {missing}"
    # Complete: pip in the build finds every dependency pinned, none resolved afresh.
    closure = requirement_closure(set(needed) | {"ansible-core", "ansible-runner"})
    assert closure - ee.keys() == set(), f"unpinned in requirements-ee.txt: {sorted(closure - ee.keys())}"


def walk_strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from walk_strings(value)


def walk_task_keys(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from walk_task_keys(value)
    elif isinstance(data, list):
        for value in data:
            yield from walk_task_keys(value)


class _AnsibleYaml(yaml.SafeLoader):
    """Safe YAML that accepts Ansible's !unsafe and !vault tags as plain scalars."""


_AnsibleYaml.add_multi_constructor("!", lambda loader, _suffix, node: loader.construct_scalar(node))


def collections_used_by_the_plays() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    files = list((ROOT / "playbooks").rglob("*.yml"))
    for kind in ("tasks", "handlers"):
        files += ROOT.glob(f"roles/*/{kind}/*.yml")
    for path in files:
        data = yaml.load(path.read_text(), Loader=_AnsibleYaml)  # noqa: S506 (a SafeLoader subclass)
        names = {key for key in walk_task_keys(data) if FQCN.fullmatch(key.removeprefix("group/"))}
        names = {".".join(key.removeprefix("group/").split(".")[:2]) for key in names}
        for text in walk_strings(data):
            names.update(JINJA_FQCN.findall(text))
        for name in names:
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return used


def test_every_collection_the_plays_use_is_in_requirements_yml() -> None:
    used = collections_used_by_the_plays()
    assert "ansible.builtin" in used, "the scan found no task at all"
    listed = {c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    itself = f"{galaxy['namespace']}.{galaxy['name']}"  # this repository
    assert itself in used, "the plays use none of this collection's plugins by their full name"
    known = listed | {"ansible.builtin", itself}
    missing = {name: sorted(files) for name, files in used.items() if name not in known}
    assert not missing, f"collections used by the plays but not in requirements.yml: {missing}"


def test_system_packages_for_ssh_git_and_the_wheelhouse_build(context: Path) -> None:
    depends = Depends((context / "_build" / "bindep.txt").read_text())
    on_rpm = {rule[0] for rule in depends.active_rules(RPM_PROFILES)}
    assert on_rpm == {"openssh-clients", "git-core", "tar", "gcc", "python3.11-devel", "portaudio-devel"}
    # Needed at run time (ssh, git archive, pip wheel PyAudio), so none is build-only ("compile").
    assert {rule[0] for rule in depends.active_rules([*RPM_PROFILES, "compile"])} == on_rpm
