"""Playback: one thread owns the output stream and plays queued sounds in order.

A :class:`Playback` is fed while its audio arrives (the streamed answer) or
whole (a beep). Playing starts once ``prebuffer`` frames are buffered or the
feeder says it is finished, not when the download ends. The amplifier is
switched on just before the first write and off once the queue is empty and
the stream has drained; :meth:`Player.stop_all` cuts everything short.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

import numpy as np

from voice_client.audio import AudioBackend, AudioError, OutputStream

log = logging.getLogger(__name__)

_TAIL_SECONDS = 0.03  # silence after the last sound so the amplifier does not cut it off


class Playback:
    """Audio for one sound, added with :meth:`feed` as (frames, channels) int16 arrays."""

    def __init__(self, prebuffer_frames: int = 0, label: str = "sound") -> None:
        self.label = label
        self.prebuffer_frames = prebuffer_frames
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._buffered = 0
        self._finished = False
        self._stopped = False
        self._cond = threading.Condition()
        self.started = threading.Event()  # the first frames went to the device
        self.done = threading.Event()  # played out, stopped or failed
        self.frames_played = 0

    def feed(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        with self._cond:
            if self._stopped or self._finished:
                return
            self._chunks.append(frames)
            self._buffered += len(frames)
            self._cond.notify_all()

    def finish(self) -> None:
        """No more audio will be fed: play what is buffered, then end."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._chunks.clear()
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def wait_ready(self, timeout: float) -> bool:
        """True when playing may start (prebuffered, finished or stopped)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopped or self._finished or self._buffered >= self.prebuffer_frames, timeout
            )

    def take(self, frames: int, timeout: float) -> np.ndarray | None:
        """Up to ``frames`` frames; an empty array on underrun (timeout); None at the end."""
        with self._cond:
            self._cond.wait_for(lambda: self._chunks or self._finished or self._stopped, timeout)
            if self._stopped or (self._finished and not self._chunks):
                return None
            if not self._chunks:
                return np.zeros((0, 1), dtype="<i2")
            parts, count = [], 0
            while self._chunks and count < frames:
                chunk = self._chunks[0]
                need = frames - count
                if len(chunk) <= need:
                    parts.append(self._chunks.popleft())
                    count += len(chunk)
                else:
                    parts.append(chunk[:need])
                    self._chunks[0] = chunk[need:]
                    count += need
            self._buffered -= count
            return parts[0] if len(parts) == 1 else np.concatenate(parts)


class Player:
    """Plays :class:`Playback` objects one after another on the output device."""

    def __init__(
        self,
        backend: AudioBackend,
        rate: int,
        channels: int,
        volume: Callable[[], int],
        amp: Callable[[bool], None],
    ) -> None:
        self.backend = backend
        self.rate = rate
        self.channels = channels
        self.chunk_frames = rate // 50  # 20 ms: stop and volume changes apply within that
        self._volume = volume
        self._amp = amp
        self._queue: collections.deque[Playback] = collections.deque()
        self._cond = threading.Condition()
        self._current: Playback | None = None
        self._closing = False
        self._stream: OutputStream | None = None
        self._thread = threading.Thread(target=self._run, name="player", daemon=True)
        self._thread.start()

    # -- API ----------------------------------------------------------------
    def play(self, frames: np.ndarray, label: str = "sound") -> Playback:
        """Queue a whole sound (a beep)."""
        playback = Playback(0, label)
        playback.feed(frames)
        playback.finish()
        return self.enqueue(playback)

    def stream(self, prebuffer_seconds: float, label: str = "answer") -> Playback:
        """Queue a sound that will be fed as it arrives."""
        return self.enqueue(Playback(int(prebuffer_seconds * self.rate), label))

    def enqueue(self, playback: Playback) -> Playback:
        with self._cond:
            if self._closing:
                playback.stop()
                playback.done.set()
                return playback
            self._queue.append(playback)
            self._cond.notify_all()
        return playback

    def stop_all(self) -> None:
        """Stop what plays and drop what is queued."""
        with self._cond:
            pending = [*self._queue, *([self._current] if self._current else [])]
            self._queue.clear()
        for playback in pending:
            playback.stop()
            playback.done.set()

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._queue) or self._current is not None

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.stop_all()
        self._thread.join(timeout)
        self._release()

    # -- worker ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if self._closing:
                    return
                playback = self._current = self._queue.popleft()
            try:
                self._play(playback)
            except Exception:
                log.exception("playback of %s failed", playback.label)
                self._release()
            finally:
                with self._cond:
                    self._current = None
                    idle = not self._queue
                if idle:  # amplifier off before anyone hears that the sound is done
                    self._release()
                playback.done.set()

    def _play(self, playback: Playback) -> None:
        while not playback.wait_ready(0.25):
            if self._closing:
                return
        if playback.stopped:
            return
        while not self._closing:
            frames = playback.take(self.chunk_frames, 0.25)
            if frames is None:
                return
            if len(frames) == 0:
                continue  # underrun: the answer is still downloading
            stream = self._stream or self._open()
            if stream is None:
                playback.stop()
                return
            volume = max(0, min(100, self._volume()))
            scaled = (frames.astype(np.int32) * volume // 100).astype("<i2")
            stream.write(scaled.tobytes())
            playback.frames_played += len(frames)
            playback.started.set()

    def _open(self) -> OutputStream | None:
        try:
            self._stream = self.backend.open_output(self.rate, self.channels, self.chunk_frames)
        except AudioError as exc:
            log.error("cannot play sound: %s", exc)
            return None
        self._amp(True)
        return self._stream

    def _release(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                if not self._closing:
                    silence = np.zeros((int(self.rate * _TAIL_SECONDS), self.channels), dtype="<i2")
                    stream.write(silence.tobytes())
                stream.close()
            except Exception as exc:  # a failing device must not keep the amplifier on
                log.warning("closing the output stream failed: %s", exc)
        self._amp(False)
