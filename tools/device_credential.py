#!/usr/bin/env python3
"""Enrol a device in pull mode: issue or revoke its own registry credential.

    tools/device_credential.py issue  --device-uuid UUID --out PATH [--days N] [--management pull]
    tools/device_credential.py revoke --device-uuid UUID [--jti JTI]

A device credential is a JWT for the registry's PostgREST with the role
`device` and the claims `device_uuid` and `jti`; row level security
(supabase/migrations/20261201001400_pull_mode.sql) lets it read `updates` and
its own `devices` row, write its own heartbeat and its own `device_updates`
rows, and nothing else. Each issued token has a row in `device_credentials`;
`revoke` sets its revoked_at, and the registry refuses the token from then on.

The token is written only to --out (mode 0600, replaced atomically), never to
standard output or a log. Hand that file to the device's provisioning
(roles/voice_agent: voice_agent_token_file) and delete it afterwards.

Settings come from the environment: SUPABASE_URL and SUPABASE_SERVICE_KEY (the
controller's service key: it never reaches a device), and SUPABASE_JWT_SECRET
(the project's JWT secret, Supabase dashboard: Project Settings, API). Without
SUPABASE_JWT_SECRET the local stack's secret (tools/stack.py, VF_STACK_DIR) is
used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import STACK, atomic_write, make_jwt, read_env_file

DEFAULT_DAYS = 3650


class CredentialError(Exception):
    """A failure a person can act on; printed without a traceback."""


def settings() -> dict[str, str]:
    values = {
        k: os.environ.get(k, "") for k in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "SUPABASE_JWT_SECRET")
    }
    looked = ""
    if not values["SUPABASE_JWT_SECRET"]:
        # The local stack's own secret, and only for the local stack's own URL: a token signed with
        # it would be refused by any other project (and says nothing useful about why).
        local, env_file = STACK / "secrets.json", STACK / "env"
        local_url = read_env_file(env_file).get("SUPABASE_URL") if env_file.exists() else None
        if local.exists() and local_url and local_url == values["SUPABASE_URL"]:
            values["SUPABASE_JWT_SECRET"] = json.loads(local.read_text())["jwt_secret"]
        else:
            url = values["SUPABASE_URL"] or "(unset)"
            looked = f" (the local stack at {STACK} is not the registry at {url})"
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise CredentialError(
            f"{', '.join(missing)} not set{looked}: export them (for the local stack: . .stack/env), "
            "SUPABASE_JWT_SECRET from the project's API settings"
        )
    return values


def registry(env: dict[str, str]) -> contextlib.AbstractContextManager[Any]:
    """The controller's one registry client (retries, clear errors, the key never shown)."""
    # Imported here: --help needs no supabase-py.
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (  # noqa: PLC0415
        session,
    )

    return session(env, "device_credential", lambda exc: CredentialError(str(exc)))


def issue(env: dict[str, str], device_uuid: str, out: Path, days: int, management: str | None) -> str:
    with registry(env) as db:
        rows = db.rows(
            f"reading device {device_uuid}",
            db.table("devices").select("id,device_name").eq("device_uuid", device_uuid),
        )
        if not rows:
            raise CredentialError(
                f"no device with device_uuid {device_uuid!r} in the registry: register it first"
            )
        jti = uuid.uuid4().hex
        db.execute(
            f"recording a credential of {device_uuid}",
            db.table("device_credentials").insert({"device_uuid": device_uuid, "jti": jti}),
        )
        if management:
            db.execute(
                f"setting the management of {device_uuid}",
                db.table("devices").update({"management": management}).eq("device_uuid", device_uuid),
            )
    token = make_jwt(
        env["SUPABASE_JWT_SECRET"],
        "device",
        int(time.time()),
        {"device_uuid": device_uuid, "jti": jti},
        lifetime=days * 86400,
    )
    atomic_write(out, token + "\n", 0o600)
    return jti


def revoke(env: dict[str, str], device_uuid: str, jti: str | None) -> int:
    with registry(env) as db:
        query = (
            db.table("device_credentials")
            .update({"revoked_at": datetime.now(UTC).isoformat()})
            .eq("device_uuid", device_uuid)
            .is_("revoked_at", "null")
        )
        if jti:
            query = query.eq("jti", jti)
        return len(db.rows(f"revoking the credentials of {device_uuid}", query))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_issue = sub.add_parser("issue", help="issue a new credential; the token goes to --out only")
    p_issue.add_argument("--device-uuid", required=True)
    p_issue.add_argument("--out", required=True, type=Path, help="file for the token (written 0600)")
    p_issue.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"lifetime (default {DEFAULT_DAYS})")
    p_issue.add_argument("--management", choices=["push", "pull"], help="also set devices.management")
    p_revoke = sub.add_parser("revoke", help="revoke the device's credentials (or only --jti)")
    p_revoke.add_argument("--device-uuid", required=True)
    p_revoke.add_argument("--jti")
    args = parser.parse_args(argv)
    try:
        env = settings()
        if args.command == "issue":
            if args.days < 1:
                raise CredentialError(f"--days must be >= 1, got {args.days}")
            jti = issue(env, args.device_uuid, args.out, args.days, args.management)
            print(f"issued credential {jti} for {args.device_uuid}: token written to {args.out} (0600)")
        else:
            count = revoke(env, args.device_uuid, args.jti)
            print(f"revoked {count} credential(s) of {args.device_uuid}")
    except CredentialError as exc:
        print(f"device_credential {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"device_credential {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
