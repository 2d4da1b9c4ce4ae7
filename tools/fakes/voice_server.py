#!/usr/bin/env python3
"""A stand-in for the Javia voice server's HTTP contract (standard library only).

It implements what the device uses, as the Javia server's FastAPI code defines it:

- ``POST /api/v1/prepare``: needs ``X-Device-UUID``; form ``session_id`` (optional);
  answers ``{"status": "ready", "session_id": ...}``.
- ``POST /api/v1/process``: needs ``X-Device-UUID``; multipart ``audio`` (content
  type ``audio/opus``, the Javia container), ``session_id``, ``microphone_gain``.
  Answers 200 with a chunked, streamed container (packet count 0) that echoes the
  uploaded packets, with ``X-Session-ID`` and ``X-Transcription`` headers.
- ``POST /api/v1/devices/{uuid}/heartbeat``: JSON ``current_version``, ``status``,
  ``metadata``; needs ``X-API-Key`` when the server has a key (as Javia's devices
  router does).

Every request is recorded (headers, form fields, files, JSON, the decoded
container) for tests to check. Knobs let a test delay the answer's chunks, hold
its last chunk until released, block requests, fail heartbeats or send a
corrupt answer.

Tests and the client benchmark import it (:class:`FakeVoiceServer`, started on
127.0.0.1 on an ephemeral port in a thread); the simulated fleet runs it as a
script inside its voice server container:

    python3 tools/fakes/voice_server.py --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import re
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote

HEADER = struct.Struct("<IBI")
LENGTH = struct.Struct("<H")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_HEARTBEAT = re.compile(r"^/api/v1/devices/([^/]+)/heartbeat$")


@dataclass
class Container:
    sample_rate: int
    channels: int
    packet_count: int
    packets: list[bytes]


def parse_container(data: bytes) -> Container:
    """Parse a whole Javia Opus container (raises ValueError with the reason)."""
    if len(data) < HEADER.size:
        raise ValueError(f"container of {len(data)} bytes has no header")
    rate, channels, count = HEADER.unpack_from(data)
    offset, packets = HEADER.size, []
    while offset < len(data):
        if offset + LENGTH.size > len(data):
            raise ValueError(f"truncated packet length at byte {offset}")
        (length,) = LENGTH.unpack_from(data, offset)
        offset += LENGTH.size
        if length == 0 or offset + length > len(data):
            raise ValueError(f"bad or truncated packet of {length} bytes at byte {offset}")
        packets.append(data[offset : offset + length])
        offset += length
    if count and count != len(packets):
        raise ValueError(f"header declares {count} packets, found {len(packets)}")
    return Container(rate, channels, count, packets)


def build_container(sample_rate: int, channels: int, packets: list[bytes], count: int = 0) -> bytes:
    parts = [HEADER.pack(sample_rate, channels, count)]
    for packet in packets:
        parts += [LENGTH.pack(len(packet)), packet]
    return b"".join(parts)


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str | None, str, bytes]] = field(default_factory=dict)
    json: Any = None
    container: Container | None = None
    status: int = 0
    completed: bool = False  # the whole answer was sent
    aborted: bool = False  # the client went away mid-answer
    received_at: float = field(default_factory=time.monotonic)
    first_byte_at: float | None = None  # time.monotonic() when the answer's first chunk went out


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a press stopping the answer) is normal here, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeVoiceServer:
    """The fake server: start(), .url, .requests, stop(). Knobs are plain attributes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.session_id = str(uuid.uuid4())
        self.transcription = "what time is it"
        self.packets_per_chunk = 5  # answer packets per HTTP chunk
        self.chunk_delay = 0.0  # seconds between answer chunks
        self.hold_last_chunk: threading.Event | None = None  # wait for it before the last chunk
        self.gate: threading.Event | None = None  # every request waits for it first
        self.heartbeat_status = 200
        self.process_status = 200
        self.answer_override: bytes | None = None  # raw answer body instead of the echo
        self.requests: list[Recorded] = []
        self._cond = threading.Condition()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeVoiceServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-voice-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the script's mode)."""
        try:
            self._httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self.hold_last_chunk is not None:
            self.hold_last_chunk.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeVoiceServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def record(self, request: Recorded) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def of_path(self, suffix: str) -> list[Recorded]:
        with self._cond:
            return [r for r in self.requests if r.path.endswith(suffix)]

    def wait_for(
        self, suffix: str, count: int = 1, timeout: float = 10.0, completed: bool = False
    ) -> list[Recorded]:
        """Wait until ``count`` requests to a path ending in ``suffix`` arrived (and finished)."""

        def ready() -> bool:
            found = [r for r in self.requests if r.path.endswith(suffix)]
            if completed:
                found = [r for r in found if r.completed or r.aborted]
            return len(found) >= count

        with self._cond:
            if not self._cond.wait_for(ready, timeout):
                seen = [f"{r.method} {r.path} {r.status}" for r in self.requests]
                raise TimeoutError(f"no {count} request(s) to *{suffix} within {timeout}s; saw {seen}")
            return [r for r in self.requests if r.path.endswith(suffix)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeJaviaVoiceServer/1"

    @property
    def fake(self) -> FakeVoiceServer:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if __name__ == "__main__":
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _reply_json(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        fake = self.fake
        body = self._read_body()
        record = Recorded("POST", self.path, dict(self.headers.items()))
        if fake.gate is not None:
            fake.gate.wait()
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            _parse_multipart(content_type, body, record)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            record.form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        elif content_type.startswith("application/json"):
            try:
                record.json = json.loads(body or b"null")
            except ValueError:
                record.json = None
        fake.record(record)

        match = _HEARTBEAT.match(self.path)
        if match:
            self._heartbeat(record, match.group(1))
            return
        device = self.headers.get("X-Device-UUID", "")
        if not _UUID.match(device):
            record.status = 400
            self._reply_json(400, {"detail": f"Missing or invalid X-Device-UUID: {device!r}"})
            return
        if self.path == "/api/v1/prepare":
            record.status = 200
            self._reply_json(200, {"status": "ready", "session_id": fake.session_id, "cached_messages": 0})
        elif self.path == "/api/v1/process":
            self._process(record)
        else:
            record.status = 404
            self._reply_json(404, {"detail": "Not Found"})
        fake.changed()

    def _heartbeat(self, record: Recorded, device: str) -> None:
        fake = self.fake
        key = self.headers.get("X-API-Key")
        if fake.api_key is not None and not key:
            record.status = 401
            self._reply_json(401, {"detail": "Missing API key"})
        elif fake.api_key is not None and key != fake.api_key:
            record.status = 403
            self._reply_json(403, {"detail": "Invalid API key"})
        elif not isinstance(record.json, dict) or "current_version" not in record.json:
            record.status = 422
            self._reply_json(422, {"detail": "current_version is required"})
        else:
            record.status = fake.heartbeat_status
            self._reply_json(
                record.status, {"device_uuid": device, "status": record.json.get("status", "online")}
            )
        fake.changed()

    def _process(self, record: Recorded) -> None:
        fake = self.fake
        audio = record.files.get("audio")
        if audio is None or audio[1] != "audio/opus":
            record.status = 400
            self._reply_json(
                400, {"detail": f"expected an audio/opus file in field 'audio', got {audio and audio[1]}"}
            )
            return
        try:
            record.container = parse_container(audio[2])
        except ValueError as exc:
            record.status = 400
            self._reply_json(400, {"detail": f"bad Opus container: {exc}"})
            return
        if fake.process_status != 200:
            record.status = fake.process_status
            self._reply_json(record.status, {"detail": "the fake server was told to fail"})
            return
        if fake.answer_override is not None:
            chunks = [fake.answer_override]
        else:
            container = record.container
            step = max(1, fake.packets_per_chunk)
            chunks = [HEADER.pack(container.sample_rate, container.channels, 0)]
            for start in range(0, len(container.packets), step):
                group = container.packets[start : start + step]
                chunks.append(b"".join(LENGTH.pack(len(p)) + p for p in group))
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "audio/opus")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Session-ID", quote(fake.session_id, safe=""))
        self.send_header("X-Transcription", quote(fake.transcription, safe=""))
        self.send_header("X-Streaming", "true")
        self.end_headers()
        try:
            for index, chunk in enumerate(chunks):
                if index and fake.chunk_delay:
                    time.sleep(fake.chunk_delay)
                if index == len(chunks) - 1 and fake.hold_last_chunk is not None:
                    fake.hold_last_chunk.wait()
                if record.first_byte_at is None:
                    record.first_byte_at = time.monotonic()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            record.completed = True
        except (BrokenPipeError, ConnectionResetError):
            record.aborted = True
            self.close_connection = True


def _parse_multipart(content_type: str, body: bytes, record: Recorded) -> None:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            record.files[str(name)] = (part.get_filename(), part.get_content_type(), payload)
        else:
            record.form[str(name)] = payload.decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default=None, help="require this X-API-Key on heartbeats")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between answer chunks")
    args = parser.parse_args(argv)
    server = FakeVoiceServer(args.host, args.port, api_key=args.api_key)
    server.chunk_delay = args.chunk_delay
    print(f"fake Javia voice server on {server.url}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
