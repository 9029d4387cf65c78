"""Fault injection for the synthetic plant: what each fault does, and when faults happen.

Machine faults change the physics (the simulator feeds their modifiers into its model, so couplings such as
"temperature follows heat with a lag" still hold); sensor faults corrupt only what one sensor reports. The
magnitudes are chosen to be clearly detectable by a multivariate detector trained on normal data without being
absurd: bearing wear ramps vibration to 2-4x and bearing temperature up by 10-20 degC, a leak drops pressure by
15-30 % at unchanged speed, drift walks a sensor 10-20 % of its nominal level away, spikes jump 30-60 %.

Everything here is pure and seeded: the same label and seed always give the same effect, and fault effects
draw from their own random stream so that adding a fault never changes the normal data around it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from linewatch.ingest.labels import FaultLabel, LabelKind

#: Root-cause sensors of each machine fault.
MACHINE_FAULTS: Final[Mapping[str, tuple[str, ...]]] = {
    "bearing_wear": ("vibration_rms", "bearing_temp"),
    "leak": ("pressure", "flow"),
}
SENSOR_FAULTS: Final[tuple[str, ...]] = ("stuck", "drift", "spike", "dropout")
FAULT_CODES: Final[tuple[str, ...]] = (*MACHINE_FAULTS, *SENSOR_FAULTS)

#: Duration range (seconds) of randomly scheduled faults: wear develops slowly, a dropout is short.
FAULT_DURATION_S: Final[Mapping[str, tuple[float, float]]] = {
    "bearing_wear": (1200.0, 3600.0),
    "leak": (600.0, 1800.0),
    "stuck": (300.0, 1200.0),
    "drift": (900.0, 2400.0),
    "spike": (300.0, 900.0),
    "dropout": (60.0, 600.0),
}

#: Probability per reading that a sensor with a spike fault reports an outlier.
SPIKE_PROBABILITY: Final[float] = 0.05


def fault_kind(code: str) -> LabelKind:
    """``machine_fault`` or ``sensor_fault`` for a simulator fault code."""
    if code in MACHINE_FAULTS:
        return "machine_fault"
    if code in SENSOR_FAULTS:
        return "sensor_fault"
    raise ValueError(f"unknown fault code {code!r}; known: {', '.join(FAULT_CODES)}")


def validate_fault(label: FaultLabel, sensors: Sequence[str]) -> None:
    """Refuse a label the simulator cannot inject (unknown code, wrong kind, unknown or missing sensors)."""
    kind = fault_kind(label.fault)
    if label.kind != kind:
        raise ValueError(f"fault {label.fault} on {label.asset} is a {kind}, label says {label.kind}")
    unknown = [s for s in label.sensors if s not in sensors]
    if unknown:
        raise ValueError(f"fault {label.fault} on {label.asset} names unknown sensors {unknown}")
    if kind == "sensor_fault" and not label.sensors:
        raise ValueError(f"sensor fault {label.fault} on {label.asset} must name the sensor(s) it affects")


def label_seed(seed: int, label: FaultLabel) -> list[int]:
    """Entropy for one fault's random stream: stable across runs and independent of other faults."""
    key = f"{label.asset}|{label.start.isoformat()}|{label.end.isoformat()}|{label.fault}|{';'.join(label.sensors)}"
    return [seed & 0xFFFFFFFF, 2, zlib.crc32(key.encode())]


@dataclass(frozen=True, slots=True)
class MachineModifiers:
    """How active machine faults bend the physics of one asset at one instant (neutral values = no fault)."""

    vibration_factor: float = 1.0
    extra_heat_c: float = 0.0  # added to the bearing temperature's steady-state target
    pressure_factor: float = 1.0
    flow_factor: float = 1.0
    current_factor: float = 1.0


NO_MODIFIERS: Final = MachineModifiers()


@dataclass(slots=True)
class FaultEffect:
    """The runtime state of one injected fault."""

    label: FaultLabel
    severity: float
    rng: np.random.Generator
    held: dict[str, float] = field(default_factory=dict)  # stuck sensors' frozen values
    spikes: int = 0

    @classmethod
    def create(cls, label: FaultLabel, seed: int) -> FaultEffect:
        rng = np.random.default_rng(label_seed(seed, label))
        if label.fault == "bearing_wear":
            severity = float(rng.uniform(2.0, 4.0))  # vibration factor reached at the end
        elif label.fault == "leak":
            severity = float(rng.uniform(0.15, 0.30))  # pressure drop fraction
        elif label.fault == "drift":
            severity = float(rng.uniform(0.10, 0.20) * rng.choice([-1.0, 1.0]))  # fraction of nominal
        else:
            severity = 1.0
        return cls(label=label, severity=severity, rng=rng)

    def progress(self, ts: datetime) -> float:
        """0 at the start, 1 at the end of the fault window."""
        elapsed = (ts - self.label.start).total_seconds()
        return min(1.0, max(0.0, elapsed / self.label.duration_s))

    def modifiers(self, ts: datetime) -> MachineModifiers:
        p = self.progress(ts)
        if self.label.fault == "bearing_wear":
            # Wear accelerates (convex ramp); friction heat rises with it: +10..20 degC by the end.
            ramp = p**1.5
            return MachineModifiers(
                vibration_factor=1.0 + (self.severity - 1.0) * ramp,
                extra_heat_c=(5.0 * self.severity) * ramp,
            )
        if self.label.fault == "leak":
            # A leak opens within the first quarter of the window, then stays: the pump delivers more
            # flow against a lower head at the same speed, and draws slightly less current.
            ramp = min(1.0, p / 0.25)
            drop = self.severity * ramp
            return MachineModifiers(
                pressure_factor=1.0 - drop, flow_factor=1.0 + 0.6 * drop, current_factor=1.0 - 0.2 * drop
            )
        return NO_MODIFIERS

    def corrupt(self, ts: datetime, values: dict[str, float], nominal: Mapping[str, float]) -> None:
        """Apply a sensor fault to one asset's measured values in place (a dropout deletes the sensor)."""
        code = self.label.fault
        p = self.progress(ts)
        for sensor in self.label.sensors:
            if sensor not in values:
                continue
            if code == "stuck":
                values[sensor] = self.held.setdefault(sensor, values[sensor])
            elif code == "drift":
                values[sensor] += self.severity * nominal[sensor] * p
            elif code == "spike":
                hit, sign, size = self.rng.random(), self.rng.choice([-1.0, 1.0]), self.rng.uniform(0.3, 0.6)
                if hit < SPIKE_PROBABILITY or self.spikes == 0:  # the first reading always spikes
                    self.spikes += 1
                    values[sensor] += float(sign * size * nominal[sensor])
            elif code == "dropout":
                del values[sensor]


def combine(modifiers: Sequence[MachineModifiers]) -> MachineModifiers:
    """Several machine faults at once multiply (factors) and add (heat)."""
    if not modifiers:
        return NO_MODIFIERS
    out = NO_MODIFIERS
    for mod in modifiers:
        out = MachineModifiers(
            vibration_factor=out.vibration_factor * mod.vibration_factor,
            extra_heat_c=out.extra_heat_c + mod.extra_heat_c,
            pressure_factor=out.pressure_factor * mod.pressure_factor,
            flow_factor=out.flow_factor * mod.flow_factor,
            current_factor=out.current_factor * mod.current_factor,
        )
    return out


def random_schedule(
    rng: np.random.Generator,
    asset: str,
    sensors: Sequence[str],
    first_start: datetime,
    rate_per_hour: float,
    codes: Sequence[str] = FAULT_CODES,
) -> Iterator[FaultLabel]:
    """An endless, non-overlapping sequence of faults on one asset (a Poisson process of fault onsets).

    Lazy so that a real-time simulation can run for days; any finite run sees a prefix of the same sequence,
    so labels written for a shorter run agree with a longer one.
    """
    if rate_per_hour <= 0 or not codes:
        return
    for code in codes:
        fault_kind(code)
    t = first_start
    while True:
        gap = float(rng.exponential(3600.0 / rate_per_hour))
        code = str(codes[int(rng.integers(len(codes)))])
        low, high = FAULT_DURATION_S[code]
        duration = float(rng.uniform(low, high))
        target = str(sensors[int(rng.integers(len(sensors)))])
        start = t + timedelta(seconds=round(gap, 3))
        end = start + timedelta(seconds=round(duration, 3))
        root = MACHINE_FAULTS.get(code, (target,))
        yield FaultLabel(asset=asset, start=start, end=end, kind=fault_kind(code), fault=code, sensors=root)
        t = end
