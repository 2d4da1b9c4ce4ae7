#!/usr/bin/python
"""Build one release of the voice client on the device, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: voice_release_build
short_description: Build one voice-client release (venv + hash-checked wheels) on the device
description:
  - Builds C(<release_dir>/venv) from the device's wheel cache only, in one run, and writes the
    completion marker C(<release_dir>/.build-complete) last (temp file, fsync, rename, fsync of
    the directory).
  - Optionally unpacks a tar of wheels the device lacked into the wheel cache first, only plain
    files named C(*.whl) without path components that are listed in O(wheels); each is
    hash-checked before it is renamed into place.
  - Every wheel named in O(wheels) is checked against its sha256 (with a cache keyed by name,
    size, mtime_ns, ctime_ns and inode, so unchanged files are not re-read on every build).
  - Distributions whose wheel file and sha256 equal the previous release's are hard-linked
    (copied across file systems) from the previous venv; their console scripts are written
    anew for the new venv, and the bytecode a previous build compiled for them comes along.
    pip, run by the new venv's interpreter from its wheel file (or from the copy of it that
    O(tools_dir) keeps), installs the rest with
    C(--no-index --no-deps --no-compile --require-hashes --only-binary=:all:).
  - Then, in one run of the new venv's interpreter as O(selfcheck_user) (so that pip, numpy and
    the rest start once), what C(pip check) checks (every requirement of every installed
    distribution, its markers evaluated, is installed at a version it accepts; with pip's
    vendored C(packaging), pip itself does not run), an import of every module of
    O(import_check), and the client's C(self-check) through its console script.
  - Then, as root, the bytecode of every module of the client and of the venv's modules that
    run imported (not every module of every wheel; numpy's tests are never compiled).
  - A failure names the step, removes the partial release
    (never O(previous_release_dir)) and leaves no marker.
  - Idempotent, a release whose marker names it is not touched (changed=false).
options:
  release_dir:
    description:
      - The release's directory; its basename is the release id.
      - Required unless O(build=false).
    type: path
  wheel_dir:
    description:
      - The device's wheel cache for its platform (created 0755 when missing).
      - Required unless O(build=false).
    type: path
  requirements:
    description:
      - Text of the release's hashed requirements file, written to C(<release_dir>/requirements.txt).
      - One requirement per logical line (C(name==version --hash=sha256:<hex>), or a wheel file
        name/path with its hash); comments and C(\) continuations are allowed.
      - Required unless O(build=false).
    type: str
  wheels:
    description:
      - Wheel file name to sha256 of every wheel this release needs.
      - Required unless O(build=false).
    type: dict
  incoming:
    description: A tar file of wheels to add to O(wheel_dir); deleted once read.
    type: path
  send:
    description:
      - Controller side (the action plugin of the same name). Wheel file name to its path on the
        controller, for the wheels the device lacks. They are packed into one tar under O(pack_dir)
        and put on the device by this task, as O(incoming). Not with O(incoming).
    type: dict
  pack_dir:
    description: Controller side, with O(send) - where the controller keeps the packed tars.
    type: path
  activate:
    description:
      - Controller side (the action plugin). The options of M(javia.voice_fleet.voice_release_activate).
        Once the build succeeded, the same task activates the release behind the health gate and
        returns the release's verdict (RV(outcome), RV(step), RV(error), RV(active), RV(previous)),
        failing with a message that names the host and the step when the build or the gate failed.
    type: dict
  build:
    description: Controller side, with O(activate) - false when the release is complete already.
    type: bool
    default: true
  current:
    description: Controller side, with O(activate) - C(active) and C(previous) as the caller read them.
    type: dict
  release:
    description:
      - Controller side (the action plugin). The release and the device, from which the action derives
        O(release_dir), O(wheel_dir), O(tools_dir), O(requirements), O(wheels), O(marker),
        O(previous_release_dir), O(build), O(current), O(send) and the activation's release.
      - C(house) the wheelhouse's platform (M(javia.voice_fleet.voice_wheelhouse)), C(base) the device's
        layout root, C(device) what the device has (C(active), C(previous), the complete C(releases), the
        C(wheels) of the platform), C(expected) the release the caller planned (empty - any).
      - A wheelhouse that is incomplete (outside check mode), or that gives another release than
        C(expected), fails the task before the device is touched (step C(wheelhouse)).
    type: dict
  previous_release_dir:
    description: The active release, whose installed distributions may be reused. Never modified.
    type: path
  python:
    description: The interpreter that creates the venv.
    type: path
    default: /usr/bin/python3
  pip_wheel:
    description:
      - The pip wheel file that pip runs from. Default the newest
        C(/usr/share/python-wheels/pip-*.whl) (Debian's python3-pip-whl, brought by python3-venv).
    type: path
  tools_dir:
    description:
      - Where the device keeps its installer tools. When set, pip runs from
        C(<tools_dir>/pip-<version>-<sha256[:12]>), the O(pip_wheel) unpacked and compiled to
        bytecode by the first build that needs it (its C(.complete) file written last); older
        copies are removed then.
      - Run from the wheel file, pip compiles its own code anew on every run, since a zip import
        keeps no bytecode. That costs about 2 s of CPU for each of a build's two pip runs.
    type: path
  import_check:
    description: Modules to import with the new venv's interpreter.
    type: list
    elements: str
    default: []
  selfcheck_user:
    description: The user that runs C(voice-client self-check).
    type: str
    default: voice-client
  env_file:
    description: The env file passed to C(voice-client self-check --env-file).
    type: path
    default: /etc/voice-client/voice-client.env
  run_selfcheck:
    description: Run C(<venv>/bin/voice-client self-check) as O(selfcheck_user).
    type: bool
    default: true
  marker:
    description:
      - Content of the completion marker (version, release, ...). The module adds C(installed)
        (distribution name to C({wheel, sha256})), which the next build reads to reuse.
      - Its C(release), when given, must equal the basename of O(release_dir).
      - Required unless O(build=false).
    type: dict
notes:
  - Supports check mode (reports what would be built, touches nothing).
  - Runs on the device's Python (3.11, standard library only).
author:
  - voice-fleet developers (@javia)
"""

EXAMPLES = r"""
- name: Build the release
  voice_release_build:
    release_dir: /opt/voice-client/releases/1.1.0-abc123def456
    wheel_dir: /opt/voice-client/wheels/cp311-aarch64
    requirements: "{{ lookup('file', house.requirements) }}"
    wheels: "{{ house.files | dict2items | items2dict(key_name='key', value_name='value') }}"
    incoming: /opt/voice-client/incoming-1.1.0-abc123def456.tar
    previous_release_dir: /opt/voice-client/releases/1.0.0-0123456789ab
    import_check: [voice_client, numpy]
    marker:
      release: 1.1.0-abc123def456
      version: 1.1.0
  register: build
"""

RETURN = r"""
changed:
  description: Whether a release was built (check mode - would be built).
  type: bool
  returned: always
release:
  description: The release id (basename of release_dir).
  type: str
  returned: always
reused:
  description: Distributions hard-linked from the previous release (check mode - would be).
  type: list
  elements: str
  returned: always
installed:
  description: Distributions installed by pip (check mode - would be).
  type: list
  elements: str
  returned: always
timings:
  description: Seconds spent per step (wheel hashes, venv, reuse, install, dependency check,
    import check, self-check, bytecode, marker, total).
  type: dict
  returned: always
step:
  description: >-
    The step that failed, one of: arguments, wheel hashes, venv, reuse, install, dependency
    check, import check, self-check, bytecode, marker.
  type: str
  returned: failure
error:
  description: The failing step's last stderr lines (or stdout), or the reason.
  type: str
  returned: failure
outcome:
  description: >-
    With O(activate) - the activation's outcome (activated, unchanged, would_activate, would_start,
    rolled_back, failed); failed when the build failed.
  type: str
  returned: with activate
active:
  description: With O(activate) - the release C(current) points at after the task.
  type: str
  returned: with activate
previous:
  description: With O(activate) - the release C(previous) points at after the task.
  type: str
  returned: with activate
restored_ok:
  description: With O(activate) - false when a failed gate could not restart the old release.
  type: bool
  returned: with activate
build:
  description: With O(activate) - the build module's result (empty when O(build) is false).
  type: dict
  returned: with activate
activation:
  description: With O(activate) - the activation module's result (absent when the build failed).
  type: dict
  returned: with activate, when the build succeeded
"""

import base64  # noqa: E402
import configparser  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

try:  # Ansible ships it with the module (the collection's module_utils).
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_fleet_files import (
        fsync_dir,
        sha256_file,
        write_atomic,
    )
except ImportError:  # pragma: no cover - the pull agent keeps it beside the module, on the device
    from voice_fleet_files import fsync_dir, sha256_file, write_atomic  # type: ignore[no-redef]

MARKER = ".build-complete"
HASH_CACHE = ".sha256-cache.json"
LOCK_FILE = ".voice-release-build.lock"
PIP_WHEEL_GLOB = "/usr/share/python-wheels/pip-*.whl"
TOOL_COMPLETE = ".complete"
# A half-unpacked copy of pip this old was left by a run that died (a live one takes seconds).
STALE_UNPACK_S = 3600
ERROR_LINES = 15
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_OPT = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl$")
_SAFE_SCRIPT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_ENTRY = re.compile(r"^\s*(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+))?\s*(?:\[[^\]]*\])?\s*$")
# What a release's description (a wheelhouse platform of the controller, or a published
# manifest) gives its completion marker, besides the release id.
MARKER_FIELDS = ("version", "platform", "lock_sha256", "client_sha256", "client_source_sha256")


def release_params(release: dict, requirements: str, base: str, active: str = "") -> dict:
    """The build's options that follow from a release's description, for the device layout under base.

    release: a wheelhouse platform (push) or a published manifest (pull): release_id,
    platform, files (wheel name -> {sha256, ...}) and the marker's fields. requirements: the
    lock's text. active: the device's active release, whose installed distributions the
    build may reuse. The caller adds the device's settings (python, import_check, ...).
    """
    release_id = str(release["release_id"])
    releases = os.path.join(base, "releases")
    params = {
        "release_dir": os.path.join(releases, release_id),
        "wheel_dir": os.path.join(base, "wheels", str(release["platform"])),
        "tools_dir": os.path.join(base, "tools"),
        "requirements": requirements,
        "wheels": {str(name): str(info["sha256"]) for name, info in (release.get("files") or {}).items()},
        "marker": {
            "release": release_id,
            **{field: str(release.get(field) or "") for field in MARKER_FIELDS},
            "built_at": datetime.now(UTC).isoformat(),
        },
    }
    if active and active != release_id:
        params["previous_release_dir"] = os.path.join(releases, active)
    return params


# The checks a new release passes before it may be activated, in one run of its venv's
# interpreter (as O(selfcheck_user)), so that pip, numpy and the rest start once, not three
# times. argv: the line mark (CHECK_MARK), where pip is imported from (its copy or its
# wheel; only its vendored ``packaging`` is used, pip itself does not run), the console
# script to run as
# ``<script> self-check --env-file <env file>`` (empty: none), the env file, then the
# modules of import_check. 1. what ``pip check`` checks: every requirement of every
# installed distribution, its markers evaluated, is installed at a version it accepts;
# 2. every module imports; 3. the client's self-check, through its own entry point. Each
# passed stage prints a line starting with CHECK_MARK.
CHECK_MARK = "@@voice-release-check "
CHECK_SCRIPT = r"""
import atexit, importlib, json, runpy, sys, sysconfig, time
from importlib import metadata
mark, pip_home, script, env_file, modules = *sys.argv[1:5], sys.argv[5:]
started = time.monotonic()
sys.path.append(pip_home)
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
sys.path.remove(pip_home)
paths = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
roots = tuple(path + "/" for path in paths)


def loaded():  # at exit: the venv's modules this run imported, for the bytecode step
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    found = sorted(f for f in files if isinstance(f, str) and f.endswith(".py") and f.startswith(roots))
    sys.stdout.write(mark + "loaded " + json.dumps(found) + "\n")  # one write: one line
    sys.stdout.flush()


atexit.register(loaded)
installed = {}
for dist in metadata.distributions(path=paths):
    if dist.metadata["Name"]:
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
problems = []
for _key, dist in sorted(installed.items()):
    who = dist.metadata["Name"] + " " + dist.version
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dep = installed.get(canonicalize_name(req.name))
        if dep is None:
            problems.append(who + " requires " + req.name + ", which is not installed.")
        elif not req.specifier.contains(dep.version, prereleases=True):
            have = dep.metadata["Name"] + " " + dep.version
            problems.append(who + " has requirement " + str(req) + ", but you have " + have + ".")
if problems:
    sys.stderr.write("\n".join(problems) + "\n")
    raise SystemExit(3)
print(mark + "dependency check %.3f" % (time.monotonic() - started), flush=True)
started = time.monotonic()
for module in modules:
    importlib.import_module(module)
print(mark + "import check %.3f" % (time.monotonic() - started), flush=True)
if script:
    sys.argv = [script, "self-check", "--env-file", env_file]
    runpy.run_path(script, run_name="__main__")
"""
CHECK_STEPS = ("dependency check", "import check", "self-check")
CHECK_LOADED = "loaded "
CLIENT_DIST = "voice-client"
# The bytecode of the client's modules and of those the checks imported, as root (the
# checks' user cannot write the venv): not every module of every wheel.
COMPILE_SCRIPT = r"""
import compileall, py_compile, sys
mode = py_compile.PycInvalidationMode.TIMESTAMP
failed = [f for f in sys.argv[1:] if not compileall.compile_file(f, quiet=1, invalidation_mode=mode)]
if failed:
    raise SystemExit("cannot compile " + ", ".join(failed))
"""


class BuildError(Exception):
    """A failed step: its name and what went wrong."""

    def __init__(self, step: str, error: str):
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


# --- small helpers -------------------------------------------------------


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_dist(filename: str) -> tuple[str, str]:
    """(canonical name, version) from a wheel file name."""
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"not a wheel file name: {filename}")
    return canonical(parts[0]), parts[1]


def tail(text: str, lines: int = ERROR_LINES) -> str:
    kept = [line for line in (text or "").strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def clean_env() -> dict[str, str]:
    """The environment of every child: no PYTHON* or PIP_* setting leaks in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env["LC_ALL"] = "C.UTF-8"
    return env


def spawn(step: str, argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    """One child in the clean environment, its output captured; whatever its exit status."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=clean_env(), cwd=cwd, check=False)
    except OSError as exc:
        raise BuildError(step, f"cannot run {argv[0]}: {exc}") from None


def run(step: str, argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    proc = spawn(step, argv, cwd)
    if proc.returncode != 0:
        detail = tail(proc.stderr) or tail(proc.stdout) or "(no output)"
        raise BuildError(step, f"{' '.join(argv[:3])} ... exited {proc.returncode}: {detail}")
    return proc


def version_key(path: str) -> tuple:
    version = os.path.basename(path).split("-")[1]
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.+]", version))


def read_marker(release_dir: str) -> dict | None:
    try:
        with open(os.path.join(release_dir, MARKER), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def same_path(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return os.path.realpath(a) == os.path.realpath(b)


# --- requirements ---------------------------------------------------------


def logical_lines(text: str) -> list[str]:
    """A requirements file's entries: comments dropped, backslash continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        line = "" if line.startswith("#") else line.split(" #", 1)[0].rstrip()
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            if current.strip():
                logical.append(current.strip())
            current = ""
    if current.strip():
        logical.append(current.strip())
    return logical


def parse_requirements(text: str, wheels: dict[str, str]) -> list[dict]:
    """The release's requirements: [{dist, wheel, sha256, line}], each tied to one file of ``wheels``."""
    by_sha: dict[str, str] = {}
    for name, sha in wheels.items():
        by_sha.setdefault(sha, name)
    result = []
    for entry in logical_lines(text):
        hashes = [h.lower() for h in _HASH_OPT.findall(entry)]
        spec = _HASH_OPT.sub("", entry).strip()
        if not hashes or spec.startswith("-"):
            raise ValueError(f"requirement {spec!r}: not a requirement with --hash=sha256")
        first = spec.split(";")[0].split()[0] if spec.split() else ""
        wheel = os.path.basename(first) if first.endswith(".whl") else None
        if wheel is None:
            wheel = next((by_sha[h] for h in hashes if h in by_sha), None)
        if wheel is None or wheel not in wheels:
            raise ValueError(f"requirement {spec!r} matches no wheel of this release")
        if wheels[wheel] not in hashes:
            raise ValueError(f"requirement {spec!r} allows {hashes}, but {wheel} has sha256 {wheels[wheel]}")
        dist, _version = wheel_dist(wheel)
        line = entry
        if wheel == os.path.basename(first):
            # pip resolves a file name against its working directory: point it at the cache.
            line = entry.replace(first, "{wheel_dir}/" + wheel, 1)
        result.append({"dist": dist, "wheel": wheel, "sha256": wheels[wheel], "line": line})
    return result


# --- wheel cache ----------------------------------------------------------


class HashCache:
    """sha256 of the files of the wheel cache keyed by name+size+mtime_ns+ctime_ns+inode.

    Only ever used to confirm a file: a file whose cached hash does not match the
    expected one is hashed again before it is declared wrong, and anything that is
    not a well-formed entry with an identical key is ignored (the file is hashed).
    """

    def __init__(self, wheel_dir: str):
        self.path = os.path.join(wheel_dir, HASH_CACHE)
        self.entries: dict[str, dict] = {}
        self.dirty = False
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def key(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def lookup(self, name: str, st: os.stat_result) -> str | None:
        entry = self.entries.get(name)
        if not isinstance(entry, dict) or entry.get("key") != self.key(st):
            return None
        sha = entry.get("sha256")
        return sha if isinstance(sha, str) and _SHA256.match(sha) else None

    def store(self, name: str, st: os.stat_result, sha: str) -> None:
        self.entries[name] = {"key": self.key(st), "sha256": sha}
        self.dirty = True

    def hash(self, path: str, use_cache: bool = True) -> str:
        name = os.path.basename(path)
        before = os.stat(path)
        if use_cache:
            cached = self.lookup(name, before)
            if cached is not None:
                return cached
        sha = sha256_file(path)
        after = os.stat(path)
        if self.key(before) == self.key(after):
            self.store(name, after, sha)
        return sha

    def save(self, keep: set[str]) -> None:
        if not self.dirty:
            return
        entries = {n: e for n, e in self.entries.items() if n in keep}
        data = json.dumps({"files": entries}, indent=1, sort_keys=True).encode()
        with contextlib.suppress(OSError):  # only a cache: a failed write costs a re-hash next time
            write_atomic(self.path, data)


def unpack_incoming(tar_path: str, wheel_dir: str, wheels: dict[str, str], cache: HashCache) -> list[str]:
    """Move the tar's wheels into the cache, each hash-checked before its rename. Returns the names."""
    step = "receive wheels"
    done = []
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = tar.getmembers()
            seen: set[str] = set()
            for member in members:
                name = member.name
                if not member.isreg():
                    raise BuildError(
                        step, f"incoming {tar_path}: member {name!r} is not a plain file: refused"
                    )
                if "/" in name or "\\" in name or not _WHEEL_NAME.match(name) or name in (".", ".."):
                    raise BuildError(
                        step, f"incoming {tar_path}: member {name!r} is not a bare *.whl file name: refused"
                    )
                if name not in wheels:
                    raise BuildError(
                        step, f"incoming {tar_path}: {name} is not a wheel of this release: refused"
                    )
                if name in seen:
                    raise BuildError(step, f"incoming {tar_path}: {name} appears twice: refused")
                seen.add(name)
            for member in members:
                name = member.name
                source = tar.extractfile(member)
                if source is None:
                    raise BuildError(step, f"incoming {tar_path}: cannot read {name}")
                fd, tmp = tempfile.mkstemp(dir=wheel_dir, prefix=".incoming-", suffix=".part")
                try:
                    digest = hashlib.sha256()
                    with os.fdopen(fd, "wb") as out:
                        for block in iter(lambda src=source: src.read(1 << 20), b""):
                            digest.update(block)
                            out.write(block)
                        out.flush()
                        os.fsync(out.fileno())
                    if digest.hexdigest() != wheels[name]:
                        raise BuildError(
                            step,
                            f"incoming {name}: sha256 {digest.hexdigest()}, expected {wheels[name]}",
                        )
                    os.chmod(tmp, 0o644)
                    os.rename(tmp, os.path.join(wheel_dir, name))
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
                cache.store(name, os.stat(os.path.join(wheel_dir, name)), wheels[name])
                done.append(name)
            fsync_dir(wheel_dir)
    except (tarfile.TarError, OSError) as exc:
        raise BuildError(step, f"incoming {tar_path}: cannot unpack: {exc}") from None
    finally:
        # Untrusted transport: whatever it held is either in the cache now or refused.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tar_path)
    return done


def verify_wheels(wheel_dir: str, wheels: dict[str, str], cache: HashCache) -> None:
    problems = []
    for name in sorted(wheels):
        expected = wheels[name]
        path = os.path.join(wheel_dir, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            problems.append(f"{name}: missing from {wheel_dir} (expected sha256 {expected})")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{name}: not a regular file in {wheel_dir} (expected sha256 {expected})")
            continue
        actual = cache.hash(path)
        if actual != expected:
            actual = cache.hash(path, use_cache=False)  # in doubt: hash
        if actual != expected:
            # Out of the cache, so that the next run sees it missing and sends it again.
            with contextlib.suppress(OSError):
                os.replace(path, path + ".corrupt")
            problems.append(f"{name}: sha256 {actual}, expected {expected} (moved aside to {name}.corrupt)")
    if problems:
        raise BuildError("wheel hashes", "; ".join(problems))


# --- venv reuse ----------------------------------------------------------


def site_packages(venv: str) -> str | None:
    found = sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages")))
    return found[0] if len(found) == 1 else None


def client_sources(site: str, reqs: list[dict]) -> list[str]:
    """Every .py file the client's distribution (CLIENT_DIST) installed into site."""
    req = next((r for r in reqs if r["dist"] == CLIENT_DIST), None)
    info = find_dist_info(site, CLIENT_DIST, wheel_dist(req["wheel"])[1]) if req else None
    if info is None:
        return []
    try:
        rows = read_record(info)
    except (OSError, csv.Error):
        return []
    return [os.path.normpath(os.path.join(site, row[0])) for row in rows if row[0].endswith(".py")]


def read_record(dist_info: str) -> list[list[str]]:
    """The rows of a distribution's RECORD."""
    with open(os.path.join(dist_info, "RECORD"), encoding="utf-8", newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def find_dist_info(site: str, dist: str, version: str) -> str | None:
    for entry in sorted(os.listdir(site)):
        if not entry.endswith(".dist-info"):
            continue
        stem = entry[: -len(".dist-info")]
        name, _sep, ver = stem.rpartition("-")
        if canonical(name) == dist and ver == version:
            return os.path.join(site, entry)
    return None


def read_scripts(dist_info: str) -> dict[str, tuple[str, str]]:
    """console_scripts and gui_scripts of a dist: name -> (module, attr)."""
    path = os.path.join(dist_info, "entry_points.txt")
    if not os.path.exists(path):
        return {}
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    scripts = {}
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            match = _ENTRY.match(value)
            if not match or not match["attr"] or not _SAFE_SCRIPT.match(name):
                raise ValueError(f"cannot read entry point {name} = {value}")
            scripts[name] = (match["module"], match["attr"])
    return scripts


def script_text(python: str, module: str, attr: str) -> str:
    if len(python) + 2 <= 127 and " " not in python:
        head = f"#!{python}\n"
    else:  # the kernel's shebang limit: let sh start the interpreter
        head = f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n"
    top = attr.split(".", maxsplit=1)[0]
    body = f"from {module} import {top}\nraise SystemExit({attr}())\n"
    return (
        head
        + "# -*- coding: utf-8 -*-\n# written by voice_release_build for a reused distribution\n"
        + "import re\nimport sys\n"
        + "if __name__ == '__main__':\n"
        + "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        + "".join("    " + line + "\n" for line in body.splitlines())
    )


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class NotReusableError(Exception):
    """The previous venv's copy of a distribution cannot be shared as is (pip installs it)."""


def reusable_files(rows: list[list[str]], prev_site: str, prev_bin: str, scripts: dict, record_rel: str):
    """(site-packages files to link, RECORD rows of the scripts to write anew) of a RECORD."""
    files, outside = [], []
    for row in rows:
        rel = row[0]
        target = os.path.normpath(os.path.join(prev_site, rel))
        if (
            not os.path.isabs(rel)
            and os.path.dirname(target) == prev_bin
            and os.path.basename(target) in scripts
        ):
            outside.append(row)
            continue
        if os.path.isabs(rel) or not target.startswith(prev_site + os.sep):
            raise NotReusableError(f"{rel} lies outside site-packages")  # data, headers, other scripts
        if os.path.normpath(rel) == record_rel:
            continue
        st = os.lstat(target)
        if not stat.S_ISREG(st.st_mode):
            raise NotReusableError(f"{rel} is not a regular file")
        size = row[2] if len(row) > 2 else ""
        if size.isdigit() and int(size) != st.st_size:
            raise NotReusableError(f"{rel} has {st.st_size} bytes, RECORD says {size}")
        files.append(os.path.relpath(target, prev_site))
    return files, outside


def cached_bytecode(prev_site: str, files: list[str]) -> list[str]:
    """The previous venv's bytecode of the modules among files, which no RECORD lists.

    The bytecode step writes it after the install; a hard-linked source keeps its mtime, so
    the linked bytecode stays valid.
    """
    listed, found, listings = set(files), [], {}
    for rel in files:
        folder, name = os.path.split(rel)
        if not name.endswith(".py"):
            continue
        cache = os.path.join(folder, "__pycache__")
        if cache not in listings:
            try:
                listings[cache] = os.listdir(os.path.join(prev_site, cache))
            except OSError:
                listings[cache] = []
        for entry in listings[cache]:
            pyc = os.path.join(cache, entry)
            if (
                entry.startswith(name[:-2])
                and entry.endswith(".pyc")
                and pyc not in listed
                and stat.S_ISREG(os.lstat(os.path.join(prev_site, pyc)).st_mode)
            ):
                found.append(pyc)
    return found


def plan_reuse(prev_site: str, prev_venv: str, dist: str, wheel: str) -> dict | None:
    """What reusing ``dist`` from the previous venv takes, or None when it cannot be reused as is."""
    version = wheel_dist(wheel)[1]
    dist_info = find_dist_info(prev_site, dist, version)
    if dist_info is None:
        return None
    try:
        scripts = read_scripts(dist_info)
        rows = read_record(dist_info)
        record_rel = os.path.relpath(os.path.join(dist_info, "RECORD"), prev_site)
        files, outside = reusable_files(rows, prev_site, os.path.join(prev_venv, "bin"), scripts, record_rel)
        files += cached_bytecode(prev_site, files)
    except (NotReusableError, OSError, ValueError, configparser.Error, csv.Error):
        return None
    return {
        "dist_info": os.path.relpath(dist_info, prev_site),
        "files": files,
        "scripts": scripts,
        "rows": rows,
        "outside": outside,
    }


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
        shutil.copy2(src, dst)


def apply_reuse(plan: dict, prev_site: str, new_site: str, new_venv: str) -> None:
    for rel in plan["files"]:
        dst = os.path.join(new_site, rel)
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        link_or_copy(os.path.join(prev_site, rel), dst)
    python = os.path.join(new_venv, "bin", "python")
    new_rows = {}
    for name, (module, attr) in plan["scripts"].items():
        data = script_text(python, module, attr).encode()
        path = os.path.join(new_venv, "bin", name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o755)  # noqa: S103 - a console script
        new_rows[name] = (record_hash(data), str(len(data)))
    # RECORD is the dist's own: written anew so that the scripts' hashes are right.
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in plan["rows"]:
        name = os.path.basename(row[0])
        if row in plan["outside"] and name in new_rows:
            writer.writerow([row[0], *new_rows[name]])
        else:
            writer.writerow(row)
    with open(os.path.join(new_site, plan["dist_info"], "RECORD"), "w", encoding="utf-8") as handle:
        handle.write(out.getvalue())


# --- the build ------------------------------------------------------------


def default_pip_wheel() -> str | None:
    found = sorted(glob.glob(PIP_WHEEL_GLOB), key=version_key)
    return found[-1] if found else None


def unpacked_pip(python: str, pip_wheel: str, tools_dir: str, step: str) -> str:
    """The directory of pip_wheel unpacked under tools_dir and compiled by python, made once.

    Made in a temporary directory and renamed into place with its .complete file
    already in it, so a copy that exists is whole. Once a new copy is in place the
    other copies (an older pip) and unpacks left by a run that died are removed.
    """
    dist, version = wheel_dist(os.path.basename(pip_wheel))
    target = os.path.join(tools_dir, f"{dist}-{version}-{sha256_file(pip_wheel)[:12]}")
    if os.path.isfile(os.path.join(target, TOOL_COMPLETE)):
        return target
    try:
        os.makedirs(tools_dir, mode=0o755, exist_ok=True)
        work = tempfile.mkdtemp(dir=tools_dir, prefix=f".{dist}-")
    except OSError as exc:
        raise BuildError(step, f"tools_dir {tools_dir}: {exc}") from None
    try:
        with zipfile.ZipFile(pip_wheel) as wheel:
            unsafe = [n for n in wheel.namelist() if n.startswith("/") or ".." in n.split("/")]
            if unsafe:
                raise BuildError(step, f"{pip_wheel}: members outside the wheel's tree: {unsafe[:3]}")
            wheel.extractall(work)  # noqa: S202 - every member name was checked just above
        run(step, [python, "-m", "compileall", "-q", work])
        for top, _dirs, files in os.walk(work):  # root's alone to change, whatever the umask
            os.chmod(top, 0o755)  # noqa: S103 - readable by all, like every tool
            for name in files:
                os.chmod(os.path.join(top, name), 0o644)
        write_atomic(os.path.join(work, TOOL_COMPLETE), f"{os.path.basename(pip_wheel)}\n".encode())
        if os.path.lexists(target):  # not whole (no .complete): never used, replaced
            shutil.rmtree(target)
        os.rename(work, target)
    except (OSError, zipfile.BadZipFile) as exc:
        shutil.rmtree(work, ignore_errors=True)
        if os.path.isfile(os.path.join(target, TOOL_COMPLETE)):
            return target  # another build made it meanwhile
        raise BuildError(step, f"cannot unpack {pip_wheel} into {tools_dir}: {exc}") from None
    except BuildError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    fsync_dir(tools_dir)
    now = time.time()
    for name in os.listdir(tools_dir):
        path = os.path.join(tools_dir, name)
        if path == target or not os.path.isdir(path) or os.path.islink(path):
            continue
        older = re.fullmatch(rf"{re.escape(dist)}-[^-]+-[0-9a-f]{{12}}", name) is not None
        dead = name.startswith(f".{dist}-") and now - os.stat(path).st_mtime > STALE_UNPACK_S
        if older or dead:
            shutil.rmtree(path, ignore_errors=True)
    return target


def plan_build(p: dict, reqs: list[dict]) -> tuple[dict, list[dict], str | None]:
    """(reuse plans by dist, requirements pip installs, previous site-packages)."""
    prev = p["previous_release_dir"]
    if not prev or same_path(prev, p["release_dir"]):
        return {}, reqs, None
    marker = read_marker(prev)
    installed = (marker or {}).get("installed")
    prev_venv = os.path.join(prev, "venv")
    prev_site = site_packages(prev_venv)
    if not isinstance(installed, dict) or prev_site is None:
        return {}, reqs, None
    prev_site = os.path.realpath(prev_site)
    prev_venv = os.path.realpath(prev_venv)
    plans, rest = {}, []
    for req in reqs:
        entry = installed.get(req["dist"])
        plan = None
        if (
            isinstance(entry, dict)
            and entry.get("wheel") == req["wheel"]
            and entry.get("sha256") == req["sha256"]
        ):
            plan = plan_reuse(prev_site, prev_venv, req["dist"], req["wheel"])
        if plan is None:
            rest.append(req)
        else:
            plans[req["dist"]] = plan
    return plans, rest, prev_site


class Builder:
    """One build, step by step; ``step`` is the step under way (named in any failure)."""

    def __init__(self, p: dict, release: str, reqs: list[dict]):
        self.p = p
        self.release = release
        self.reqs = reqs
        self.release_dir = p["release_dir"]
        self.wheel_dir = p["wheel_dir"]
        self.venv = os.path.join(self.release_dir, "venv")
        self.python = os.path.join(self.venv, "bin", "python")
        self._pip_home = ""
        self.step = "wheel hashes"
        self.timings: dict[str, float] = {}
        self.plans: dict[str, dict] = {}
        self.rest: list[dict] = reqs
        self.loaded: list[str] = []

    def pip_home(self, step: str) -> str:
        """Where pip is imported from: its unpacked, compiled copy when tools_dir is set, else its wheel."""
        if not self._pip_home:
            where = self.p["pip_wheel"]
            if self.p["tools_dir"]:
                where = unpacked_pip(self.p["python"], where, self.p["tools_dir"], step)
            self._pip_home = where
        return self._pip_home

    def pip(self, step: str) -> list[str]:
        """How to run pip, with the new venv's interpreter."""
        return [self.python, os.path.join(self.pip_home(step), "pip")]

    def timed(self, step: str, func, *args):
        self.step = step
        started = time.monotonic()
        try:
            return func(*args)
        finally:
            self.timings[step] = round(self.timings.get(step, 0.0) + time.monotonic() - started, 3)

    def run(self) -> dict:
        self.timed("wheel hashes", self.wheels)
        self.timed("venv", self.venv_step)
        self.timed("reuse", self.reuse)
        self.timed("install", self.install)
        self.checks()
        self.timed("bytecode", self.bytecode)
        self.timed("marker", self.marker)
        return {"reused": sorted(self.plans), "installed": sorted(r["dist"] for r in self.rest)}

    # 2. the wheels (after the incoming ones)
    def wheels(self) -> None:
        cache = HashCache(self.wheel_dir)
        try:
            if self.p["incoming"]:
                unpack_incoming(self.p["incoming"], self.wheel_dir, self.p["wheels"], cache)
            verify_wheels(self.wheel_dir, self.p["wheels"], cache)
        finally:
            cache.save({n for n in os.listdir(self.wheel_dir) if n.endswith(".whl")})

    # 3. + 4. a clean release directory and its venv
    def venv_step(self) -> None:
        release_dir = self.release_dir
        if os.path.isdir(release_dir) and not os.path.islink(release_dir):
            shutil.rmtree(release_dir)
        elif os.path.lexists(release_dir):
            os.unlink(release_dir)
        os.makedirs(release_dir, mode=0o755)
        os.chmod(release_dir, 0o755)  # noqa: S103 - the service user reads its release
        text = self.p["requirements"]
        write_atomic(os.path.join(release_dir, "requirements.txt"), (text.rstrip("\n") + "\n").encode())
        run("venv", [self.p["python"], "-m", "venv", "--without-pip", self.venv])

    # 5. reuse what the previous release installed from the very same wheels
    def reuse(self) -> None:
        new_site = site_packages(self.venv)
        if new_site is None:
            raise BuildError("venv", f"{self.venv}: no single lib/python3*/site-packages")
        plans, rest, prev_site = plan_build(self.p, self.reqs)
        if plans and os.path.basename(os.path.dirname(new_site)) != os.path.basename(
            os.path.dirname(prev_site)
        ):
            return  # another Python minor version: nothing to share
        self.plans, self.rest = plans, rest
        for dist in sorted(plans):
            try:
                apply_reuse(plans[dist], prev_site, new_site, self.venv)
            except (OSError, ValueError) as exc:
                raise BuildError("reuse", f"{dist}: {exc}") from None

    # 5. pip, from its wheel, for the rest
    def install(self) -> None:
        if not self.rest:
            return
        fd, req_file = tempfile.mkstemp(dir=self.release_dir, prefix=".pip-install-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(r["line"].replace("{wheel_dir}", self.wheel_dir) + "\n" for r in self.rest))
        # No bytecode here: the bytecode step compiles what the checks import, and nothing else.
        options = [
            "--no-index",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--no-cache-dir",
            "--no-compile",
        ]
        try:
            run(
                "install",
                [
                    *self.pip("install"),
                    "install",
                    *options,
                    "--disable-pip-version-check",
                    "--find-links",
                    self.wheel_dir,
                    "-r",
                    req_file,
                ],
                "/",
            )
        finally:
            os.unlink(req_file)

    # 6. the installed distributions' requirements are all met (the lock is complete), every
    # module of import_check imports and the client's self-check passes: one run (CHECK_SCRIPT).
    # It writes no bytecode (-B), whoever it runs as: the bytecode step does, as root.
    def checks(self) -> None:
        self.step = CHECK_STEPS[0]
        script = os.path.join(self.venv, "bin", "voice-client") if self.p["run_selfcheck"] else ""
        argv = [
            self.python,
            "-B",
            "-c",
            CHECK_SCRIPT,
            CHECK_MARK,
            self.pip_home(self.step),
            script,
            self.p["env_file"],
        ]
        if script:
            argv = ["runuser", "-u", self.p["selfcheck_user"], "--", *argv]
        started = time.monotonic()
        proc = spawn(self.step, [*argv, *self.p["import_check"]], "/")
        left = time.monotonic() - started
        out = []
        for line in proc.stdout.splitlines():
            if line.startswith(CHECK_MARK + CHECK_LOADED):
                with contextlib.suppress(ValueError):  # unreadable: the client's own modules only
                    self.loaded = json.loads(line[len(CHECK_MARK + CHECK_LOADED) :])
                continue
            step, _sep, seconds = line[len(CHECK_MARK) :].rpartition(" ")
            if not line.startswith(CHECK_MARK) or step not in CHECK_STEPS:
                out.append(line)
                continue
            self.timings[step] = round(min(left, float(seconds)), 3)
            left -= self.timings[step]
            self.step = CHECK_STEPS[CHECK_STEPS.index(step) + 1]
        if script:
            self.timings["self-check"] = round(max(left, 0.0), 3)
        if proc.returncode != 0:
            detail = tail(proc.stderr) or tail("\n".join(out)) or "(no output)"
            what = {"self-check": f"{script} self-check"}.get(self.step, self.python)
            raise BuildError(self.step, f"{what} exited {proc.returncode}: {detail}")

    # 7. the bytecode of the modules the checks imported and of every module of the client
    # (the service imports more of it than its self-check), written as the wheels' installs
    # would: timestamp-checked. A reused dist brought its own along. The list the checks' user
    # printed is only taken for regular .py files of this venv: root writes next to them.
    def bytecode(self) -> None:
        site = site_packages(self.venv)
        if site is None:
            return
        site = os.path.realpath(site)
        wanted = {*(f for f in self.loaded if isinstance(f, str)), *client_sources(site, self.reqs)}
        files = sorted(
            f
            for f in wanted
            if f.endswith(".py")
            and os.path.realpath(f).startswith(site + os.sep)
            and os.path.isfile(f)
            and not os.path.islink(f)
        )
        if files:
            run("bytecode", [self.python, "-c", COMPILE_SCRIPT, *files], "/")

    # 8. the marker, last: everything before it reaches the disk first
    def marker(self) -> None:
        os.sync()
        content = dict(self.p["marker"])
        content["release"] = self.release
        content["installed"] = {r["dist"]: {"wheel": r["wheel"], "sha256": r["sha256"]} for r in self.reqs}
        data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
        write_atomic(os.path.join(self.release_dir, MARKER), data)


ARGUMENT_SPEC = {
    "release_dir": {"type": "path"},
    "wheel_dir": {"type": "path"},
    "requirements": {"type": "str"},
    "wheels": {"type": "dict"},
    "incoming": {"type": "path"},
    # Taken by the action plugin on the controller; a module run never sees them set.
    "send": {"type": "dict"},
    "pack_dir": {"type": "path"},
    "activate": {"type": "dict"},
    "build": {"type": "bool", "default": True},
    "current": {"type": "dict"},
    "release": {"type": "dict"},
    "previous_release_dir": {"type": "path"},
    "python": {"type": "path", "default": "/usr/bin/python3"},
    "pip_wheel": {"type": "path"},
    "tools_dir": {"type": "path"},
    "import_check": {"type": "list", "elements": "str", "default": []},
    "selfcheck_user": {"type": "str", "default": "voice-client"},
    "env_file": {"type": "path", "default": "/etc/voice-client/voice-client.env"},
    "run_selfcheck": {"type": "bool", "default": True},
    "marker": {"type": "dict"},
}
# What a build needs; with build false (the action plugin then only activates) nothing of it.
BUILD_NEEDS = ["release_dir", "wheel_dir", "requirements", "wheels", "marker"]
REQUIRED_IF = [("build", True, BUILD_NEEDS)]


def check_arguments(p: dict, release: str) -> list[dict]:
    """Validate and normalise the arguments (in place); the release's requirements."""
    for name in ("send", "activate", "current"):
        if p.get(name):
            raise BuildError(
                "arguments",
                f"{name} is taken by the action plugin on the controller (a module run never sees it)",
            )
    if not p["build"]:
        raise BuildError("arguments", "build: false is the action plugin's (it then only activates)")
    if release in ("", ".", "..") or p["release_dir"] == "/":
        raise BuildError("arguments", f"release_dir {p['release_dir']!r} names no release")
    if p["marker"].get("release", release) != release:
        raise BuildError("arguments", f"marker release {p['marker'].get('release')!r} is not {release!r}")
    if same_path(p["release_dir"], p["previous_release_dir"]):
        raise BuildError("arguments", f"{p['release_dir']} is the previous (active) release but is not built")
    wheels = {}
    for name, sha in p["wheels"].items():
        if not isinstance(sha, str) or not _SHA256.match(sha.lower()) or not _WHEEL_NAME.match(name):
            raise BuildError("arguments", f"wheels: {name!r}: {sha!r} is not a wheel file name with a sha256")
        wheels[name] = sha.lower()
    p["wheels"] = wheels
    if not p["pip_wheel"]:
        p["pip_wheel"] = default_pip_wheel()
        if p["pip_wheel"] is None:
            raise BuildError("arguments", f"no pip wheel at {PIP_WHEEL_GLOB}: install python3-pip-whl")
    elif not os.path.isfile(p["pip_wheel"]):
        raise BuildError("arguments", f"pip_wheel {p['pip_wheel']} does not exist")
    try:
        return parse_requirements(p["requirements"], wheels)
    except ValueError as exc:
        raise BuildError("arguments", str(exc)) from None


class _Done(BaseException):
    """The end of a run without Ansible: the result exit_json or fail_json was given."""

    def __init__(self, result: dict):
        super().__init__(result.get("msg", ""))
        self.result = result


class _PlainModule:
    """What one build needs of AnsibleModule, for a caller without Ansible (the pull agent)."""

    def __init__(self, params: dict, check_mode: bool):
        unknown = sorted(set(params) - set(ARGUMENT_SPEC))
        if unknown:
            raise TypeError(f"voice_release_build: unknown parameters {unknown}")
        self.params = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
        self.params.update(params)
        missing = [n for n in BUILD_NEEDS if self.params["build"] and self.params[n] is None]
        if missing:
            raise TypeError(f"voice_release_build: missing required parameters {missing}")
        self.check_mode = check_mode

    def exit_json(self, **result) -> None:
        raise _Done(result)

    def fail_json(self, msg: str, **result) -> None:
        raise _Done({**result, "failed": True, "msg": msg})


def build(params: dict, check_mode: bool = False) -> dict:
    """One build without Ansible: the module's parameters in, its result out (`failed` on failure)."""
    try:
        run_build(_PlainModule(params, check_mode))
    except _Done as done:
        return done.result
    raise AssertionError("run_build ended without a result")


def run_build(module) -> None:
    """The module's one run; ends with module.exit_json or module.fail_json."""
    p = dict(module.params)
    p["release_dir"] = os.path.normpath(p["release_dir"])
    release = os.path.basename(p["release_dir"])
    started = time.monotonic()
    result = {"changed": False, "release": release, "reused": [], "installed": [], "timings": {}}

    def fail(step: str, error: str, cleanup: bool) -> None:
        if cleanup and not same_path(p["release_dir"], p["previous_release_dir"]):
            shutil.rmtree(p["release_dir"], ignore_errors=True)
        result["timings"]["total"] = round(time.monotonic() - started, 3)
        result.update(changed=cleanup, step=step, error=error)
        module.fail_json(msg=f'release {release}: step "{step}" failed: {error}', **result)

    # 1. done already?
    marker = read_marker(p["release_dir"])
    if marker is not None and marker.get("release") == release:
        module.exit_json(**result)
    try:
        reqs = check_arguments(p, release)
    except BuildError as exc:
        fail(exc.step, exc.error, False)

    if module.check_mode:
        plans, rest = plan_build(p, reqs)[:2]
        missing = [n for n in sorted(p["wheels"]) if not os.path.exists(os.path.join(p["wheel_dir"], n))]
        result.update(changed=True, reused=sorted(plans), installed=sorted(r["dist"] for r in rest))
        module.exit_json(msg=f"would build {release}", missing_wheels=missing, **result)

    try:
        os.makedirs(p["wheel_dir"], mode=0o755, exist_ok=True)
        lock = open(os.path.join(p["wheel_dir"], LOCK_FILE), "a")  # noqa: SIM115 - held for the build
    except OSError as exc:
        fail("wheel hashes", f"wheel_dir {p['wheel_dir']}: {exc}", False)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = read_marker(p["release_dir"])  # another run may have built it meanwhile
        if marker is not None and marker.get("release") == release:
            module.exit_json(**result)
        builder = Builder(p, release, reqs)
        result["timings"] = builder.timings
        try:
            outcome = builder.run()
        except BuildError as exc:
            fail(exc.step, exc.error, True)
        except Exception as exc:  # anything unforeseen still leaves no half-built release behind
            fail(builder.step, f"{type(exc).__name__}: {exc}", True)
    result["timings"]["total"] = round(time.monotonic() - started, 3)
    result.update(changed=True, **outcome)
    module.exit_json(**result)


def main() -> None:
    # Imported here: the pull agent imports this file on a device without Ansible.
    from ansible.module_utils.basic import AnsibleModule  # noqa: PLC0415

    run_build(AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True))


if __name__ == "__main__":
    main()
