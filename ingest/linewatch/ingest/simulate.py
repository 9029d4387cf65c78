"""A seeded synthetic plant: pumps, compressors and presses with physically coupled sensors and known faults.

Real failure data is rare and unlabelled, so demos, end-to-end tests and model development need a plant whose
ground truth is known. Each asset follows a load profile (occasional steps and ramps, optional daily pattern);
load sets speed, and speed and load drive flow, pressure, current and vibration through simple affinity-law
couplings; bearing temperature follows the electrical heat with a first-order lag. That coupling is what lets
a multivariate detector tell a leak (pressure down at unchanged speed) from an ordinary load change.

This module is pure (no sockets, no files): :meth:`Plant.iter_steps` streams readings in time order for
real-time publishing over hours, :meth:`Plant.generate` materialises a long frame for tests and training.
The same seed always gives the same data, and faults never change the random draws of the normal signal.

Units: vibration_rms mm/s, bearing_temp degC, motor_current A, pressure bar, flow m3/h, speed rpm.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from linewatch.core.localtime import UTC_NAME, check_time_zone
from linewatch.core.schema import is_valid_name
from linewatch.ingest.faults import (
    FAULT_CODES,
    FaultEffect,
    MachineModifiers,
    combine,
    random_schedule,
    validate_fault,
)
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.records import Step

log = logging.getLogger(__name__)

SENSORS: Final[tuple[str, ...]] = ("vibration_rms", "bearing_temp", "motor_current", "pressure", "flow", "speed")
#: Measurement resolution: values are rounded like a real transmitter would report them.
_DECIMALS: Final[dict[str, int]] = {
    "vibration_rms": 3,
    "bearing_temp": 2,
    "motor_current": 2,
    "pressure": 3,
    "flow": 2,
    "speed": 1,
}
#: Measurement noise, relative to the value (temperature: absolute degC).
_NOISE: Final[dict[str, float]] = {
    "vibration_rms": 0.04,
    "bearing_temp": 0.15,
    "motor_current": 0.015,
    "pressure": 0.01,
    "flow": 0.015,
    "speed": 0.003,
}
_AMBIENT_C: Final = 25.0
_TEMP_TAU_S: Final = 600.0  # thermal time constant of a bearing housing
_BLOCK: Final = 512  # random draws are made in blocks of this many steps


@dataclass(frozen=True, slots=True)
class AssetProfile:
    """Nominal operating point at full load. ``variable_speed`` assets run on a drive (speed follows load);
    the others run at fixed speed and load shows in pressure and current instead."""

    speed_rpm: float
    flow_m3h: float
    pressure_bar: float
    current_a: float
    vibration_mms: float
    bearing_temp_c: float
    variable_speed: bool = True
    cycle_s: float = 0.0  # a working cycle (press strokes) modulating load; 0 = none

    def nominal(self) -> dict[str, float]:
        return {
            "vibration_rms": self.vibration_mms,
            "bearing_temp": self.bearing_temp_c,
            "motor_current": self.current_a,
            "pressure": self.pressure_bar,
            "flow": self.flow_m3h,
            "speed": self.speed_rpm,
        }


PROFILES: Final[dict[str, AssetProfile]] = {
    "pump": AssetProfile(1480.0, 120.0, 6.0, 45.0, 2.0, 55.0),
    "compressor": AssetProfile(2950.0, 900.0, 8.0, 110.0, 3.0, 70.0),
    "press": AssetProfile(1000.0, 60.0, 180.0, 30.0, 2.5, 50.0, variable_speed=False, cycle_s=12.0),
}


@dataclass(frozen=True, slots=True)
class AssetSpec:
    name: str
    profile: str

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise ValueError(f"invalid asset name {self.name!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown asset profile {self.profile!r}; known: {', '.join(PROFILES)}")


DEFAULT_ASSETS: Final[tuple[AssetSpec, ...]] = (
    AssetSpec("pump-01", "pump"),
    AssetSpec("pump-02", "pump"),
    AssetSpec("compressor-01", "compressor"),
    AssetSpec("press-01", "press"),
)


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """Everything that shapes a simulated run. ``schedule`` replaces random faults with exactly these."""

    assets: tuple[AssetSpec, ...] = DEFAULT_ASSETS
    cadence_s: float = 1.0
    seed: int = 0
    fault_rate_per_asset_per_hour: float = 0.5
    fault_free_s: float = 3600.0  # models train on the beginning of a run, so it stays normal
    fault_codes: tuple[str, ...] = FAULT_CODES
    schedule: tuple[FaultLabel, ...] | None = None
    daily_pattern: bool = True
    load_change_interval_s: float = 900.0  # mean time between operator load changes
    timezone: str = "UTC"  # the plant's clock, which its daily pattern follows (a site in another time zone)

    def __post_init__(self) -> None:
        if not self.assets:
            raise ValueError("a plant needs at least one asset")
        names = [a.name for a in self.assets]
        if len(set(names)) != len(names):
            raise ValueError("asset names must be unique")
        if not (self.cadence_s > 0 and math.isfinite(self.cadence_s)):
            raise ValueError("cadence_s must be a positive number")
        if self.fault_rate_per_asset_per_hour < 0 or self.fault_free_s < 0 or self.load_change_interval_s <= 0:
            raise ValueError("fault_rate_per_asset_per_hour and fault_free_s must be >= 0, load_change_interval_s > 0")
        check_time_zone(self.timezone)
        for label in self.schedule or ():
            if label.asset not in names:
                raise ValueError(f"scheduled fault names unknown asset {label.asset!r}")
            validate_fault(label, SENSORS)


@dataclass(slots=True)
class _AssetState:
    spec: AssetSpec
    profile: AssetProfile
    rng: np.random.Generator
    load: float
    target: float
    ramp_per_s: float = 0.0
    temp: float | None = None
    phase: float = 0.0
    normal_block: np.ndarray = field(default_factory=lambda: np.empty((0, len(SENSORS))))
    uniform_block: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))
    pending: Iterator[FaultLabel] = field(default_factory=lambda: iter(()))
    next_fault: FaultLabel | None = None
    active: list[FaultEffect] = field(default_factory=list)


class Plant:
    """A simulated plant; see the module docstring for the model."""

    def __init__(self, config: PlantConfig | None = None) -> None:
        self.config = config if config is not None else PlantConfig()
        self._zone = None if self.config.timezone == UTC_NAME else ZoneInfo(self.config.timezone)

    def schedule(self, start: datetime, duration_s: float) -> list[FaultLabel]:
        """The faults of the run ``[start, start + duration_s)`` (ends clipped to the run's end)."""
        _check_start(start)
        end = start + timedelta(seconds=duration_s)
        labels: list[FaultLabel] = []
        for index, spec in enumerate(self.config.assets):
            for label in self._faults_for(index, spec, start):
                if label.start >= end:
                    break
                labels.append(_clip(label, end))
        return sorted(labels, key=lambda lb: (lb.start, lb.asset))

    def iter_steps(
        self,
        start: datetime,
        duration_s: float | None = None,
        *,
        on_fault: Callable[[FaultLabel], None] | None = None,
    ) -> Iterator[Step]:
        """Yield ``(ts, asset, {sensor: value})`` in time order (assets in config order within a step).

        ``duration_s=None`` runs forever (the caller stops iterating). ``on_fault`` is called with each fault's
        label when it begins, so a long-running simulation can write labels as it goes.
        """
        _check_start(start)
        cfg = self.config
        end = start + timedelta(seconds=duration_s) if duration_s is not None else None
        states = [self._initial_state(i, spec, start) for i, spec in enumerate(cfg.assets)]
        step_us = round(cfg.cadence_s * 1e6)
        i = 0
        while True:
            ts = start + timedelta(microseconds=i * step_us)
            if end is not None and ts >= end:
                return
            for state in states:
                self._update_faults(state, ts, end, on_fault)
                values = self._measure(state, ts, i % _BLOCK)
                if values:
                    yield ts, state.spec.name, values
            i += 1

    def generate(self, start: datetime, duration_s: float) -> tuple[pl.DataFrame, list[FaultLabel]]:
        """The whole run as a long frame ``ts, asset, sensor, value`` plus its fault labels."""
        ts_col: list[datetime] = []
        assets: list[str] = []
        sensors: list[str] = []
        values: list[float] = []
        for ts, asset, reading in self.iter_steps(start, duration_s):
            for sensor, value in reading.items():
                ts_col.append(ts)
                assets.append(asset)
                sensors.append(sensor)
                values.append(value)
        frame = pl.DataFrame(
            {"ts": ts_col, "asset": assets, "sensor": sensors, "value": values},
            schema={"ts": pl.Datetime("us", "UTC"), "asset": pl.String, "sensor": pl.String, "value": pl.Float64},
        )
        return frame, self.schedule(start, duration_s)

    # -- internals -------------------------------------------------------------------------------------------

    def _faults_for(self, index: int, spec: AssetSpec, start: datetime) -> Iterator[FaultLabel]:
        cfg = self.config
        if cfg.schedule is not None:
            return iter(sorted((lb for lb in cfg.schedule if lb.asset == spec.name), key=lambda lb: lb.start))
        rng = np.random.default_rng([cfg.seed & 0xFFFFFFFF, 1, index])
        first = start + timedelta(seconds=cfg.fault_free_s)
        return random_schedule(rng, spec.name, SENSORS, first, cfg.fault_rate_per_asset_per_hour, cfg.fault_codes)

    def _initial_state(self, index: int, spec: AssetSpec, start: datetime) -> _AssetState:
        rng = np.random.default_rng([self.config.seed & 0xFFFFFFFF, 0, index])
        load = float(rng.uniform(0.55, 0.95))
        state = _AssetState(spec=spec, profile=PROFILES[spec.profile], rng=rng, load=load, target=load)
        state.phase = float(rng.uniform(0.0, 2 * math.pi))
        state.pending = self._faults_for(index, spec, start)
        state.next_fault = next(state.pending, None)
        return state

    def _update_faults(
        self, state: _AssetState, ts: datetime, end: datetime | None, on_fault: Callable[[FaultLabel], None] | None
    ) -> None:
        state.active = [f for f in state.active if ts < f.label.end]
        while state.next_fault is not None and state.next_fault.start <= ts:
            planned = state.next_fault
            state.next_fault = next(state.pending, None)
            if ts >= planned.end:
                continue
            # The effect follows the planned fault even when this run ends first, so a shorter run is an
            # exact prefix of a longer one; only the reported label is clipped.
            state.active.append(FaultEffect.create(planned, self.config.seed))
            label = planned if end is None else _clip(planned, end)
            log.debug("fault %s begins on %s at %s", label.fault, label.asset, label.start)
            if on_fault is not None:
                on_fault(label)

    def _measure(self, state: _AssetState, ts: datetime, row: int) -> dict[str, float]:
        cfg = self.config
        if row == 0 or state.normal_block.shape[0] == 0:
            # Fixed-size blocks drawn whatever happens, so faults never shift the normal signal's randomness.
            state.normal_block = state.rng.standard_normal((_BLOCK, len(SENSORS)))
            state.uniform_block = state.rng.random((_BLOCK, 4))
        noise, uniform = state.normal_block[row], state.uniform_block[row]
        dt = cfg.cadence_s
        _advance_load(state, uniform, dt, cfg.load_change_interval_s)

        wall = ts if self._zone is None else ts.astimezone(self._zone)
        seconds_of_day = wall.hour * 3600 + wall.minute * 60 + wall.second + wall.microsecond / 1e6
        day = math.sin(2 * math.pi * seconds_of_day / 86400.0 - math.pi / 2) if cfg.daily_pattern else 0.0
        load = state.load * (1.0 + 0.05 * day)
        prof = state.profile
        if prof.cycle_s > 0:
            epoch_s = ts.timestamp()
            load *= 1.0 + 0.08 * math.sin(2 * math.pi * epoch_s / prof.cycle_s + state.phase)
        load = min(1.05, max(0.1, load))

        machine = [f.modifiers(ts) for f in state.active if f.label.kind == "machine_fault"]
        mod = combine(machine)
        clean = _physics(prof, load, mod)
        ambient = _AMBIENT_C + (3.0 * day if cfg.daily_pattern else 0.0)
        heat = (prof.bearing_temp_c - _AMBIENT_C) * (0.3 + 0.7 * (clean["motor_current"] / prof.current_a) ** 2)
        target_temp = ambient + heat + mod.extra_heat_c
        if state.temp is None:
            state.temp = target_temp  # start in thermal equilibrium: no warm-up transient to mistake for a fault
        state.temp += (target_temp - state.temp) * (1.0 - math.exp(-dt / _TEMP_TAU_S))
        clean["bearing_temp"] = state.temp

        values: dict[str, float] = {}
        for k, sensor in enumerate(SENSORS):
            sigma = _NOISE[sensor] if sensor == "bearing_temp" else _NOISE[sensor] * clean[sensor]
            values[sensor] = clean[sensor] + sigma * float(noise[k])
        nominal = prof.nominal()
        for effect in state.active:
            if effect.label.kind == "sensor_fault":
                effect.corrupt(ts, values, nominal)
        return {s: round(max(v, 0.0) if s != "bearing_temp" else v, _DECIMALS[s]) for s, v in values.items()}


def _physics(prof: AssetProfile, load: float, mod: MachineModifiers) -> dict[str, float]:
    """Steady-state sensor values at a load, from affinity laws (flow ~ n, head ~ n^2, power ~ n^3)."""
    if prof.variable_speed:
        speed = 0.5 + 0.5 * load
        work = speed**3
        flow = speed
        pressure = speed**2
    else:
        speed = 1.0 - 0.03 * load  # induction motor slip
        work = load
        flow = speed * (1.1 - 0.2 * load)
        pressure = 0.3 + 0.7 * load
    return {
        "speed": prof.speed_rpm * speed,
        "flow": prof.flow_m3h * flow * mod.flow_factor,
        "pressure": prof.pressure_bar * pressure * mod.pressure_factor,
        "motor_current": prof.current_a * (0.25 + 0.75 * work) * mod.current_factor,
        "vibration_rms": prof.vibration_mms * (0.3 + 0.5 * speed**2 + 0.2 * load) * mod.vibration_factor,
    }


def _advance_load(state: _AssetState, uniform: np.ndarray, dt: float, interval_s: float) -> None:
    """Operator load changes: a Poisson process of new set-points, reached by a step or a ramp."""
    if uniform[0] < dt / interval_s:
        state.target = 0.45 + 0.55 * float(uniform[1])
        if uniform[2] < 0.4:
            state.load, state.ramp_per_s = state.target, 0.0
        else:
            ramp_s = 60.0 + 240.0 * float(uniform[3])
            state.ramp_per_s = abs(state.target - state.load) / ramp_s
    if state.load != state.target:
        step = state.ramp_per_s * dt
        if abs(state.target - state.load) <= step:
            state.load = state.target
        else:
            state.load += step if state.target > state.load else -step


def _check_start(start: datetime) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware (UTC)")


def _clip(label: FaultLabel, end: datetime) -> FaultLabel:
    if label.end <= end:
        return label
    return FaultLabel(label.asset, label.start, end, label.kind, label.fault, label.sensors)


def assets_of(config: PlantConfig) -> Sequence[str]:
    """Asset names in publishing order."""
    return [a.name for a in config.assets]
