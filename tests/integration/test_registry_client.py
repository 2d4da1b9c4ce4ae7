"""The controller's one registry client (plugins/module_utils/voice_registry_client.py).

Against the real local stack (PostgREST + PostgreSQL behind its gateway). Faults are real
network faults: a loopback TCP relay in front of the gateway drops connections, or answers as a
load balancer does when its backend is down (HTTP 503), before it relays bytes unchanged.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (
    RegistryClient,
    RegistryError,
)

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 21\r\n"
    b"Connection: close\r\n\r\n<h1>no backend</h1>\r\n"
)


class FaultyRelay:
    """Loopback TCP relay to `target`: the first connections get `fault`, the rest are relayed."""

    def __init__(self, target: str, faults: list[str]) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.faults = list(faults)
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            fault = self.faults.pop(0) if self.faults else "relay"
            if fault == "drop":
                conn.close()
            elif fault == "503":
                conn.recv(65536)
                conn.sendall(UNAVAILABLE)
                conn.close()
            else:
                upstream = socket.create_connection(self.target)
                for a, b in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def relay(stack_env):
    made: list[FaultyRelay] = []

    def make(*faults: str) -> FaultyRelay:
        made.append(FaultyRelay(stack_env["SUPABASE_URL"], list(faults)))
        return made[-1]

    yield make
    for item in made:
        item.close()


def read_one(client: RegistryClient) -> list[dict]:
    return client.rows("reading one update", client.table("updates").select("version").limit(1))


def test_dropped_connections_and_a_503_are_tried_again_until_the_registry_answers(relay, stack_env):
    proxy = relay("drop", "503", "drop")
    with RegistryClient(proxy.url, stack_env["SUPABASE_SERVICE_KEY"], backoff=0.01) as client:
        rows = read_one(client)
        assert isinstance(rows, list)
        # Three faults, then the real answer: four connections, two answered (the 503 and PostgREST).
        assert proxy.connections == 4
        assert client.requests == 2 and client.last_status == 200


@pytest.mark.parametrize(
    ("fault", "retries", "said"),
    [
        (("drop", None), 2, "reading one update: cannot reach the registry at {url}: "),
        (("503", 503), 1, "reading one update: the registry at {url} answered HTTP 503"),
    ],
)
def test_a_registry_that_stays_down_is_named_after_the_retries(relay, stack_env, fault, retries, said):
    fault, status = fault
    proxy = relay(*[fault] * 10)
    client = RegistryClient(proxy.url, stack_env["SUPABASE_SERVICE_KEY"], retries=retries, backoff=0.01)
    with client, pytest.raises(RegistryError) as failed:
        read_one(client)
    assert proxy.connections == retries + 1
    assert str(failed.value).startswith(said.format(url=proxy.url)), failed.value
    assert failed.value.status == status
    if fault == "503":
        assert "not an answer from PostgREST" in str(failed.value)


def test_a_refused_key_is_asked_once_and_never_shown(stack_env):
    head, payload, _ = stack_env["SUPABASE_SERVICE_KEY"].split(".")
    forged = f"{head}.{payload}.c2lnbmF0dXJlLW9mLW5vYm9keQ"
    url = stack_env["SUPABASE_URL"].replace("://", "://fleet-admin:pw-s3cret@", 1)
    with RegistryClient(url, forged, backoff=0.01) as client:
        with pytest.raises(RegistryError) as failed:
            read_one(client)
        assert client.requests == 1
    message = str(failed.value)
    assert "refused the key (HTTP 401" in message and "service role key" in message
    assert forged not in message and "pw-s3cret" not in message and "fleet-admin:***@" in message


def test_a_missing_table_and_a_missing_column_are_named(stack_env):
    with RegistryClient(stack_env["SUPABASE_URL"], stack_env["SUPABASE_SERVICE_KEY"]) as client:
        with pytest.raises(RegistryError) as no_table:
            client.rows("reading gadgets", client.table("gadgets").select("*"), table="gadgets")
        with pytest.raises(RegistryError) as no_column:
            client.rows("reading devices", client.table("devices").select("nickname"), table="devices")
        assert client.requests == 2  # neither is tried again
    assert "has no table 'gadgets'" in str(no_table.value)
    assert no_column.value.column == "nickname"
    assert "table 'devices'" in str(no_column.value) and "has no column 'nickname'" in str(no_column.value)


def test_bad_settings_are_named_before_any_request(stack_env):
    with pytest.raises(RegistryError, match="must start with http:// or https://, got 'ftp://x'"):
        RegistryClient("ftp://x", "k")
    with pytest.raises(RegistryError, match="no registry key"):
        RegistryClient(stack_env["SUPABASE_URL"], "")


def test_the_state_machine_writes_through_the_same_client(stack_env, registry_db):
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (  # noqa: PLC0415
        Registry,
    )

    device_uuid = str(uuid.uuid4())
    try:
        with Registry(stack_env["SUPABASE_URL"], stack_env["SUPABASE_SERVICE_KEY"], check_mode=False) as reg:
            device = {
                "device_uuid": device_uuid,
                "device_name": "hall",
                "timezone": "UTC",
                "status": "online",
            }
            assert reg.register_device(device)[0] is True
            assert reg.register_device(device)[0] is False
            # One request to read, one to write, one to read again.
            assert reg.registry.requests == 3
    finally:
        registry_db.execute("DELETE FROM devices WHERE device_uuid = %s", (device_uuid,))


# --- one client: nothing else on the controller talks to the registry ----------------

PRODUCT = ("plugins", "roles", "inventory", "filter_plugins", "callback_plugins", "tools", "scripts")
PRODUCT += ("playbooks",)
SQL_WRITE = re.compile(
    r"\b(INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+[\w.\"]+\s+SET|TRUNCATE\s+(TABLE\s+)?[\w.\"]+\s*[;,\s])",
    re.IGNORECASE,
)
# A raw HTTP call; PostgREST needs the key in an `apikey` header, so a call that sends one is a client.
RAW_HTTP = re.compile(
    r"urllib\.request|urlopen\(|http\.client|\bhttpx\b|^import requests|\buri:", re.MULTILINE
)
CLIENT = "plugins/module_utils/voice_registry_client.py"
# The stack tool applies supabase/migrations/ and checks its own gateway: it is the registry.
# The pull agent is the device's own client (its credential, stdlib only, no supabase-py there).
EXEMPT = {CLIENT, "tools/stack.py", "roles/voice_agent/files/voice_agent.py"}


def product_files() -> list[Path]:
    suffixes = (".py", ".sh", ".yml", ".j2")
    files = [p for top in PRODUCT for p in (ROOT / top).rglob("*") if p.suffix in suffixes and p.is_file()]
    return [p for p in files if "molecule" not in p.relative_to(ROOT).parts]  # the roles' tests


def offences(rel: str, text: str) -> list[str]:
    """What in one product file talks to the registry other than through the one client."""
    if rel in EXEMPT:
        return []
    found = []
    if SQL_WRITE.search(text) or re.search(r"\bpsycopg\b|\bpsql\b", text):
        found.append(f"{rel}: SQL")
    if "create_client" in text:
        found.append(f"{rel}: its own supabase client")
    if "apikey" in text.lower() and RAW_HTTP.search(text):
        found.append(f"{rel}: its own REST calls")
    return found


def test_the_check_for_other_registry_clients_catches_each_kind():
    assert offences("tools/x.py", "conn.execute('delete from public.devices where x')")
    assert offences("tools/x.sh", 'psql "$DATABASE_URL" -c "table devices"')
    assert offences("tools/x.py", "from supabase import create_client")
    assert offences("tools/x.py", "urllib.request.urlopen(Request(url, headers={'apikey': key}))")
    assert offences("roles/x/tasks/main.yml", "ansible.builtin.uri:\n    headers:\n      apikey: x")
    assert not offences("roles/x/tasks/main.yml", "{{ value | truncate(80) }} and update the row")


def test_no_product_code_writes_the_registry_with_sql_or_its_own_client():
    found = []
    for path in product_files():
        found += offences(path.relative_to(ROOT).as_posix(), path.read_text(errors="replace"))
    assert not found, found
