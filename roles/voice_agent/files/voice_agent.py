#!/usr/bin/python3
"""voice-agent: a pull-mode device updates itself from signed releases (one run per call).

Installed by roles/voice_agent in /opt/voice-client/agent/, outside every release
venv, beside copies of the very files push uses: voice_release_build.py (build a
release from verified wheels), voice_release_activate.py (switch, health gate,
self-revert) and maintenance_window.py (the 2 AM window rule). A systemd timer
runs it hourly, with a randomized delay.

One run:
 1. check in (one request, rpc/device_check_in): the heartbeat of the device's own
    row, and back the row and the newest update that carries a package_url;
 2. nothing new (same update and package_url as the last run that ended for good),
    or an update older than the running release: stop here;
 3. scheduled updates wait for the device's maintenance window (its registry
    timezone, the filters' rule); urgent ones for `voice-client status --json` to
    report idle_seconds >= VOICE_AGENT_URGENT_IDLE_SECONDS;
 4. fetch manifest.json and manifest.json.sig, verify the ed25519 signature with
    the publisher's public key, then that the manifest is for this platform and
    version, that its sequence is greater than the last accepted one (replays of
    older signed manifests are refused) and that its version is not older than
    the running one; all before anything is downloaded or installed;
 5. download only the wheels the device lacks (resumable .part files with HTTP
    Range, retries with exponential backoff), check each size and sha256;
 6. install missing Debian packages the manifest names, build the release
    (voice_release_build.build) and activate it behind the health gate
    (voice_release_activate.activate), with the parameters push uses;
 7. write its own device_updates row at each stage (downloading, installing,
    completed | failed | rolled_back, with the failed step in error_message) and a
    final heartbeat.

Exit status: 0 nothing to do, waiting, or installed; 1 refused or failed; 2 bad
configuration. Settings: /etc/voice-client/agent.env (see roles/voice_agent).

Test only: VOICE_AGENT_NOW (environment) or --now (ISO 8601 with offset) replaces
the clock used for the window decision. Never set it on a real device.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import maintenance_window  # noqa: E402  (the filters' window rule, copied beside this file)
import voice_fleet_files  # noqa: E402  (push's file and signature helpers, copied beside this file)
import voice_release_activate  # noqa: E402  (push's activation, copied beside this file)
import voice_release_build  # noqa: E402  (push's build, copied beside this file)

AGENT_VERSION = "1"
CONFIG_FILE = "/etc/voice-client/agent.env"
BASE = "/opt/voice-client"
RELEASES = BASE + "/releases"
WHEELS = BASE + "/wheels"
CURRENT = BASE + "/current"
STATE_FILE = "/var/lib/voice-client/agent-state.json"
LOCK_FILE = "/run/voice-agent.lock"
STATUS_COMMAND = ["/usr/local/bin/voice-client", "status", "--json"]
MANIFEST_FORMAT = 1
USER_AGENT = f"voice-agent/{AGENT_VERSION}"
_RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_WHEEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DEB = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
DEFAULTS = {
    "VOICE_AGENT_REGISTRY_URL": "",
    "VOICE_AGENT_TOKEN": "",
    "VOICE_AGENT_STORE_URL": "",
    "VOICE_AGENT_PUBLIC_KEY": "/etc/voice-client/publisher.pub",
    "VOICE_AGENT_WINDOW_HOUR": "2",
    "VOICE_AGENT_WINDOW_MINUTE": "0",
    "VOICE_AGENT_WINDOW_MINUTES": "60",
    "VOICE_AGENT_URGENT_IDLE_SECONDS": "3600",
    "VOICE_AGENT_HEALTH_SECONDS": "10",
    "VOICE_AGENT_KEEP_RELEASES": "3",
    "VOICE_AGENT_IMPORT_CHECK": "voice_client",
    "VOICE_AGENT_SELFCHECK_USER": "voice-client",
    "VOICE_AGENT_ENV_FILE": "/etc/voice-client/voice-client.env",
    "VOICE_AGENT_PYTHON": "/usr/bin/python3",
    "VOICE_AGENT_RETRIES": "5",
    "VOICE_AGENT_BACKOFF_SECONDS": "2",
    "VOICE_AGENT_TIMEOUT_SECONDS": "30",
}


class ConfigError(Exception):
    """The agent's settings are unusable (exit 2)."""


class UnreachableError(Exception):
    """The registry or the store did not answer after every retry."""


class RefusedError(Exception):
    """The release failed a check before anything was installed: its step and reason."""

    def __init__(self, step: str, reason: str):
        super().__init__(f'step "{step}" failed: {reason}')
        self.step = step


def log(msg: str) -> None:
    print(f"voice-agent: {msg}", flush=True)


# --- settings and state ----------------------------------------------------------------


def read_config(path: str) -> dict[str, str]:
    values = dict(DEFAULTS)
    try:
        with open(path) as fh:
            for raw in fh:
                line = raw.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _sep, value = line.partition("=")
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                values[key.strip()] = value
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    missing = [k for k in ("VOICE_AGENT_REGISTRY_URL", "VOICE_AGENT_TOKEN") if not values[k]]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}")
    for key in DEFAULTS:
        if key.endswith(("_HOUR", "_MINUTE", "_MINUTES", "_SECONDS", "_RETRIES")):
            try:
                float(values[key])
            except ValueError:
                raise ConfigError(f"{path}: {key}={values[key]!r} is not a number") from None
    keep = values["VOICE_AGENT_KEEP_RELEASES"]
    if not keep.isdigit() or int(keep) < 2:
        raise ConfigError(
            f"{path}: VOICE_AGENT_KEEP_RELEASES={keep!r} is not a whole number >= 2 "
            "(the active and the previous release are always kept)"
        )
    return values


def load_state() -> dict:
    try:
        with open(STATE_FILE) as fh:
            state = json.load(fh)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(state: dict) -> None:
    directory = os.path.dirname(STATE_FILE)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".agent-state.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, STATE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def platform_key() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}"


def active_release() -> tuple[str, dict]:
    """The release `current` points at, and its completion marker ({} when none)."""
    if not os.path.islink(CURRENT):
        return "", {}
    release = os.path.basename(os.readlink(CURRENT))
    try:
        with open(os.path.join(RELEASES, release, ".build-complete")) as fh:
            return release, json.load(fh)
    except (OSError, ValueError):
        return release, {}


def older(version: str, than: str) -> bool:
    """Whether version is lower than `than` (PEP 440, as push decides; unparsable: never older)."""
    if not version or not than:
        return False
    try:
        from packaging.version import InvalidVersion, Version  # noqa: PLC0415 (python3-packaging)
    except ImportError:
        return False
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return False


def now_from(value: str | None) -> float:
    """The clock of the window decision: the real one, or (tests only) the given instant."""
    if not value:
        return time.time()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now/VOICE_AGENT_NOW {value!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise ConfigError(f"--now/VOICE_AGENT_NOW {value!r} has no UTC offset")
    return moment.timestamp()


# --- HTTP --------------------------------------------------------------------------------


class Http:
    """Requests with retries and exponential backoff; counts the bytes it moved."""

    def __init__(self, cfg: dict[str, str]):
        self.retries = max(1, int(float(cfg["VOICE_AGENT_RETRIES"])))
        self.backoff = float(cfg["VOICE_AGENT_BACKOFF_SECONDS"])
        self.timeout = float(cfg["VOICE_AGENT_TIMEOUT_SECONDS"])
        self.bytes_in = 0
        self.bytes_out = 0
        self.requests = 0

    def _retry(self, what: str, call):
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            try:
                return call()
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code not in (408, 429):
                    raise
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = str(getattr(exc, "reason", exc))
            if attempt == self.retries:
                raise UnreachableError(f"{what}: {reason} (tried {self.retries} times)")
            log(f"{what}: {reason}; retry {attempt}/{self.retries - 1} in {delay:.1f}s")
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def open(self, request: urllib.request.Request):
        self.requests += 1
        if request.data:
            self.bytes_out += len(request.data)
        return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 (configured URLs)

    def get(self, url: str, what: str) -> bytes:
        def call() -> bytes:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310 (configured URL)
            with self.open(req) as resp:
                data = resp.read()
            self.bytes_in += len(data)
            return data

        return self._retry(what, call)

    def download(self, url: str, dest: str, size: int, sha256: str, what: str) -> int:
        """dest from url, resumed from dest.part; size and sha256 checked. Returns bytes fetched."""
        part = dest + ".part"
        fetched = 0

        def call() -> None:
            nonlocal fetched
            have = os.path.getsize(part) if os.path.exists(part) else 0
            if have > size:
                os.unlink(part)
                have = 0
            headers = {"User-Agent": USER_AGENT}
            if 0 < have < size:
                headers["Range"] = f"bytes={have}-"
            if have == size:
                return
            req = urllib.request.Request(url, headers=headers)  # noqa: S310 (configured URL)
            with self.open(req) as resp:
                mode = "ab" if resp.status == 206 else "wb"
                with open(part, mode) as out:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        fetched += len(block)
                        self.bytes_in += len(block)
            if os.path.getsize(part) < size:
                raise OSError(f"short read: {os.path.getsize(part)} of {size} bytes")

        self._retry(what, call)
        actual, got = voice_fleet_files.sha256_file(part), os.path.getsize(part)
        if got != size or actual != sha256:
            os.unlink(part)
            raise RefusedError(
                "download",
                f"hash mismatch: {os.path.basename(dest)} from the store has sha256 {actual} ({got} bytes), "
                f"the signed manifest says {sha256} ({size} bytes)",
            )
        os.chmod(part, 0o644)
        os.replace(part, dest)
        return fetched


class Registry:
    """The device's own view of the registry: PostgREST with its device token."""

    def __init__(self, cfg: dict[str, str], http: Http):
        self.base = cfg["VOICE_AGENT_REGISTRY_URL"].rstrip("/") + "/rest/v1"
        self.token = cfg["VOICE_AGENT_TOKEN"]
        self.http = http

    def request(self, method: str, path: str, body=None, prefer: str = "return=representation"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {
            "apikey": self.token,
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Prefer": prefer,
        }

        def call():
            url = f"{self.base}/{path}"
            req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
            try:
                with self.http.open(req) as resp:
                    text = resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code >= 500 or exc.code in (408, 429):
                    raise
                detail = exc.read().decode(errors="replace")[:300]
                raise RefusedError(
                    "registry", f"{method} {path.split('?', maxsplit=1)[0]}: HTTP {exc.code}: {detail}"
                ) from None
            self.http.bytes_in += len(text)
            return json.loads(text) if text else None

        return self.http._retry(f"registry {method} {path.split('?', maxsplit=1)[0]}", call)

    def check_in(self, heartbeat: dict) -> dict:
        return self.request("POST", "rpc/device_check_in", {"p_heartbeat": heartbeat}) or {}

    def progress(self, device_id: str, update_id: str, status: str, error: str | None = None) -> None:
        stamp = datetime.now(UTC).isoformat()
        body: dict = {"status": status, "error_message": error}
        if status in ("downloading", "installing"):
            body.update(started_at=stamp, completed_at=None)
        else:
            body["completed_at"] = stamp
        where = f"device_updates?device_id=eq.{device_id}&update_id=eq.{update_id}"
        rows = self.request("PATCH", where, body)
        if not rows:
            self.request("POST", "device_updates", {"device_id": device_id, "update_id": update_id, **body})


# --- one run -----------------------------------------------------------------------------


class Agent:
    def __init__(self, cfg: dict[str, str], now: float):
        self.cfg = cfg
        self.now = now
        self.http = Http(cfg)
        self.registry = Registry(cfg, self.http)
        self.state = load_state()
        self.platform = platform_key()
        self.active, self.marker = active_release()
        self.device: dict = {}
        self.update: dict = {}

    # -- the decision

    def heartbeat(self, status: str = "online") -> dict:
        meta = {
            "agent_version": AGENT_VERSION,
            "agent_checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "release": self.active,
            "platform": self.platform,
        }
        beat: dict = {"status": status, "metadata": meta}
        if self.marker.get("version"):
            beat["current_version"] = self.marker["version"]
        return beat

    def due(self) -> tuple[bool, str]:
        """Whether the update may be installed now (window or idleness), and why."""
        if self.update.get("update_type") == "urgent":
            need = int(float(self.cfg["VOICE_AGENT_URGENT_IDLE_SECONDS"]))
            idle = idle_seconds(self.cfg["VOICE_AGENT_ENV_FILE"])
            if idle is None or idle >= need:
                return True, f"urgent, device idle ({'never used' if idle is None else f'{idle}s'})"
            return False, f"urgent, waiting for {need}s of idleness (idle {idle}s)"
        zone = self.device.get("timezone") or "UTC"
        window = maintenance_window.maintenance_window(
            zone,
            now=self.now,
            hour=int(float(self.cfg["VOICE_AGENT_WINDOW_HOUR"])),
            minute=int(float(self.cfg["VOICE_AGENT_WINDOW_MINUTE"])),
            duration_minutes=int(float(self.cfg["VOICE_AGENT_WINDOW_MINUTES"])),
        )
        if window["in_window"]:
            return True, f"in the maintenance window ({window['local_start']}, {zone})"
        return False, f"outside the maintenance window: next at {window['local_start']} ({zone})"

    def handled(self) -> bool:
        last = self.state.get("last") or {}
        return (
            last.get("update_id") == self.update.get("id")
            and last.get("package_url") == self.update.get("package_url")
            and last.get("outcome") in ("completed", "unchanged", "rolled_back")
        )

    def remember(self, outcome: str, **extra) -> None:
        self.state["last"] = {
            "update_id": self.update.get("id"),
            "version": self.update.get("version"),
            "package_url": self.update.get("package_url"),
            "outcome": outcome,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **extra,
        }
        save_state(self.state)

    # -- fetch and verify

    def manifest_url(self) -> str:
        url = str(self.update.get("package_url") or "").replace("{platform}", self.platform)
        if urllib.parse.urlparse(url).scheme not in ("", "http", "https"):
            raise RefusedError("manifest", f"package_url {url!r} is not the http(s) URL of a release")
        if not urllib.parse.urlparse(url).scheme:
            store = self.cfg["VOICE_AGENT_STORE_URL"].rstrip("/")
            if not store:
                raise RefusedError(
                    "manifest", f"package_url {url!r} is relative and VOICE_AGENT_STORE_URL is not set"
                )
            url = f"{store}/{url.lstrip('/')}"
        return url

    def fetch_manifest(self) -> tuple[dict, bytes, str]:
        url = self.manifest_url()
        parts = urllib.parse.urlsplit(url)
        sig_url = urllib.parse.urlunsplit(parts._replace(path=parts.path + ".sig"))
        data = self.http.get(url, "manifest")
        signature = self.http.get(sig_url, "manifest signature")
        self.verify_signature(data, signature)
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            raise RefusedError("verify", f"the signed manifest is not JSON: {exc}") from None
        base_url = urllib.parse.urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0] + "/", query=""))
        return manifest, data, base_url

    def verify_signature(self, data: bytes, signature: bytes) -> None:
        path = self.cfg["VOICE_AGENT_PUBLIC_KEY"]
        try:
            with open(path, "rb") as fh:
                pem = fh.read()
            voice_fleet_files.verify_signature(pem, data, signature, key_name=f"key {path}")
        except OSError as exc:
            raise RefusedError("verify", f"publisher key {path}: {exc}") from None
        except voice_fleet_files.SignatureError as exc:
            raise RefusedError("verify", str(exc)) from None

    def check_manifest(self, manifest: dict, data: bytes) -> None:
        """Everything the manifest must say before a byte is installed (signature already checked)."""
        if manifest.get("format") != MANIFEST_FORMAT:
            raise RefusedError(
                "verify", f"manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT}"
            )
        if manifest.get("platform") != self.platform:
            raise RefusedError(
                "verify", f"manifest is for {manifest.get('platform')!r}, this device is {self.platform}"
            )
        if manifest.get("version") != self.update.get("version"):
            raise RefusedError(
                "verify",
                f"manifest names version {manifest.get('version')!r}, "
                f"the update is {self.update.get('version')!r}",
            )
        sequence = manifest.get("sequence")
        last = int(self.state.get("accepted_sequence") or 0)
        same = hashlib.sha256(data).hexdigest() == self.state.get("accepted_manifest_sha256")
        if not isinstance(sequence, int) or sequence < last or (sequence == last and not same):
            raise RefusedError(
                "verify",
                f"replayed manifest: its sequence {sequence!r} is not newer than the accepted {last}",
            )
        if older(str(manifest.get("version")), str(self.marker.get("version") or "")):
            raise RefusedError(
                "verify", f"version {manifest['version']} is older than the running {self.marker['version']}"
            )
        release = str(manifest.get("release_id") or "")
        if not _RELEASE_ID.match(release) or not release.startswith(f"{manifest['version']}-"):
            raise RefusedError("verify", f"release_id {release!r} is not <version>-<digest>")
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise RefusedError("verify", "the manifest lists no files")
        for name, info in files.items():
            ok = isinstance(info, dict) and _WHEEL.match(name) and _SHA256.match(str(info.get("sha256", "")))
            if not ok or not isinstance(info.get("size"), int) or info["size"] < 0:
                raise RefusedError(
                    "verify", f"manifest file entry {name!r} is not a wheel with sha256 and size"
                )
        for package in manifest.get("system_packages") or []:
            if not isinstance(package, str) or not _DEB.match(package):
                raise RefusedError("verify", f"system package {package!r} is not a Debian package name")
        if not isinstance(manifest.get("requirements"), str):
            raise RefusedError("verify", "the manifest has no requirements text")

    def accept(self, manifest: dict, data: bytes) -> None:
        self.state["accepted_sequence"] = manifest["sequence"]
        self.state["accepted_manifest_sha256"] = hashlib.sha256(data).hexdigest()
        self.state["accepted_release"] = manifest["release_id"]
        save_state(self.state)

    # -- download, packages, build, activate

    def download(self, manifest: dict, base_url: str) -> dict:
        wheel_dir = os.path.join(WHEELS, self.platform)
        os.makedirs(wheel_dir, mode=0o755, exist_ok=True)
        stats = {"files": len(manifest["files"]), "fetched": 0, "bytes": 0, "release_bytes": 0}
        for name, info in sorted(manifest["files"].items()):
            stats["release_bytes"] += info["size"]
            dest = os.path.join(wheel_dir, name)
            if (
                os.path.exists(dest)
                and os.path.getsize(dest) == info["size"]
                and voice_fleet_files.sha256_file(dest) == info["sha256"]
            ):
                continue
            stats["bytes"] += self.http.download(
                base_url + urllib.parse.quote(name), dest, info["size"], info["sha256"], f"wheel {name}"
            )
            stats["fetched"] += 1
        return stats

    def system_packages(self, packages: list[str]) -> list[str]:
        missing = []
        for package in packages:
            proc = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
            )
            if "install ok installed" not in proc.stdout:
                missing.append(package)
        if missing:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
                proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
                if proc.returncode != 0:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                    raise RefusedError("system packages", f"{' '.join(argv[:2])} failed: {' '.join(tail)}")
        return missing

    def build(self, manifest: dict) -> dict:
        params = voice_release_build.release_params(manifest, manifest["requirements"], BASE, self.active)
        params["marker"].update(installed_by="voice-agent", manifest_sequence=manifest["sequence"])
        params.update(
            python=self.cfg["VOICE_AGENT_PYTHON"],
            import_check=[m for m in self.cfg["VOICE_AGENT_IMPORT_CHECK"].replace(",", " ").split() if m],
            selfcheck_user=self.cfg["VOICE_AGENT_SELFCHECK_USER"],
            env_file=self.cfg["VOICE_AGENT_ENV_FILE"],
        )
        return voice_release_build.build(params)

    def run(self) -> int:
        """One run: the check-in, the decision, then (when due) the installation."""
        answer = self.registry.check_in(self.heartbeat())
        self.device = answer.get("device") or {}
        self.update = answer.get("update") or {}
        if not self.device:
            raise RefusedError("registry", "the registry returned no row for this device's credential")
        wait = self.nothing_to_do()
        if wait:
            log(f"{wait} ({self.http.requests} request, {self.http.bytes_in + self.http.bytes_out} bytes)")
            return 0
        return self.install()

    def nothing_to_do(self) -> str:
        """Why this run installs nothing ('' when the update is due now)."""
        if not self.update:
            return f"nothing published yet; running {self.active or 'no release'}"
        version = str(self.update.get("version"))
        if self.handled():
            return f"up to date: {version} handled already ({self.state['last']['outcome']})"
        if older(version, str(self.marker.get("version") or "")):
            self.remember("unchanged", reason="older")
            return f"the newest update {version} is older than the running {self.marker['version']}: kept"
        if self.device.get("management") != "pull":
            return "this device is push-managed in the registry: the agent leaves updates to Ansible"
        ok, why = self.due()
        if not ok:
            return f"update {version} waits: {why}"
        log(f"update {version}: {why}")
        return ""

    def install(self) -> int:
        """Fetch, verify, download, build and activate; every stage recorded in device_updates."""
        started = time.monotonic()
        device_id, update_id = self.device["id"], self.update["id"]
        self.registry.progress(device_id, update_id, "downloading")
        try:
            manifest, data, base_url = self.fetch_manifest()
            self.check_manifest(manifest, data)
            if manifest["release_id"] == self.active:
                log(f"release {self.active} is already active")
                self.accept(manifest, data)
                self.registry.progress(device_id, update_id, "completed")
                self.remember("unchanged", release=self.active)
                return 0
            stats = self.download(manifest, base_url)
            self.accept(manifest, data)
            log(
                f"verified {manifest['release_id']} (sequence {manifest['sequence']}); "
                f"fetched {stats['fetched']} of {stats['files']} files, "
                f"{stats['bytes']} of {stats['release_bytes']} bytes"
            )
            self.system_packages(list(manifest.get("system_packages") or []))
        except RefusedError as exc:
            log(f"refused {self.update.get('version')}: {exc}; nothing installed")
            self.registry.progress(device_id, update_id, "failed", str(exc))
            self.remember("failed", step=exc.step)
            return 1
        except UnreachableError as exc:
            log(f"{exc}; nothing installed, the next run tries again")
            with contextlib.suppress(UnreachableError, RefusedError):
                self.registry.progress(device_id, update_id, "failed", f'step "download" failed: {exc}')
            return 1
        self.registry.progress(device_id, update_id, "installing")
        release = manifest["release_id"]
        built = self.build(manifest)
        if built.get("failed"):
            step, status = built.get("step", "build"), "failed"
            error = f'step "{step}" failed: {built.get("error") or built.get("msg")}'
        else:
            health = int(float(self.cfg["VOICE_AGENT_HEALTH_SECONDS"]))
            keep = int(self.cfg["VOICE_AGENT_KEEP_RELEASES"])
            result = voice_release_activate.activate(
                {"release": release, "health_seconds": health, "keep": keep}
            )
            outcome = result.get("outcome", "failed")
            self.active, self.marker = active_release()
            if outcome in ("activated", "unchanged") and not result.get("failed"):
                self.registry.progress(device_id, update_id, "completed")
                self.remember("completed", release=release)
                self.registry.check_in(self.heartbeat())
                log(
                    f"{release} is active ({time.monotonic() - started:.1f}s, {self.http.requests} requests, "
                    f"{self.http.bytes_in + self.http.bytes_out} bytes)"
                )
                return 0
            step, status = (
                result.get("step") or "gate",
                "rolled_back" if outcome == "rolled_back" else "failed",
            )
            error = f'step "{step}" failed: {result.get("error") or result.get("msg")}'
        self.registry.progress(device_id, update_id, status, error)
        self.remember(status, step=step, release=release)
        self.registry.check_in(self.heartbeat())
        log(f"{release}: {status}: {error}; running {self.active or 'nothing'}")
        return 1


def idle_seconds(env_file: str) -> int | None:
    """idle_seconds from `voice-client status --json` (None: never used, or no client yet).

    The client reads its settings from `env_file` (as its service does): without them it
    refuses to answer, and a device that cannot tell counts as busy (0), with the reason logged.
    """
    if not os.path.exists(STATUS_COMMAND[0]):
        return None
    command = [*STATUS_COMMAND, "--env-file", env_file]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    try:
        status = json.loads(proc.stdout)
    except ValueError:
        reason = (proc.stderr or proc.stdout or f"exit {proc.returncode}").strip().splitlines()
        log(f"cannot tell whether the device is idle ({' '.join(command)}: {' '.join(reason[:2])}): waiting")
        return 0
    if status.get("busy"):
        return 0
    value = status.get("idle_seconds")
    return int(value) if value is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=CONFIG_FILE)
    parser.add_argument(
        "--now", help="TEST ONLY: the instant the window decision uses (ISO 8601 with offset)"
    )
    args = parser.parse_args(argv)
    try:
        cfg = read_config(args.config)
        now = now_from(args.now or os.environ.get("VOICE_AGENT_NOW"))
    except ConfigError as exc:
        log(str(exc))
        return 2
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log("another run is in progress")
            return 0
        agent = Agent(cfg, now)
        try:
            return agent.run()
        except UnreachableError as exc:
            log(f"{exc}; the next run tries again")
            return 1
        except RefusedError as exc:
            log(str(exc))
            return 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
