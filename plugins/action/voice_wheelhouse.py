"""Build the wheelhouse of a voice-client release on the controller, once per platform.

Runs in the controller's own process (an action plugin: no module is sent
anywhere). For each target platform (CPU architecture + CPython version + glibc
of the devices in the play) it:

1. reads the device lock (``requirements.lock``: exact versions, hashes,
   environment markers) and keeps the requirements whose markers hold on that
   platform (pip evaluates markers against the controller, which is wrong for
   an aarch64 device served from an x86_64 controller);
2. picks, from the package index's file list (PEP 691 JSON), the best wheel for
   the platform's tags whose sha256 is one the lock allows, and downloads it;
   a requirement without such a wheel gets its sdist instead (hash-checked too);
3. builds every sdist on the controller: a pure-Python result serves every
   platform; a native one serves this platform when the controller matches it
   (same architecture and Python, glibc no newer than the device's), otherwise
   the sdist is listed under ``needs_build`` so that the role builds it once on
   one device of that architecture and brings the wheel back into ``built/``;
4. builds the voice-client wheel from its source (reproducibly), and writes the
   release's requirements file: one line per wheel with the sha256 of the very
   file the devices receive, for ``pip install --no-index --require-hashes``.

With ``tools_lock`` (a hashed lock of installer tools: uv) it also picks, per
platform, the wheel of each tool whose sha256 that lock allows, downloads it and
writes a requirements file pinning that very file, under ``tools`` in the
platform's result. Tools come as wheels only: a platform without one is an
error that names it.

Everything is cached under ``cache_dir`` by content: a second run for the same
lock, platform and client source downloads and builds nothing. Call it again
after remote builds: it then completes the platform.

Arguments: lock, source, platforms (list of {arch, python, glibc}), cache_dir,
index_url (default: PIP_INDEX_URL, else https://pypi.org/simple), tools_lock
(optional), published (optional: {url, public_key_file, version}: the source is a
release published with tools/publish.py, fetched and verified first; lock and
source then come from it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ansible.plugins.action import ActionBase
from ansible_collections.javia.voice_fleet.plugins.module_utils import voice_fleet_files

try:  # the controller's requirements.txt has it; a controller without it is told at run time
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.tags import Tag, compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    from packaging.version import Version

    PACKAGING_ERROR = ""
except ImportError as exc:  # pragma: no cover - ansible-test's import check runs without it
    PACKAGING_ERROR = f"the Python package 'packaging' is missing on the controller ({exc}): make setup"

DEFAULT_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SUPPORTED_ARCHES = ("x86_64", "aarch64", "armv7l")
# Fixed zip timestamps make the client wheel byte-identical for identical source.
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the oldest date a zip can hold
SKIP_SOURCE_PARTS = {"build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}


class WheelhouseError(Exception):
    """A failure the operator can act on."""


# --- the lock -------------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    name: str  # canonical
    version: str
    hashes: frozenset[str]
    marker: str | None

    def applies(self, environment: dict[str, str]) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(environment)

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


_HASH = re.compile(r"--hash[=\s]sha256:([0-9a-f]{64})")


def parse_lock(text: str, source: str = "requirements.lock") -> list[Locked]:
    """Parse a hashed pip requirements file (as uv/pip-compile write it)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if not current:
                continue
            line = ""
        continued = line.endswith("\\")
        current += " " + line.rstrip("\\").strip()
        if not continued:
            if current.strip():
                logical.append(current.strip())
            current = ""
    if current.strip():
        logical.append(current.strip())

    result = []
    for entry in logical:
        hashes = frozenset(_HASH.findall(entry))
        spec = _HASH.sub("", entry).strip()
        if spec.startswith("-"):
            raise WheelhouseError(f"{source}: options are not supported in the device lock: {spec!r}")
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise WheelhouseError(f"{source}: cannot parse requirement {spec!r}: {exc}") from None
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) != 1 or len(req.specifier) != 1:
            raise WheelhouseError(f"{source}: {spec!r} is not pinned with == (lock it again)")
        if not hashes:
            raise WheelhouseError(f"{source}: {req.name} has no --hash (the lock must be hashed)")
        result.append(
            Locked(
                canonicalize_name(req.name), pins[0].version, hashes, str(req.marker) if req.marker else None
            )
        )
    return result


# --- platforms --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    arch: str
    python: str  # "3.11"
    glibc: str  # "2.36"

    @classmethod
    def from_arg(cls, value: object) -> Target:
        if not isinstance(value, dict):
            raise WheelhouseError(
                f"platforms: each entry must be a mapping with arch, python, glibc; got {value!r}"
            )
        arch = str(value.get("arch", ""))
        python = str(value.get("python", ""))
        glibc = str(value.get("glibc", ""))
        if arch not in SUPPORTED_ARCHES:
            raise WheelhouseError(
                f"platform arch {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHES)}"
            )
        if not re.fullmatch(r"3\.\d{1,2}", python):
            raise WheelhouseError(f"platform python {python!r} must look like 3.11")
        if not re.fullmatch(r"2\.\d{1,2}", glibc):
            raise WheelhouseError(f"platform glibc {glibc!r} must look like 2.36")
        return cls(arch, python, glibc)

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def key(self) -> str:
        return f"{self.abi}-{self.arch}"

    def marker_environment(self) -> dict[str, str]:
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{self.python}.0",
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{self.python}.0",
            "python_version": self.python,
            "sys_platform": "linux",
            "extra": "",
        }

    def tags(self) -> list[Tag]:
        """The wheel tags this platform runs, most preferred first (as pip orders them)."""
        major, minor = (int(x) for x in self.glibc.split("."))
        platforms = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 16, -1)]
        platforms.append(f"manylinux2014_{self.arch}")
        if self.arch == "x86_64":
            platforms += [f"manylinux_2_{m}_x86_64" for m in (12, 5)]
            platforms += ["manylinux2010_x86_64", "manylinux1_x86_64"]
        if self.arch == "armv7l":
            # PyPI accepts plain linux_armv7l wheels (for Raspberry Pi OS), e.g. lgpio's.
            platforms.append("linux_armv7l")
        version = tuple(int(x) for x in self.python.split("."))
        return [
            *cpython_tags(version, abis=[self.abi], platforms=platforms),
            *compatible_tags(version, self.abi, platforms),
        ]

    def runs_natively_built(self) -> bool:
        """Can a wheel compiled on this controller run on this platform?"""
        here_glibc = platform.libc_ver()[1] or "0.0"
        return (
            platform.machine() == self.arch
            and f"{sys.version_info.major}.{sys.version_info.minor}" == self.python
            and Version(here_glibc) <= Version(self.glibc)
        )


def wheel_rank(filename: str, preferred: dict[Tag, int]) -> int | None:
    """Index of the wheel's best tag in the platform's preference list, None if it cannot run."""
    tags = parse_wheel_filename(filename)[3]
    ranks = [preferred[t] for t in tags if t in preferred]
    return min(ranks) if ranks else None


def is_pure(wheel_filename: str) -> bool:
    tags = parse_wheel_filename(wheel_filename)[3]
    return all(t.platform == "any" and t.abi == "none" for t in tags)


# --- the index --------------------------------------------------------------


def ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        bundle = os.environ.get(var)
        if bundle and Path(bundle).is_file():
            context.load_verify_locations(cafile=bundle)
    return context


@dataclass
class Index:
    url: str
    context: ssl.SSLContext = field(default_factory=ssl_context)

    def files(self, name: str) -> list[dict]:
        page = f"{self.url.rstrip('/')}/{name}/"
        if not page.startswith(("https://", "http://127.0.0.1")):
            raise WheelhouseError(f"the package index must be https:// (or a loopback mirror), got {page}")
        request = urllib.request.Request(page, headers={"Accept": SIMPLE_JSON})  # noqa: S310 (checked above)
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as response:  # noqa: S310
                document = json.load(response)
        except OSError as exc:
            raise WheelhouseError(f"cannot list {name} on the package index {page}: {exc}") from None
        return document.get("files", [])

    def download(self, url: str, sha256: str, dest: Path) -> None:
        absolute = urllib.parse.urljoin(self.url.rstrip("/") + "/", url)
        if urllib.parse.urlparse(absolute).scheme != "https" and not absolute.startswith("http://127.0.0.1"):
            raise WheelhouseError(f"refusing to download over plain http: {absolute}")
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(absolute, timeout=300, context=self.context) as response,  # noqa: S310
            ):
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != sha256:
                raise WheelhouseError(
                    f"{dest.name}: downloaded sha256 {digest.hexdigest()} does not match the lock's {sha256}"
                )
            Path(tmp).replace(dest)
        except OSError as exc:
            raise WheelhouseError(f"cannot download {absolute}: {exc}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)


# --- the cache --------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def link_or_copy(src: Path, dest: Path) -> None:
    if dest.exists():
        return
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    tmp.replace(dest)


# What a build of third-party code (an sdist's build backend, run by pip) may
# see of the controller's environment: how to reach the package index and build,
# never the registry's keys or anything else the controller holds.
BUILD_ENV_NAMES = frozenset(
    (
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "TERM",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        "CC", "CXX", "CFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS", "PKG_CONFIG_PATH",
        "VIRTUAL_ENV", "XDG_CACHE_HOME",
    )
)  # fmt: skip
BUILD_ENV_PREFIXES = ("LC_", "PIP_")


def build_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The controller's environment scrubbed down to what pip and a build backend need."""
    source = os.environ if environ is None else environ
    kept = {k: v for k, v in source.items() if k in BUILD_ENV_NAMES or k.startswith(BUILD_ENV_PREFIXES)}
    return {**kept, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run_pip_wheel(target: str, out_dir: Path, what: str) -> Path:
    """Build one wheel with the controller's pip, in a scrubbed environment; return its path."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        env = build_environment()
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", tmp, target],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise WheelhouseError(f"building {what} on the controller failed:\n{tail}")
        (built,) = Path(tmp).glob("*.whl")
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / built.name
        built.replace(dest)
        return dest


# Builds a wheel with the build backend of the controller's own venv, in a child
# process run in the source tree: argv[1] is the backend's module, argv[2] the
# directory the wheel goes to. The file name is printed.
_BACKEND_BUILD = "import importlib, sys; print(importlib.import_module(sys.argv[1]).build_wheel(sys.argv[2]))"
# Backends the controller's venv carries, by module, with the distribution to check.
_VENV_BACKENDS = {"setuptools.build_meta": "setuptools"}


def venv_backend(source: Path) -> str | None:
    """The source's build backend when the controller's venv already satisfies its build requires.

    The client's own backend (setuptools, locked in requirements.txt) then builds
    it without pip's isolated build environment, which would install the
    backend afresh from the index for every new client source: a few seconds of
    CPU per rollout of a new source. Any other backend, or a requirement the
    venv does not meet, is left to pip (None).
    """
    try:
        system = tomllib.loads((source / "pyproject.toml").read_text()).get("build-system") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return None
    backend = system.get("build-backend")
    if backend not in _VENV_BACKENDS or system.get("backend-path"):
        return None
    for text in system.get("requires") or []:
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            return None
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return None
        if canonicalize_name(req.name) != canonicalize_name(_VENV_BACKENDS[backend]) or not (
            req.specifier.contains(installed, prereleases=True)
        ):
            return None
    return backend


def build_client(source: Path, out_dir: Path, what: str) -> Path:
    """Build the client's wheel: with the venv's backend where it fits, else with pip."""
    backend = venv_backend(source)
    if backend is None:
        return run_pip_wheel(str(source), out_dir, what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", _BACKEND_BUILD, backend, tmp],
            cwd=source,
            capture_output=True,
            text=True,
            env=build_environment(),
            check=False,
        )
        built = Path(tmp) / (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode != 0 or not built.name.endswith(".whl") or not built.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise WheelhouseError(f"building {what} on the controller ({backend}) failed:\n{tail}")
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / built.name
        built.replace(dest)
        return dest


def _is_debris(rel: Path) -> bool:
    return bool(SKIP_SOURCE_PARTS & set(rel.parts)) or any(part.endswith(".egg-info") for part in rel.parts)


def _ignore_debris(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_SOURCE_PARTS or n.endswith(".egg-info")}


def release_id_of(version: str, client_digest: str, lock_hash: str, platform_key: str) -> str:
    """<version>-<12 hex>: a release is its content (client source, lock, Python and platform).

    A changed client under an unchanged version string is a new release.
    """
    content = f"{client_digest}:{lock_hash}:{platform_key}"
    return f"{version}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def client_version(source: Path) -> str:
    """The version in the client's pyproject.toml, checked to name a directory."""
    pyproject = source / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise WheelhouseError(f"cannot read the client's version from {pyproject}: {exc}") from None
    version = str(project.get("version", ""))
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+_-]*", version):
        raise WheelhouseError(f"{pyproject}: version {version!r} cannot name a release directory")
    return version


def plan_releases(lock: Path, source: Path, targets: list) -> dict:
    """The release id of every platform, without downloading or building anything."""
    version, digest, lock_hash = client_version(source), source_digest(source), sha256_file(lock)
    return {
        t.key: {
            "platform": t.key,
            "release_id": release_id_of(version, digest, lock_hash, t.key),
            "version": version,
            "client_source_sha256": digest,
            "lock_sha256": lock_hash,
        }
        for t in targets
    }


def source_files(source: Path) -> list[tuple[Path, Path]]:
    """(relative path, path) of the client's source files, sorted, build debris left out."""
    found = ((p.relative_to(source), p) for p in source.rglob("*") if p.is_file())
    return sorted((rel, path) for rel, path in found if not _is_debris(rel))


def source_digest(source: Path) -> str:
    """sha256 over the client's source files (names and contents): what a release's id covers."""
    digest = hashlib.sha256()
    for rel, path in source_files(source):
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# --- a published source (tools/publish.py), for a push controller -------------

PUBLISHED_SOURCE = "source"  # the store's "platform" directory of the client's source
SOURCE_ARCHIVE = "voice_client.tar"
MANIFEST_LIMIT = 1 << 20


def published_source_url(package_url: str) -> str:
    """The source manifest's URL of an `updates` row published by tools/publish.py."""
    url = package_url.replace("{platform}", PUBLISHED_SOURCE)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https") or "/source/" not in url:
        raise WheelhouseError(f"package_url {package_url!r} is not the URL of a published release manifest")
    return url


def _fetch(url: str, limit: int, context: ssl.SSLContext | None, what: str, tries: int = 3) -> bytes:
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=60, context=context) as response:  # noqa: S310 (signed)
                data = response.read(limit + 1)
            if len(data) > limit:
                raise WheelhouseError(f"{what} at {url} is larger than {limit} bytes")
            return data
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == tries - 1:
                raise WheelhouseError(f"cannot fetch {what} {url}: HTTP {exc.code}") from None
        except OSError as exc:
            if attempt == tries - 1:
                raise WheelhouseError(f"cannot fetch {what} {url}: {exc}") from None
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def fetch_published_source(package_url: str, public_key: Path, cache: Path, version: str = "") -> Path:
    """The client source a published release was built from, verified, as a snapshot in `cache`.

    The source manifest's ed25519 signature is checked against the publisher's public key,
    then the archive's sha256 and size, then the extracted tree's digest against the signed
    one: <cache>/sources/sha256-<digest>/voice_client, the snapshot a path source becomes.
    """
    url = published_source_url(package_url)
    context = ssl_context() if url.startswith("https://") else None
    parts = urllib.parse.urlsplit(url)
    data = _fetch(url, MANIFEST_LIMIT, context, "the source manifest")
    signature = _fetch(
        urllib.parse.urlunsplit(parts._replace(path=parts.path + ".sig")), 4096, context, "its signature"
    )
    files = voice_fleet_files
    try:
        pem = public_key.read_bytes()
    except OSError as exc:
        raise WheelhouseError(f"publisher public key {public_key}: {exc}") from None
    try:
        files.verify_signature(pem, data, signature, key_name=f"key {public_key}")
    except files.SignatureError as exc:
        raise WheelhouseError(f"{url}: {exc}") from None
    try:
        manifest = json.loads(data)
        digest, entry = str(manifest["client_source_sha256"]), manifest["files"][SOURCE_ARCHIVE]
        size, sha256 = int(entry["size"]), str(entry["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WheelhouseError(f"{url}: not a source manifest ({type(exc).__name__}: {exc})") from None
    if manifest.get("kind") != PUBLISHED_SOURCE or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise WheelhouseError(f"{url}: not a source manifest (kind {manifest.get('kind')!r})")
    if version and manifest.get("version") != version:
        raise WheelhouseError(
            f"{url}: the signed manifest is version {manifest.get('version')!r}, not {version}"
        )
    snapshot = cache / "sources" / f"sha256-{digest}"
    if (snapshot / "voice_client" / "pyproject.toml").is_file():
        return snapshot / "voice_client"
    base = urllib.parse.urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0] + "/", query=""))
    archive = _fetch(base + SOURCE_ARCHIVE, size, context, "the source archive")
    if len(archive) != size or hashlib.sha256(archive).hexdigest() != sha256:
        raise WheelhouseError(f"{base}{SOURCE_ARCHIVE}: its size or sha256 is not the signed manifest's")
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=snapshot.parent, prefix=".fetch-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            names = tar.getnames()
            if not names or any(n != "voice_client" and not n.startswith("voice_client/") for n in names):
                raise WheelhouseError(f"{base}{SOURCE_ARCHIVE} holds more than voice_client/")
            tar.extractall(tmp, filter="data")
        got = source_digest(Path(tmp) / "voice_client")
        if got != digest:
            raise WheelhouseError(
                f"{base}{SOURCE_ARCHIVE}: its files digest to {got}, not the signed {digest}"
            )
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(tmp, snapshot)  # another run may have made it meanwhile: the same content
    if not (snapshot / "voice_client" / "pyproject.toml").is_file():
        raise WheelhouseError(f"{snapshot} could not be written")
    return snapshot / "voice_client"


@dataclass
class Wheelhouse:
    cache: Path
    index: Index
    check_mode: bool = False
    changed: bool = False

    @contextlib.contextmanager
    def locked(self):
        self.cache.mkdir(parents=True, exist_ok=True)
        with (self.cache / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # -- downloads, shared by every platform, addressed by sha256

    def fetch(self, jobs: list[tuple[str, str, str]]) -> dict[str, Path]:
        """Download (filename, url, sha256) jobs missing from the cache; map sha256 to path."""
        paths = {}
        todo = []
        for filename, url, sha in jobs:
            dest = self.cache / "downloads" / sha / filename
            paths[sha] = dest
            if not dest.exists():
                todo.append((url, sha, dest))
        if todo:
            self.changed = True  # in check mode: would download
            if not self.check_mode:
                for job in todo:
                    job[2].parent.mkdir(parents=True, exist_ok=True)
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(lambda job: self.index.download(*job), todo))
        return paths

    def choose_files(self, wanted: list[Locked], target: Target) -> dict[str, dict]:
        """For each requirement, the index file to use on this platform (wheel or sdist)."""
        preferred = {tag: i for i, tag in enumerate(target.tags())}
        with ThreadPoolExecutor(max_workers=8) as pool:
            names = [r.name for r in wanted]
            listings = dict(zip(names, pool.map(self.index.files, names), strict=True))
        chosen = {}
        for req in wanted:
            best: tuple[int, dict] | None = None
            sdist = None
            for entry in listings[req.name]:
                sha = entry.get("hashes", {}).get("sha256")
                if sha not in req.hashes:
                    continue
                filename = entry["filename"]
                if filename.endswith(".whl"):
                    version = parse_wheel_filename(filename)[1]
                    rank = wheel_rank(filename, preferred)
                    if (
                        rank is not None
                        and version == Version(req.version)
                        and (best is None or rank < best[0])
                    ):
                        best = (rank, entry)
                elif filename.endswith((".tar.gz", ".zip")):
                    version = parse_sdist_filename(filename)[1]
                    if version == Version(req.version):
                        sdist = entry
            picked = best[1] if best else sdist
            if picked is None:
                raise WheelhouseError(
                    f"{req.pin}: the index has no file for {target.key} whose sha256 the lock allows "
                    "(lock it again, or check the index URL)"
                )
            chosen[req.name] = picked
        return chosen

    # -- builds on the controller

    def build_sdist(self, sdist: Path, target: Target, req: Locked) -> Path | None:
        """The wheel built here from sdist if it serves target, else None (build it on a device)."""
        built_dir = self.cache / "built" / sha256_file(sdist)
        existing = sorted(built_dir.glob("*.whl")) if built_dir.exists() else []
        if not existing:
            self.changed = True  # in check mode: would build
            if self.check_mode:
                return None
            existing = [run_pip_wheel(str(sdist), built_dir, f"{req.pin} from its sdist")]
        wheel = existing[0]
        if is_pure(wheel.name) or target.runs_natively_built():
            return wheel
        return None

    def client_wheel(self, source: Path) -> tuple[str, Path | None, str]:
        """(version, wheel path or None in check mode, source digest) of the voice client."""
        version = client_version(source)
        digest = source_digest(source)
        out = self.cache / "client" / f"{version}-{digest[:16]}"
        wheels = sorted(out.glob("*.whl")) if out.exists() else []
        if not wheels:
            self.changed = True  # in check mode: would build
            if not self.check_mode:
                # Build from a clean copy: setuptools leaves build/ and *.egg-info in the tree it builds.
                out.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                    copy = Path(tmp) / "src"
                    shutil.copytree(source, copy, ignore=_ignore_debris)
                    wheels = [build_client(copy, out, f"the voice client from {source}")]
        return version, (wheels[0] if wheels else None), digest

    # -- one platform

    def prepare(self, lock_path: Path, reqs: list[Locked], target: Target, client: tuple) -> dict:
        version, client_wheel, client_digest = client
        lock_hash = sha256_file(lock_path)
        release_id = release_id_of(version, client_digest, lock_hash, target.key)
        base = self.cache / "platforms" / target.key / lock_hash[:16]
        wheel_dir = base / "wheels"
        built_dir = base / "built"
        sdist_dir = base / "sdists"
        wanted = [r for r in reqs if r.applies(target.marker_environment())]
        deps_manifest = base / "deps.txt"

        needs_build: list[dict] = []
        if not deps_manifest.exists():
            chosen = self.choose_files(wanted, target)
            paths = self.fetch([(e["filename"], e["url"], e["hashes"]["sha256"]) for e in chosen.values()])
            lines = []
            for req in wanted:
                entry = chosen[req.name]
                path = paths[entry["hashes"]["sha256"]]
                if not path.exists():  # check mode, nothing downloaded yet
                    continue
                wheel = path if entry["filename"].endswith(".whl") else None
                if wheel is None:
                    wheel = self.build_sdist(path, target, req)
                    if wheel is None:
                        remote = self._remote_built(built_dir, req)
                        if remote is None:
                            needs_build.append(self._build_job(path, sdist_dir, req))
                            continue
                        wheel = remote
                if not self.check_mode:
                    wheel_dir.mkdir(parents=True, exist_ok=True)
                    link_or_copy(wheel, wheel_dir / wheel.name)
                lines.append(f"{req.pin} --hash=sha256:{sha256_file(wheel)}")
            complete = not needs_build and not (self.check_mode and len(lines) < len(wanted))
            if complete and not self.check_mode:
                deps_manifest.write_text("\n".join(lines) + "\n")
                self.changed = True
        complete = deps_manifest.exists()

        result = {
            "platform": target.key,
            "arch": target.arch,
            "python": target.python,
            "release_id": release_id,
            "version": version,
            "lock_sha256": lock_hash,
            "client_source_sha256": client_digest,
            "wheel_dir": str(wheel_dir),
            "needs_build": needs_build,
            "complete": complete and client_wheel is not None,
        }
        if result["complete"]:
            client_sha = sha256_file(client_wheel)
            requirements = self.cache / "releases" / release_id / "requirements.txt"
            text = (
                f"# voice-client release {release_id} for {target.key}; written by voice_wheelhouse.\n"
                f"# lock sha256 {lock_hash}; client source sha256 {client_digest}\n"
                + deps_manifest.read_text()
                + f"voice-client=={version} --hash=sha256:{client_sha}\n"
            )
            if not requirements.exists() or requirements.read_text() != text:
                requirements.parent.mkdir(parents=True, exist_ok=True)
                requirements.write_text(text)
                self.changed = True
            # Every file the device needs, with the hash it must have. The
            # client wheel keeps its own folder: its file name stays the same
            # when its source changes without a version bump.
            files = {
                p.name: {"path": str(p), "sha256": sha256_file(p)} for p in sorted(wheel_dir.glob("*.whl"))
            }
            files[client_wheel.name] = {"path": str(client_wheel), "sha256": client_sha}
            names = [line.split("==")[0] for line in text.splitlines() if line and not line.startswith("#")]
            result.update(
                requirements=str(requirements),
                client_wheel=client_wheel.name,
                client_sha256=client_sha,
                files=files,
                packages=names,
            )
        return result

    def tools(self, lock_path: Path, target: Target) -> dict:
        """The installer tools of one platform (wheels only), pinned to the files chosen for it."""
        lock_hash = sha256_file(lock_path)
        base = self.cache / "tools" / target.key / lock_hash[:16]
        manifest = base / "files.json"
        reqs = [
            r
            for r in parse_lock(lock_path.read_text(), str(lock_path))
            if r.applies(target.marker_environment())
        ]
        if not reqs:
            raise WheelhouseError(f"{lock_path}: no tool applies to {target.key}")
        # {name: [filename, sha256]} of the files chosen before: no index request on a re-run.
        chosen = json.loads(manifest.read_text()) if manifest.exists() else {}
        paths = {name: self.cache / "downloads" / sha / filename for name, (filename, sha) in chosen.items()}
        if set(chosen) != {r.name for r in reqs} or not all(p.exists() for p in paths.values()):
            entries = self.choose_files(reqs, target)
            for req in reqs:
                if not entries[req.name]["filename"].endswith(".whl"):
                    raise WheelhouseError(
                        f"{req.pin} has no wheel for {target.key} on the index (only its sdist); "
                        "install with voice_release_installer: pip on this platform"
                    )
            chosen = {n: [e["filename"], e["hashes"]["sha256"]] for n, e in entries.items()}
            fetched = self.fetch([(e["filename"], e["url"], e["hashes"]["sha256"]) for e in entries.values()])
            paths = {name: fetched[pick[1]] for name, pick in chosen.items()}
            if all(p.exists() for p in paths.values()):
                base.mkdir(parents=True, exist_ok=True)
                (base / "requirements.txt").write_text(
                    f"# installer tools for {target.key}; written by voice_wheelhouse from {lock_path.name}\n"
                    + "".join(f"{r.pin} --hash=sha256:{chosen[r.name][1]}\n" for r in reqs)
                )
                manifest.write_text(json.dumps(chosen, indent=2, sort_keys=True) + "\n")
                self.changed = True
        first = reqs[0]
        return {
            # Names the tools' directory on the device: another file gets another directory.
            "id": f"{first.name}-{first.version}-{chosen[first.name][1][:12]}",
            "complete": manifest.exists() and all(p.exists() for p in paths.values()),
            "requirements": str(base / "requirements.txt"),
            "files": {
                filename: {"path": str(paths[name]), "sha256": sha}
                for name, (filename, sha) in chosen.items()
            },
        }

    @staticmethod
    def _remote_built(built_dir: Path, req: Locked) -> Path | None:
        if not built_dir.exists():
            return None
        for wheel in built_dir.glob("*.whl"):
            name, version = parse_wheel_filename(wheel.name)[:2]
            if name == req.name and version == Version(req.version):
                return wheel
        return None

    def _build_job(self, sdist: Path, sdist_dir: Path, req: Locked) -> dict:
        if not self.check_mode:
            sdist_dir.mkdir(parents=True, exist_ok=True)
            link_or_copy(sdist, sdist_dir / sdist.name)
        return {
            "name": req.name,
            "version": req.version,
            "sdist": str(sdist_dir / sdist.name),
            "sdist_filename": sdist.name,
            "built_dir": str(sdist_dir.parent / "built"),
        }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        ("lock", "source", "platforms", "cache_dir", "index_url", "tools_lock", "plan_only", "published")
    )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        if PACKAGING_ERROR:
            return {**result, "failed": True, "msg": f"wheelhouse: {PACKAGING_ERROR}"}
        try:
            published = args.get("published") or {}
            if published:
                # A row's published release: its signed source becomes this run's source snapshot.
                source = fetch_published_source(
                    str(published.get("url") or ""),
                    Path(str(published.get("public_key_file") or "")).expanduser(),
                    Path(str(args.get("cache_dir") or "")).expanduser(),
                    str(published.get("version") or ""),
                )
                args = {**args, "source": str(source), "lock": str(source / "requirements.lock")}
            required = ("lock", "source", "cache_dir") + (() if args.get("plan_only") else ("platforms",))
            missing = [k for k in required if not args.get(k)]
            if missing:
                raise WheelhouseError(f"missing arguments: {', '.join(missing)}")
            lock = Path(str(args["lock"])).expanduser()
            source = Path(str(args["source"])).expanduser()
            if not lock.is_file():
                raise WheelhouseError(f"device lock {lock} does not exist")
            if not (source / "pyproject.toml").is_file():
                raise WheelhouseError(f"{source} is not the voice client's source (no pyproject.toml)")
            targets = sorted({Target.from_arg(p) for p in args.get("platforms") or []}, key=lambda t: t.key)
            if args.get("plan_only"):
                # Only the release ids: what a device must run, known before anything is fetched.
                result["changed"] = False
                result["source"] = str(source)
                result["version"] = client_version(source)
                result["source_sha256"] = source_digest(source)
                result["platforms"] = plan_releases(lock, source, targets)
                return result
            index_url = str(args.get("index_url") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX)
            house = Wheelhouse(
                Path(str(args["cache_dir"])).expanduser(), Index(index_url), self._task.check_mode
            )
            tools_lock = Path(str(args["tools_lock"])).expanduser() if args.get("tools_lock") else None
            if tools_lock is not None and not tools_lock.is_file():
                raise WheelhouseError(f"tools lock {tools_lock} does not exist")
            reqs = parse_lock(lock.read_text(), str(lock))
            with house.locked():
                client = house.client_wheel(source)
                platforms = {t.key: house.prepare(lock, reqs, t, client) for t in targets}
                if tools_lock is not None:
                    for target in targets:
                        tools = house.tools(tools_lock, target)
                        platforms[target.key]["tools"] = tools
                        platforms[target.key]["complete"] &= tools["complete"]
        except WheelhouseError as exc:
            # A failed result, not an exception: a task's failed_when must see it (the hourly
            # play checks every published row and skips the ones that fail, with the reason).
            result.update(failed=True, changed=False, msg=f"wheelhouse: {exc}")
            return result
        result["changed"] = house.changed
        result["platforms"] = platforms
        result["complete"] = all(p["complete"] for p in platforms.values())
        return result
