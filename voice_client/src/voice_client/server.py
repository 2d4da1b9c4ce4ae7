"""The Javia voice server's HTTP contract, as its FastAPI code defines it.

- ``POST /api/v1/prepare`` (form ``session_id``, optional) -> JSON ``session_id``:
  warms the server's conversation cache; called after recording has started.
- ``POST /api/v1/process``: multipart ``audio`` (``recording.opus``,
  ``audio/opus``, the Javia container), ``session_id``, ``microphone_gain``;
  answers with a streamed container and headers ``X-Session-ID``,
  ``X-Transcription`` (URL-quoted).
- ``POST /api/v1/devices/{uuid}/heartbeat``: JSON ``current_version``,
  ``status``, ``metadata``.

Every request carries ``X-Device-UUID``. The devices router also requires
``X-API-Key`` (the heartbeat fails with 401 without it, which the Javia client
never noticed), so it is sent whenever ``SERVER_API_KEY`` is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import requests

from voice_client import version

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0


class ServerError(RuntimeError):
    """The server was unreachable or refused the request; the message says which."""


def _describe(response: requests.Response, device_uuid: str) -> str:
    body = response.text[:200].strip().replace("\n", " ") if response.content else ""
    if response.status_code == 403:
        return (
            f"HTTP 403: the server does not accept device {device_uuid} "
            f"(not registered, or its status is not online): {body}"
        )
    if response.status_code == 401:
        return f"HTTP 401: the server wants an API key (set SERVER_API_KEY): {body}"
    return f"HTTP {response.status_code}: {body}"


class Answer:
    """A streamed answer: iterate :meth:`chunks` while it downloads; :meth:`close` aborts it."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.session_id = unquote(response.headers.get("X-Session-ID", "")) or None
        self.transcription = unquote(response.headers.get("X-Transcription", "")) or None

    def chunks(self) -> Iterator[bytes]:
        """Bytes as they arrive (each HTTP chunk as soon as it is read)."""
        raw = self._response.raw
        raw.decode_content = True
        while True:
            data = raw.read1(16384) if hasattr(raw, "read1") else raw.read(1024)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._response.close()


class VoiceServer:
    """Client of one voice server for one device. Not shared between threads."""

    def __init__(
        self, base_url: str, device_uuid: str, api_key: str | None, read_timeout: float = 60.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_uuid = device_uuid
        self.read_timeout = read_timeout
        self.session = requests.Session()
        self.session.headers["X-Device-UUID"] = device_uuid
        self.session.headers["User-Agent"] = f"voice-client/{version()}"
        if api_key:
            self.session.headers["X-API-Key"] = api_key

    def _post(self, path: str, timeout: float, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        try:
            return self.session.post(url, timeout=(CONNECT_TIMEOUT, timeout), **kwargs)
        except requests.RequestException as exc:
            raise ServerError(f"POST {path} failed: {type(exc).__name__}: {exc}") from exc

    def prepare(self, session_id: str | None) -> str | None:
        """Warm the server's context for this device; the session id it will use."""
        data = {"session_id": session_id} if session_id else {}
        response = self._post("/api/v1/prepare", 15.0, data=data)
        with response:
            if response.status_code != 200:
                raise ServerError(f"prepare: {_describe(response, self.device_uuid)}")
            try:
                value = response.json().get("session_id")
            except (ValueError, AttributeError) as exc:
                raise ServerError(f"prepare: the answer is not a JSON object: {exc}") from exc
        return str(value) if value else None

    def process(self, recording: Path, session_id: str | None, microphone_gain: float) -> Answer:
        """Upload the recording; returns once the answer's headers arrived (body still streaming)."""
        data = {"microphone_gain": f"{microphone_gain:g}"}
        if session_id:
            data["session_id"] = session_id
        with recording.open("rb") as audio:
            files = {"audio": ("recording.opus", audio, "audio/opus")}
            response = self._post("/api/v1/process", self.read_timeout, data=data, files=files, stream=True)
        if response.status_code != 200:
            with response:
                raise ServerError(f"process: {_describe(response, self.device_uuid)}")
        return Answer(response)

    def heartbeat(self, payload: dict[str, Any]) -> None:
        path = f"/api/v1/devices/{quote(self.device_uuid, safe='')}/heartbeat"
        response = self._post(path, 10.0, json=payload)
        with response:
            if response.status_code != 200:
                raise ServerError(f"heartbeat: {_describe(response, self.device_uuid)}")

    def close(self) -> None:
        self.session.close()
