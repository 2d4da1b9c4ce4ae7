"""Recording: the input stream is opened on the press, read on its own thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from voice_client.audio import AudioBackend, InputStream

log = logging.getLogger(__name__)


class Recorder:
    """Captures interleaved int16 frames until :meth:`stop` or ``max_seconds``."""

    def __init__(
        self,
        backend: AudioBackend,
        rate: int,
        channels: int,
        max_seconds: int,
        on_limit: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.rate = rate
        self.channels = channels
        self.chunk_frames = rate // 50  # 20 ms reads: stop takes effect within one
        self.max_frames = max_seconds * rate
        self._on_limit = on_limit
        self._stream: InputStream | None = None
        self._chunks: list[bytes] = []
        self._frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None

    @property
    def recording(self) -> bool:
        return self._thread is not None

    @property
    def frames(self) -> int:
        return self._frames

    def start(self) -> None:
        """Open the input stream (raises AudioError) and start capturing."""
        self._chunks, self._frames, self.error = [], 0, None
        self._stop.clear()
        self._stream = self.backend.open_input(self.rate, self.channels, self.chunk_frames)
        self._thread = threading.Thread(target=self._run, args=(self._stream,), name="recorder", daemon=True)
        self._thread.start()

    def _run(self, stream: InputStream) -> None:
        bytes_per_frame = 2 * self.channels
        try:
            while not self._stop.is_set():
                data = stream.read(self.chunk_frames)
                self._chunks.append(data)
                self._frames += len(data) // bytes_per_frame
                if self._frames >= self.max_frames:
                    log.info("recording reached the %d s limit; stopping it", self.max_frames // self.rate)
                    if self._on_limit is not None:
                        self._on_limit()
                    break
        except Exception as exc:  # the device went away mid-recording
            log.error("recording failed: %s", exc)
            self.error = exc
            if self._on_limit is not None:
                self._on_limit()

    def stop(self) -> bytes:
        """Stop capturing, release the device, return what was recorded."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=1.0)
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:
                log.warning("closing the input stream failed: %s", exc)
        data = b"".join(self._chunks)
        self._chunks = []
        return data[: self.max_frames * 2 * self.channels]
