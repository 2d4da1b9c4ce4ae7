"""Third-party sdists are built with an environment scrubbed of secrets (issue 13, item 6).

`voice_wheelhouse.run_pip_wheel` builds wheels the lock has no wheel for from their
sdists, on the controller, where SUPABASE_SERVICE_KEY (and the other SUPABASE_*
settings) live. The sdist here has an in-tree build backend with no build
requirements (so pip fetches nothing): it writes the environment it was given
to a file and builds a minimal wheel. None of the controller's secrets may be in it.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BACKEND = """
import base64, hashlib, json, os, zipfile

DUMP = {dump!r}


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{{name}},sha256={{digest}},{{len(data)}}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(DUMP, "w") as out:
        json.dump(dict(os.environ), out)
    name = "envprobe-1.0-py3-none-any.whl"
    files = {{
        "envprobe/__init__.py": b"",
        "envprobe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: envprobe\\nVersion: 1.0\\n",
        "envprobe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }}
    record = [_record_line(n, d) for n, d in files.items()] + ["envprobe-1.0.dist-info/RECORD,,"]
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        for n, d in files.items():
            whl.writestr(n, d)
        whl.writestr("envprobe-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""

PYPROJECT = """\
[build-system]
requires = []
build-backend = "probe_backend"
backend-path = ["."]

[project]
name = "envprobe"
version = "1.0"
"""

SECRETS = {
    "SUPABASE_SERVICE_KEY": "svc-Key-1d7c-not-for-setup-py",
    "SUPABASE_JWT_SECRET": "jwt-Secret-8e2f-not-for-setup-py",
    "SUPABASE_ANON_KEY": "anon-Key-4b1a-not-for-setup-py",
    "SUPABASE_URL": "http://127.0.0.1:9/registry-url-not-for-setup-py",
    "DATABASE_URL": "postgresql://postgres:db-Password-6c3e@127.0.0.1:9/postgres",
}


def make_sdist(path: Path, dump: Path) -> Path:
    sdist = path / "envprobe-1.0.tar.gz"
    members = {
        "envprobe-1.0/pyproject.toml": PYPROJECT,
        "envprobe-1.0/probe_backend.py": BACKEND.format(dump=str(dump)),
        "envprobe-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: envprobe\nVersion: 1.0\n",
        "envprobe-1.0/envprobe/__init__.py": "",
    }
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return sdist


def test_the_probe_sees_the_environment_it_is_given(wh, tmp_path):
    """The probe works: it builds and records what it was given (so a clean dump proves something)."""
    dump = tmp_path / "env.json"
    wheel = wh.run_pip_wheel(str(make_sdist(tmp_path, dump)), tmp_path / "out", "envprobe from its sdist")
    assert wheel.name == "envprobe-1.0-py3-none-any.whl"
    assert json.loads(dump.read_text())["PATH"]


def test_an_sdist_build_never_sees_the_controllers_secrets(wh, tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "env.json"
    wh.run_pip_wheel(str(make_sdist(tmp_path, dump)), tmp_path / "out", "envprobe from its sdist")
    seen = json.loads(dump.read_text())
    text = json.dumps(seen)
    assert not [name for name in seen if name.startswith("SUPABASE_")], sorted(seen)
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, f"the sdist's build saw {leaked}"
