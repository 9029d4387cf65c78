"""StoreFollower on real Parquet files: only new rows, no duplicates after compaction, corrupt files skipped."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from linewatch.core.clock import ManualClock
from linewatch.ingest.compaction import compact
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore, partition_dir
from linewatch.serving.follower import StoreFollower

T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
NOW = datetime(2024, 1, 1, 1, tzinfo=UTC)
S = 1_000_000


def readings(asset: str, start_s: int, stop_s: int, sensors: tuple[str, ...] = ("a", "b")) -> list[Reading]:
    return [Reading(T0 + t * S, asset, s, float(t), T0 + t * S) for t in range(start_s, stop_s) for s in sensors]


def keys(frame: pl.DataFrame) -> list[tuple[str, str, int]]:
    return list(
        zip(frame["asset"].to_list(), frame["sensor"].to_list(), frame["ts"].dt.epoch("us").to_list(), strict=True)
    )


def expected(rows: list[Reading]) -> list[tuple[str, str, int]]:
    return sorted((r.asset, r.sensor, r.ts_us) for r in rows)


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    return ParquetStore(tmp_path, "w")


def follower(root: Path, **kwargs: object) -> StoreFollower:
    return StoreFollower(root, clock=ManualClock(NOW), **kwargs)  # type: ignore[arg-type]


def test_poll_returns_only_new_rows(store: ParquetStore) -> None:
    f = follower(store.root)
    assert f.poll().frame.height == 0
    first = readings("p", 0, 10) + readings("q", 0, 5)
    store.write_readings(first)
    got = f.poll()
    assert keys(got.frame) == expected(first)
    assert got.new_assets == ["p", "q"] and got.files_read == 2 and not got.files_skipped
    assert f.poll().frame.height == 0
    second = readings("p", 10, 12)
    store.write_readings(second)
    got = f.poll()
    assert keys(got.frame) == expected(second) and got.files_read == 1 and got.new_assets == []
    assert got.frame.columns == ["ts", "asset", "sensor", "value", "received_at"]


def test_no_duplicates_after_compaction_or_redelivery(store: ParquetStore) -> None:
    f = follower(store.root)
    delivered: list[tuple[str, str, int]] = []
    for start in range(0, 30, 10):
        store.write_readings(readings("p", start, start + 10))
        delivered += keys(f.poll().frame)
    store.write_readings(readings("p", 25, 30))  # at-least-once: stored again
    assert compact(store.root).partitions_compacted == 1
    got = f.poll()
    assert got.files_read == 1 and got.frame.height == 0 and got.behind_mark == 60
    store.write_readings(readings("p", 30, 31))
    delivered += keys(f.poll().frame)
    assert sorted(delivered) == expected(readings("p", 0, 31)) and len(set(delivered)) == len(delivered)


def test_compaction_merging_unread_files_delivers_their_new_rows(store: ParquetStore) -> None:
    f = follower(store.root)
    store.write_readings(readings("p", 0, 5))
    assert f.poll().frame.height == 10
    store.write_readings(readings("p", 5, 8))
    store.write_readings(readings("p", 8, 9))
    compact(store.root)  # the two unread files vanish into a merged one before the next poll
    assert keys(f.poll().frame) == expected(readings("p", 5, 9))


def test_corrupt_file_is_skipped_reported_once_and_later_files_are_read(store: ParquetStore) -> None:
    f = follower(store.root)
    store.write_readings(readings("p", 0, 3))
    f.poll()
    bad = partition_dir(store.root, "p", NOW.date()) / "w-20240101T000000-garbage.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    store.write_readings(readings("p", 3, 5))
    got = f.poll()
    assert [s.path for s in got.files_skipped] == [bad] and got.files_read == 1
    assert keys(got.frame) == expected(readings("p", 3, 5))
    store.write_readings(readings("p", 5, 6))
    got = f.poll()
    assert not got.files_skipped and keys(got.frame) == expected(readings("p", 5, 6))


def test_backfill_then_poll_does_not_duplicate(store: ParquetStore) -> None:
    store.write_readings(readings("p", 0, 100) + readings("q", 50, 100))
    store.write_readings(readings("p", 100, 200))
    f = follower(store.root)
    clock_now_s = (NOW - datetime(2024, 1, 1, tzinfo=UTC)).total_seconds()
    frame = f.backfill(clock_now_s - 150)  # readings from t = 150 s on
    assert keys(frame) == expected(readings("p", 150, 200))
    assert f.poll().frame.height == 0
    store.write_readings(readings("p", 195, 210))  # overlaps what backfill delivered
    assert keys(f.poll().frame) == expected(readings("p", 200, 210))


def test_filter_and_discovery_interval(store: ParquetStore) -> None:
    f = follower(store.root, assets_filter=lambda a: a != "skip", discover_every=3)
    store.write_readings(readings("p", 0, 1) + readings("skip", 0, 1))
    assert f.poll().new_assets == ["p"]
    store.write_readings(readings("q", 0, 1))
    assert f.poll().new_assets == [] and f.poll().new_assets == []
    got = f.poll()
    assert got.new_assets == ["q"] and keys(got.frame) == expected(readings("q", 0, 1))
    assert f.assets() == ["p", "q"]


def test_old_partitions_outside_lookback_are_not_listed(store: ParquetStore) -> None:
    old = [Reading(T0 - 3 * 86_400 * S, "p", "a", 1.0, T0)]
    store.write_readings(old + readings("p", 0, 2))
    assert len(os.listdir(store.root / "raw" / "asset=p")) == 2
    assert keys(follower(store.root, lookback_days=1).poll().frame) == expected(readings("p", 0, 2))
    assert follower(store.root).backfill(timedelta(days=10).total_seconds()).height == 5


def test_recent_rereads_only_what_was_delivered(store: ParquetStore) -> None:
    f = follower(store.root)
    store.write_readings(readings("p", 0, 100) + readings("q", 0, 10))
    f.poll()
    store.write_readings(readings("p", 100, 110))  # not polled yet: must come with the next poll only
    since = (NOW - datetime(2024, 1, 1, tzinfo=UTC)).total_seconds() - 90  # from t = 90 s on
    assert keys(f.recent(since, ["p", "unknown"])) == expected(readings("p", 90, 100))
    assert keys(f.poll().frame) == expected(readings("p", 100, 110))
    assert keys(f.recent(since)) == expected(readings("p", 90, 110))


def test_sensors_seen_per_asset(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from linewatch.ingest.records import Reading
    from linewatch.ingest.store import ParquetStore
    from linewatch.serving.follower import StoreFollower

    t = int(datetime.now(UTC).timestamp() * 1e6)
    ParquetStore(tmp_path, "w").write_readings(
        [Reading(t, "p-1", "temp", 1.0, t), Reading(t, "p-1", "flow", 2.0, t), Reading(t, "c-1", "speed", 3.0, t)]
    )
    follower = StoreFollower(tmp_path)
    assert follower.sensors(["p-1"]) == set()
    follower.poll()
    assert follower.sensors(["p-1"]) == {"temp", "flow"}
    assert follower.sensors(["p-1", "c-1"]) == {"temp", "flow", "speed"}
