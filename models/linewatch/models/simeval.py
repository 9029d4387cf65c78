"""Event-level evaluation on labelled data (the simulated plant, or any store with a labels file).

Alerts are episodes of consecutive scored windows: a *machine* alert where the anomaly score is >= 1 and no
sensor looks unhealthy (:data:`linewatch.models.health.SUPPRESS_MACHINE_ALERT`, serving's rule), a *sensor*
alert where any health check fails. Metrics are what a reliability engineer asks: how many machine faults
raised an alert, how many machine alerts and how many sensor alerts no fault explains (per asset per week),
whether the named root-cause sensor is the injected one, and whether failing sensors are called sensor faults.
Machine alerts explained only by a labelled *sensor* fault are not false, but are counted apart
(``machine_alerts_on_sensor_faults``): they send a mechanic to a failing sensor.

Alert policy (:data:`ALERT_MIN_RUN`, :data:`ALERT_MERGE_GAP`, :data:`EVAL_STRIDE_STEPS`): windows are scored
every 10 steps (10 s at the default 1 s cadence, the training stride the false-alarm budget is calibrated for);
an alert needs at least 3 flagged evaluations (~30 s of sustained anomaly), and flagged runs at most 2
evaluations apart are one alert. Why 3: on the simulated plant most false machine alerts were runs of 1-2
windows (scores just over 1 during load transients), while every injected fault lasts minutes. Serving must
raise alerts with the same rule (sustained >= 30 s, gaps <= 20 s merged) for these metrics to describe it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.reader import to_wide
from linewatch.models.events import Episode, episodes, overlaps, ranked_sensors
from linewatch.models.health import SUPPRESS_MACHINE_ALERT, Status
from linewatch.models.model import Model, ScoredWindows
from linewatch.models.windows import Preprocessor

_US = 1_000_000
#: The alert policy shared with serving (see the module docstring).
EVAL_STRIDE_STEPS = 10
ALERT_MIN_RUN = 3
ALERT_MERGE_GAP = 2


@dataclass
class SimEvalResult:
    machine_faults: int = 0
    machine_detected: int = 0
    sensor_faults: int = 0
    sensor_detected: int = 0
    single_sensor_faults_detected: int = 0
    single_sensor_top1: int = 0
    stuck_or_drift: int = 0
    stuck_or_drift_as_sensor: int = 0
    false_machine_alerts: int = 0
    false_sensor_alerts: int = 0
    machine_alerts_on_sensor_faults: int = 0
    normal_weeks: float = 0.0
    per_fault: list[dict[str, Any]] = field(default_factory=list)
    #: Each machine alert no label explains: asset, start, duration, peak score and the sensor named first, so a
    #: count can be looked into rather than only reported.
    unexplained: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        def per_week(count: int) -> float:
            return count / self.normal_weeks if self.normal_weeks else 0.0

        return {
            "machine_fault_recall": ratio(self.machine_detected, self.machine_faults),
            "sensor_fault_recall": ratio(self.sensor_detected, self.sensor_faults),
            "single_sensor_top1": ratio(self.single_sensor_top1, self.single_sensor_faults_detected),
            "stuck_drift_as_sensor_fault": ratio(self.stuck_or_drift_as_sensor, self.stuck_or_drift),
            "false_machine_alerts": float(self.false_machine_alerts),
            "false_alerts_per_asset_week": per_week(self.false_machine_alerts),
            "false_sensor_alerts": float(self.false_sensor_alerts),
            "false_sensor_alerts_per_asset_week": per_week(self.false_sensor_alerts),
            "machine_alerts_on_sensor_faults": float(self.machine_alerts_on_sensor_faults),
            "machine_alerts_on_sensor_faults_per_asset_week": per_week(self.machine_alerts_on_sensor_faults),
            "machine_faults": float(self.machine_faults),
            "sensor_faults": float(self.sensor_faults),
        }


def score_asset(model: Model, long: pl.DataFrame, stride_steps: int) -> ScoredWindows:
    """Score every ``stride_steps``-th window of one asset's readings with the model's own preprocessing."""
    spec = replace(model.preprocessor.spec, stride=stride_steps)
    pre = Preprocessor(spec)
    pre.sensors_, pre.stats_ = model.preprocessor.sensors_, model.preprocessor.stats_
    cadence_us = spec.cadence_us
    ts_us = long["ts"].dt.epoch("us").to_numpy()
    first = int(ts_us.min()) // cadence_us * cadence_us
    last = int(ts_us.max()) // cadence_us * cadence_us
    wide = to_wide(long, first, last, cadence_us, sensors=list(model.sensors), max_gap=spec.max_gap_steps)
    return model.score(pre.transform(wide))


def evaluate_asset(
    scored: ScoredWindows,
    labels: Sequence[FaultLabel],
    asset: str,
    window_s: float,
    result: SimEvalResult,
    *,
    min_run: int = ALERT_MIN_RUN,
    merge_gap: int = ALERT_MERGE_GAP,
    suppress: Collection[Status] = SUPPRESS_MACHINE_ALERT,
) -> None:
    """Add one asset's alerts and faults to ``result``.

    ``suppress``: the health statuses that hold the machine alert (serving's rule, see
    :data:`linewatch.models.health.SUPPRESS_MACHINE_ALERT`); any unhealthy status raises a sensor alert.
    """
    ts = scored.end_ts.astype("datetime64[us]").astype(np.int64)
    anomalous = (scored.anomaly_score >= 1.0) & scored.valid
    unhealthy = scored.sensor_fault
    held = np.isin(scored.health, [int(s) for s in suppress]).any(axis=1)
    machine_eps = episodes(anomalous & ~held, min_run=min_run, merge_gap=merge_gap)
    sensor_eps = episodes(unhealthy, min_run=min_run, merge_gap=merge_gap)
    mine = [lb for lb in labels if lb.asset == asset]
    # A fault's effects persist up to one window after it ends (the window still holds faulty samples).
    spans = [(int(lb.start.timestamp() * _US), int((lb.end.timestamp() + window_s) * _US)) for lb in mine]

    def span(ep: Episode) -> tuple[int, int]:
        return int(ts[ep.start]), int(ts[ep.end - 1]) + 1

    not_sensor = [sp for sp, lb in zip(spans, mine, strict=True) if lb.kind != "sensor_fault"]
    for ep in machine_eps:
        if overlaps(*span(ep), spans) is None:
            result.false_machine_alerts += 1
            first, last = int(ts[ep.start]), int(ts[ep.end - 1])
            ranking = ranked_sensors(scored.contributions[ep.start : ep.end])
            result.unexplained.append(
                {
                    "asset": asset,
                    "start": datetime.fromtimestamp(first / _US, UTC).isoformat(),
                    "duration_s": (last - first) / _US,  # from the first flagged window's end to the last's
                    "peak_score": float(np.nanmax(scored.anomaly_score[ep.start : ep.end])),
                    "named_sensor": scored.sensors[int(ranking[0])],
                }
            )
        elif overlaps(*span(ep), not_sensor) is None:
            # Explained only by a sensor fault: not false, but it sends a mechanic to a failing sensor.
            result.machine_alerts_on_sensor_faults += 1
    # A sensor alert no label explains sends a technician to a healthy sensor: counted, not hidden.
    result.false_sensor_alerts += sum(overlaps(*span(ep), spans) is None for ep in sensor_eps)
    if len(ts):
        labelled = sum(min(hi, ts[-1]) - max(lo, ts[0]) for lo, hi in spans if hi > ts[0] and lo < ts[-1])
        result.normal_weeks += max(0.0, (ts[-1] - ts[0] - labelled) / _US / (7 * 86400))

    for label, (lo, hi) in zip(mine, spans, strict=True):
        if label.kind not in ("machine_fault", "sensor_fault"):
            continue
        in_fault = (ts >= lo) & (ts < hi)
        hit_machine = [ep for ep in machine_eps if overlaps(*span(ep), [(lo, hi)]) is not None]
        hit_sensor = [ep for ep in sensor_eps if overlaps(*span(ep), [(lo, hi)]) is not None]
        detected = bool(hit_machine or hit_sensor)
        flagged_windows = in_fault & (anomalous | unhealthy)
        ranking = (
            ranked_sensors(scored.contributions[flagged_windows], (scored.health[flagged_windows] != 0).sum(axis=0))
            if flagged_windows.any()
            else np.arange(len(scored.sensors))
        )
        named = scored.sensors[int(ranking[0])] if flagged_windows.any() else None
        if label.kind == "machine_fault":
            result.machine_faults += 1
            result.machine_detected += int(bool(hit_machine) or bool(hit_sensor and not _only_sensor(label)))
        else:
            result.sensor_faults += 1
            result.sensor_detected += int(detected)
        if len(label.sensors) == 1 and detected:
            result.single_sensor_faults_detected += 1
            result.single_sensor_top1 += int(named == label.sensors[0])
        if label.fault in ("stuck", "drift"):
            result.stuck_or_drift += 1
            j = scored.sensors.index(label.sensors[0]) if label.sensors[0] in scored.sensors else -1
            as_sensor = j >= 0 and bool((scored.health[in_fault, j] != 0).any())
            result.stuck_or_drift_as_sensor += int(as_sensor)
        result.per_fault.append(
            {
                "asset": asset,
                "fault": label.fault,
                "kind": label.kind,
                "start": label.start.isoformat(),
                "detected": detected,
                "machine_alert": bool(hit_machine),
                "sensor_alert": bool(hit_sensor),
                "named_sensor": named,
                "true_sensors": list(label.sensors),
            }
        )


def _only_sensor(label: FaultLabel) -> bool:
    return label.kind == "sensor_fault"


def evaluate(
    models: Mapping[str, Model],
    readings: pl.DataFrame,
    labels: Sequence[FaultLabel],
    *,
    stride_steps: int = EVAL_STRIDE_STEPS,
    min_run: int = ALERT_MIN_RUN,
) -> SimEvalResult:
    """Evaluate each asset's model on its readings (long frame) against the labels."""
    result = SimEvalResult()
    for asset, model in models.items():
        long = readings.filter(pl.col("asset") == asset)
        if long.height == 0:
            continue
        scored = score_asset(model, long, stride_steps)
        spec = model.preprocessor.spec
        evaluate_asset(scored, labels, asset, spec.length * spec.cadence_s, result, min_run=min_run)
    return result
