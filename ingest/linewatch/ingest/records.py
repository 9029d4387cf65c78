"""Plain records passed between the ingest stages (decode -> validate -> store), free of I/O.

Timestamps are integer microseconds since the Unix epoch, UTC: exact, cheap to compare, and what the
Parquet column ``timestamp[us, tz=UTC]`` stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor value at one time; becomes one row of the raw store."""

    ts_us: int
    asset: str
    sensor: str
    value: float
    received_us: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Why (part of) a message was refused. ``reason`` is a short code used as a metric label (bounded set);
    ``detail`` is for people and may quote a bounded excerpt of the input."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A refused message (or refused part of one), kept so nothing is silently dropped."""

    received_us: int
    topic: str
    payload: bytes  # already truncated to the quarantine bound
    reason: str
    detail: str


@dataclass(slots=True)
class Outcome:
    """What one MQTT message turned into: good readings and quarantine records (either may be empty)."""

    readings: list[Reading] = field(default_factory=list)
    quarantined: list[QuarantineRecord] = field(default_factory=list)


#: One simulated or replayed time step of one asset: ``(ts, asset, {sensor: value})``.
Step = tuple[datetime, str, dict[str, float]]
