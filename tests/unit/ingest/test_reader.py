"""Reading the raw store back: round trip, pruning, dedup, crash leftovers, corrupt files, incremental listing."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from linewatch.core.paths import UnsafePathError
from linewatch.ingest.reader import (
    AssetFiles,
    SkippedFile,
    Watermark,
    list_assets,
    list_files,
    new_files_since,
    read_files,
    scan_readings,
)
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore

DAY_US = 86_400_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def sample(n: int = 300, seed: int = 1) -> list[Reading]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        ts = T0 + rnd.randrange(3 * DAY_US)  # three days -> three date partitions per asset
        rows.append(Reading(ts, f"asset-{i % 3}", f"s{i % 4}", rnd.uniform(-1e6, 1e6), ts + rnd.randrange(10**6)))
    return list({(r.asset, r.sensor, r.ts_us): r for r in rows}.values())


def as_tuples(frame: pl.DataFrame) -> set[tuple[object, ...]]:
    return {
        (ts, asset, sensor, value, rec)
        for ts, asset, sensor, value, rec in zip(
            frame["ts"].dt.epoch("us").to_list(),
            frame["asset"].to_list(),
            frame["sensor"].to_list(),
            frame["value"].to_list(),
            frame["received_at"].dt.epoch("us").to_list(),
            strict=True,
        )
    }


def expected(rows: list[Reading]) -> set[tuple[object, ...]]:
    return {(r.ts_us, r.asset, r.sensor, r.value, r.received_us) for r in rows}


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rows = sample()
    paths = ParquetStore(tmp_path, "w").write_readings(rows)
    assert len(paths) == 9  # 3 assets x 3 days
    frame = scan_readings(tmp_path).collect()
    assert frame.columns == ["ts", "asset", "sensor", "value", "received_at"]
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame.height == len(rows)
    assert as_tuples(frame) == expected(rows)
    assert list_assets(tmp_path) == ["asset-0", "asset-1", "asset-2"]


def test_filters_by_asset_and_half_open_time_range(tmp_path: Path) -> None:
    rows = sample()
    ParquetStore(tmp_path, "w").write_readings(rows)
    start, end = T0 + DAY_US // 2, T0 + DAY_US + 1234
    frame = scan_readings(tmp_path, ["asset-1"], at(start), at(end)).collect()
    want = [r for r in rows if r.asset == "asset-1" and start <= r.ts_us < end]
    assert as_tuples(frame) == expected(want)
    # Only the two date partitions that can hold the range are listed.
    files = list_files(tmp_path, ["asset-1"], at(start), at(end))
    assert {p.parent.name for p in files} == {"date=2024-01-01", "date=2024-01-02"}
    # An end exactly at midnight does not open the next day.
    files = list_files(tmp_path, ["asset-1"], at(T0), at(T0 + DAY_US))
    assert {p.parent.name for p in files} == {"date=2024-01-01"}


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        scan_readings(tmp_path, start=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        scan_readings(tmp_path, end=datetime(2024, 1, 1))


def test_hostile_asset_names_are_refused(tmp_path: Path) -> None:
    for asset in ["..", "../raw", "a/b"]:
        with pytest.raises(UnsafePathError):
            scan_readings(tmp_path, [asset])


def test_empty_store_gives_empty_frame(tmp_path: Path) -> None:
    frame = scan_readings(tmp_path).collect()
    assert frame.height == 0
    assert frame.columns == ["ts", "asset", "sensor", "value", "received_at"]
    assert list_assets(tmp_path) == []


def test_duplicates_keep_the_earliest_received_at(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    first = Reading(T0, "p", "t", 1.0, T0 + 10)
    redelivered = Reading(T0, "p", "t", 1.0, T0 + 99)
    store.write_readings([redelivered, Reading(T0 + 1, "p", "t", 2.0, T0 + 99)])
    store.write_readings([first])
    store.write_readings([redelivered])
    frame = scan_readings(tmp_path).collect()
    assert as_tuples(frame) == {(T0, "p", "t", 1.0, T0 + 10), (T0 + 1, "p", "t", 2.0, T0 + 99)}


def test_crash_leftovers_are_ignored_and_garbage_is_reported(tmp_path: Path) -> None:
    rows = sample(60)
    paths = ParquetStore(tmp_path, "w").write_readings(rows)
    partition = paths[0].parent
    # What a crash mid-write leaves: a temp file (truncated garbage) and a lock file.
    good = paths[0].read_bytes()
    (partition / f".{paths[0].name}.deadbeef.tmp").write_bytes(good[: len(good) // 2])
    (partition / ".leftover.tmp").write_bytes(b"PAR1 partial")
    (partition / ".compact.lock").write_bytes(b"")
    (partition / "notes.txt").write_text("not data")
    garbage = partition / "w-20240101T000000-000000000000.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    skipped: list[SkippedFile] = []
    frame = scan_readings(tmp_path, skipped=skipped).collect()
    assert as_tuples(frame) == expected(rows)
    assert [s.path for s in skipped] == [garbage]
    assert garbage.exists()  # readers never delete anything


def test_read_files_passes_over_vanished_files_silently(tmp_path: Path) -> None:
    """A file deleted between listing and reading (as compaction does) has its rows in a newer file."""
    store = ParquetStore(tmp_path, "w")
    rows = sample(40)
    for row in rows:
        store.write_readings([row])
    frame = read_files(list_files(tmp_path))
    assert as_tuples(frame) == expected(rows)
    listed = list_files(tmp_path)
    victim = listed[len(listed) // 2]
    victim.unlink()
    # read_files does not chase (its caller's next incremental listing will), and says nothing about it.
    skipped: list[SkippedFile] = []
    assert read_files(listed, skipped=skipped).height == len(rows) - 1
    assert skipped == []


def test_new_files_since_returns_each_file_once(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    store.write_readings([Reading(T0, "p", "t", 1.0, T0)])
    files, mark = new_files_since(tmp_path, "p", Watermark())
    assert len(files) == 1
    again, mark = new_files_since(tmp_path, "p", mark)
    assert again == []
    (newer,) = store.write_readings([Reading(T0 + 1, "p", "t", 2.0, T0)])
    # A file whose mtime is *older* than the newest seen (renamed late by a slow writer) is still found.
    (late,) = store.write_readings([Reading(T0 + 2, "p", "t", 3.0, T0)])
    past = mark.mtime_ns - 2_000_000_000
    os.utime(late, ns=(past, past))
    files, mark = new_files_since(tmp_path, "p", mark)
    assert sorted(files) == sorted([newer, late])
    assert new_files_since(tmp_path, "p", mark)[0] == []
    assert read_files(files).height == 2
    # Other assets and days before first_day are not listed.
    store.write_readings([Reading(T0 + DAY_US, "q", "t", 1.0, T0)])
    assert new_files_since(tmp_path, "p", mark)[0] == []
    files, _ = new_files_since(tmp_path, "p", Watermark(), first_day=at(T0 + DAY_US).date())
    assert files == []


def test_new_files_since_stats_only_names_it_has_not_met(tmp_path: Path) -> None:
    """Files are written once under unique names, so a listing reuses the mtimes the last one read: touching a
    listed file changes nothing, and only a new name is looked at (and returned)."""
    store = ParquetStore(tmp_path, "w")
    (first,) = store.write_readings([Reading(T0, "p", "t", 1.0, T0)])
    files, mark = new_files_since(tmp_path, "p", Watermark())
    assert files == [first] and set(mark.listed.values()) == {mark.mtime_ns}
    future = mark.mtime_ns + 3_600_000_000_000
    os.utime(first, ns=(future, future))
    again, unchanged = new_files_since(tmp_path, "p", mark)
    assert again == [] and unchanged.mtime_ns == mark.mtime_ns  # not stat-ed again
    (second,) = store.write_readings([Reading(T0 + 1, "p", "t", 2.0, T0)])
    files, later = new_files_since(tmp_path, "p", unchanged)
    assert files == [second] and len(later.listed) == 2 and later.mtime_ns > mark.mtime_ns
    first_rel = next(rel for rel in later.listed if rel.endswith(first.name))
    first.unlink()  # compacted away: forgotten with the next listing
    assert set(new_files_since(tmp_path, "p", later)[1].listed) == set(later.listed) - {first_rel}


def test_new_files_since_with_a_kept_asset_directory_lists_the_same(tmp_path: Path) -> None:
    """Serving keeps each asset's resolved directory (AssetFiles); listings and watermarks are unchanged by it,
    also when the store root is reached through a symlink."""
    store = ParquetStore(tmp_path / "real", "w")
    store.write_readings([Reading(T0, "p", "t", 1.0, T0), Reading(T0 + DAY_US, "p", "t", 2.0, T0)])
    (tmp_path / "link").symlink_to(tmp_path / "real")
    root = tmp_path / "link"
    where = AssetFiles.of(root, "p")
    assert where.rel == "raw/asset=p" and where.path == (tmp_path / "real" / "raw" / "asset=p")
    plain = new_files_since(root, "p", Watermark())
    kept = new_files_since(root, "p", Watermark(), where=where)
    assert plain == kept and len(kept[0]) == 2
    assert all(rel.startswith("raw/asset=p/date=") for rel in kept[1].seen)
    store.write_readings([Reading(T0 + 5, "p", "t", 3.0, T0)])
    assert new_files_since(root, "p", kept[1], where=where) == new_files_since(root, "p", plain[1])
    with pytest.raises(UnsafePathError):
        AssetFiles.of(root, "../p")
