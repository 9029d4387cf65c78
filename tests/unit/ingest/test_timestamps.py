"""Timestamp parsing: every accepted form, the unit heuristic, and clear refusals."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewatch.ingest.timestamps import MAX_TS_US, TimestampError, to_us

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
T0_US = T0 * 1_000_000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (T0, T0_US),  # seconds
        (T0 + 0.25, T0_US + 250_000),  # float seconds
        (T0 * 1000 + 123, T0_US + 123_000),  # milliseconds
        (float(T0 * 1000 + 123), T0_US + 123_000),
        (T0_US + 7, T0_US + 7),  # microseconds
        (T0_US * 1000 + 7999, T0_US + 7),  # nanoseconds (floored)
        (0, 0),
        ("1700000000", T0_US),  # numeric strings use the same heuristic
        ("1700000000123", T0_US + 123_000),
        ("1700000000.5", T0_US + 500_000),
        ("2023-11-14T22:13:20Z", T0_US),
        ("2023-11-14T22:13:20.123456Z", T0_US + 123_456),
        ("2023-11-14T22:13:20.1234567Z", T0_US + 123_456),  # beyond µs truncated
        ("2023-11-14T23:13:20+01:00", T0_US),
        ("2023-11-14T22:13:20", T0_US),  # naive is UTC
        ("2023-11-14 22:13:20", T0_US),
        (" 2023-11-14T22:13:20Z ", T0_US),
    ],
)
def test_accepted(raw: object, expected: int) -> None:
    assert to_us(raw) == expected


def test_heuristic_cutoffs() -> None:
    assert to_us(9_000_000_000) == 9_000_000_000 * 1_000_000  # seconds (year 2255)
    with pytest.raises(TimestampError):
        to_us(99_999_999_999)  # just below 1e11 is still seconds: the year 5138, out of range
    assert to_us(100_000_000_000) == 100_000_000_000 * 1000  # 1e11: milliseconds
    assert to_us(10**14) == 10**14  # microseconds
    assert to_us(10**17) == 10**14  # nanoseconds


def test_matches_datetime() -> None:
    dt = datetime(2024, 2, 29, 12, 0, 1, 500, tzinfo=UTC)
    assert to_us(dt.isoformat()) == int(dt.timestamp()) * 1_000_000 + 500


@pytest.mark.parametrize(
    "raw",
    [
        True,
        False,
        None,
        math.nan,
        math.inf,
        -math.inf,
        -1,
        -1.5,
        "yesterday",
        "",
        "2023-13-01T00:00:00Z",
        "1" * 65,
        "2023-11-14T22:13:20Z" + "0" * 100,
        [T0],
        {"ts": T0},
        10**30,  # beyond 2262 even as nanoseconds
        "1e400",
        MAX_TS_US + 1,
    ],
)
def test_refused(raw: object) -> None:
    with pytest.raises(TimestampError):
        to_us(raw)


def test_error_quotes_bounded_excerpt() -> None:
    with pytest.raises(TimestampError) as err:
        to_us("x\n" * 20)
    assert "\n" not in str(err.value)


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=80),
        st.from_regex(r"[0-9T:+.\-Z ]{0,40}", fullmatch=True),
    )
)
def test_only_timestamp_errors_escape(raw: object) -> None:
    try:
        ts = to_us(raw)
    except TimestampError:
        return
    assert isinstance(ts, int) and 0 <= ts <= MAX_TS_US
