"""Properties over every zone of the tz database the filters use, for instants in 2026-2028.

"Every zone" means every name of the pinned `tzdata` package (the filters' database, 597 names
in 2026f, the same list as pytz.all_timezones). The hypothesis tests sample zones, dates and
settings (bounded and derandomized, so CI sees the same examples every run); half of their
examples are drawn next to one of the clock changes of 2026-2028 (found by scanning every zone),
since uniform dates would almost never land on one. The sweeps at the end walk every zone
exhaustively.

The oracle is the rule itself, computed by brute force on the zone's offsets: the window of a
local date starts at the first instant whose local wall time is at or after that date's
hour:minute.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import math
import zoneinfo
from collections.abc import Iterator
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mw_plugin import mw

UTC = dt.UTC
FIRST_DAY = dt.date(2026, 1, 1)
LAST_DAY = dt.date(2028, 12, 31)
RANGE_START = dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
RANGE_END = dt.datetime(2029, 1, 1, tzinfo=UTC).timestamp()
ZONE_NAMES = sorted(mw.timezone_names())

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone straight from the tzdata package, independently of the plugin's loader."""
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with resource.open("rb") as stream:
        return zoneinfo.ZoneInfo.from_file(stream, key=name)


def wall_clock(tz: zoneinfo.ZoneInfo, instant: int) -> int:
    """The local wall time at `instant`, as seconds on a naive epoch scale."""
    offset = dt.datetime.fromtimestamp(instant, tz).utcoffset()
    assert offset is not None
    return instant + int(offset.total_seconds())


@cache
def oracle_start(name: str, day: dt.date, hour: int, minute: int) -> int:
    """First instant whose local wall time is at or after `day` hour:minute (brute force)."""
    tz = zone(name)
    target = (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * 86400 + hour * 3600 + minute * 60
    # Offsets stay within -12h..+14h: 15 h before the wall time as UTC, the clock is surely behind.
    # Scan by minutes (two transitions are never a minute apart), then the last minute by seconds.
    instant = target - 15 * 3600
    while wall_clock(tz, instant) < target:
        instant += 60
    instant -= 60
    while wall_clock(tz, instant) < target:
        instant += 1
    return instant


def offset_at(tz: zoneinfo.ZoneInfo, instant: int) -> int:
    return wall_clock(tz, instant) - instant


@cache
def clock_changes() -> list[tuple[str, int, int, int]]:
    """(zone, instant, offset before, offset after) of every change in 2026-2028, to the second."""
    changes = []
    for name in ZONE_NAMES:
        tz = zone(name)
        instant, offset = int(RANGE_START), offset_at(zone(name), int(RANGE_START))
        while instant < RANGE_END:
            following = instant + 86400  # clock changes are weeks apart at the least
            if offset_at(tz, following) != offset:
                low, high = instant, following
                while high - low > 1:
                    middle = (low + high) // 2
                    low, high = (middle, high) if offset_at(tz, middle) == offset else (low, middle)
                changes.append((name, high, offset, offset_at(tz, high)))
                offset = offset_at(tz, high)
            instant = following
    return changes


@st.composite
def wall_times_near_a_clock_change(draw: st.DrawFn) -> tuple[str, dt.date, int, int, int]:
    """(zone, date, hour, minute, change instant): a wall time in, or up to an hour around, the
    stretch that a clock change skips or repeats."""
    name, instant, before, after = draw(st.sampled_from(clock_changes()))
    low = (instant + min(before, after) - 3600) // 60
    high = (instant + max(before, after) + 3600) // 60
    wall = dt.datetime(1970, 1, 1) + dt.timedelta(minutes=draw(st.integers(low, high)))
    return name, wall.date(), wall.hour, wall.minute, instant


zone_names = st.sampled_from(ZONE_NAMES)
hours = st.integers(0, 23)
minutes = st.integers(0, 59)
durations = st.integers(1, 1439)
days = st.dates(FIRST_DAY, LAST_DAY)
instants = st.floats(RANGE_START, RANGE_END, allow_nan=False, allow_infinity=False)
anywhere = st.tuples(zone_names, days, hours, minutes)
near_changes = wall_times_near_a_clock_change()


def expected_window(name: str, now: float, hour: int, minute: int, duration: int) -> tuple[int, bool]:
    """The rule: the latest window to have started if it still holds `now`, else the next one."""
    local_day = dt.datetime.fromtimestamp(now, zone(name)).date()
    starts = [oracle_start(name, local_day + dt.timedelta(days=k), hour, minute) for k in range(-2, 3)]
    started = max(s for s in starts if s <= now)
    if now < started + duration:
        return started, True
    return min(s for s in starts if s > now), False


def iso_utc(instant: float) -> str:
    return dt.datetime.fromtimestamp(instant, UTC).isoformat()


def parse(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@BOUNDED
@given(st.one_of(anywhere, near_changes.map(lambda drawn: drawn[:4])))
def test_a_window_starts_at_the_first_instant_at_or_after_its_wall_time(
    drawn: tuple[str, dt.date, int, int],
) -> None:
    name, day, hour, minute = drawn
    start = oracle_start(name, day, hour, minute)
    at_start = mw.maintenance_window(name, now=start, hour=hour, minute=minute)
    just_before = mw.maintenance_window(name, now=start - 1, hour=hour, minute=minute)
    assert at_start["start"] == just_before["start"] == iso_utc(start)
    assert (at_start["in_window"], at_start["seconds_until_start"]) == (True, 0)
    assert (just_before["in_window"], just_before["seconds_until_start"]) == (False, 1)
    # The window belongs to `day`: it opens on that local date (a skipped wall time opens it at
    # the jump, which shows as a later wall time of the same date).
    local_start = dt.datetime.fromisoformat(at_start["local_start"])
    assert local_start.date() == day
    assert (local_start.hour, local_start.minute) >= (hour, minute)


@st.composite
def instants_near_a_clock_change(draw: st.DrawFn) -> tuple[str, float, int, int]:
    name, _, hour, minute, instant = draw(near_changes)
    now = draw(st.floats(instant - 2 * 86400, instant + 2 * 86400, allow_nan=False))
    return name, now, hour, minute


@BOUNDED
@given(st.one_of(st.tuples(zone_names, instants, hours, minutes), instants_near_a_clock_change()), durations)
def test_the_result_follows_the_rule_at_any_instant(
    drawn: tuple[str, float, int, int], duration_minutes: int
) -> None:
    name, now, hour, minute = drawn
    result = mw.maintenance_window(name, now=now, hour=hour, minute=minute, duration_minutes=duration_minutes)
    start, end = parse(result["start"]), parse(result["end"])
    assert result["start"].endswith("+00:00") and result["end"].endswith("+00:00")
    assert (int(start), result["in_window"]) == expected_window(
        name, now, hour, minute, duration_minutes * 60
    )
    assert end - start == duration_minutes * 60
    assert result["in_window"] == (start <= now < end)
    assert (
        mw.in_maintenance_window(name, now=now, hour=hour, minute=minute, duration_minutes=duration_minutes)
        is result["in_window"]
    )
    if result["in_window"]:
        assert result["seconds_until_start"] == 0
    else:
        assert result["seconds_until_start"] == math.ceil(start - now) >= 1
    local_start = dt.datetime.fromisoformat(result["local_start"])
    assert local_start.timestamp() == start
    assert local_start.utcoffset() == dt.datetime.fromtimestamp(start, zone(name)).utcoffset()


@settings(BOUNDED, max_examples=60)
@given(st.one_of(anywhere, near_changes.map(lambda drawn: drawn[:4])), st.integers(0, 59))
def test_an_hourly_trigger_hits_every_hour_long_window_once(
    drawn: tuple[str, dt.date, int, int], trigger_minute: int
) -> None:
    """Any window hour:minute, a trigger at any fixed minute past each UTC hour, 21 days around."""
    name, day, hour, minute = drawn
    first_day = max(FIRST_DAY, day - dt.timedelta(days=10))
    windows = list(walk_windows(name, first_day, first_day + dt.timedelta(days=20), hour, minute))
    assert_each_window_hit_once(name, windows, trigger_minute, hour, minute)


def walk_windows(name: str, first: dt.date, last: dt.date, hour: int = 2, minute: int = 0) -> Iterator[dict]:
    """Every window from the local date `first` to `last`, by asking for the next one at each end."""
    day_start = oracle_start(name, first, 0, 0)
    window = mw.maintenance_window(name, now=day_start, hour=hour, minute=minute)
    while dt.date.fromisoformat(window["local_start"][:10]) <= last:
        yield window
        following = mw.maintenance_window(name, now=window["end"], hour=hour, minute=minute)
        assert parse(following["start"]) > parse(window["start"]), (name, window, following)
        window = following


def assert_windows_are_one_per_date_without_overlap(name: str, windows: list[dict], first: dt.date) -> None:
    dates = [dt.date.fromisoformat(w["local_start"][:10]) for w in windows]
    assert dates[0] == first, (name, windows[0])
    for earlier, later, earlier_date, later_date in zip(windows, windows[1:], dates, dates[1:], strict=False):
        assert later_date - earlier_date == dt.timedelta(days=1), (name, earlier, later)
        assert parse(later["start"]) >= parse(earlier["end"]), (name, earlier, later)


def assert_each_window_hit_once(name: str, windows: list[dict], trigger_minute: int, hour: int, minute: int):
    """Fire at trigger_minute past every UTC hour across the windows; each must be open exactly once."""
    first = int(parse(windows[0]["start"])) // 3600 * 3600 + trigger_minute * 60 - 3600
    last = int(parse(windows[-1]["end"]))
    hits = [
        trigger
        for trigger in range(first, last + 3600, 3600)
        if mw.in_maintenance_window(name, now=trigger, hour=hour, minute=minute)
    ]
    # Every hit lies in one of the windows, and every window holds exactly one hit.
    spans = [(parse(w["start"]), parse(w["end"])) for w in windows]
    per_window = [sum(start <= hit < end for hit in hits) for start, end in spans]
    assert per_window == [1] * len(windows), (name, trigger_minute, per_window)
    assert len(hits) == len(windows), (name, trigger_minute)


@pytest.mark.parametrize("name", ZONE_NAMES)
def test_every_zone_every_hour_of_2026_to_2028(name: str) -> None:
    """Exhaustive, at the default 02:00 for 60 minutes: one window per local date, no overlaps,
    and an hourly trigger (at a minute past each UTC hour that varies by zone, so that every minute
    0..59 is tried somewhere) finds each window open exactly once and no other hour open."""
    windows = list(walk_windows(name, FIRST_DAY, LAST_DAY))
    assert len(windows) == (LAST_DAY - FIRST_DAY).days + 1
    assert_windows_are_one_per_date_without_overlap(name, windows, FIRST_DAY)

    # Each window starts at the first instant whose wall time is at or after 02:00 of its date:
    # the clock shows 02:00 or later at the start, earlier a second before, and earlier still just
    # before every clock change of the previous 26 hours (so a repeated 02:00 counts only once).
    # Earlier than 26 hours the clock cannot have reached 02:00 (offsets lie within -12h..+14h).
    tz = zone(name)
    changes = [instant for zone_name, instant, _, _ in clock_changes() if zone_name == name]
    for window in windows:
        start = int(parse(window["start"]))
        local_day = dt.date.fromisoformat(window["local_start"][:10])
        two_am = (local_day.toordinal() - dt.date(1970, 1, 1).toordinal()) * 86400 + 2 * 3600
        assert wall_clock(tz, start - 1) < two_am <= wall_clock(tz, start), (name, window)
        for change in changes:
            if start - 26 * 3600 < change < start:
                assert wall_clock(tz, change - 1) < two_am, (name, window, iso_utc(change))

    # Triggers over the local dates 2026-01-01 .. 2028-12-31 of this zone, at a minute past each
    # UTC hour that varies by zone, so that every minute 0..59 is tried somewhere.
    trigger_minute = ZONE_NAMES.index(name) * 7 % 60
    first = oracle_start(name, FIRST_DAY, 0, 0)
    last = oracle_start(name, LAST_DAY + dt.timedelta(days=1), 0, 0)
    first += (trigger_minute * 60 - first) % 3600
    # Each 60-minute window holds exactly one trigger, the first at or after its start; the filter
    # must say "open" at exactly those triggers and at no other.
    expected = []
    for window in windows:
        start, end = int(parse(window["start"])), int(parse(window["end"]))
        trigger = start + (first - start) % 3600
        assert start <= trigger < end
        expected.append(trigger)
    in_window = mw.in_maintenance_window
    opened = [trigger for trigger in range(first, last, 3600) if in_window(name, trigger)]
    assert [iso_utc(t) for t in opened] == [iso_utc(t) for t in expected], name
