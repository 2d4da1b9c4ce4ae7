"""docs/ARCHITECTURE.md names real places: every file, function and variable it points to exists.

A newcomer follows the page to the one file where a decision is made; a rename that leaves the page
behind sends them nowhere. The picture's source (docs/architecture/update-path.dot) is held to the
same rule.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "docs" / "ARCHITECTURE.md", ROOT / "docs" / "architecture" / "update-path.dot"]
# Where a function, variable or key named on the page must be found.
CODE_DIRS = (
    "plugins",
    "filter_plugins",
    "inventory",
    "callback_plugins",
    "roles",
    "playbooks",
    "supabase",
    "tools",
)
FILE_NAME = re.compile(r"^[\w.-]+\.(py|yml|yaml|sql|j2|md|dot|png)$")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*_[a-z0-9_]+$")  # snake_case with at least one "_"


@cache
def tracked() -> tuple[str, ...]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(line for line in out.splitlines() if (ROOT / line).is_file())


def names_on(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    if page.suffix == ".md":
        found = re.findall(r"`([^`\s]+)`", text) + re.findall(r"\]\(([^)\s]+)\)", text)
    else:  # graphviz labels: file paths written over two lines ("inventory/plugins/\nsupabase_devices.py")
        found = [m.replace("/\\n", "/").replace("\\n", " ") for m in re.findall(r'label="([^"]*)"', text)]
        found = [word for label in found for word in re.split(r"[\s(),«»+]+", label)]
    return [name.strip(".,:;") for name in found if name.strip(".,:;")]


def exists(name: str, page: Path) -> bool:
    """Whether `name` (from `page`) is a real path, file name or name in the code (other words pass)."""
    base = name.split("#", maxsplit=1)[0].rstrip("/")
    if "/" in base and not base.startswith(("http", "rpc/", "/")):
        if "…" in base:  # an abbreviated file name: migrations/…_record_progress.sql
            head, tail = base.split("…", 1)
            return any(p.endswith(tail) and head.strip("./") in p for p in tracked())
        return (
            (ROOT / base).exists()
            or (page.parent / base).exists()
            or any(p.endswith(base) for p in tracked())
        )
    if FILE_NAME.match(base):
        return any(Path(p).name == base for p in tracked())
    if IDENTIFIER.match(base):
        return any(
            p.startswith(CODE_DIRS) and base in (ROOT / p).read_text(encoding="utf-8", errors="replace")
            for p in tracked()
        )
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_place_the_page_names_exists(page):
    names = names_on(page)
    assert len(names) > 20, f"{page}: too few names found, the scan is broken"
    gone = sorted({n for n in names if not exists(n, page)})
    assert not gone, f"{page.relative_to(ROOT)} names what does not exist: {gone}"


def test_the_picture_is_drawn_from_its_source():
    assert (ROOT / "docs" / "architecture.png").stat().st_size > 10_000
    dot = (ROOT / "docs" / "architecture" / "update-path.dot").read_text(encoding="utf-8")
    assert "docs/architecture.png" in dot  # the render command is written in the source
