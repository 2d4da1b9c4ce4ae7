#!/usr/bin/env python3
"""The device registry from the command line, through the controller's one registry client.

    tools/registry.py add-update --version 1.2.0 --package-url git:<commit>|/path/to/voice_client
                                 [--type scheduled|urgent] [--description TEXT]
    tools/registry.py latest [--limit 5]

It uses the registry action's own client (roles/voice_registry/action_plugins/
voice_registry.py: the same requests, retries and error messages as the
plays), with SUPABASE_URL and SUPABASE_SERVICE_KEY from the environment
(e.g. `. .stack/env`). The key is never printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "roles" / "voice_registry" / "action_plugins" / "voice_registry.py"


def load_client():
    spec = importlib.util.spec_from_file_location("voice_registry_client", CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    args = parser.parse_args(argv)

    client = load_client()
    url, key = os.environ.get("SUPABASE_URL", ""), os.environ.get("SUPABASE_SERVICE_KEY", "")
    try:
        registry = client.Registry(url, key, check_mode=False)
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
        else:
            print(json.dumps(registry.latest_updates(args.limit), indent=2, sort_keys=True))
    except client.RegistryError as exc:
        print(f"registry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
