"""Compaction on real files: merging, dedup, corrupt files set aside, locking, and reads racing compaction."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from linewatch.core.paths import UnsafePathError
from linewatch.ingest.compaction import LOCK_NAME, compact, partition_lock
from linewatch.ingest.reader import SkippedFile, list_files, scan_readings
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore, list_data_files

DAY_US = 86_400_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def keys(frame: pl.DataFrame) -> set[tuple[str, str, int]]:
    return set(
        zip(frame["asset"].to_list(), frame["sensor"].to_list(), frame["ts"].dt.epoch("us").to_list(), strict=True)
    )


def fill(store: ParquetStore, batches: int = 5, per_batch: int = 50, days: int = 2) -> list[Reading]:
    rows = []
    for b in range(batches):
        batch = [
            Reading(T0 + ((i // 2) % days) * DAY_US + b * 1000 + i, f"a{i % 2}", f"s{i % 3}", float(i + b), T0 + b)
            for i in range(per_batch)
        ]
        store.write_readings(batch)
        rows.extend(batch)
    return rows


def test_compaction_merges_to_one_file_per_partition_and_keeps_every_row(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    rows = fill(store)
    before = scan_readings(tmp_path).collect()
    stats = compact(tmp_path)
    assert stats.partitions_compacted == 4 and stats.files_in == 20 and stats.files_out == 4
    assert stats.rows_in == stats.rows_out == len(rows) and stats.duplicates_removed == 0
    for partition in {p.parent for p in list_files(tmp_path)}:
        assert len(list_data_files(partition)) == 1
    after = scan_readings(tmp_path).collect()
    assert after.equals(before)
    # Nothing left to do: one file per partition is below min_files.
    assert compact(tmp_path).partitions_compacted == 0


def test_compaction_removes_redelivered_duplicates(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    original = [Reading(T0 + i, "p", "t", float(i), T0 + 100) for i in range(10)]
    store.write_readings(original)
    store.write_readings([Reading(r.ts_us, r.asset, r.sensor, r.value, T0 + 500) for r in original[:4]])
    store.write_readings([Reading(T0 + 3, "p", "t", 3.0, T0 + 50)])  # an earlier delivery of ts=3
    stats = compact(tmp_path)
    assert (stats.files_in, stats.files_out, stats.rows_in, stats.rows_out) == (3, 1, 15, 10)
    assert stats.duplicates_removed == 5
    (path,) = list_files(tmp_path)
    table = pl.from_arrow(pq.read_table(path))
    assert isinstance(table, pl.DataFrame)
    received = dict(
        zip(table["ts"].dt.epoch("us").to_list(), table["received_at"].dt.epoch("us").to_list(), strict=True)
    )
    assert received[T0 + 3] == T0 + 50 and received[T0 + 0] == T0 + 100
    assert table.height == 10


def test_corrupt_files_are_moved_aside_not_deleted(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    rows = fill(store, batches=3, days=1)
    partition = list_files(tmp_path, ["a0"])[0].parent
    garbage = partition / "w-20240101T000000-badbadbadbad.parquet"
    garbage.write_bytes(b"PAR1 truncated by a power cut")
    truncated = partition / "w-20240101T000001-cafecafecafe.parquet"
    good = list_files(tmp_path, ["a0"])[0].read_bytes()
    truncated.write_bytes(good[:-20])
    stats = compact(tmp_path)
    assert stats.corrupt_files == 2
    moved = tmp_path / "corrupt" / garbage.relative_to(tmp_path)
    assert moved.read_bytes() == b"PAR1 truncated by a power cut"
    assert (tmp_path / "corrupt" / truncated.relative_to(tmp_path)).exists()
    assert not garbage.exists() and not truncated.exists()
    skipped: list[SkippedFile] = []
    assert scan_readings(tmp_path, skipped=skipped).collect().height == len(rows)
    assert skipped == []


def test_stale_temp_files_are_cleaned_fresh_ones_kept(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    fill(store, batches=2, days=1)
    partition = list_files(tmp_path, ["a0"])[0].parent
    stale, fresh = partition / ".x.parquet.1234.tmp", partition / ".y.parquet.5678.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert compact(tmp_path).temp_files_removed == 1
    assert not stale.exists() and fresh.exists()


def test_older_than_leaves_fresh_files_alone(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    fill(store, batches=3, days=1)
    assert compact(tmp_path, older_than_s=3600).partitions_compacted == 0
    later = datetime.fromtimestamp(time.time() + 7200, UTC)
    assert compact(tmp_path, older_than_s=3600, now=later).partitions_compacted == 2


def test_one_asset_only_and_hostile_asset(tmp_path: Path) -> None:
    fill(ParquetStore(tmp_path, "w"), batches=2, days=1)
    assert compact(tmp_path, asset="a1").partitions_compacted == 1
    with pytest.raises(UnsafePathError):
        compact(tmp_path, asset="../a1")


def test_locked_partition_is_skipped_not_waited_on(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    rows = fill(store, batches=4, days=1)
    partition = list_files(tmp_path, ["a0"])[0].parent
    with partition_lock(partition) as acquired:
        assert acquired
        with partition_lock(partition) as second:
            assert not second  # flock is per open file description: even this process is refused
        started = time.monotonic()
        stats = compact(tmp_path)
        assert time.monotonic() - started < 5
        assert stats.partitions_locked == 1 and stats.partitions_compacted == 1
        assert len(list_data_files(partition)) == 4
    assert (partition / LOCK_NAME).exists()
    assert compact(tmp_path).partitions_compacted == 1
    assert scan_readings(tmp_path).collect().height == len(rows)


def test_two_compactors_at_once_lose_nothing(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    rows = fill(store, batches=30, per_batch=40, days=3)
    barrier = threading.Barrier(2)
    results = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(compact(tmp_path))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.partitions_compacted for r in results) == 6
    frame = scan_readings(tmp_path).collect()
    assert keys(frame) == {(r.asset, r.sensor, r.ts_us) for r in rows}
    for partition in {p.parent for p in list_files(tmp_path)}:
        assert len(list_data_files(partition)) == 1


@pytest.mark.slow
def test_reads_racing_writes_and_compaction_never_lose_rows(tmp_path: Path) -> None:
    """A reader in a loop never errors and always sees at least every row written before its read began."""
    store = ParquetStore(tmp_path, "w")
    written: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = compactions = 0

    def writer() -> None:
        i = 0
        while not stop.is_set():
            batch = [
                Reading(T0 + (i + k) * 1000 + (k % 2) * DAY_US, f"a{k % 3}", f"s{k % 2}", 1.0, T0) for k in range(30)
            ]
            store.write_readings(batch)
            store.write_readings(batch[:5])  # redelivery
            with lock:
                written.extend((r.asset, r.sensor, r.ts_us) for r in batch)
            i += 30

    def compactor() -> None:
        nonlocal compactions
        while not stop.is_set():
            try:
                compact(tmp_path)
                compactions += 1
            except BaseException as exc:
                errors.append(exc)
                return

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            with lock:
                before = set(written)
            try:
                seen = keys(scan_readings(tmp_path).collect())
            except BaseException as exc:
                errors.append(exc)
                return
            missing = before - seen
            if missing:
                errors.append(AssertionError(f"read lost {len(missing)} rows, e.g. {sorted(missing)[:3]}"))
                return
            reads += 1

    threads = [threading.Thread(target=f) for f in (writer, compactor, compactor, reader)]
    for t in threads:
        t.start()
    # Run for at least 2 s and until both sides have done some rounds (bounded, for slow CI machines).
    started = time.monotonic()
    while time.monotonic() - started < 30 and not errors:
        if time.monotonic() - started > 2 and reads >= 5 and compactions >= 5:
            break
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert reads > 5 and compactions > 5
    final = keys(scan_readings(tmp_path).collect())
    assert final == set(written)
