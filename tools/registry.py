#!/usr/bin/env python3
"""The device registry from the command line, through the controller's one registry client.

    tools/registry.py add-update --version 1.2.0 --package-url git:<commit>|/path/to/voice_client
                                 [--type scheduled|urgent] [--description TEXT]
    tools/registry.py latest [--limit 5]
    tools/registry.py progress [--limit 20]

It uses the controller's one registry client (plugins/module_utils/
voice_registry_client.py: the same requests, retries and error messages as the
plays), with SUPABASE_URL and SUPABASE_SERVICE_KEY from the environment
(e.g. `. .stack/env`). The key is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (
    Registry,
    RegistryError,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-update", help="the updates row of a version, created when missing")
    add.add_argument("--version", required=True)
    add.add_argument("--package-url", required=True, help="git:<commit> or a path any controller can resolve")
    add.add_argument("--type", default="scheduled", choices=("scheduled", "urgent"))
    add.add_argument("--description", default="")
    latest = sub.add_parser("latest", help="the newest updates rows")
    latest.add_argument("--limit", type=int, default=5)
    progress = sub.add_parser("progress", help="the newest device_updates rows, with device and version")
    progress.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)

    url, key = os.environ.get("SUPABASE_URL", ""), os.environ.get("SUPABASE_SERVICE_KEY", "")
    try:
        with Registry(url, key, check_mode=False) as registry:
            if args.command == "add-update":
                update = {
                    "version": args.version,
                    "update_type": args.type,
                    "description": args.description,
                    "package_url": args.package_url,
                }
                _changed, answer, _ = registry.record_progress(update, [])
                row = answer.get("update") or {}
                print(f"updates: {row.get('version')} ({row.get('update_type')}) -> {row.get('package_url')}")
            elif args.command == "progress":
                for row in registry.latest_progress(args.limit):
                    device = (row.get("devices") or {}).get("device_name") or "?"
                    version = (row.get("updates") or {}).get("version") or "?"
                    error = f"  ({row['error_message']})" if row.get("error_message") else ""
                    print(
                        f"{row.get('completed_at') or row.get('started_at') or '':32} {device:20} "
                        f"{version:12} {row.get('status')}{error}"
                    )
            else:
                print(json.dumps(registry.latest_updates(args.limit), indent=2, sort_keys=True))
    except RegistryError as exc:
        print(f"registry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
