"""The Javia Opus container, written whole and parsed incrementally.

Layout (little endian): ``uint32 sample_rate``, ``uint8 channels``,
``uint32 packet_count`` (0 when streamed: the count is not known in advance),
then per packet ``uint16 length`` and ``length`` bytes of Opus.

The parser takes bytes as they arrive and hands back whole packets, so the
answer can be decoded and played while it downloads. Anything malformed raises
:class:`ContainerError` at once, naming the offset and the bad value; a stream
that ends mid-packet is reported by :meth:`ContainerParser.close`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

HEADER = struct.Struct("<IBI")
LENGTH = struct.Struct("<H")
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# libopus never produces more than this for one packet at the sizes used here
# (its own examples size the output buffer so); longer means a corrupt stream.
MAX_PACKET_BYTES = 4000


class ContainerError(ValueError):
    """The bytes are not a valid Javia Opus container."""


@dataclass(frozen=True)
class Header:
    sample_rate: int
    channels: int
    packet_count: int  # 0: streamed, unknown


def encode_container(
    sample_rate: int, channels: int, packets: Iterable[bytes], streamed: bool = False
) -> bytes:
    """The whole container for ``packets`` (packet count 0 when ``streamed``)."""
    packets = list(packets)
    _check_header(sample_rate, channels)
    out = [HEADER.pack(sample_rate, channels, 0 if streamed else len(packets))]
    for index, packet in enumerate(packets):
        if not 0 < len(packet) <= MAX_PACKET_BYTES:
            raise ContainerError(f"packet {index} has {len(packet)} bytes; expected 1..{MAX_PACKET_BYTES}")
        out.append(LENGTH.pack(len(packet)))
        out.append(packet)
    return b"".join(out)


def _check_header(sample_rate: int, channels: int) -> None:
    if sample_rate not in OPUS_RATES:
        raise ContainerError(
            f"sample rate {sample_rate} Hz in the header is not an Opus rate "
            f"({', '.join(map(str, OPUS_RATES))})"
        )
    if channels not in (1, 2):
        raise ContainerError(f"channel count {channels} in the header is not 1 or 2")


class ContainerParser:
    """Incremental parser: :meth:`feed` bytes, get whole packets; :meth:`close` at the end."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._offset = 0  # bytes of the stream consumed so far
        self.header: Header | None = None
        self.packets = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the packets it completed (possibly none)."""
        self._buffer += data
        out: list[bytes] = []
        if self.header is None:
            if len(self._buffer) < HEADER.size:
                return out
            rate, channels, count = HEADER.unpack_from(self._buffer)
            _check_header(rate, channels)
            self.header = Header(rate, channels, count)
            self._consume(HEADER.size)
        while len(self._buffer) >= LENGTH.size:
            (length,) = LENGTH.unpack_from(self._buffer)
            if not 0 < length <= MAX_PACKET_BYTES:
                raise ContainerError(
                    f"packet {self.packets} at byte {self._offset} declares {length} bytes; "
                    f"expected 1..{MAX_PACKET_BYTES} (corrupt stream)"
                )
            if self.header.packet_count and self.packets >= self.header.packet_count:
                raise ContainerError(
                    f"more packets than the {self.header.packet_count} the header declares "
                    f"(at byte {self._offset})"
                )
            if len(self._buffer) < LENGTH.size + length:
                break
            out.append(bytes(self._buffer[LENGTH.size : LENGTH.size + length]))
            self._consume(LENGTH.size + length)
            self.packets += 1
        return out

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        self._offset += count

    def close(self) -> None:
        """The stream has ended: raise if it ended early or mid-packet."""
        if self.header is None:
            raise ContainerError(
                f"stream ended after {len(self._buffer)} bytes, before the {HEADER.size}-byte header"
            )
        if self._buffer:
            raise ContainerError(
                f"stream truncated: {len(self._buffer)} bytes of an unfinished packet {self.packets} "
                f"at byte {self._offset}"
            )
        if self.header.packet_count and self.packets != self.header.packet_count:
            raise ContainerError(
                f"stream truncated: {self.packets} of the {self.header.packet_count} packets "
                "the header declares"
            )


def parse_container(data: bytes) -> tuple[Header, list[bytes]]:
    """Parse a whole container."""
    parser = ContainerParser()
    packets = parser.feed(data)
    parser.close()
    if parser.header is None:  # pragma: no cover - close() raised already
        raise ContainerError("no header")
    return parser.header, packets
