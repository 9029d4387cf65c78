"""Per-asset alert policy: turn a stream of scored windows into a few meaningful alert transitions.

Pure and clock-free: :meth:`AlertPolicy.update` takes the window's timestamp (seconds since the epoch) and
returns the transitions it caused, so the whole policy is tested with literal sequences.

Two alerts per asset, each a small state machine with its own timers:

* **machine** — the calibrated ``anomaly_score`` must stay ``>= raise_at`` (1.0: the detector's threshold)
  for ``raise_after_s`` before it is raised, and stay ``< clear_below`` (a lower level: hysteresis) for
  ``clear_after_s`` before it clears; after a clear no new raise comes for ``cooldown_s``, and the raise
  timer only starts once the cooldown is over. A score hovering around 1 therefore never re-raises: it
  either never stays above 1 long enough, or never drops below ``clear_below`` long enough. Severity comes
  from ``failure_risk`` and only goes up within an episode ("escalated"), never down.
* **sensor** — a window with an unhealthy sensor (stuck, dropout, out of range) says the *sensor* is
  failing, not the machine: it raises a low-severity sensor alert after ``sensor_raise_after_s`` and clears
  after ``sensor_clear_after_s`` of healthy windows (the same cooldown applies).

Windows that carry no evidence hold state: an invalid window (too little data), a non-finite score or
risk, and — for the machine alert only — a window with a failing sensor neither raise nor
clear, neither extend nor reset a pending timer, except statuses named in
:data:`linewatch.models.health.AMBIGUOUS_STATUS_NAMES` (none by default): the rule :mod:`linewatch.models.simeval`
measures.
Time across such a gap is not counted: a timer is the sum of the intervals between consecutive *informative*
windows, so a long data outage followed by one bad window never raises at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Literal

from linewatch.ingest.labels import format_ts
from linewatch.models.health import AMBIGUOUS_STATUS_NAMES

AlertKind = Literal["machine", "sensor"]
AlertEvent = Literal["raised", "escalated", "cleared"]

_EPS = 1e-9  # float sums of tick intervals (0.1 + 0.1 + ...) must still reach a round duration
_EMPTY: Mapping[str, str] = MappingProxyType({})


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as ``2024-01-01T00:00:00.000Z`` (the project's payload form)."""
    return None if ts is None else format_ts(datetime.fromtimestamp(ts, UTC))


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class AlertPolicyConfig:
    """Timing, levels and severities of the alert policy (mirrored by the YAML config).

    Defaults assume scoring about once a second: 10 s of sustained anomaly filters single-window blips, 30 s
    below 0.8 before clearing and 60 s of cooldown keep one fault episode to one raise.
    """

    raise_after_s: float = 10.0
    raise_at: float = 1.0
    clear_below: float = 0.8
    clear_after_s: float = 30.0
    cooldown_s: float = 60.0
    severities: tuple[tuple[str, float], ...] = (("warning", 0.0), ("major", 0.99), ("critical", 0.999))
    sensor_raise_after_s: float = 10.0
    sensor_clear_after_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("raise_after_s", "clear_after_s", "cooldown_s", "sensor_raise_after_s", "sensor_clear_after_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.raise_at) and math.isfinite(self.clear_below)):
            raise ValueError("raise_at and clear_below must be finite")
        if self.clear_below > self.raise_at:
            raise ValueError(f"clear_below ({self.clear_below}) must not exceed raise_at ({self.raise_at})")
        if not self.severities:
            raise ValueError("severities must not be empty")
        names = [name for name, _ in self.severities]
        if any(not name for name in names) or len(set(names)) != len(names):
            raise ValueError(f"severity names must be unique and non-empty: {names}")
        levels = [risk for _, risk in self.severities]
        if any(not math.isfinite(r) for r in levels) or any(b <= a for a, b in pairwise(levels)):
            raise ValueError(f"severity min_risk values must be finite and strictly increasing: {levels}")

    @property
    def sensor_severity(self) -> str:
        """Sensor-health alerts carry the lowest severity: a failing sensor is a maintenance task, not a fault."""
        return self.severities[0][0]

    def severity_for(self, risk: float) -> str:
        """The highest severity whose ``min_risk`` is reached; the lowest one when none is."""
        chosen = self.severities[0][0]
        for name, min_risk in self.severities:
            if risk >= min_risk:
                chosen = name
        return chosen

    def rank(self, severity: str | None) -> int:
        """Position of ``severity`` in the ladder (-1 for none)."""
        for i, (name, _) in enumerate(self.severities):
            if name == severity:
                return i
        return -1


@dataclass(frozen=True, slots=True)
class AlertState:
    """An asset's current alert state, as published retained for HMIs that connect later."""

    asset: str
    active: bool = False
    severity: str | None = None
    since: float | None = None
    top_sensor: str | None = None
    anomaly_score: float | None = None
    failure_risk: float | None = None
    sensor_active: bool = False
    sensor_since: float | None = None
    sensors: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    updated: float | None = None  # time of the last informative window

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"asset", "updated", "machine": {...}, "sensor": {...}}`` (no NaN)."""
        return {
            "asset": self.asset,
            "updated": iso(self.updated),
            "machine": {
                "active": self.active,
                "severity": self.severity,
                "since": iso(self.since),
                "top_sensor": self.top_sensor,
                "anomaly_score": _finite_or_none(self.anomaly_score),
                "failure_risk": _finite_or_none(self.failure_risk),
            },
            "sensor": {"active": self.sensor_active, "since": iso(self.sensor_since), "sensors": dict(self.sensors)},
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """One alert state change. ``state`` is the asset's state after the update that caused it."""

    asset: str
    kind: AlertKind
    event: AlertEvent
    severity: str
    ts: float
    anomaly_score: float | None
    failure_risk: float | None
    top_sensor: str | None
    sensors: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    state: AlertState | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able event payload (ts as ISO 8601 UTC; non-finite numbers as null)."""
        return {
            "asset": self.asset,
            "kind": self.kind,
            "event": self.event,
            "severity": self.severity,
            "ts": iso(self.ts),
            "anomaly_score": _finite_or_none(self.anomaly_score),
            "failure_risk": _finite_or_none(self.failure_risk),
            "top_sensor": self.top_sensor,
            "sensors": dict(self.sensors),
        }


class _Timer:
    """How long a condition has held over informative windows; gaps after a pause are not counted."""

    __slots__ = ("elapsed", "last")

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.last: float | None = None

    def hit(self, ts: float) -> float:
        if self.last is not None and ts > self.last:
            self.elapsed += ts - self.last
        self.last = ts if self.last is None else max(self.last, ts)
        return self.elapsed

    def pause(self) -> None:
        """An uninformative window: keep what was accumulated, but do not count the gap to the next hit."""
        self.last = None

    def reset(self) -> None:
        self.elapsed = 0.0
        self.last = None


class AlertPolicy:
    """The alert state machine of one asset. Not thread-safe: one scoring loop owns it."""

    def __init__(self, asset: str, config: AlertPolicyConfig | None = None) -> None:
        self.asset = asset
        self.config = config or AlertPolicyConfig()
        # machine alert
        self.active = False
        self.severity: str | None = None
        self.since: float | None = None
        self._above = _Timer()
        self._below = _Timer()
        self._cooldown_until: float | None = None
        # sensor alert
        self.sensor_active = False
        self.sensor_since: float | None = None
        self.sensors: Mapping[str, str] = _EMPTY
        self._bad = _Timer()
        self._good = _Timer()
        self._sensor_cooldown_until: float | None = None
        # latest informative window
        self._score: float | None = None
        self._risk: float | None = None
        self._top: str | None = None
        self._updated: float | None = None
        self.last_transition: Transition | None = None

    def state(self) -> AlertState:
        """A snapshot of the current state (what the retained MQTT state topic carries)."""
        return AlertState(
            asset=self.asset,
            active=self.active,
            severity=self.severity,
            since=self.since,
            top_sensor=self._top,
            anomaly_score=self._score,
            failure_risk=self._risk,
            sensor_active=self.sensor_active,
            sensor_since=self.sensor_since,
            sensors=self.sensors,
            updated=self._updated,
        )

    def update(
        self,
        ts: float,
        anomaly_score: float,
        failure_risk: float,
        unhealthy_sensors: Mapping[str, str],
        top_sensor: str | None,
        valid: bool,
    ) -> list[Transition]:
        """Feed one scored window; returns the transitions it caused (usually none).

        ``unhealthy_sensors`` maps each unhealthy sensor to its status name (empty when all are healthy);
        ``valid`` is False when the window had too little data to score. Such windows, and non-finite
        scores, hold every state and pause every timer.
        """
        if not valid or not math.isfinite(anomaly_score) or not math.isfinite(failure_risk):
            for timer in (self._above, self._below, self._bad, self._good):
                timer.pause()
            return []
        self._updated = ts
        out: list[Transition] = []
        if any(status not in AMBIGUOUS_STATUS_NAMES for status in unhealthy_sensors.values()):
            # The score of a window with a failing sensor says nothing reliable about the machine.
            self._above.pause()
            self._below.pause()
        else:
            self._score, self._risk, self._top = anomaly_score, failure_risk, top_sensor
            machine = self._update_machine(ts, anomaly_score, failure_risk)
            if machine is not None:
                event, severity = machine
                out.append(
                    Transition(self.asset, "machine", event, severity, ts, anomaly_score, failure_risk, top_sensor)
                )
        sensor = self._update_sensor(ts, unhealthy_sensors)
        if sensor is not None:
            event, sensors = sensor
            severity = self.config.sensor_severity
            out.append(
                Transition(self.asset, "sensor", event, severity, ts, anomaly_score, failure_risk, top_sensor, sensors)
            )
        if out:
            snapshot = self.state()
            out = [replace(t, state=snapshot) for t in out]
            self.last_transition = out[-1]
        return out

    # -- state machines ------------------------------------------------------------------------------------
    def _update_machine(self, ts: float, score: float, risk: float) -> tuple[AlertEvent, str] | None:
        cfg = self.config
        if not self.active:
            self._below.reset()
            if self._cooldown_until is not None and ts < self._cooldown_until:
                self._above.reset()  # the raise timer starts only once the cooldown is over
                return None
            if score < cfg.raise_at:
                self._above.reset()
                return None
            if self._above.hit(ts) + _EPS < cfg.raise_after_s:
                return None
            severity = cfg.severity_for(risk)
            self.active, self.since, self.severity = True, ts, severity
            self._above.reset()
            self._cooldown_until = None
            return "raised", severity
        severity = self.severity or cfg.severity_for(risk)
        if score < cfg.clear_below:
            if self._below.hit(ts) + _EPS < cfg.clear_after_s:
                return None
            self.active, self.since, self.severity = False, None, None
            self._below.reset()
            self._cooldown_until = ts + cfg.cooldown_s
            return "cleared", severity  # the episode's (highest) severity
        self._below.reset()
        new = cfg.severity_for(risk)
        if cfg.rank(new) > cfg.rank(severity):
            self.severity = new
            return "escalated", new
        return None

    def _update_sensor(self, ts: float, unhealthy: Mapping[str, str]) -> tuple[AlertEvent, Mapping[str, str]] | None:
        cfg = self.config
        if unhealthy:
            self._good.reset()
            if self.sensor_active:
                # The episode's sensors: every sensor unhealthy at some point during it, with its latest status.
                self.sensors = MappingProxyType({**self.sensors, **unhealthy})
                return None
            if self._sensor_cooldown_until is not None and ts < self._sensor_cooldown_until:
                self._bad.reset()
                return None
            if self._bad.hit(ts) + _EPS < cfg.sensor_raise_after_s:
                return None
            self.sensor_active, self.sensor_since = True, ts
            self.sensors = MappingProxyType(dict(unhealthy))
            self._bad.reset()
            self._sensor_cooldown_until = None
            return "raised", self.sensors
        self._bad.reset()
        if not self.sensor_active:
            return None
        if self._good.hit(ts) + _EPS < cfg.sensor_clear_after_s:
            return None
        sensors = self.sensors
        self.sensor_active, self.sensor_since, self.sensors = False, None, _EMPTY
        self._good.reset()
        self._sensor_cooldown_until = ts + cfg.cooldown_s
        return "cleared", sensors
