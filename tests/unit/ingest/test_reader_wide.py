"""wide_frame on literal data: epoch-aligned bins, means, observed mask, bounded forward fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from linewatch.ingest.reader import observed_column, wide_frame
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_US = 1_704_067_200_000_000
S = 1_000_000
TEN_S = timedelta(seconds=10)

# (sensor, seconds after T0, value)
LITERAL = [
    ("a", 0, 1.0),
    ("a", 5, 3.0),  # bin 0: mean 2.0
    ("a", 12, 4.0),  # bin 10
    ("a", 50, 8.0),  # bins 20..40 silent: a gap of 3 steps
    ("b", 1, 10.0),
    ("b", 41, 20.0),
    ("b", 60, 99.0),  # at end: excluded (half-open range)
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    rows = [Reading(T0_US + sec * S, "p", sensor, value, T0_US) for sensor, sec, value in LITERAL]
    rows.append(Reading(T0_US + 3 * S, "q", "a", -1.0, T0_US))  # another asset: never mixed in
    ParquetStore(tmp_path, "w").write_readings(rows)
    return tmp_path


def test_bins_means_mask_and_bounded_fill(root: Path) -> None:
    wide = wide_frame(root, "p", T0, T0 + timedelta(seconds=60), TEN_S, max_gap=2)
    assert wide.columns == ["ts", "a", "b", "a:observed", "b:observed"]
    assert wide["ts"].to_list() == [T0 + i * TEN_S for i in range(6)]
    assert wide["a"].to_list() == [2.0, 4.0, 4.0, 4.0, None, 8.0]
    assert wide["a:observed"].to_list() == [True, True, False, False, False, True]
    assert wide["b"].to_list() == [10.0, 10.0, 10.0, None, 20.0, 20.0]
    assert wide["b:observed"].to_list() == [True, False, False, False, True, False]


def test_no_fill_by_default(root: Path) -> None:
    wide = wide_frame(root, "p", T0, T0 + timedelta(seconds=60), TEN_S)
    assert wide["a"].to_list() == [2.0, 4.0, None, None, None, 8.0]
    assert wide["b"].to_list() == [10.0, None, None, None, 20.0, None]


def test_a_late_window_fills_like_the_long_one(root: Path) -> None:
    """Readings before start seed the fill, so serving's short window matches training's long one."""
    wide = wide_frame(root, "p", T0 + timedelta(seconds=25), T0 + timedelta(seconds=60), TEN_S, max_gap=2)
    assert wide["ts"].to_list() == [T0 + i * TEN_S for i in range(2, 6)]  # first row: the bin holding start
    assert wide["a"].to_list() == [4.0, 4.0, None, 8.0]
    assert wide["a:observed"].to_list() == [False, False, False, True]
    assert wide["b"].to_list() == [10.0, None, 20.0, 20.0]


def test_requested_sensors_order_and_missing_sensor(root: Path) -> None:
    wide = wide_frame(root, "p", T0, T0 + timedelta(seconds=30), TEN_S, sensors=["b", "zz"], max_gap=1)
    assert wide.columns == ["ts", "b", "zz", "b:observed", observed_column("zz")]
    assert wide["zz"].to_list() == [None, None, None]
    assert wide["zz:observed"].to_list() == [False, False, False]
    assert wide["b"].to_list() == [10.0, 10.0, None]


def test_empty_range_gives_a_full_grid(tmp_path: Path) -> None:
    wide = wide_frame(tmp_path, "p", T0, T0 + timedelta(minutes=1), TEN_S, sensors=["a"])
    assert wide.height == 6
    assert wide["a"].null_count() == 6


def test_bad_arguments(root: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        wide_frame(root, "p", datetime(2024, 1, 1), T0, TEN_S)
    with pytest.raises(ValueError, match="after start"):
        wide_frame(root, "p", T0, T0, TEN_S)
    with pytest.raises(ValueError, match="cadence"):
        wide_frame(root, "p", T0, T0 + TEN_S, timedelta(0))
    with pytest.raises(ValueError, match="max_gap"):
        wide_frame(root, "p", T0, T0 + TEN_S, TEN_S, max_gap=-1)
