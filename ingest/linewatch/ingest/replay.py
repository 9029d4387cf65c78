"""Load a recorded dataset (CSV or Parquet) as readings, so ``linewatch replay`` can publish it over MQTT.

Benchmarks and customer exports come as wide tables (a time column plus one column per sensor, sometimes label
columns) with column names that are not safe as sensor names (``Volume Flow RateRMS``). Replaying them through
the real broker and ingest path tests the whole pipeline on real signals, so this module turns such a file into
the long ``ts, asset, sensor, value`` form with validated names, and keeps the label columns apart: they are
ground truth, never sensor data.

Rules (deterministic, so two replays of one file give the same names):
- CSV separator: ``;``, ``,`` or tab, whichever the header line contains most of.
- Time column: the first named ``datetime``, ``timestamp``, ``ts``, ``time`` or ``date`` (any case), else the
  first column. Text times without an offset are UTC; numbers are Unix epoch seconds (milliseconds if large).
- Sensor names: characters outside ``[A-Za-z0-9_.-]`` become ``_`` (runs collapsed), leading ``_.-`` and ``..``
  removed, cut to 64 characters; a clash gets ``_2``, ``_3`` ... Renames are returned and logged.
- Label columns (``anomaly``, ``changepoint``, ``label``, ``labels``, ``is_anomaly``, ``attack``, ``fault``) are
  returned in :attr:`Dataset.labels`, not published.
- Asset: the ``asset`` argument, else the file stem sanitised, prefixed with the parent folder's name when the
  stem does not start with a letter (``skab/valve1/0.csv`` -> ``valve1-0``).
- Values that are not numbers (text, empty, NaN, infinity) are dropped and counted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from linewatch.core.schema import is_valid_name
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.records import Step

log = logging.getLogger(__name__)

TIME_COLUMNS: Final[tuple[str, ...]] = ("datetime", "timestamp", "ts", "time", "date")
LABEL_COLUMN_NAMES: Final[frozenset[str]] = frozenset(
    {"anomaly", "changepoint", "label", "labels", "is_anomaly", "attack", "fault"}
)
LONG_COLUMNS: Final[tuple[str, ...]] = ("ts", "asset", "sensor", "value")
_LONG_SCHEMA: Final = {"ts": pl.Datetime("us", "UTC"), "asset": pl.String, "sensor": pl.String, "value": pl.Float64}
_INVALID_RE: Final = re.compile(r"[^A-Za-z0-9_.\-]+")


class DatasetError(ValueError):
    """A dataset file that cannot be replayed; the message names the file."""


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: long readings, plus what was learned on the way."""

    readings: pl.DataFrame  # ts (UTC), asset, sensor, value; sorted by ts, asset, sensor
    asset: str | None  # the asset name used for a wide file (None for a long file with its own assets)
    renames: dict[str, str] = field(default_factory=dict)  # original column -> sensor name, where they differ
    labels: pl.DataFrame | None = None  # ts plus the label columns of a wide file, if it had any
    dropped_values: int = 0  # non-numeric or non-finite cells dropped


def sanitise_name(name: str, fallback: str = "sensor") -> str:
    """A valid asset/sensor name derived from arbitrary text (see the module rules)."""
    cleaned = _INVALID_RE.sub("_", name.strip())
    cleaned = re.sub(r"_+", "_", cleaned).replace("..", "_")
    cleaned = cleaned.lstrip("_.-").rstrip("_")[:64] or fallback
    if not is_valid_name(cleaned):
        raise DatasetError(f"cannot derive a valid name from {name!r} (got {cleaned!r})")
    return cleaned


def asset_from_path(path: Path) -> str:
    """Default asset name of a file: its stem, prefixed by the folder when the stem is e.g. just a number."""
    stem = sanitise_name(path.stem, fallback="asset")
    if not stem[0].isalpha() and path.parent.name:
        return sanitise_name(f"{path.parent.name}-{path.stem}", fallback="asset")
    return stem


def load_dataset(path: Path, *, asset: str | None = None) -> Dataset:
    """Read a CSV or Parquet file (long or wide) into long readings; raise :class:`DatasetError` if unusable."""
    if asset is not None and not is_valid_name(asset):
        raise DatasetError(f"invalid asset name {asset!r}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            raw = pl.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            raw = pl.read_csv(path, separator=_sniff_separator(path), infer_schema_length=0, try_parse_dates=False)
        else:
            raise DatasetError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if raw.width == 0 or raw.height == 0:
        raise DatasetError(f"{path}: no data")
    if set(LONG_COLUMNS) <= set(raw.columns):
        return _from_long(path, raw, asset)
    return _from_wide(path, raw, asset if asset is not None else asset_from_path(path))


def replay_steps(readings: pl.DataFrame) -> Iterator[Step]:
    """Yield ``(ts, asset, {sensor: value})`` in time order (then asset order), ready for ``publish_stream``."""
    ordered = readings.select(LONG_COLUMNS).sort(["ts", "asset"], maintain_order=True)
    current: tuple[datetime, str] | None = None
    values: dict[str, float] = {}
    for ts, asset, sensor, value in ordered.iter_rows():
        key = (ts, asset)
        if key != current:
            if current is not None and values:
                yield current[0], current[1], values
            current, values = key, {}
        values[sensor] = value
    if current is not None and values:
        yield current[0], current[1], values


def labels_from_columns(dataset: Dataset, column: str = "anomaly", fault: str | None = None) -> list[FaultLabel]:
    """Turn a 0/1 label column into labelled windows (one per run of non-zero rows) for a labels file.

    A window ends at the timestamp of the first row after the run (or just after the last row), matching the
    half-open ``[start, end)`` convention of :class:`FaultLabel`. The root-cause sensors are unknown: empty.
    """
    if dataset.labels is None or column not in dataset.labels.columns or dataset.asset is None:
        return []
    frame = dataset.labels.select("ts", pl.col(column).fill_null(0.0) > 0).sort("ts")
    stamps: list[datetime] = frame["ts"].to_list()
    flags: list[bool] = frame[column].to_list()
    code = sanitise_name(fault or column)
    out: list[FaultLabel] = []
    start: datetime | None = None
    for i, (ts, flag) in enumerate(zip(stamps, flags, strict=True)):
        if flag and start is None:
            start = ts
        if start is not None and (not flag or i == len(stamps) - 1):
            end = ts if not flag else ts + (ts - stamps[i - 1] if i > 0 else timedelta(seconds=1))
            if end > start:
                out.append(FaultLabel(dataset.asset, start, end, "machine_fault", code, ()))
            start = None
    return out


# -- internals --------------------------------------------------------------------------------------------------


def _sniff_separator(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    counts = {sep: header.count(sep) for sep in (";", ",", "\t")}
    return max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


def _time_column(columns: list[str]) -> str:
    for col in columns:
        if col.strip().lower() in TIME_COLUMNS:
            return col
    return columns[0]


def _to_utc(path: Path, series: pl.Series) -> pl.Series:
    """Parse a time column into ``Datetime(us, UTC)``; naive times are UTC."""
    dtype = series.dtype
    try:
        if isinstance(dtype, pl.Datetime):
            parsed = series.cast(pl.Datetime("us", dtype.time_zone))
        elif dtype.is_numeric() or series.cast(pl.Float64, strict=False).null_count() == series.null_count():
            seconds = series.cast(pl.Float64)
            scale = 1_000 if (seconds.abs().max() or 0.0) > 1e11 else 1_000_000  # type: ignore[operator]
            parsed = (seconds * scale).round(0).cast(pl.Int64).cast(pl.Datetime("us"))
        else:
            parsed = series.cast(pl.String).str.strip_chars().str.to_datetime(time_unit="us", strict=True)
    except pl.exceptions.PolarsError as exc:
        raise DatasetError(f"{path}: cannot parse time column {series.name!r}: {exc}") from exc
    tz = parsed.dtype.time_zone if isinstance(parsed.dtype, pl.Datetime) else None
    parsed = parsed.dt.replace_time_zone("UTC") if tz is None else parsed.dt.convert_time_zone("UTC")
    if parsed.null_count():
        raise DatasetError(f"{path}: {parsed.null_count()} rows have no time in column {series.name!r}")
    return parsed.alias("ts")


def _numeric(series: pl.Series) -> pl.Series:
    values = series.cast(pl.Float64, strict=False) if series.dtype != pl.Float64 else series
    return values.fill_nan(None).set(values.is_infinite().fill_null(False), None)


def _from_wide(path: Path, raw: pl.DataFrame, asset: str) -> Dataset:
    time_col = _time_column(raw.columns)
    ts = _to_utc(path, raw[time_col])
    label_cols = [c for c in raw.columns if c != time_col and c.strip().lower() in LABEL_COLUMN_NAMES]
    sensor_cols = [c for c in raw.columns if c != time_col and c not in label_cols]
    if not sensor_cols:
        raise DatasetError(f"{path}: no sensor columns besides the time column {time_col!r}")
    renames: dict[str, str] = {}
    used: set[str] = set()
    columns: dict[str, pl.Series] = {}
    dropped = 0
    for col in sensor_cols:
        name = sanitise_name(col)
        base, n = name, 2
        while name in used:
            name = f"{base[:60]}_{n}"
            n += 1
        used.add(name)
        if name != col:
            renames[col] = name
        values = _numeric(raw[col])
        dropped += values.null_count()
        columns[name] = values
    if renames:
        log.info("%s: renamed columns to valid sensor names: %s", path, renames)
    if dropped:
        log.warning("%s: dropped %s non-numeric or missing values", path, dropped)
    wide = pl.DataFrame({"ts": ts, **columns})
    long = (
        wide.unpivot(index="ts", variable_name="sensor", value_name="value")
        .drop_nulls("value")
        .with_columns(pl.lit(asset).alias("asset"))
        .select(LONG_COLUMNS)
        .cast(_LONG_SCHEMA)  # type: ignore[arg-type]
        .sort(["ts", "asset", "sensor"], maintain_order=True)
    )
    labels = None
    if label_cols:
        labels = pl.DataFrame({"ts": ts, **{c: _numeric(raw[c]) for c in label_cols}})
    return Dataset(readings=long, asset=asset, renames=renames, labels=labels, dropped_values=dropped)


def _from_long(path: Path, raw: pl.DataFrame, asset: str | None) -> Dataset:
    ts = _to_utc(path, raw["ts"])
    frame = raw.select(
        ts,
        (pl.lit(asset) if asset is not None else pl.col("asset").cast(pl.String)).alias("asset"),
        pl.col("sensor").cast(pl.String),
        _numeric(raw["value"]).alias("value"),
    )
    dropped = frame["value"].null_count()
    frame = frame.drop_nulls()
    bad = sorted({n for n in (*frame["asset"].unique().to_list(), *frame["sensor"].unique().to_list())
                  if not is_valid_name(n)})  # fmt: skip
    if bad:
        raise DatasetError(f"{path}: invalid asset or sensor names {bad[:5]}")
    if dropped:
        log.warning("%s: dropped %s non-numeric or missing values", path, dropped)
    readings = frame.cast(_LONG_SCHEMA).sort(["ts", "asset", "sensor"], maintain_order=True)  # type: ignore[arg-type]
    return Dataset(readings=readings, asset=asset, dropped_values=dropped)
