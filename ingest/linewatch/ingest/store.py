"""The raw store: durable, append-only, hive-partitioned Parquet files of readings (writer side and layout).

Layout below the data root::

    raw/asset=<asset>/date=<YYYY-MM-DD>/<writer>-<yyyymmddThhmmss>-<uuid12>.parquet
    quarantine/date=<YYYY-MM-DD>/<writer>-<yyyymmddThhmmss>-<uuid12>.parquet
    corrupt/<relative path of a file compaction could not read>

Files are never modified, only added (by writers and compaction) and removed (by compaction, after the merged
file is durable), so any engine that understands hive partitioning can read the store while it is written.
The partition date is the UTC date of the reading's own timestamp, not of its arrival, so late or replayed
data lands next to the data it belongs with. Several ingest daemons may share one store (shared MQTT
subscriptions); each has its own ``writer_id`` and every file name carries a random part, so names never
collide across writers or restarts and no writer ever needs to coordinate with another.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from linewatch.core.clock import Clock, SystemClock
from linewatch.core.paths import UnsafePathError, safe_child
from linewatch.core.schema import READING_SCHEMA, is_valid_name
from linewatch.ingest.fsutil import atomic_write_parquet
from linewatch.ingest.records import QuarantineRecord, Reading

log = logging.getLogger(__name__)

RAW_DIR: Final = "raw"
QUARANTINE_DIR: Final = "quarantine"
CORRUPT_DIR: Final = "corrupt"
ASSET_KEY: Final = "asset="
DATE_KEY: Final = "date="
PARQUET_SUFFIX: Final = ".parquet"
#: Prefix of files written by compaction (in place of a writer id), so readers and operators can tell them apart.
COMPACTOR_ID: Final = "compacted"
US_PER_DAY: Final = 86_400_000_000
_EPOCH: Final = date(1970, 1, 1)
_UTC_TS: Final = pa.timestamp("us", tz="UTC")
_TS: Final = attrgetter("ts_us")
_ASSET: Final = attrgetter("asset")
_SENSOR: Final = attrgetter("sensor")
_VALUE: Final = attrgetter("value")
_RECEIVED: Final = attrgetter("received_us")

QUARANTINE_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        pa.field("received_at", _UTC_TS, nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)


# --------------------------------------------------------------------------------------------------- layout


def check_name(name: str, what: str = "asset") -> str:
    """Return ``name`` if it is a valid asset/writer name, else raise :class:`UnsafePathError`.

    Decoders already validate names from topics; the store checks again because a name becomes a directory
    and one missed check elsewhere must not let a hostile topic write outside the store.
    """
    if not isinstance(name, str) or not is_valid_name(name):
        shown = name[:80] if isinstance(name, str) else type(name).__name__
        raise UnsafePathError(f"invalid {what} name for the raw store: {shown!r}")
    return name


def raw_root(root: Path) -> Path:
    return root / RAW_DIR


def asset_dir(root: Path, asset: str) -> Path:
    """``raw/asset=<asset>`` below ``root``, refusing names that could leave it."""
    return safe_child(root, RAW_DIR, ASSET_KEY + check_name(asset))


def partition_dir(root: Path, asset: str, day: date) -> Path:
    """``raw/asset=<asset>/date=<day>`` below ``root``."""
    return safe_child(root, RAW_DIR, ASSET_KEY + check_name(asset), DATE_KEY + day.isoformat())


def quarantine_dir(root: Path, day: date) -> Path:
    return safe_child(root, QUARANTINE_DIR, DATE_KEY + day.isoformat())


def day_of_us(ts_us: int) -> date:
    """UTC calendar date of a timestamp in epoch microseconds (floor division also handles pre-1970)."""
    return _EPOCH + timedelta(days=ts_us // US_PER_DAY)


def is_data_file(name: str) -> bool:
    """True for finished data files; temp files (``.``), lock files and foreign files are ignored.

    Names starting with ``_`` are skipped as well, as Spark and Hive do (``_SUCCESS``, ``_metadata``).
    """
    return name.endswith(PARQUET_SUFFIX) and not name.startswith((".", "_"))


def list_asset_names(root: Path) -> list[str]:
    """Sorted asset names that have a directory in the raw store; malformed directory names are ignored."""
    base = raw_root(root)
    try:
        entries = list(base.iterdir())
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        if entry.name.startswith(ASSET_KEY) and entry.is_dir():
            name = entry.name[len(ASSET_KEY) :]
            if is_valid_name(name):
                names.append(name)
    return sorted(names)


def list_partitions(
    root: Path, asset: str, first: date | None = None, last: date | None = None
) -> list[tuple[date, Path]]:
    """The ``date=`` partitions of one asset within ``[first, last]`` (inclusive), oldest first.

    Pruning by listing directories means a query for one hour opens the files of one day, not the store.
    """
    return partitions_in(asset_dir(root, asset), first, last)


def partitions_in(base: Path, first: date | None = None, last: date | None = None) -> list[tuple[date, Path]]:
    """:func:`list_partitions` of an asset directory already resolved by :func:`asset_dir`."""
    found = []
    try:
        # scandir's entries know whether they are directories without a stat call per entry.
        with os.scandir(base) as entries:
            for entry in entries:
                if not entry.name.startswith(DATE_KEY):
                    continue
                try:
                    day = date.fromisoformat(entry.name[len(DATE_KEY) :])
                except ValueError:
                    continue
                if (first is None or day >= first) and (last is None or day <= last) and entry.is_dir():
                    found.append((day, base / entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found)


def list_data_files(directory: Path) -> list[Path]:
    """Finished data files directly in ``directory``, sorted by name (a missing directory has none)."""
    try:
        return sorted(entry for entry in directory.iterdir() if is_data_file(entry.name))
    except FileNotFoundError:
        return []


def new_file_name(writer_id: str, now: datetime) -> str:
    """``<writer>-<yyyymmddThhmmss>-<uuid12>.parquet``: unique across writers and restarts, time-sortable."""
    return f"{writer_id}-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}{PARQUET_SUFFIX}"


# --------------------------------------------------------------------------------------------------- writer


def readings_table(rows: Sequence[Reading]) -> pa.Table:
    """Build a table with exactly :data:`READING_SCHEMA` from readings, column by column.

    Columns are built from plain lists in one call each (``map`` over an ``attrgetter`` is the fastest way
    to pull a field out of slotted dataclasses): per-row pyarrow calls would dominate the flush time at a
    hundred thousand readings per second.
    """
    return pa.Table.from_arrays(
        [
            pa.array(list(map(_TS, rows)), type=_UTC_TS),
            pa.array(list(map(_ASSET, rows)), type=pa.string()),
            pa.array(list(map(_SENSOR, rows)), type=pa.string()),
            pa.array(list(map(_VALUE, rows)), type=pa.float64()),
            pa.array(list(map(_RECEIVED, rows)), type=_UTC_TS),
        ],
        schema=READING_SCHEMA,
    )


def split_partitions(table: pa.Table) -> list[tuple[str, date, pa.Table]]:
    """Split a readings table into (asset, UTC date, rows sorted by sensor and ts) slices.

    Sorting and grouping run in Arrow's C++ kernels; the slices share the sorted table's memory.
    """
    ts = table.column("ts").cast(pa.int64())
    # Floor division (pc.divide truncates towards zero, which would misplace pre-1970 readings).
    day = pc.if_else(
        pc.less(ts, 0),
        pc.subtract(pc.divide(pc.add(ts, 1), US_PER_DAY), 1),
        pc.divide(ts, US_PER_DAY),
    )
    keyed = table.append_column("_day", day)
    order = pc.sort_indices(
        keyed, sort_keys=[("asset", "ascending"), ("_day", "ascending"), ("sensor", "ascending"), ("ts", "ascending")]
    )
    ordered = keyed.take(order)
    # Without threads, group_by keeps first-appearance order, which on sorted input is the sort order.
    counts = ordered.group_by(["asset", "_day"], use_threads=False).aggregate([([], "count_all")])
    ordered = ordered.drop_columns(["_day"])
    parts = []
    offset = 0
    for asset, day_n, count in zip(
        counts.column("asset").to_pylist(),
        counts.column("_day").to_pylist(),
        counts.column("count_all").to_pylist(),
        strict=True,
    ):
        parts.append((asset, _EPOCH + timedelta(days=day_n), ordered.slice(offset, count)))
        offset += count
    return parts


class ParquetStore:
    """Writes readings and quarantine records as new, durable Parquet files below ``root``.

    Each call writes new files and never touches existing ones, so several stores (threads, processes, hosts
    on a shared filesystem) may write concurrently without locks; compaction merges the small files later.
    """

    def __init__(self, root: Path, writer_id: str, *, clock: Clock | None = None) -> None:
        self.root = Path(root)
        self.writer_id = check_name(writer_id, "writer")
        if writer_id == COMPACTOR_ID:
            raise ValueError(f"writer_id {COMPACTOR_ID!r} is reserved for compaction output")
        self._clock: Clock = clock if clock is not None else SystemClock()

    def write_readings(self, readings: Sequence[Reading]) -> list[Path]:
        """Store ``readings`` as one file per (asset, UTC date) and return the new files' paths.

        When this returns, the data is durable: callers may then acknowledge the MQTT messages it came from.
        All asset names are checked before anything is written, so a bad name fails the whole batch rather
        than leaving part of it stored. Rows are sorted by (sensor, ts) within a file, which helps both
        compression and the row-group statistics readers prune with.
        """
        if not readings:
            return []
        parts = split_partitions(readings_table(readings))
        targets = [partition_dir(self.root, asset, day) for asset, day, _ in parts]  # validates every name
        now = self._clock.now()
        written = []
        for target, (_, _, rows) in zip(targets, parts, strict=True):
            path = target / new_file_name(self.writer_id, now)
            atomic_write_parquet(rows, path)
            written.append(path)
        log.debug("stored %s readings in %s files", len(readings), len(written))
        return written

    def write_quarantine(self, records: Sequence[QuarantineRecord]) -> Path | None:
        """Store refused messages in one durable file; ``None`` when there is nothing to store.

        The file goes to the partition of the earliest ``received_at`` in the batch (a batch spanning midnight
        stays one file); consumers filter quarantine by the ``received_at`` column, not by directory.
        """
        if not records:
            return None
        table = pa.Table.from_arrays(
            [
                pa.array([r.received_us for r in records], type=_UTC_TS),
                pa.array([r.topic for r in records], type=pa.string()),
                pa.array([r.payload for r in records], type=pa.binary()),
                pa.array([r.reason for r in records], type=pa.string()),
                pa.array([r.detail for r in records], type=pa.string()),
            ],
            schema=QUARANTINE_SCHEMA,
        )
        day = day_of_us(min(r.received_us for r in records))
        path = quarantine_dir(self.root, day) / new_file_name(self.writer_id, self._clock.now())
        atomic_write_parquet(table, path)
        return path
