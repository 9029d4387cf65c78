"""The plant's local clock: literal daylight-saving changes, and names the database does not know."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from linewatch.core.localtime import TimeZoneError, check_time_zone, local_us

H = 3_600_000_000
SPRING = 1_774_746_000_000_000  # 2026-03-29T01:00:00Z: Berlin goes from 02:00 CET to 03:00 CEST
AUTUMN = 1_792_890_000_000_000  # 2026-10-25T01:00:00Z: Berlin goes from 03:00 CEST back to 02:00 CET


def test_berlin_wall_clock_across_both_changes() -> None:
    ts = np.array([SPRING - H // 2, SPRING, SPRING + H, AUTUMN - H // 2, AUTUMN, AUTUMN + H // 2], dtype=np.int64)
    wall = local_us(ts, "Europe/Berlin")
    np.testing.assert_array_equal(wall - ts, [H, 2 * H, 2 * H, 2 * H, H, H])
    hour = (wall // H) % 24
    # 01:30 CET, then 03:00 and 04:00 CEST; in autumn 02:30 CEST, then 02:00 and 02:30 CET (the hour repeats).
    np.testing.assert_array_equal(hour, [1, 3, 4, 2, 2, 2])


def test_utc_is_the_stored_clock_and_shapes_are_kept() -> None:
    ts = np.arange(12, dtype=np.int64).reshape(3, 4) * H + SPRING
    np.testing.assert_array_equal(local_us(ts, "UTC"), ts)
    ny = local_us(ts, "America/New_York")
    assert ny.shape == (3, 4) and ny.dtype == np.int64
    np.testing.assert_array_equal(ts - ny, np.full((3, 4), 4 * H))  # EDT in late March
    assert local_us(np.array([], dtype=np.int64), "Asia/Kolkata").shape == (0,)
    np.testing.assert_array_equal(local_us([0], "Asia/Kolkata"), [5 * H + H // 2])  # half-hour offsets too


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_known_names_pass(name: str) -> None:
    assert check_time_zone(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Europe/Berln", "Europe/Berlin"),  # a typo is named with its likely meaning
        ("", "IANA name"),
        (" UTC", "IANA name"),
        ("../../etc/passwd", "unknown time zone"),
        ("Mars/Olympus_Mons", "unknown time zone"),
    ],
)
def test_unknown_names_fail_with_a_reason(name: str, says: str) -> None:
    with pytest.raises(TimeZoneError, match=says):
        check_time_zone(name)
    with pytest.raises(ValueError):  # a ValueError, so config and bundle loading report it as bad input
        check_time_zone(name)


#: Offset changes in 2026: Berlin's two, New York's two, Lord Howe's (half an hour, the autumn one at a half hour).
CHANGES = (SPRING, AUTUMN, 1_772_953_200_000_000, 1_793_512_800_000_000, 1_775_314_800_000_000, 1_791_041_400_000_000)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_short_spans_by_their_ends_equal_the_conversion_of_every_value(zone: str) -> None:
    """Serving converts a tick's windows by their two ends, and falls back to every value when a change lies
    between them. Either way each value must equal the standard library's conversion of it on its own."""
    rng = np.random.default_rng(0)
    tz = ZoneInfo(zone)
    for centre in CHANGES:
        for span in (60_000_000, 3 * H, 6 * H, 30 * H):
            ts = centre + rng.integers(-span // 2, span // 2, size=(40, 6), dtype=np.int64)
            each = [
                int(datetime.fromtimestamp(t // 1_000_000, tz).replace(tzinfo=UTC).timestamp()) * 1_000_000
                + t % 1_000_000
                for t in ts.ravel().tolist()
            ]
            np.testing.assert_array_equal(local_us(ts, zone), np.array(each).reshape(ts.shape))
