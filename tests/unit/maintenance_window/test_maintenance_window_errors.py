"""Bad input: AnsibleFilterError naming the filter, the bad value and what would be valid."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from ansible.errors import AnsibleFilterError
from mw_plugin import mw

NOW = "2026-03-08T06:30:00Z"
FILTERS = [mw.maintenance_window, mw.in_maintenance_window]


@pytest.fixture(params=FILTERS, ids=lambda f: f.__name__)
def window_filter(request: pytest.FixtureRequest):
    return request.param


def raises(call, *fragments: str) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        call()
    message = caught.value.message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


ZONES = {
    "unknown": ("Mars/Olympus_Mons", ["unknown timezone 'Mars/Olympus_Mons'", "IANA", "'Europe/Berlin'"]),
    "abbreviation": ("CEST", ["unknown timezone 'CEST'"]),
    "empty": ("", ["timezone is empty ('')", "'Europe/Berlin'"]),
    "factory-means-unknown": ("Factory", ["unknown timezone 'Factory'"]),
    "not-a-path": ("../../etc/passwd", ["unknown timezone '../../etc/passwd'"]),
    "int": (5, ["must be a string", "int 5"]),
    "none": (None, ["must be a string", "NoneType None"]),
    "bytes": (b"Europe/Berlin", ["must be a string", "bytes b'Europe/Berlin'"]),
    "list": (["Europe/Berlin"], ["must be a string", "list ['Europe/Berlin']"]),
}


@pytest.mark.parametrize(("zone", "fragments"), ZONES.values(), ids=ZONES.keys())
def test_bad_zone(window_filter, zone: object, fragments: list[str]) -> None:
    message = raises(lambda: window_filter(zone, now=NOW), window_filter.__name__ + ":", *fragments)
    assert message.startswith(window_filter.__name__ + ": ")


@pytest.mark.parametrize(
    ("zone", "suggestion"),
    [
        ("america/new_york", "Did you mean 'America/New_York'?"),
        ("Europe/Berlin ", "Did you mean 'Europe/Berlin'?"),
        ("Europe/Berln", "Did you mean 'Europe/Berlin'"),
    ],
)
def test_near_misses_suggest_the_real_name(zone: str, suggestion: str) -> None:
    raises(lambda: mw.maintenance_window(zone, now=NOW), f"unknown timezone {zone!r}", suggestion)


NUMBERS = {
    "hour-24": ({"hour": 24}, "hour must be a whole number in 0..23, got int 24"),
    "hour-negative": ({"hour": -1}, "hour must be a whole number in 0..23, got int -1"),
    "hour-string-24": ({"hour": "24"}, "hour must be a whole number in 0..23, got str '24'"),
    "hour-fraction": ({"hour": 2.5}, "hour must be a whole number in 0..23, got float 2.5"),
    "hour-bool": ({"hour": True}, "hour must be a whole number in 0..23, got bool True"),
    "hour-none": ({"hour": None}, "hour must be a whole number in 0..23, got NoneType None"),
    "hour-word": ({"hour": "two"}, "hour must be a whole number in 0..23, got str 'two'"),
    "minute-60": ({"minute": 60}, "minute must be a whole number in 0..59, got int 60"),
    "minute-negative": ({"minute": -5}, "minute must be a whole number in 0..59, got int -5"),
    "duration-0": ({"duration_minutes": 0}, "duration_minutes must be a whole number in 1..1439, got int 0"),
    "duration-day": (
        {"duration_minutes": 1440},
        "duration_minutes must be a whole number in 1..1439, got int 1440",
    ),
    "duration-negative": (
        {"duration_minutes": -60},
        "duration_minutes must be a whole number in 1..1439, got int -60",
    ),
}


@pytest.mark.parametrize(("kwargs", "fragment"), NUMBERS.values(), ids=NUMBERS.keys())
def test_bad_numbers(window_filter, kwargs: dict[str, object], fragment: str) -> None:
    raises(lambda: window_filter("Europe/Berlin", now=NOW, **kwargs), f"{window_filter.__name__}: {fragment}")


NOWS = {
    "naive-datetime": (dt.datetime(2026, 3, 8, 6, 30), ["timezone-aware", "'2026-03-08T06:30:00'"]),
    "string-without-offset": ("2026-03-08T06:30:00", ["'2026-03-08T06:30:00' has no UTC offset"]),
    "date-only-string": ("2026-03-08", ["'2026-03-08' has no UTC offset"]),
    "not-a-date": ("tomorrow at 2", ["'tomorrow at 2' is not an ISO 8601", "'2026-03-08T07:00:00Z'"]),
    "empty-string": ("", ["'' is not an ISO 8601"]),
    "digits-string": ("1772951400", ["'1772951400' is a string of digits", "| int"]),
    "nan": (math.nan, ["now nan is outside years 1..9999"]),
    "infinity": (math.inf, ["now inf is outside years 1..9999"]),
    "milliseconds": (1772951400000, ["now 1772951400000 is outside", "seconds, not milliseconds"]),
    "bool": (True, ["now must be None, an aware datetime", "bool True"]),
    "date-object": (dt.date(2026, 3, 8), ["date datetime.date(2026, 3, 8)"]),
    "list": ([NOW], ["list ['2026-03-08T06:30:00Z']"]),
}


@pytest.mark.parametrize(("now", "fragments"), NOWS.values(), ids=NOWS.keys())
def test_bad_now(window_filter, now: object, fragments: list[str]) -> None:
    raises(lambda: window_filter("Europe/Berlin", now=now), f"{window_filter.__name__}: now", *fragments)


def test_long_values_are_shortened_in_messages() -> None:
    message = raises(lambda: mw.maintenance_window("X" * 500, now=NOW), "unknown timezone 'XXXX")
    assert len(message) < 400
