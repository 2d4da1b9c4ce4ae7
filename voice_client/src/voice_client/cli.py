"""The ``voice-client`` command: run, self-check, status, identity.

Exit codes: 0 success, 1 a check or operation failed, 2 bad usage or
configuration (the message names the variable and its value).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from voice_client import version
from voice_client.config import Config, ConfigError, load_config
from voice_client.envfile import EnvFileError, read_env_file
from voice_client.identity import IdentityError, ensure_identity, read_identity

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _environment(env_file: Path | None) -> dict[str, str]:
    """The process environment, overridden by ``--env-file`` (the device's configuration wins)."""
    env = dict(os.environ)
    if env_file is not None:
        env.update(read_env_file(env_file))
    return env


def _setup_logging(level: str) -> None:
    # Under systemd the journal adds the time stamp and the unit.
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_journal
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # urllib3 logs every retry and new connection at INFO/DEBUG.
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _error(message: str) -> None:
    print(f"voice-client: {message}", file=sys.stderr)


def _cmd_run(env: Mapping[str, str], _args: argparse.Namespace) -> int:
    config = load_config(env)
    _setup_logging(config.log_level)
    from voice_client.service import run_service  # noqa: PLC0415 (audio and GPIO only for `run`)

    return run_service(config)


def _cmd_self_check(env: Mapping[str, str], args: argparse.Namespace) -> int:
    from voice_client.selfcheck import run_checks  # noqa: PLC0415

    _setup_logging("WARNING")
    checks = run_checks(env)
    ok = all(check.ok for check in checks)
    if args.json:
        document = {"ok": ok, "version": version(), "checks": [vars(check) for check in checks]}
        print(json.dumps(document, indent=2))
    else:
        for check in checks:
            print(check.line())
    return EXIT_OK if ok else EXIT_FAIL


def _cmd_status(env: Mapping[str, str], args: argparse.Namespace) -> int:
    from voice_client.status import collect_status  # noqa: PLC0415

    config = load_config(env)
    status = collect_status(config)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for key, value in status.items():
            print(f"{key}: {'-' if value is None else value}")
    return EXIT_OK


def _cmd_identity(env: Mapping[str, str], args: argparse.Namespace) -> int:
    config: Config = load_config(env)
    if args.ensure:
        _setup_logging("WARNING")
        value, _how = ensure_identity(config.identity_file, config.legacy_uuid_file)
    else:
        value = read_identity(config.identity_file)
        if value is None:
            _error(
                f"no identity yet: {config.identity_file} does not exist "
                "(create it with 'voice-client identity --ensure', or start the service)"
            )
            return EXIT_FAIL
    print(value)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    env_file = argparse.ArgumentParser(add_help=False)
    env_file.add_argument(
        "--env-file",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="read settings from this file (systemd EnvironmentFile syntax); it overrides the environment",
    )
    parser = argparse.ArgumentParser(
        prog="voice-client",
        description="Push-to-talk voice assistant client for Raspberry Pi.",
        parents=[env_file],
    )
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", parents=[env_file], help="run the service (until SIGTERM)").set_defaults(
        func=_cmd_run
    )
    check = commands.add_parser("self-check", parents=[env_file], help="health gate: one line per check")
    check.add_argument("--json", action="store_true", help="print the checks as JSON")
    check.set_defaults(func=_cmd_self_check)
    status = commands.add_parser("status", parents=[env_file], help="device state for scheduling updates")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_cmd_status)
    identity = commands.add_parser("identity", parents=[env_file], help="print the device UUID")
    identity.add_argument(
        "--ensure", action="store_true", help="create it if missing (adopting LEGACY_UUID_FILE when present)"
    )
    identity.set_defaults(func=_cmd_identity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        env = _environment(getattr(args, "env_file", None))
        return int(args.func(env, args))
    except (ConfigError, EnvFileError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except IdentityError as exc:
        _error(str(exc))
        return EXIT_FAIL
    except BrokenPipeError:  # `voice-client status | head -1`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL
    except OSError as exc:  # e.g. a state directory the user cannot create
        _error(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
