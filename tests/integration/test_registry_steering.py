"""The service key goes only to the registry the inventory is read from (issue 13, item 7).

A launch-time extra variable (AWX) may not point `voice_registry_url` anywhere
else: the registry role's preflight refuses it, naming the variable and both
URLs and never the key, before any request is sent. "No request" is checked
with a listener on the steered address (127.0.0.2, a loopback address nothing
else uses): it must see no connection at all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP listener on 127.0.0.2 that records every connection (and what the client sent first)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}/"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def run_play(
    tmp_path: Path, stack_env: dict[str, str], tasks_from: str, extravars: dict
) -> subprocess.CompletedProcess:
    """A tiny play on localhost that includes voice_registry tasks_from <tasks_from>, at -vvv."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Use the registry",
                    "ansible.builtin.include_role": {"name": "voice_registry", "tasks_from": tasks_from},
                }
            ],
        }
    ]
    playbook = tmp_path / f"steer-{uuid.uuid4().hex}.yml"
    playbook.write_text(yaml.safe_dump(play))
    cmd = ["ansible-playbook", "-vvv", "-i", "localhost,", "-c", "local", str(playbook)]
    cmd += ["-e", json.dumps(extravars)]
    env = {
        **os.environ,
        "SUPABASE_URL": stack_env["SUPABASE_URL"],
        "SUPABASE_SERVICE_KEY": stack_env["SUPABASE_SERVICE_KEY"],
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=300)


def test_an_extra_variable_cannot_steer_the_registry(tmp_path, stack_env, listener):
    proc = run_play(tmp_path, stack_env, "preflight", {"voice_registry_url": listener.url})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "voice_registry_url" in out
    assert listener.url in out, "the message names the steered URL"
    assert stack_env["SUPABASE_URL"] in out, "the message names the inventory's URL"
    assert "is not the registry the inventory is read from" in out
    assert stack_env["SUPABASE_SERVICE_KEY"] not in out
    assert listener.received == [], "a request went to the steered URL"


def test_the_inventorys_own_url_passes(tmp_path, stack_env, listener):
    # The same URL, as the operator may write it (a trailing slash), is the same registry.
    url = stack_env["SUPABASE_URL"].rstrip("/") + "/"
    proc = run_play(tmp_path, stack_env, "preflight", {"voice_registry_url": url})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert stack_env["SUPABASE_SERVICE_KEY"] not in proc.stdout + proc.stderr


def test_without_the_variable_the_inventorys_url_is_used(tmp_path, stack_env):
    proc = run_play(tmp_path, stack_env, "preflight", {})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_registry_without_its_key_is_refused_by_name(tmp_path, stack_env):
    # A key that is empty: the message names SUPABASE_URL's value and says the key is empty.
    proc = run_play(tmp_path, {**stack_env, "SUPABASE_SERVICE_KEY": ""}, "preflight", {})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "the device registry is not configured" in out
    assert f"SUPABASE_URL (now '{stack_env['SUPABASE_URL']}')" in out
    assert "SUPABASE_SERVICE_KEY (empty)" in out
    assert "is not the registry the inventory is read from" not in out


@pytest.mark.parametrize("tasks_from", ["latest", "update"])
def test_the_entry_points_that_send_the_key_refuse_before_any_request(
    tmp_path, stack_env, listener, tasks_from
):
    extravars = {"voice_registry_url": listener.url, "voice_registry_update_version": "0.0.0-steer"}
    proc = run_play(tmp_path, stack_env, tasks_from, extravars)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "is not the registry the inventory is read from" in out
    assert listener.received == [], "a request went to the steered URL"
    assert stack_env["SUPABASE_SERVICE_KEY"] not in out


def test_progress_refuses_a_steered_registry_before_any_request(tmp_path, stack_env, listener):
    extravars = {
        "voice_registry_url": listener.url,
        "voice_registry_update_version": "0.0.0-steer",
        "voice_registry_update_status": "rolled_back",
        "voice_registry_device_uuid": str(uuid.uuid4()),
    }
    proc = run_play(tmp_path, stack_env, "progress", extravars)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    key = stack_env["SUPABASE_SERVICE_KEY"].encode()
    assert not any(key in request for request in listener.received), (
        "the service key was sent to the steered URL"
    )
    assert listener.received == [], "a request went to the steered URL"
