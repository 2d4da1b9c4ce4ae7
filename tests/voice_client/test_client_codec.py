"""The Javia container and real Opus (libopus through opuslib)."""

from __future__ import annotations

import numpy as np
import pytest
from voice_client.codec import OpusDecoder, OpusEncoder, downmix, encode_recording, resample
from voice_client.container import (
    HEADER,
    MAX_PACKET_BYTES,
    ContainerError,
    ContainerParser,
    encode_container,
    parse_container,
)

from voice_client import beeps


def sine(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    """SNR after aligning for the codec's delay (best lag by cross-correlation)."""
    ref = reference[2400:-2400]  # skip the start-up and the padded end
    best = -np.inf
    for lag in range(0, 800):
        segment = decoded[2400 + lag : 2400 + lag + len(ref)]
        if len(segment) < len(ref):
            break
        noise = segment - ref
        best = max(best, 10 * np.log10(np.sum(ref**2) / max(np.sum(noise**2), 1e-12)))
    return float(best)


def test_opus_round_trip_keeps_a_sine_above_20_db():
    rate = 48000
    tone = sine(rate, 1.0)
    stereo = np.repeat((tone * 32767).astype("<i2").reshape(-1, 1), 2, axis=1).tobytes()
    packets = encode_recording(stereo, rate, 2, 64000)
    assert len(packets) == 50  # 1 s of 20 ms frames at 24 kHz
    header, parsed = parse_container(encode_container(24000, 1, packets))
    assert (header.sample_rate, header.channels, header.packet_count) == (24000, 1, 50)

    decoder = OpusDecoder(header.channels, 24000, 1)
    decoded = np.concatenate([decoder.decode(p)[:, 0] for p in parsed]).astype(np.float32) / 32768
    reference = resample(tone, rate, 24000)
    assert snr_db(reference, decoded) > 20.0


def test_the_decoder_plays_at_the_cards_rate_and_channels():
    packets = OpusEncoder(24000, 64000).encode(sine(24000, 0.2))
    decoder = OpusDecoder(1, 48000, 2)
    frames = decoder.decode(packets[3])
    assert frames.shape == (960, 2) and frames.dtype == np.dtype("<i2")
    assert np.array_equal(frames[:, 0], frames[:, 1])
    odd = OpusDecoder(1, 44100, 1).decode(packets[3])  # not an Opus rate: decoded at 48k, resampled
    assert odd.shape[1] == 1 and 870 <= len(odd) <= 890


def test_downmix_and_resample():
    stereo = np.array([[1000, 3000], [-2000, 2000]], dtype="<i2").tobytes()
    assert np.allclose(downmix(stereo, 2) * 32768, [2000, 0])
    assert len(resample(np.zeros(48000, dtype=np.float32), 48000, 24000)) == 24000
    # Above the new Nyquist frequency: filtered out, not folded back into the speech band.
    aliased = resample(sine(48000, 0.5, freq=15000), 48000, 24000)
    assert np.sqrt(np.mean(aliased[200:-200] ** 2)) < 0.05


def test_beeps_are_100_ms_chirps_in_the_cards_format():
    up, down = beeps.start_beep(48000, 2), beeps.stop_beep(48000, 2)
    assert up.shape == down.shape == (4800, 2)
    assert abs(int(up[0, 0])) < 50 and abs(int(up[-1, 0])) < 50  # faded: no click

    def rising(wave: np.ndarray) -> bool:
        crossings = np.flatnonzero(np.diff(np.signbit(wave[:, 0])))
        gaps = np.diff(crossings)
        return bool(gaps[: len(gaps) // 3].mean() > gaps[-len(gaps) // 3 :].mean())

    assert rising(up) and not rising(down)


# -- container ------------------------------------------------------------------


def _stream(packets: int = 6) -> tuple[bytes, list[bytes]]:
    payload = [bytes([i]) * (10 + i) for i in range(packets)]
    return encode_container(24000, 1, payload, streamed=True), payload


def test_the_parser_yields_packets_as_bytes_arrive():
    data, payload = _stream()
    parser = ContainerParser()
    seen = []
    for byte in data:
        seen += parser.feed(bytes([byte]))
    parser.close()
    assert seen == payload
    assert parser.header is not None and parser.header.packet_count == 0


def test_every_truncation_is_reported_by_close_without_hanging():
    data, _payload = _stream()
    packet_ends = {len(data)}
    offset = HEADER.size
    for i in range(6):
        offset += 2 + 10 + i
        packet_ends.add(offset)
    for cut in range(len(data)):
        parser = ContainerParser()
        parser.feed(data[:cut])
        if cut in packet_ends or cut == HEADER.size:
            parser.close()  # a streamed container may end after any whole packet
            continue
        with pytest.raises(ContainerError, match=r"before the 9-byte header|truncated"):
            parser.close()


def test_a_declared_count_must_be_met():
    payload = [b"a" * 20, b"b" * 20, b"c" * 20]
    data = encode_container(24000, 1, payload)
    short = data[: HEADER.size + 2 * 22]
    parser = ContainerParser()
    assert len(parser.feed(short)) == 2
    with pytest.raises(ContainerError, match="2 of the 3 packets"):
        parser.close()
    extra = data + b"\x01\x00x"
    with pytest.raises(ContainerError, match="more packets than the 3"):
        ContainerParser().feed(extra)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (HEADER.pack(44100, 1, 0), "44100 Hz in the header is not an Opus rate"),
        (HEADER.pack(24000, 3, 0), "channel count 3"),
        (HEADER.pack(24000, 1, 0) + b"\x00\x00", "declares 0 bytes"),
        (HEADER.pack(24000, 1, 0) + (MAX_PACKET_BYTES + 1).to_bytes(2, "little"), "declares 4001 bytes"),
        (b"<html>502 Bad Gateway</html>", "not an Opus rate"),
    ],
    ids=["rate", "channels", "empty-packet", "oversized-packet", "html"],
)
def test_corrupt_streams_fail_at_once_with_a_clear_error(data, message):
    with pytest.raises(ContainerError, match=message):
        ContainerParser().feed(data)


def test_a_stream_that_never_starts_is_an_error():
    parser = ContainerParser()
    parser.feed(b"\x80\xbb")
    with pytest.raises(ContainerError, match="after 2 bytes, before the 9-byte header"):
        parser.close()
