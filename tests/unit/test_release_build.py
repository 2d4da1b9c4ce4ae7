"""voice_release_build, run for real: real wheels, real venvs, the module run as Ansible runs it.

Two tiny distributions are built with pip in a temporary directory: ``alpha-lib`` (with a
console script ``alpha-tool``) and ``voice-client`` (1.1.0 and 1.2.0; its ``voice-client``
script supports ``self-check --env-file``). The module runs in a subprocess of the device's
interpreter (/usr/bin/python3) with an ``{"ANSIBLE_MODULE_ARGS": ...}`` file, as Ansible does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import yaml
from device_module import run_device_module

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "voice_release_build.py"
HELPERS = ROOT / "plugins" / "module_utils"
DEVICE_PYTHON = "/usr/bin/python3"
SITE = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
ALPHA = "alpha_lib-1.0-py3-none-any.whl"
VC11 = "voice_client-1.1.0-py3-none-any.whl"
VC12 = "voice_client-1.2.0-py3-none-any.whl"
PIP_WHEEL = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "wheel", "--no-deps", "--no-index"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _project(root: Path, name: str, version: str, *, package: str, files: dict, extra: str = "") -> Path:
    proj = root / f"{name}-{version}"
    (proj / package).mkdir(parents=True)
    (proj / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            """)
        + extra
    )
    for rel, text in files.items():
        (proj / package / rel).write_text(textwrap.dedent(text))
    return proj


@pytest.fixture(scope="session")
def house(tmp_path_factory) -> dict[str, Path]:
    """The three wheels, built by pip from throwaway projects."""
    for path in (DEVICE_PYTHON, str(SITE)):
        assert os.path.exists(path), f"{path} is needed to run the module as on a device"
    assert list(Path("/usr/share/python-wheels").glob("pip-*.whl")), "apt-get install python3-pip-whl"
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("wheels")
    alpha = _project(
        src,
        "alpha-lib",
        "1.0",
        package="alpha_lib",
        files={
            "__init__.py": "import sys\n\ndef tool():\n    print('alpha-tool', sys.executable)\n",
            "unused.py": "NOBODY_IMPORTS_THIS = True\n",
        },
        extra='[project.scripts]\nalpha-tool = "alpha_lib:tool"\n',
    )
    cli = """\
        import argparse
        import os
        import sys

        import alpha_lib
        from voice_client import VERSION

        def main():
            parser = argparse.ArgumentParser(prog="voice-client")
            sub = parser.add_subparsers(dest="cmd", required=True)
            check = sub.add_parser("self-check")
            check.add_argument("--env-file", required=True)
            sub.add_parser("version")
            args = parser.parse_args()
            if args.cmd == "version":
                print(VERSION)
                return 0
            if not os.access(args.env_file, os.R_OK):
                print(f"FAIL cannot read {args.env_file}", file=sys.stderr)
                return 1
            print("self-check ok", alpha_lib.__name__)
            return 0
        """
    projects = [alpha]
    for version in ("1.1.0", "1.2.0"):
        projects.append(
            _project(
                src,
                "voice-client",
                version,
                package="voice_client",
                files={
                    "__init__.py": f"VERSION = {version!r}\n",
                    "cli.py": cli,
                    # Imported by the service only, never by the checks.
                    "service.py": "RUNNING = True\n",
                },
                extra='dependencies = ["alpha-lib==1.0"]\n'
                '[project.scripts]\nvoice-client = "voice_client.cli:main"\n',
            )
        )
    for proj in projects:
        subprocess.run(
            [
                *PIP_WHEEL,
                "--no-build-isolation",
                "--disable-pip-version-check",
                "-q",
                "-w",
                str(out),
                str(proj),
            ],
            check=True,
            capture_output=True,
        )
    wheels = {p.name: p for p in out.glob("*.whl")}
    assert set(wheels) == {ALPHA, VC11, VC12}
    return wheels


@pytest.fixture
def device(tmp_path) -> dict[str, Path]:
    base = tmp_path / "opt" / "voice-client"
    env = tmp_path / "etc" / "voice-client.env"
    env.parent.mkdir(parents=True)
    env.write_text("VOICE_SERVER=ws://example.invalid\n")
    return {"base": base, "wheels": base / "wheels" / "cp311-x86_64", "env": env, "tmp": tmp_path}


def release_args(device: dict, house: dict, client: str, **extra) -> dict:
    version = client.split("-")[1]
    names = [ALPHA, client]
    wheels = {name: sha256(house[name]) for name in names}
    release = f"{version}-{hashlib.sha256(str(sorted(wheels.items())).encode()).hexdigest()[:12]}"
    requirements = (
        f"# voice-client release {release} for cp311-x86_64; written by voice_wheelhouse.\n"
        f"# lock sha256 {'a' * 64}; client source sha256 {'b' * 64}\n"
        f"alpha-lib==1.0 --hash=sha256:{wheels[ALPHA]}\n"
        f"voice-client=={version} --hash=sha256:{wheels[client]}\n"
    )
    args = {
        "release_dir": str(device["base"] / "releases" / release),
        "wheel_dir": str(device["wheels"]),
        "requirements": requirements,
        "wheels": wheels,
        "import_check": ["voice_client", "voice_client.cli", "alpha_lib"],
        "selfcheck_user": "root",
        "env_file": str(device["env"]),
        "marker": {"release": release, "version": version, "platform": "cp311-x86_64"},
    }
    args.update(extra)
    return args


def stock(device: dict, house: dict, *names: str) -> None:
    """Put wheels into the device's cache, as an earlier build would have."""
    device["wheels"].mkdir(parents=True, exist_ok=True)
    for name in names:
        (device["wheels"] / name).write_bytes(house[name].read_bytes())


def run_module(args: dict, tmp: Path, check_mode: bool = False) -> tuple[int, dict]:
    payload = dict(args)
    if check_mode:
        payload["_ansible_check_mode"] = True
    return run_device_module(MODULE, payload, tmp)


def build_ok(args: dict, tmp: Path) -> dict:
    rc, result = run_module(args, tmp)
    assert rc == 0 and not result.get("failed"), result
    return result


def tree(path: Path) -> dict[str, tuple]:
    """Every entry under path with what would show a change: inode, size, mtime, mode."""
    out = {}
    for entry in sorted(path.rglob("*")):
        st = entry.lstat()
        out[str(entry.relative_to(path))] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def venv_run(release_dir: str, *argv: str) -> str:
    proc = subprocess.run(
        [f"{release_dir}/venv/bin/{argv[0]}", *argv[1:]], capture_output=True, text=True, check=True
    )
    return proc.stdout


def test_fresh_build_from_cache_and_incoming_then_idempotent(device, house):
    stock(device, house, ALPHA)
    incoming = device["tmp"] / "incoming.tar"
    with tarfile.open(incoming, "w") as tar:
        tar.add(house[VC11], arcname=VC11)
    args = release_args(device, house, VC11, incoming=str(incoming))
    release_dir = Path(args["release_dir"])

    rc, planned = run_module(args, device["tmp"], check_mode=True)
    assert rc == 0 and planned["changed"] is True
    assert planned["installed"] == ["alpha-lib", "voice-client"]
    assert not release_dir.exists() and incoming.exists(), "check mode touched the device"

    result = build_ok(args, device["tmp"])
    assert result["changed"] is True
    assert result["release"] == release_dir.name
    assert result["reused"] == []
    assert result["installed"] == ["alpha-lib", "voice-client"]
    for step in (
        "wheel hashes",
        "venv",
        "install",
        "dependency check",
        "import check",
        "self-check",
        "bytecode",
    ):
        assert step in result["timings"], result["timings"]
    # Bytecode for every module of the client and what the checks imported, none for the rest.
    site = release_dir / "venv" / "lib" / "python3.11" / "site-packages"
    assert sorted(p.name for p in (site / "alpha_lib" / "__pycache__").iterdir()) == [
        "__init__.cpython-311.pyc"
    ]
    assert {p.name for p in (site / "voice_client" / "__pycache__").iterdir()} == {
        "__init__.cpython-311.pyc",
        "cli.cpython-311.pyc",
        "service.cpython-311.pyc",
    }
    assert not incoming.exists(), "the incoming tar must be deleted"
    assert sha256(device["wheels"] / VC11) == args["wheels"][VC11]
    assert not [p for p in device["wheels"].iterdir() if p.name.startswith(".incoming")]

    marker = json.loads((release_dir / ".build-complete").read_text())
    assert marker["release"] == release_dir.name and marker["version"] == "1.1.0"
    assert marker["installed"] == {
        "alpha-lib": {"wheel": ALPHA, "sha256": args["wheels"][ALPHA]},
        "voice-client": {"wheel": VC11, "sha256": args["wheels"][VC11]},
    }
    assert (release_dir / "requirements.txt").read_text() == args["requirements"]
    assert oct(release_dir.stat().st_mode & 0o777) == "0o755"
    assert not list(release_dir.glob(".pip-install-*"))
    assert venv_run(str(release_dir), "voice-client", "version").strip() == "1.1.0"
    assert not (release_dir / "venv" / "bin" / "pip").exists(), "the venv is built without pip"

    before = tree(release_dir)
    again = build_ok(args, device["tmp"])
    assert again["changed"] is False
    assert tree(release_dir) == before
    rc, checked = run_module(args, device["tmp"], check_mode=True)
    assert rc == 0 and checked["changed"] is False


def test_upgrade_reuses_unchanged_dist_by_hard_link(device, house):
    stock(device, house, ALPHA, VC11, VC12)
    first = release_args(device, house, VC11)
    build_ok(first, device["tmp"])
    old = Path(first["release_dir"])

    second = release_args(device, house, VC12, previous_release_dir=str(old))
    result = build_ok(second, device["tmp"])
    new = Path(second["release_dir"])
    assert result["reused"] == ["alpha-lib"]
    assert result["installed"] == ["voice-client"]

    old_site = old / "venv" / "lib" / "python3.11" / "site-packages"
    new_site = new / "venv" / "lib" / "python3.11" / "site-packages"
    for rel in (
        "alpha_lib/__init__.py",
        "alpha_lib-1.0.dist-info/METADATA",
        "alpha_lib/__pycache__/__init__.cpython-311.pyc",
    ):
        assert (old_site / rel).stat().st_ino == (new_site / rel).stat().st_ino, rel
    assert not (new_site / "alpha_lib" / "__pycache__" / "unused.cpython-311.pyc").exists()
    assert (new_site / "voice_client" / "__init__.py").read_text() == "VERSION = '1.2.0'\n"

    script = new / "venv" / "bin" / "alpha-tool"
    assert script.read_text().splitlines()[0] == f"#!{new}/venv/bin/python"
    assert script.stat().st_mode & 0o777 == 0o755
    assert script.stat().st_ino != (old / "venv" / "bin" / "alpha-tool").stat().st_ino
    assert venv_run(str(new), "alpha-tool").split() == ["alpha-tool", f"{new}/venv/bin/python"]
    assert venv_run(str(old), "alpha-tool").split() == ["alpha-tool", f"{old}/venv/bin/python"]
    # The reused dist's RECORD is its own, and lists the new script's hash.
    record = (new_site / "alpha_lib-1.0.dist-info" / "RECORD").read_text()
    assert (new_site / "alpha_lib-1.0.dist-info" / "RECORD").stat().st_ino != (
        old_site / "alpha_lib-1.0.dist-info" / "RECORD"
    ).stat().st_ino
    line = next(x for x in record.splitlines() if x.startswith("../../../bin/alpha-tool,"))
    assert line.endswith(f",{script.stat().st_size}")
    assert venv_run(str(new), "voice-client", "version").strip() == "1.2.0"
    marker = json.loads((new / ".build-complete").read_text())
    assert set(marker["installed"]) == {"alpha-lib", "voice-client"}


def test_wrong_wheel_hash_fails_before_anything_is_installed(device, house):
    stock(device, house, ALPHA)
    args = release_args(device, house, VC11)
    bad = house[VC11].read_bytes() + b"tampered"
    (device["wheels"] / VC11).write_bytes(bad)
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["failed"]
    assert result["step"] == "wheel hashes"
    assert VC11 in result["msg"]
    assert hashlib.sha256(bad).hexdigest() in result["msg"] and args["wheels"][VC11] in result["msg"]
    assert not Path(args["release_dir"]).exists()
    # Moved out of the cache: the controller sees it missing next time and sends it again.
    assert not (device["wheels"] / VC11).exists()
    assert (device["wheels"] / f"{VC11}.corrupt").read_bytes() == bad


def test_hash_cache_never_vouches_for_a_changed_file(device, house):
    stock(device, house, ALPHA, VC11)
    args = release_args(device, house, VC11)
    build_ok(args, device["tmp"])
    cache = device["wheels"] / ".sha256-cache.json"
    assert VC11 in json.loads(cache.read_text())["files"]

    # Same size, same mtime, other bytes: the cache must not let it pass.
    target = device["wheels"] / VC11
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    other = release_args(device, house, VC11, marker={"version": "1.1.0"})
    other["release_dir"] += "-again"
    rc, result = run_module(other, device["tmp"])
    assert rc != 0 and result["step"] == "wheel hashes", result
    assert not Path(other["release_dir"]).exists()

    # A corrupt cache is ignored: the files are hashed and the build goes on.
    target.write_bytes(house[VC11].read_bytes())
    cache.write_text('{"files": {"' + VC11 + '": {"key": "garbage", "sha256": 5}')
    build_ok(other, device["tmp"])


def _tar_with(path: Path, house: dict, member: tarfile.TarInfo, data: bytes | None) -> None:
    with tarfile.open(path, "w") as tar:
        tar.add(house[ALPHA], arcname=ALPHA)
        tar.addfile(member, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("kind", ["traversal", "subdir", "absolute", "symlink", "not-a-wheel"])
def test_incoming_tar_with_unsafe_member_is_refused(device, house, kind):
    stock(device, house)
    data = house[VC11].read_bytes()
    names = {
        "traversal": f"../{VC11}",
        "subdir": f"sub/{VC11}",
        "absolute": f"{device['tmp']}/{VC11}",
        "symlink": VC11,
        "not-a-wheel": "evil.sh",
    }
    member = tarfile.TarInfo(names[kind])
    if kind == "symlink":
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd"
        payload = None
    else:
        member.size = len(data)
        payload = data
    incoming = device["tmp"] / "incoming.tar"
    _tar_with(incoming, house, member, payload)
    args = release_args(device, house, VC11, incoming=str(incoming))
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["failed"]
    assert result["step"] == "receive wheels"
    assert "refused" in result["msg"], result["msg"]
    assert not Path(args["release_dir"]).exists()
    assert sorted(p.name for p in device["wheels"].iterdir() if p.suffix == ".whl") == []
    assert not (device["wheels"].parent / VC11).exists()
    assert not (device["tmp"] / VC11).exists()
    assert not (device["wheels"] / "sub").exists()


def test_incoming_wheel_with_wrong_content_is_not_moved_into_place(device, house):
    stock(device, house, ALPHA)
    incoming = device["tmp"] / "incoming.tar"
    member = tarfile.TarInfo(VC11)
    data = b"not the wheel"
    member.size = len(data)
    with tarfile.open(incoming, "w") as tar:
        tar.addfile(member, io.BytesIO(data))
    args = release_args(device, house, VC11, incoming=str(incoming))
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["step"] == "receive wheels"
    assert hashlib.sha256(data).hexdigest() in result["msg"]
    assert not (device["wheels"] / VC11).exists()
    assert not [p for p in device["wheels"].iterdir() if p.name.startswith(".incoming")]


def test_import_check_failure_names_step_and_keeps_previous_release(device, house):
    stock(device, house, ALPHA, VC11, VC12)
    first = release_args(device, house, VC11)
    build_ok(first, device["tmp"])
    old = Path(first["release_dir"])
    before = tree(old)
    marker_before = (old / ".build-complete").read_text()

    second = release_args(device, house, VC12, previous_release_dir=str(old))
    second["import_check"] = ["voice_client", "no_such_module_xyz"]
    rc, result = run_module(second, device["tmp"])
    assert rc != 0 and result["failed"]
    assert result["step"] == "import check"
    assert "no_such_module_xyz" in result["error"]
    assert '"import check"' in result["msg"]
    assert not Path(second["release_dir"]).exists()
    assert tree(old) == before
    assert (old / ".build-complete").read_text() == marker_before
    assert venv_run(str(old), "voice-client", "version").strip() == "1.1.0"


def test_a_requirement_that_is_not_installed_fails_the_dependency_check(device, house):
    """A lock that lacks a dependency of the client: named, and nothing is imported or kept."""
    stock(device, house, VC11)
    args = release_args(device, house, VC11)
    args["wheels"] = {VC11: args["wheels"][VC11]}
    args["requirements"] = "".join(
        line + "\n" for line in args["requirements"].splitlines() if not line.startswith("alpha-lib")
    )
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["step"] == "dependency check", result
    assert "voice-client 1.1.0 requires alpha-lib, which is not installed." in result["error"]
    assert "import check" not in result["timings"]
    assert not Path(args["release_dir"]).exists()


def test_a_requirement_at_a_version_it_refuses_fails_the_dependency_check(device, house, tmp_path):
    """alpha-lib 2.0 where the client asks for ==1.0; a requirement its marker excludes is ignored."""
    alpha2 = _project(
        tmp_path / "src",
        "alpha-lib",
        "2.0",
        package="alpha_lib",
        files={"__init__.py": "def tool():\n    pass\n"},
        extra="dependencies = [\"no-such-dist; python_version < '3'\"]\n",
    )
    out = tmp_path / "out"
    subprocess.run([*PIP_WHEEL, "--no-build-isolation", "-q", "-w", str(out), str(alpha2)], check=True)
    wheel = next(out.glob("alpha_lib-2.0-*.whl"))
    stock(device, house, VC11)
    shutil.copy(wheel, device["wheels"] / wheel.name)
    args = release_args(device, house, VC11)
    args["wheels"] = {wheel.name: sha256(wheel), VC11: args["wheels"][VC11]}
    args["requirements"] = args["requirements"].replace(
        f"alpha-lib==1.0 --hash=sha256:{sha256(house[ALPHA])}",
        f"alpha-lib==2.0 --hash=sha256:{sha256(wheel)}",
    )
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["step"] == "dependency check", result
    assert result["error"].endswith(
        "voice-client 1.1.0 has requirement alpha-lib==1.0, but you have alpha-lib 2.0."
    ), result["error"]
    assert "no-such-dist" not in result["error"]


def test_self_check_failure_names_step(device, house):
    stock(device, house, ALPHA, VC11)
    args = release_args(device, house, VC11, env_file=str(device["tmp"] / "missing.env"))
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["step"] == "self-check"
    assert "FAIL cannot read" in result["error"]
    assert not Path(args["release_dir"]).exists()


def test_missing_pip_wheel_is_named(device, house):
    stock(device, house, ALPHA, VC11)
    missing = str(device["tmp"] / "pip-99-py3-none-any.whl")
    rc, result = run_module(release_args(device, house, VC11, pip_wheel=missing), device["tmp"])
    assert rc != 0 and missing in result["msg"]


def _pip_copy_name(pip_wheel: Path) -> str:
    return f"pip-{pip_wheel.name.split('-')[1]}-{sha256(pip_wheel)[:12]}"


def test_pip_runs_from_a_copy_unpacked_and_compiled_once(device, house):
    """With tools_dir the first build unpacks pip and compiles it; the next one runs that very copy."""
    stock(device, house, ALPHA, VC11, VC12)
    tools = device["base"] / "tools"
    pip_wheel = max(Path("/usr/share/python-wheels").glob("pip-*.whl"))
    first = release_args(device, house, VC11, tools_dir=str(tools), pip_wheel=str(pip_wheel))
    assert build_ok(first, device["tmp"])["installed"] == ["alpha-lib", "voice-client"]
    copy = tools / _pip_copy_name(pip_wheel)
    assert sorted(p.name for p in tools.iterdir()) == [copy.name]
    assert (copy / ".complete").read_text() == f"{pip_wheel.name}\n"
    assert list((copy / "pip" / "__pycache__").glob("__main__.cpython-311.pyc")), "not compiled"
    made = tree(copy)
    second = release_args(
        device,
        house,
        VC12,
        tools_dir=str(tools),
        pip_wheel=str(pip_wheel),
        previous_release_dir=first["release_dir"],
    )
    assert build_ok(second, device["tmp"])["installed"] == ["voice-client"]
    assert tree(copy) == made, "the copy was made again or changed"

    # A broken copy fails a build: the build runs pip from it, not from the wheel.
    (copy / "pip" / "__main__.py").write_text("raise SystemExit('pip from the tools copy')\n")
    shutil.rmtree(second["release_dir"])
    rc, result = run_module(second, device["tmp"])
    assert rc != 0 and result["step"] == "install" and "pip from the tools copy" in result["error"], result


def test_a_new_pip_copy_replaces_older_and_dead_ones(device, house):
    stock(device, house, ALPHA, VC11)
    tools = device["base"] / "tools"
    pip_wheel = max(Path("/usr/share/python-wheels").glob("pip-*.whl"))
    older = tools / "pip-1.0-0123456789ab"  # an older pip's whole copy
    dead = tools / ".pip-dead"  # a run that died while unpacking, long ago
    alive = tools / ".pip-alive"  # a run unpacking now
    half = tools / _pip_copy_name(pip_wheel)  # not whole (no .complete): never trusted
    uv = tools / "uv-0.5.0-0123456789ab"  # another tool is not pip's business
    tools_of_pip = tools / "pip-tools-7.4.1-0123456789ab"  # nor is one named like it
    for path in (older, dead, alive, half, uv, tools_of_pip):
        (path / "pip").mkdir(parents=True)
    (older / ".complete").write_text("pip-1.0-py3-none-any.whl\n")
    (half / "pip" / "__main__.py").write_text("raise SystemExit('half a copy')\n")
    os.utime(dead, (1, 1))
    build_ok(release_args(device, house, VC11, tools_dir=str(tools), pip_wheel=str(pip_wheel)), device["tmp"])
    assert sorted(p.name for p in tools.iterdir()) == sorted(
        [".pip-alive", half.name, uv.name, tools_of_pip.name]
    )
    assert (half / ".complete").is_file() and "half a copy" not in (half / "pip" / "__main__.py").read_text()


def test_a_pip_wheel_that_cannot_be_unpacked_is_named_and_leaves_nothing(device, house):
    stock(device, house, ALPHA, VC11)
    tools = device["base"] / "tools"
    bad = device["tmp"] / "pip-99.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip file")
    args = release_args(device, house, VC11, tools_dir=str(tools), pip_wheel=str(bad))
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and result["step"] == "install" and str(bad) in result["error"], result
    assert list(tools.iterdir()) == [] and not Path(args["release_dir"]).exists()


def test_a_build_names_the_inputs_it_lacks_and_build_false_is_the_action_s(device, house):
    """Only the action plugin may leave the build out (it then only activates): a module run builds."""
    args = release_args(device, house, VC11)
    del args["wheels"], args["marker"]
    rc, result = run_module(args, device["tmp"])
    assert rc != 0 and "wheels" in result["msg"] and "marker" in result["msg"], result
    rc, result = run_module(release_args(device, house, VC11, build=False), device["tmp"])
    assert rc != 0 and result["step"] == "arguments" and "build: false" in result["error"], result


def test_module_file_is_a_plain_ansible_module():
    text = MODULE.read_text()
    order = [text.index(word) for word in ("DOCUMENTATION", "EXAMPLES", "RETURN", "\nimport ")]
    assert order == sorted(order)
    spec = importlib.util.spec_from_file_location("voice_release_build", MODULE)
    module = importlib.util.module_from_spec(spec)
    helpers = str(HELPERS)
    sys.path.insert(0, helpers)  # where the pull agent keeps the module's shared helpers
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(helpers)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert isinstance(yaml.safe_load(module.EXAMPLES), list)
    assert set(yaml.safe_load(module.RETURN)) >= {
        "changed",
        "release",
        "reused",
        "installed",
        "timings",
        "step",
    }
    assert set(doc["options"]) == set(module.ARGUMENT_SPEC)
    for name, spec_ in module.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == spec_["type"], name
        assert doc["options"][name].get("default") == spec_.get("default"), name
