#!/usr/bin/env python3
"""Check that every collection in requirements.yml is installed at an allowed version.

Galaxy may be unreachable (it is on the project's CI machines), so the
collections come from the PyPI ``ansible`` package, which bundles them. Users
with Galaxy access run ``ansible-galaxy collection install -r requirements.yml``
instead. Either way this check proves that what the plays need is there,
looking where Ansible itself looks: the configured collection paths, then
``ansible_collections`` on the Python path.

    tools/check_collections.py [requirements.yml] [--search-path DIR ...] [--print-paths]

Exit 0 when all are present; 1 with one line per problem otherwise. With
--print-paths, the directory each one was found in goes to stdout, one per line
(the summary to stderr): `make setup` compiles those to bytecode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from ansible import constants as ansible_constants  # reads ansible.cfg like ansible-playbook
from ansible.galaxy.dependency_resolution.versioning import meets_requirements


def installed_collections(search_paths: list[Path]) -> dict[str, tuple[str, Path]]:
    """Map 'namespace.name' to (version, path), first path wins as in Ansible."""
    found: dict[str, tuple[str, Path]] = {}
    for root in search_paths:
        base = root if root.name == "ansible_collections" else root / "ansible_collections"
        if not base.is_dir():
            continue
        for meta in sorted(base.glob("*/*/MANIFEST.json")) + sorted(base.glob("*/*/galaxy.yml")):
            coll_dir = meta.parent
            fqcn = f"{coll_dir.parent.name}.{coll_dir.name}"
            if fqcn in found:
                continue
            if meta.name == "MANIFEST.json":
                version = json.loads(meta.read_text())["collection_info"]["version"]
            else:
                version = str(yaml.safe_load(meta.read_text()).get("version", "*"))
            found[fqcn] = (version, coll_dir)
    return found


def default_search_paths() -> list[Path]:
    paths = [Path(p).expanduser() for p in ansible_constants.COLLECTIONS_PATHS]
    if ansible_constants.COLLECTIONS_SCAN_SYS_PATH:
        paths += [Path(p) for p in sys.path if p]
    return paths


def load_requirements(path: Path) -> list[tuple[str, str]]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from None
    entries = data.get("collections", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: expected a mapping with a 'collections' list")
    result = []
    for entry in entries:
        if isinstance(entry, str):
            result.append((entry, "*"))
        elif isinstance(entry, dict) and "name" in entry:
            result.append((str(entry["name"]), str(entry.get("version", "*"))))
        else:
            raise SystemExit(f"{path}: cannot understand collection entry {entry!r}")
    return result


def check(requirements: list[tuple[str, str]], installed: dict[str, tuple[str, Path]]) -> list[str]:
    problems = []
    for name, spec in requirements:
        if name not in installed:
            problems.append(f"{name} ({spec}) is not installed")
            continue
        version, where = installed[name]
        if not meets_requirements(version, spec):
            problems.append(f"{name} {version} at {where} does not satisfy {spec}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("requirements", nargs="?", default="requirements.yml", type=Path)
    parser.add_argument(
        "--search-path",
        action="append",
        type=Path,
        help="look only here (repeatable); default: where Ansible looks",
    )
    parser.add_argument(
        "--print-paths",
        action="store_true",
        help="print where each required collection was found (one per line; the summary to stderr)",
    )
    args = parser.parse_args(argv)
    requirements = load_requirements(args.requirements)
    installed = installed_collections(args.search_path or default_search_paths())
    problems = check(requirements, installed)
    for problem in problems:
        print(f"collection check: {problem}", file=sys.stderr)
    if problems:
        print(
            "collection check: install them with `ansible-galaxy collection install -r "
            f"{args.requirements}` or a newer `ansible` package",
            file=sys.stderr,
        )
        return 1
    names = ", ".join(f"{n} {installed[n][0]}" for n, _ in requirements)
    print(f"collections ok: {names}", file=sys.stderr if args.print_paths else sys.stdout)
    if args.print_paths:
        print("\n".join(str(installed[n][1]) for n, _ in requirements))
    return 0


if __name__ == "__main__":
    sys.exit(main())
