"""Ground-truth labels: which asset misbehaved when, how, and which sensors show it.

The simulator writes them, ``linewatch replay`` can derive them from a dataset's label columns, evaluation
reads them, and training reads ``maintenance`` windows to keep them out of the "normal" data. One small CSV
format serves all of these so that a person can also write one by hand::

    asset,start,end,kind,fault,sensors
    pump-01,2024-01-01T01:00:00.000Z,2024-01-01T01:20:00.000Z,machine_fault,bearing_wear,vibration_rms;bearing_temp

Times are ISO 8601 in UTC (a naive time is refused rather than guessed); ``sensors`` is ``;``-separated and
may be empty (e.g. for maintenance).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, cast, get_args

from linewatch.core.schema import is_valid_name

LabelKind = Literal["machine_fault", "sensor_fault", "maintenance"]
LABEL_KINDS: Final[tuple[str, ...]] = get_args(LabelKind)
LABEL_COLUMNS: Final[tuple[str, ...]] = ("asset", "start", "end", "kind", "fault", "sensors")


class LabelError(ValueError):
    """A labels file (or label) that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class FaultLabel:
    """One labelled window ``[start, end)`` on one asset.

    ``fault`` is a short code (``bearing_wear``, ``leak``, ``stuck``, ``drift``, ``spike``, ``dropout`` from
    the simulator; any valid name from people); ``sensors`` are the root-cause sensors, the ones an
    attribution should point at.
    """

    asset: str
    start: datetime
    end: datetime
    kind: LabelKind
    fault: str
    sensors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not is_valid_name(self.asset):
            raise LabelError(f"invalid asset name {self.asset!r}")
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise LabelError(f"{name} must be timezone-aware (UTC), got {value.isoformat()}")
        if self.end <= self.start:
            raise LabelError(f"end {format_ts(self.end)} is not after start {format_ts(self.start)}")
        if self.kind not in LABEL_KINDS:
            raise LabelError(f"kind must be one of {', '.join(LABEL_KINDS)}, got {self.kind!r}")
        if not is_valid_name(self.fault):
            raise LabelError(f"invalid fault code {self.fault!r}")
        object.__setattr__(self, "sensors", tuple(self.sensors))  # a list from a caller stays hashable
        for sensor in self.sensors:
            if not is_valid_name(sensor):
                raise LabelError(f"invalid sensor name {sensor!r}")

    def contains(self, ts: datetime) -> bool:
        """True when ``ts`` falls inside the window (start inclusive, end exclusive)."""
        return self.start <= ts < self.end

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def format_ts(ts: datetime) -> str:
    """``2024-01-01T00:00:00.000Z``: UTC with milliseconds, the form used in files and payloads."""
    utc = ts.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    """Parse an ISO 8601 time with an explicit offset (``Z`` or ``+hh:mm``) into an aware UTC datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)  # raises ValueError with the text
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset (write e.g. {text}Z)")
    return parsed.astimezone(UTC)


def labels_to_csv(labels: Iterable[FaultLabel]) -> str:
    """The labels file text, sorted by start, asset and fault so equal label sets give equal files."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for label in sorted(labels, key=lambda lb: (lb.start, lb.asset, lb.fault, lb.end)):
        writer.writerow(
            [
                label.asset,
                format_ts(label.start),
                format_ts(label.end),
                label.kind,
                label.fault,
                ";".join(label.sensors),
            ]
        )
    return out.getvalue()


def write_labels(path: Path, labels: Iterable[FaultLabel]) -> None:
    """Write a labels file, replacing ``path`` atomically (a reader never sees half a file)."""
    text = labels_to_csv(labels)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def parse_labels(text: str, source: str = "<labels>") -> list[FaultLabel]:
    """Parse labels file text; every problem raises :class:`LabelError` naming ``source`` and the line."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise LabelError(f"{source}: empty file; expected header {','.join(LABEL_COLUMNS)}") from None
    if tuple(col.strip() for col in header) != LABEL_COLUMNS:
        raise LabelError(f"{source}:1: header must be {','.join(LABEL_COLUMNS)}, got {','.join(header)}")
    labels = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(LABEL_COLUMNS):
            raise LabelError(f"{source}:{line}: expected {len(LABEL_COLUMNS)} fields, got {len(row)}")
        asset, start, end, kind, fault, sensors = (cell.strip() for cell in row)
        try:
            if kind not in LABEL_KINDS:
                raise LabelError(f"kind must be one of {', '.join(LABEL_KINDS)}, got {kind!r}")
            labels.append(
                FaultLabel(
                    asset=asset,
                    start=_field_ts("start", start),
                    end=_field_ts("end", end),
                    kind=cast(LabelKind, kind),
                    fault=fault,
                    sensors=tuple(s.strip() for s in sensors.split(";") if s.strip()),
                )
            )
        except ValueError as exc:
            raise LabelError(f"{source}:{line}: {exc}") from exc
    return labels


def read_labels(path: Path) -> list[FaultLabel]:
    """Read a labels file written by :func:`write_labels` or by hand."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_labels(text, source=str(path))


def _field_ts(name: str, text: str) -> datetime:
    try:
        return parse_ts(text)
    except ValueError as exc:
        raise LabelError(f"bad {name} time {text!r}: {exc}") from exc
