"""Reading the raw store: the one way models and serving get readings, so both see exactly the same data.

The store is read while ingest writes to it and compaction rewrites it, so the reader

* prunes partitions by listing ``asset=``/``date=`` directories (only the needed files are ever opened);
* ignores temp files, lock files and anything not ending in ``.parquet``;
* deduplicates on (asset, sensor, ts), keeping the earliest ``received_at`` (at-least-once delivery and a
  compaction caught half-way both produce duplicates);
* lists again when a file vanished between listing and reading (compaction merged it: its rows are in a newer
  file), a bounded number of times;
* skips a corrupt file and reports it through the ``skipped`` list (and a warning), never failing the read.

Files are read eagerly, file by file, when :func:`scan_readings` is called; the returned ``LazyFrame`` is over
that in-memory data. A truly lazy scan would defer opening the files to ``collect()``, when compaction may have
deleted them and nothing could be retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from linewatch.core.schema import READING_COLUMNS
from linewatch.ingest.compaction import DEDUP_KEY, DEDUP_ORDER
from linewatch.ingest.store import (
    COMPACTOR_ID,
    asset_dir,
    check_name,
    is_data_file,
    list_asset_names,
    list_data_files,
    list_partitions,
    partitions_in,
)

log = logging.getLogger(__name__)

#: Polars dtypes of :data:`linewatch.core.schema.READING_SCHEMA`; every file is cast to these.
READING_DTYPES: Final[dict[str, pl.DataType]] = {
    "ts": pl.Datetime("us", "UTC"),
    "asset": pl.String(),
    "sensor": pl.String(),
    "value": pl.Float64(),
    "received_at": pl.Datetime("us", "UTC"),
}
#: How many times a read lists the store again after files vanished under it before giving up.
MAX_LISTINGS: Final = 8
#: Suffix of the mask columns of :func:`wide_frame`; ``:`` cannot occur in a sensor name, so no clash.
OBSERVED_SUFFIX: Final = ":observed"
_ONE_US: Final = timedelta(microseconds=1)
#: What a damaged file can raise while being read; a Rust panic in polars is a ``BaseException``, caught here
#: only around reading a file, so one pathological file cannot take down the serving daemon.
_READ_ERRORS: Final = (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException)


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A data file that could not be read (truncated, garbage, foreign schema) and was left out."""

    path: Path
    reason: str


class StoreChangedError(RuntimeError):
    """The store kept changing under a read (files vanished on every one of :data:`MAX_LISTINGS` listings)."""


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def list_assets(root: Path) -> list[str]:
    """Sorted names of the assets that have data in the raw store below ``root``."""
    return list_asset_names(root)


def list_files(
    root: Path, assets: Sequence[str] | None = None, start: datetime | None = None, end: datetime | None = None
) -> list[Path]:
    """Data files of the partitions that can hold readings of ``assets`` with ``start <= ts < end``."""
    start, end = _utc(start, "start"), _utc(end, "end")
    names = list_asset_names(root) if assets is None else [check_name(a) for a in assets]
    first = start.date() if start is not None else None
    last = (end - _ONE_US).date() if end is not None else None
    files: list[Path] = []
    for name in names:
        for _, partition in list_partitions(root, name, first, last):
            files.extend(list_data_files(partition))
    return files


def _predicate(start: datetime | None, end: datetime | None) -> pl.Expr:
    expr = pl.lit(True)
    if start is not None:
        expr = expr & (pl.col("ts") >= start)
    if end is not None:
        expr = expr & (pl.col("ts") < end)
    return expr


def _canonical(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select([pl.col(name).cast(dtype) for name, dtype in READING_DTYPES.items()])


def empty_readings() -> pl.DataFrame:
    return pl.DataFrame(schema=READING_DTYPES)


@dataclass(slots=True)
class _Batch:
    frames: list[pl.DataFrame] = field(default_factory=list)
    vanished: list[Path] = field(default_factory=list)
    corrupt: list[SkippedFile] = field(default_factory=list)


def _read_batch(paths: Sequence[Path], predicate: pl.Expr) -> _Batch:
    """Read ``paths`` in one scan when all is well, else file by file to tell vanished from corrupt files."""
    batch = _Batch()
    if not paths:
        return batch
    try:
        scan = pl.scan_parquet(list(paths), hive_partitioning=False, glob=False)
        batch.frames.append(_canonical(scan).filter(predicate).collect())
        return batch
    except _READ_ERRORS:
        pass  # find out which file is the problem
    for path in paths:
        try:
            scan = pl.scan_parquet(path, hive_partitioning=False, glob=False)
            batch.frames.append(_canonical(scan).filter(predicate).collect())
        except _READ_ERRORS as exc:
            if path.exists():
                batch.corrupt.append(SkippedFile(path, f"{type(exc).__name__}: {str(exc)[:300]}"))
            else:
                batch.vanished.append(path)
    return batch


def _read_consistent(
    root: Path,
    assets: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    skipped: list[SkippedFile] | None,
) -> pl.DataFrame:
    """Read every row that was stored before the call, however compaction shuffles files meanwhile.

    Compaction writes its merged file before deleting the inputs, so at any instant every row is in some
    listed file. A file that vanished before it was read is therefore in a newer compacted file: list again
    and read what is new. A final listing also catches a merged file created while the first listing was
    running (whose inputs that listing may have missed); new files from writers are not chased, as their
    rows arrived after the read began.
    """
    predicate = _predicate(start, end)
    seen: set[Path] = set()
    frames: list[pl.DataFrame] = []
    vanished = False
    for attempt in range(MAX_LISTINGS):
        todo = [p for p in list_files(root, assets, start, end) if p not in seen]
        confirming = attempt > 0 and not vanished
        if confirming:
            todo = [p for p in todo if p.name.startswith(COMPACTOR_ID + "-")]
            if not todo:
                break
        batch = _read_batch(todo, predicate)
        frames.extend(batch.frames)
        seen.update(todo)
        for bad in batch.corrupt:
            log.warning("skipping unreadable data file %s: %s", bad.path, bad.reason)
        if skipped is not None:
            skipped.extend(batch.corrupt)
        vanished = bool(batch.vanished)
        if confirming and not vanished:
            break
    else:
        raise StoreChangedError(f"files kept vanishing during {MAX_LISTINGS} listings of {root}")
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty_readings()


def scan_readings(
    root: Path,
    assets: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    skipped: list[SkippedFile] | None = None,
) -> pl.LazyFrame:
    """Readings with ``start <= ts < end`` (both optional, timezone-aware) of ``assets`` (default: all).

    Columns ``ts, asset, sensor, value, received_at``, one row per (asset, sensor, ts) — the earliest
    ``received_at`` wins — sorted by asset, sensor and ts. Files that cannot be read are appended to
    ``skipped`` (when given) and logged; the read itself does not fail because of them.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    frame = _read_consistent(root, assets, start, end, skipped)
    return (
        frame.lazy()
        .sort(list(DEDUP_ORDER), maintain_order=True)
        .unique(subset=list(DEDUP_KEY), keep="first", maintain_order=True)
        .select(list(READING_COLUMNS))
    )


def read_files(paths: Sequence[Path], *, skipped: list[SkippedFile] | None = None) -> pl.DataFrame:
    """Read exactly these files (from :func:`new_files_since`), deduplicated, without chasing vanished ones.

    A file that vanished was compacted into a newer file, which the next :func:`new_files_since` returns.
    """
    batch = _read_batch(paths, pl.lit(True))
    if skipped is not None:
        skipped.extend(batch.corrupt)
    frames = [f for f in batch.frames if f.height]
    frame = pl.concat(frames, how="vertical") if frames else empty_readings()
    return (
        frame.sort(list(DEDUP_ORDER), maintain_order=True)
        .unique(subset=list(DEDUP_KEY), keep="first", maintain_order=True)
        .select(list(READING_COLUMNS))
    )


@dataclass(frozen=True, slots=True)
class Watermark:
    """How far an incremental reader of one asset has got: see :func:`new_files_since`.

    ``mtime_ns`` is the newest file mtime seen; ``seen`` holds the relative paths of the files seen whose mtime
    is within the slack window below it. ``Watermark()`` means "nothing seen yet". ``listed`` remembers the mtime
    of every file the last listing found, so the next one stats only names it has not met: data files are
    written once under a unique name and never rewritten in place (compaction writes a new name).
    """

    mtime_ns: int = 0
    seen: frozenset[str] = frozenset()
    listed: Mapping[str, int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class AssetFiles:
    """Where one asset's files live: its directory, validated and resolved once, and its path relative to the
    resolved store root. Serving lists every asset's files every second; resolving the same paths each time
    (several ``lstat`` calls per component) was most of that cost."""

    path: Path
    rel: str

    @classmethod
    def of(cls, root: Path, asset: str) -> AssetFiles:
        path = asset_dir(root, asset)
        return cls(path, path.relative_to(root.resolve()).as_posix())


def new_files_since(
    root: Path,
    asset: str,
    watermark: Watermark,
    *,
    first_day: date | None = None,
    slack_s: float = 10.0,
    where: AssetFiles | None = None,
) -> tuple[list[Path], Watermark]:
    """Files of ``asset`` not yet returned for ``watermark``, and the watermark to pass next time.

    A file's mtime is set when its temp file is written, slightly before the rename makes it visible, and
    several writers write concurrently, so a plain "mtime > watermark" test could miss a file renamed late.
    Files are therefore compared by name within ``slack_s`` below the newest mtime seen (files older than
    that are taken as seen). Compaction output is a new file and is returned again: consumers must
    deduplicate (e.g. keep only ts beyond what they hold), as :func:`read_files` does within one call.
    ``first_day`` limits the listing to partitions from that UTC date on (serving only needs recent days).
    ``where`` is the asset's :class:`AssetFiles` if the caller keeps it (else it is worked out here).
    """
    slack_ns = int(slack_s * 1e9)
    where = where or AssetFiles.of(root, asset)
    listed: list[tuple[int, str, str]] = []
    known = watermark.listed
    # Serving calls this for every asset every second: one scandir per partition and one stat per file not
    # met before, with names kept as strings and a Path made only for a fresh file (resolving paths, then
    # building a Path per listed file, cost most of it).
    for _, partition in partitions_in(where.path, first_day, None):
        rel_dir = f"{where.rel}/{partition.name}"
        try:
            with os.scandir(partition) as entries:
                for entry in entries:
                    if not is_data_file(entry.name):
                        continue
                    rel = f"{rel_dir}/{entry.name}"
                    mtime_ns = known.get(rel)
                    if mtime_ns is None:
                        try:
                            mtime_ns = entry.stat().st_mtime_ns
                        except FileNotFoundError:
                            continue
                    listed.append((mtime_ns, rel, entry.path))
        except FileNotFoundError:
            continue
    cutoff = watermark.mtime_ns - slack_ns
    fresh = [Path(path) for mtime_ns, rel, path in listed if mtime_ns >= cutoff and rel not in watermark.seen]
    newest = max([watermark.mtime_ns, *(m for m, _, _ in listed)])
    window = newest - slack_ns
    seen = {rel for mtime_ns, rel, _ in listed if mtime_ns >= window}
    return sorted(fresh), Watermark(newest, frozenset(seen), {rel: mtime_ns for mtime_ns, rel, _ in listed})


def observed_column(sensor: str) -> str:
    """Name of the mask column telling where ``sensor`` was observed in a :func:`wide_frame`."""
    return sensor + OBSERVED_SUFFIX


def _cadence_us(cadence: timedelta) -> int:
    cadence_us = cadence // _ONE_US
    if cadence_us <= 0 or cadence != timedelta(microseconds=cadence_us):
        raise ValueError(f"cadence must be a positive whole number of microseconds, got {cadence!r}")
    return cadence_us


def to_wide(
    long: pl.DataFrame,
    first_bin_us: int,
    last_bin_us: int,
    cadence_us: int,
    *,
    sensors: Sequence[str] | None = None,
    max_gap: int | None = None,
) -> pl.DataFrame:
    """Pure part of :func:`wide_frame`: bin long readings and spread them to one column per sensor.

    Bins are ``[k * cadence, (k + 1) * cadence)`` in epoch microseconds; rows run from ``first_bin_us`` to
    ``last_bin_us`` inclusive (both bin starts). Rows of ``long`` before ``first_bin_us`` only seed the forward
    fill. Each value is the mean of the bin's readings; ``<sensor>:observed`` is True where the bin had a
    reading. Empty bins take the last value for at most ``max_gap`` steps (``None`` or ``0``: no filling), so
    a silent sensor shows up as nulls instead of a plausible flat line.
    """
    if max_gap is not None and max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    names = sorted(set(long.get_column("sensor").to_list())) if sensors is None else list(sensors)
    for name in names:
        check_name(name, "sensor")
    binned = (
        long.select(
            ((pl.col("ts").dt.epoch("us") // cadence_us) * cadence_us).alias("bin"),
            pl.col("sensor"),
            pl.col("value"),
        )
        .group_by(["bin", "sensor"])
        .agg(pl.col("value").mean())
    )
    lookback = (max_gap or 0) * cadence_us
    grid = pl.DataFrame({"bin": pl.int_range(first_bin_us - lookback, last_bin_us + 1, cadence_us, eager=True)})
    if binned.height:
        spread = binned.pivot(on="sensor", index="bin", values="value")
        grid = grid.join(spread, on="bin", how="left")
    raw = [
        (pl.col(name) if name in grid.columns else pl.lit(None, dtype=pl.Float64)).cast(pl.Float64).alias(name)
        for name in names
    ]
    grid = grid.select(pl.col("bin"), *raw)
    limit = max_gap or 0
    return grid.select(
        pl.from_epoch(pl.col("bin"), time_unit="us").dt.replace_time_zone("UTC").alias("ts"),
        *[(pl.col(n).forward_fill(limit=limit) if limit else pl.col(n)) for n in names],
        *[pl.col(n).is_not_null().alias(observed_column(n)) for n in names],
    ).filter(pl.col("ts").dt.epoch("us") >= first_bin_us)


def wide_frame(
    root: Path,
    asset: str,
    start: datetime,
    end: datetime,
    cadence: timedelta,
    *,
    sensors: Sequence[str] | None = None,
    max_gap: int | None = None,
    skipped: list[SkippedFile] | None = None,
) -> pl.DataFrame:
    """One row per ``cadence`` step of ``asset`` over ``[start, end)``: ``ts``, a column per sensor, masks.

    Bins are left-closed and aligned to the epoch (so training and serving cut identical bins whatever window
    they ask for); the first row is the bin containing ``start``. Columns are ``ts`` (bin start, UTC), the
    mean per bin of each sensor (``sensors``, default all sensors read, sorted), then ``<sensor>:observed``
    booleans (False where the value is filled or missing). Gaps are filled forward for at most ``max_gap``
    steps; readings up to ``max_gap`` steps before ``start`` are read too, so a window's first rows fill the
    same way as in a longer window that contains it.
    """
    start_utc, end_utc = _utc(start, "start"), _utc(end, "end")
    assert start_utc is not None and end_utc is not None
    if end_utc <= start_utc:
        raise ValueError("end must be after start")
    cadence_us = _cadence_us(cadence)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start_us = (start_utc - epoch) // _ONE_US
    end_us = (end_utc - epoch) // _ONE_US
    first_bin = (start_us // cadence_us) * cadence_us
    last_bin = ((end_us - 1) // cadence_us) * cadence_us
    read_from = epoch + timedelta(microseconds=first_bin - (max_gap or 0) * cadence_us)
    long = scan_readings(root, [asset], read_from, end_utc, skipped=skipped).collect()
    return to_wide(long, first_bin, last_bin, cadence_us, sensors=sensors, max_gap=max_gap)
