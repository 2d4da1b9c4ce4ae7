#!/usr/bin/env python3
"""Rollout reports without a play: the HTML page of a JSON report the rollout_report callback wrote.

    tools/report.py render reports/rollout-20261122T020100Z.json            # -> ...Z.html beside it
    tools/report.py render reports/latest.json -o /tmp/rollout.html

The page is the one the callback writes at the end of a run (the same renderer and template,
plugins/module_utils/voice_report.py and voice_report.html.j2): render it again after a copy of the
JSON was mailed or archived, or with the template of a newer collection. It prints the page's path.
A file that cannot be read, is not JSON or is no rollout report stops it with status 1 and a message
that names the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def collections_root() -> Path:
    """Where this collection is importable by its full name: the directory that holds the
    ansible_collections/ this tool was installed in, else the checkout's playbooks/collections."""
    collection = Path(__file__).resolve().parents[1]
    if collection.parents[1].name == "ansible_collections":
        return collection.parents[2]
    return collection / "playbooks" / "collections"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="the HTML page of a JSON report")
    render.add_argument("report", type=Path, help="the JSON report (reports/<prefix>-<time>.json)")
    render.add_argument(
        "-o", "--output", type=Path, help="the page to write (default: beside the report, .html)"
    )
    args = parser.parse_args(argv)

    # This copy of the collection, before any other one on sys.path (a checkout's link in the venv).
    sys.path.insert(0, str(collections_root()))
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_report import (  # noqa: PLC0415
        ReportError,
        render_file,
    )

    try:
        page = render_file(args.report, args.output)
    except ReportError as exc:
        print(f"report.py: error: {exc}", file=sys.stderr)
        return 1
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
