"""Compaction: merge each partition's small files into one, dropping duplicate readings.

Writers add one small file per partition per flush (about one a second), and at-least-once delivery means
the same reading can arrive twice. Compaction keeps reads fast and the store tidy without ever risking
acknowledged data:

* the merged file is written atomically and made durable *before* any input is deleted, so a concurrent
  reader sees the old files, the new one, or for an instant both (readers deduplicate, so both is harmless);
* an exclusive, non-blocking ``flock`` per partition keeps two compactors (two daemons, or a daemon and the
  CLI) from merging the same partition at once; a locked partition is skipped, never waited on;
* a file that cannot be read is never deleted: it is moved to ``corrupt/`` (same relative path) for a person
  to look at, and the rest of the partition is compacted without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from linewatch.core.schema import READING_COLUMNS, READING_SCHEMA
from linewatch.ingest.fsutil import atomic_write_parquet, durable_move, fsync_dir, is_temp_name
from linewatch.ingest.store import (
    COMPACTOR_ID,
    CORRUPT_DIR,
    check_name,
    list_asset_names,
    list_data_files,
    list_partitions,
    new_file_name,
)

log = logging.getLogger(__name__)

#: Lock file inside each partition; the leading dot and the suffix keep every reader away from it.
LOCK_NAME: Final = ".compact.lock"
#: Sort order for deduplication: within one (asset, sensor, ts) the earliest received_at wins, and the value
#: breaks exact ties so the result does not depend on file listing order.
DEDUP_KEY: Final = ("asset", "sensor", "ts")
DEDUP_ORDER: Final = ("asset", "sensor", "ts", "received_at", "value")
#: A temp file this old is the leftover of a crashed writer (a live flush takes well under a second).
STALE_TEMP_AGE_S: Final = 3600.0


@dataclass(slots=True)
class CompactionStats:
    """What one :func:`compact` run did (for logs, metrics and the CLI)."""

    partitions_seen: int = 0
    partitions_compacted: int = 0
    partitions_locked: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    duplicates_removed: int = 0
    corrupt_files: int = 0
    temp_files_removed: int = 0
    seconds: float = 0.0


class CorruptFileError(Exception):
    """A data file that cannot be read as readings (truncated, garbage, or a foreign schema)."""


def dedup_readings(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep one row per (asset, sensor, ts): the earliest ``received_at`` (the first delivery), sorted."""
    return frame.sort(list(DEDUP_ORDER), maintain_order=True).unique(
        subset=list(DEDUP_KEY), keep="first", maintain_order=True
    )


def read_readings_file(path: Path) -> pl.DataFrame:
    """Read one data file as readings with the canonical dtypes; raise :class:`CorruptFileError` if unusable.

    A file that vanished (compacted away by someone else) raises ``FileNotFoundError`` instead, because the
    right reaction to that is to list again, not to set anything aside.
    """
    try:
        table = pq.read_table(path, columns=list(READING_COLUMNS))
        table = table.select(list(READING_COLUMNS)).cast(READING_SCHEMA)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        if not path.exists():
            raise FileNotFoundError(str(path)) from exc
        raise CorruptFileError(f"{path}: {exc}") from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def to_reading_table(frame: pl.DataFrame) -> pa.Table:
    """Convert back to Arrow with exactly :data:`READING_SCHEMA` (polars produces large/view string types)."""
    return frame.select(list(READING_COLUMNS)).to_arrow().cast(READING_SCHEMA)


@contextlib.contextmanager
def partition_lock(partition: Path) -> Iterator[bool]:
    """Hold the partition's compaction lock if it is free; yields False (without waiting) if it is not.

    ``flock`` locks die with the process, so a compactor killed mid-merge never leaves a stale lock. The lock
    file itself is left in place: deleting it would let a third process lock a fresh inode while a second one
    still holds the old one.
    """
    fd = os.open(partition / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def move_to_corrupt(root: Path, path: Path) -> Path:
    """Set an unreadable file aside below ``root/corrupt/``, keeping its path relative to the root."""
    relative = path.resolve().relative_to(root.resolve())
    target = root.resolve() / CORRUPT_DIR / relative
    if target.exists():  # the same name set aside before: never overwrite evidence
        target = target.with_name(f"{target.name}.{time.time_ns()}")
    durable_move(path, target)
    return target


def compact(
    root: Path,
    *,
    min_files: int = 2,
    older_than_s: float = 0,
    asset: str | None = None,
    now: datetime | None = None,
) -> CompactionStats:
    """Merge the files of every raw partition (or one asset's) into one deduplicated file per partition.

    ``min_files``: partitions with fewer eligible files are left alone (``1`` also rewrites a single file to
    drop duplicates inside it). ``older_than_s``: only files whose mtime is at least this old take part, so a
    daemon compacting on a timer leaves the files of the current flushes and its own fresh output alone
    instead of rewriting them over and over. ``now`` (UTC) is injectable for tests.
    """
    if min_files < 1:
        raise ValueError("min_files must be at least 1")
    started = time.monotonic()
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cutoff = current.timestamp() - older_than_s
    stats = CompactionStats()
    assets = [check_name(asset)] if asset is not None else list_asset_names(root)
    for name in assets:
        for _, partition in list_partitions(root, name):
            stats.partitions_seen += 1
            _compact_partition(root, partition, min_files, cutoff, stats)
    stats.seconds = time.monotonic() - started
    if stats.partitions_compacted or stats.corrupt_files:
        log.info(
            "compacted %s partitions: %s files -> %s, %s rows -> %s (%s duplicates, %s corrupt) in %.3fs",
            stats.partitions_compacted,
            stats.files_in,
            stats.files_out,
            stats.rows_in,
            stats.rows_out,
            stats.duplicates_removed,
            stats.corrupt_files,
            stats.seconds,
        )
    return stats


def _eligible(partition: Path, cutoff: float) -> list[Path]:
    files = []
    for path in list_data_files(partition):
        try:
            if path.stat().st_mtime <= cutoff:
                files.append(path)
        except FileNotFoundError:
            continue
    return files


def _compact_partition(root: Path, partition: Path, min_files: int, cutoff: float, stats: CompactionStats) -> None:
    if len(_eligible(partition, cutoff)) < min_files:
        return
    try:
        with partition_lock(partition) as acquired:
            if not acquired:
                stats.partitions_locked += 1
                log.debug("partition %s is being compacted elsewhere; skipped", partition)
                return
            _remove_stale_temp_files(partition, stats)
            _merge_locked(root, partition, min_files, cutoff, stats)
    except FileNotFoundError as exc:
        # The partition was removed under us (retention, an operator). Inputs are only ever deleted after
        # the merged file is durable, so nothing can have been lost here.
        log.warning("partition %s vanished during compaction: %s", partition, exc)


def _remove_stale_temp_files(partition: Path, stats: CompactionStats) -> None:
    """Delete temp files left by a writer that crashed mid-write (never acknowledged, so safe to drop)."""
    limit = time.time() - STALE_TEMP_AGE_S
    for entry in partition.iterdir():
        if is_temp_name(entry.name):
            try:
                if entry.stat().st_mtime < limit:
                    entry.unlink()
                    stats.temp_files_removed += 1
            except FileNotFoundError:
                continue


def _merge_locked(root: Path, partition: Path, min_files: int, cutoff: float, stats: CompactionStats) -> None:
    # List again under the lock: another compactor may have merged these files a moment ago.
    files = _eligible(partition, cutoff)
    if len(files) < min_files:
        return
    frames: list[pl.DataFrame] = []
    inputs: list[Path] = []
    for path in files:
        try:
            frames.append(read_readings_file(path))
            inputs.append(path)
        except FileNotFoundError:
            continue
        except CorruptFileError as exc:
            target = move_to_corrupt(root, path)
            stats.corrupt_files += 1
            log.warning("unreadable data file moved to %s: %s", target, exc)
    if len(inputs) < min(min_files, 2) or not inputs:
        return
    merged = pl.concat(frames, how="vertical")
    unique = dedup_readings(merged)
    output = partition / new_file_name(COMPACTOR_ID, datetime.now(UTC))
    atomic_write_parquet(to_reading_table(unique), output)
    for path in inputs:
        path.unlink(missing_ok=True)
    fsync_dir(partition)
    stats.partitions_compacted += 1
    stats.files_in += len(inputs)
    stats.files_out += 1
    stats.rows_in += merged.height
    stats.rows_out += unique.height
    stats.duplicates_removed += merged.height - unique.height
