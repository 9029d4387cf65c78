"""Sensor health: tell a failing *sensor* from a failing *machine*, for every scored window.

An anomaly score says "something is off"; maintenance needs to know whether to send an instrument technician
or a mechanic. Sensor faults have signatures a machine rarely produces: an exactly repeated value on a sensor
that normally varies (stuck), a variance collapse below the sensor's own noise (flat-lined), a value no machine
state explains (out of range), no data (silent), single-step excursions of one sensor that return at once
(spiking; several sensors jumping at the same step are the process, a load step and back or a trip), and one
sensor departing alone from what its correlated partners predict (drifting). A machine fault, by contrast,
moves sensors smoothly and usually together, and these checks are built to leave that pattern alone.

Checks run in engineering units on the **observed** values only (NaN where a sensor did not report, so a
forward-filled gap never looks stuck), against the training statistics saved with the preprocessing
(:class:`linewatch.models.sensor_stats.SensorStats`). Each window gets one status per sensor; where several apply,
the first in :class:`Status` order wins (silent before out-of-range before stuck, ...).

Limitations: training-range checks cannot tell a severe machine excursion from a sensor failure, so they only
fire when the excursion is huge or arrived in one jump (configured physical limits are better: pass them). The
drift check needs a detector whose expected value comes from the *other* sensors (autoencoders, PCA); with the
default "expected = training median" it would flag any lone deviation, and a genuine fault that shows on one
sensor only looks exactly like a drift. It is therefore off unless ``expected`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Isolation
from linewatch.models.sensor_stats import SensorStats

F64 = npt.NDArray[np.float64]
Limits = Mapping[str, tuple[float | None, float | None]]


class Status(IntEnum):
    """Per-sensor health of a window; lower non-zero codes take precedence."""

    OK = 0
    SILENT = 1
    OUT_OF_RANGE = 2
    STUCK = 3
    FLATLINED = 4
    SPIKING = 5
    DRIFTING = 6


STATUS_NAMES: Final[tuple[str, ...]] = tuple(s.name.lower() for s in Status)

#: Statuses that do *not* hold the machine alert (they still raise a sensor alert); serving and simeval share
#: it. Empty: every unhealthy status holds it. Measured (3 seeds, 24 h train, 3 days test): letting DRIFTING
#: through raised the share of machine faults with a machine alert from 0.60 to 0.97 (early bearing wear looks
#: like a drifting vibration sensor), but also put a machine alert on nearly every genuine sensor drift (0.42 ->
#: 3.2 such alerts per asset-week, up to 6.4), so a drifting sensor would send a mechanic: not the default.
AMBIGUOUS_STATUSES: Final[frozenset[Status]] = frozenset()
AMBIGUOUS_STATUS_NAMES: Final[frozenset[str]] = frozenset(STATUS_NAMES[s] for s in AMBIGUOUS_STATUSES)
#: Statuses that hold the machine alert: a window with a failing sensor says nothing reliable about the machine.
SUPPRESS_MACHINE_ALERT: Final[frozenset[Status]] = frozenset(Status) - {Status.OK} - AMBIGUOUS_STATUSES


@dataclass(frozen=True, slots=True)
class SensorHealth:
    """Thresholds of the health checks; the defaults aim at few false sensor alarms during machine faults.

    * ``silent_steps``: no reading in this many trailing steps is silence (scaled up for sensors that report
      only every few steps in training, by ``silent_rate_factor`` / observed rate);
      ``min_observed_fraction``: a window with a smaller share of its usual readings is silent too.
    * ``stuck_steps``: trailing exact repeats needed for "stuck", and always more than the longest repeat
      seen in training; only for sensors whose value changed on at least ``min_change_fraction`` of steps.
    * ``flat_rel_std``: window std below this share of the sensor's step-to-step noise is "flat-lined"
      (needs ``flat_min_points`` readings), and below the flattest blocks training showed again and again
      (:func:`~linewatch.models.sensor_stats.normal_flatness`).
    * ``range_margin`` / ``range_hard_margin``: in training spans (p99.9 − p0.1) beyond the training range;
      the first counts only after an abrupt jump (``jump_z``), the second always.
    * ``spike_z``: robust z of a first difference for a spike, and always more than the sensor's normal spike
      (:func:`~linewatch.models.sensor_stats.normal_spike`, learnt in training); the next step must come back within
      ``spike_return`` of the jump.
    * ``drift_z``/``partner_z``: residual (|value − expected| / scale) of the drifting sensor, and the most any
      other sensor may deviate for the drift to be "alone".
    * ``isolation_z``/``isolation_remaining``: with a detector's :class:`~linewatch.models.base.Isolation`, a
      sensor drifts when its persistent fault size exceeds ``isolation_z`` spreads of normal training windows,
      it is the largest such sensor, and removing its fault leaves the window's residual below
      ``isolation_remaining`` (the limit of the detector's index): that sensor alone explains the anomaly.
    """

    silent_steps: int = 5
    silent_rate_factor: float = 3.0
    min_observed_fraction: float = 0.25
    stuck_steps: int = 10
    min_change_fraction: float = 0.5
    flat_rel_std: float = 0.05
    flat_min_points: int = 10
    range_margin: float = 1.0
    range_hard_margin: float = 10.0
    jump_z: float = 8.0
    spike_z: float = 6.0
    spike_return: float = 0.5
    drift_z: float = 4.0
    partner_z: float = 1.5
    isolation_z: float = 6.0
    isolation_remaining: float = 1.0

    def __post_init__(self) -> None:
        if min(self.silent_steps, self.stuck_steps, self.flat_min_points) < 1:
            raise ValueError("silent_steps, stuck_steps and flat_min_points must be >= 1")
        if self.range_hard_margin < self.range_margin or self.partner_z >= self.drift_z:
            raise ValueError("need range_margin <= range_hard_margin and partner_z < drift_z")


@dataclass(frozen=True, slots=True)
class HealthResult:
    """``status[i, j]``: :class:`Status` code of sensor ``sensors[j]`` in window ``i`` (int8)."""

    status: npt.NDArray[np.int8]
    sensors: tuple[str, ...]

    @property
    def sensor_fault(self) -> npt.NDArray[np.bool_]:
        """Per window: does any sensor look faulty (so an anomaly there may not be the machine's)?"""
        return np.asarray((self.status != Status.OK).any(axis=1))

    def to_dict(self, window_idx: int) -> dict[str, str]:
        """JSON-able statuses of one window, every sensor included."""
        return {name: STATUS_NAMES[code] for name, code in zip(self.sensors, self.status[window_idx], strict=True)}


def sensor_faults(result: HealthResult, window_idx: int) -> dict[str, Status]:
    """The sensors of one window whose status is not OK (empty dict: all sensors look healthy)."""
    return {
        name: Status(int(code))
        for name, code in zip(result.sensors, result.status[window_idx], strict=True)
        if code != Status.OK
    }


def _last_observed(raw: F64, observed: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], F64]:
    """Index of the last observed step per (window, sensor), -1 if none, and its value (NaN if none)."""
    steps = np.arange(raw.shape[1])[None, :, None]
    last = np.where(observed, steps, -1).max(axis=1)
    value = np.take_along_axis(raw, np.maximum(last, 0)[:, None, :], axis=1)[:, 0, :]
    return last, np.where(last >= 0, value, np.nan)


def _trailing_repeats(raw: F64, observed: npt.NDArray[np.bool_], last_value: F64) -> npt.NDArray[np.int64]:
    """How many trailing observed steps (gaps skipped) read exactly the last observed value."""
    steps = np.arange(raw.shape[1])[None, :, None]
    differs = observed & (raw != last_value[:, None, :])
    last_break = np.where(differs, steps, -1).max(axis=1)
    return np.asarray((observed & (steps > last_break[:, None, :])).sum(axis=1), dtype=np.int64)


def _limit_arrays(limits: Limits | None, sensors: Sequence[str]) -> tuple[F64, F64]:
    lo = np.full(len(sensors), -np.inf)
    hi = np.full(len(sensors), np.inf)
    for j, name in enumerate(sensors):
        low, high = (limits or {}).get(name, (None, None))
        lo[j] = -np.inf if low is None else low
        hi[j] = np.inf if high is None else high
    return lo, hi


def check_health(
    raw: npt.ArrayLike,
    stats: SensorStats,
    config: SensorHealth | None = None,
    *,
    mask: npt.ArrayLike | None = None,
    expected: npt.ArrayLike | None = None,
    limits: Limits | None = None,
    sensors: Sequence[str] | None = None,
    isolation: Isolation | None = None,
) -> HealthResult:
    """Health status per window and sensor.

    ``raw`` is ``(n, L, S)`` in engineering units with NaN where unobserved (``Windows.raw``), or plain values
    with ``mask`` (True = observed). ``expected`` ``(n, S)``: what the detector expected at each window's last
    step, **in engineering units** (``Preprocessor.inverse`` of ``Detector.expected``); it enables the drift
    check; ``isolation`` (from :meth:`Detector.isolation`) enables the stronger reconstruction-based drift check
    (used instead of the ``expected`` one when given). ``limits`` maps sensor names to configured physical
    (low, high) limits, either may be None.
    """
    cfg = config or SensorHealth()
    x = np.array(raw, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != stats.median.shape[0]:
        raise ValueError(f"raw must be (n, L, {stats.median.shape[0]}), got {x.shape}")
    if mask is not None:
        x[~np.asarray(mask, dtype=bool)] = np.nan
    observed = ~np.isnan(x)
    n, length, n_sensors = x.shape
    names = tuple(sensors) if sensors is not None else tuple(f"s{j}" for j in range(n_sensors))
    status = np.zeros((n, n_sensors), dtype=np.int8)
    if n == 0:
        return HealthResult(status, names)
    varies = stats.change_fraction >= cfg.min_change_fraction
    last_idx, last_value = _last_observed(x, observed)
    with np.errstate(invalid="ignore", divide="ignore"):
        dz = np.diff(x, axis=1) / stats.diff_scale  # NaN wherever either step is unobserved
        abs_dz = np.abs(dz)
        max_jump = np.where(np.isnan(abs_dz), 0.0, abs_dz).max(axis=1) if length > 1 else np.zeros((n, n_sensors))
    checks: list[tuple[Status, npt.NDArray[np.bool_]]] = []

    # Drifting: one sensor alone explains the residual, persistently, with no jump on the way.
    if isolation is not None and n_sensors > 1:
        fz = np.where(np.isfinite(isolation.fault_z), isolation.fault_z, 0.0)
        explains = (fz > cfg.isolation_z) & (isolation.remaining < cfg.isolation_remaining)
        best = fz == fz.max(axis=1, keepdims=True)
        checks.append((Status.DRIFTING, explains & best & (max_jump < cfg.jump_z)))
    # Without isolation: one sensor far from the expectation, every partner close to it, and no jump on the way.
    elif expected is not None and n_sensors > 1:
        resid = np.abs(last_value - np.asarray(expected, dtype=np.float64)) / stats.scale
        resid_f = np.where(np.isnan(resid), 0.0, resid)
        others = np.stack([np.delete(resid_f, j, axis=1).max(axis=1) for j in range(n_sensors)], axis=1)
        checks.append((Status.DRIFTING, (resid_f > cfg.drift_z) & (others < cfg.partner_z) & (max_jump < cfg.jump_z)))

    # Spiking: a big jump answered at once by a jump back (a step change or a machine ramp never is), on this
    # sensor alone: when another sensor jumps at the same step, the process moved (a load step and back, a trip),
    # and no one sensor is to blame.
    if length > 2:
        # Larger than the out-and-back moves training showed again and again (a turbulent flow meter's normal).
        spike_z = cfg.spike_z if stats.normal_spike is None else np.maximum(cfg.spike_z, stats.normal_spike)
        a, b = dz[:, :-1, :], dz[:, 1:, :]
        with np.errstate(invalid="ignore"):
            jump = np.abs(a) > spike_z
            spike = jump & (np.abs(b) > spike_z) & (np.sign(a) != np.sign(b))
            spike &= np.abs(a + b) <= cfg.spike_return * np.abs(a)
        spike &= jump.sum(axis=2, keepdims=True) == 1
        checks.append((Status.SPIKING, spike.any(axis=1)))

    # Flat-lined: variance far below the sensor's own step-to-step noise.
    count = observed.sum(axis=1)
    filled = np.where(observed, x, 0.0)
    mean = filled.sum(axis=1) / np.maximum(count, 1)
    std = np.sqrt((np.where(observed, x - mean[:, None, :], 0.0) ** 2).sum(axis=1) / np.maximum(count, 1))
    # Flatter than the sensor's own blocks of readings were in training, too (it may sit still in normal use).
    flat_rel = cfg.flat_rel_std if stats.normal_flat is None else np.minimum(cfg.flat_rel_std, stats.normal_flat)
    flat = varies & (count >= cfg.flat_min_points) & (std < flat_rel * stats.diff_scale)
    checks.append((Status.FLATLINED, flat))

    # Stuck: the latest value repeated exactly for longer than ever seen in training.
    need = np.maximum(cfg.stuck_steps, stats.max_repeat + 1)
    checks.append((Status.STUCK, varies & (_trailing_repeats(x, observed, last_value) >= need)))

    # Out of range: configured limits always; training range only when huge or reached in one jump.
    lo_lim, hi_lim = _limit_arrays(limits, names)
    span = np.maximum(stats.p999 - stats.p001, stats.scale)
    with np.errstate(invalid="ignore"):
        beyond_limits = (last_value < lo_lim) | (last_value > hi_lim)
        outside = np.maximum(stats.p001 - last_value, last_value - stats.p999) / span  # in spans
        out = (
            beyond_limits | (outside > cfg.range_hard_margin) | ((outside > cfg.range_margin) & (max_jump > cfg.jump_z))
        )
    checks.append((Status.OUT_OF_RANGE, out))

    # Silent: nothing in the trailing steps (longer for slow sensors), or too few readings in the window.
    rate = np.clip(stats.observed_rate, 1e-9, 1.0)
    quiet_steps = np.maximum(cfg.silent_steps, np.ceil(cfg.silent_rate_factor / rate))
    silent_tail = (length - 1 - last_idx >= quiet_steps) | (last_idx < 0)
    silent = silent_tail | (count / length < cfg.min_observed_fraction * rate)
    checks.append((Status.SILENT, silent))

    for code, hit in checks:  # lowest-priority first, so higher-priority codes overwrite
        status[hit] = code
    # Drifting is inferred from the model's residual, the other statuses are seen in the readings themselves. A
    # sensor that is silent, stuck or spiking corrupts what the model sees of every sensor (a silent one reads as
    # its median), so another sensor may then look like the one "explaining" the residual: direct evidence wins.
    seen = (status != Status.OK) & (status != Status.DRIFTING)
    status[(status == Status.DRIFTING) & seen.any(axis=1, keepdims=True)] = Status.OK
    return HealthResult(status, names)
