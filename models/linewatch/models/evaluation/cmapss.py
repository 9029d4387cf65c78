"""C-MAPSS (NASA turbofan run-to-failure, FD001): does the failure risk warn before a failure, and how early?

SKAB, SMD and TEP ask whether an anomaly is flagged while it happens. A predictive-maintenance product promises
more: a warning *before* the machine fails, with time to act. C-MAPSS's training set has 100 engines of one type,
each run from a healthy start (unknown initial wear) until it fails, at one reading per flight cycle, which is
exactly that question. There are no anomaly labels, only the failure at each run's last cycle.

Protocol (fixed before any result was seen):

* Columns: unit, cycle, three operating settings, 21 sensors; the 21 sensors are scored (FD001 has a single
  operating condition, so the settings are noise), and the training quality filter drops the constant ones.
* The first :data:`HEALTHY_CYCLES` cycles of every engine count as normal (the data set's premise: each engine
  starts healthy; the shortest FD001 run is 128 cycles). Engines are split by unit number: 1-50 fit the model on
  their healthy cycles, 51-70 calibrate the threshold on theirs, 71-100 are scored over their whole run. Each
  engine is its own series (no window spans two engines). One cycle is one step.
* An engine is **warned** when the anomaly score stays at or over 1 for :data:`SUSTAIN` consecutive cycles
  after its healthy cycles and before it fails; the **lead** is the number of cycles from the first such cycle
  to the failure. A sustained alarm inside the healthy cycles is a **false warning**, and the share of healthy
  cycles over the threshold is the **healthy alarm rate**.
* **Risk trend**: per engine, the Spearman rank correlation between the failure risk and the cycle number
  over the run (1 = the risk only ever rises towards the failure); the median over the scored engines.

No published figure uses this protocol (the literature predicts remaining useful life, which is a regression);
the report shows the figures without a comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from linewatch.models.evaluation.config import EvalConfig
from linewatch.models.evaluation.pipeline import EvaluationError, fit_model, score_rows
from linewatch.models.evaluation.result import EvalResult, SeriesPlot

FILE = "train_FD001.txt"
N_SENSORS = 21
HEALTHY_CYCLES = 30
SUSTAIN = 3
FIT_UNITS = range(1, 51)
CALIBRATION_UNITS = range(51, 71)
TEST_UNITS = range(71, 101)
CADENCE_S = 1.0  # one flight cycle per step; the time unit means nothing here


def sensor_names() -> list[str]:
    return [f"s{i}" for i in range(1, N_SENSORS + 1)]


def load_runs(path: Path) -> dict[int, np.ndarray]:
    """Sensor readings per engine, ``(cycles, 21)`` in cycle order."""
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise EvaluationError(f"{path.name}: not a C-MAPSS table of numbers: {exc}") from exc
    if table.shape[1] != 5 + N_SENSORS:
        raise EvaluationError(f"{path.name}: expected {5 + N_SENSORS} columns, got {table.shape[1]}")
    runs: dict[int, np.ndarray] = {}
    for unit in np.unique(table[:, 0]).astype(int):
        rows = table[table[:, 0] == unit]
        runs[int(unit)] = rows[np.argsort(rows[:, 1]), 5:]
    return runs


def first_sustained(alarm: np.ndarray, start: int, sustain: int) -> int | None:
    """First index ``>= start`` from which ``alarm`` holds for ``sustain`` consecutive steps; None if never.

    >>> first_sustained(np.array([1, 0, 1, 1, 1, 0], bool), 0, 3)
    2
    """
    run = 0
    for i in range(start, alarm.size):
        run = run + 1 if alarm[i] else 0
        if run >= sustain:
            return i - sustain + 1
    return None


def engine_figures(score: np.ndarray, risk: np.ndarray, healthy: int, sustain: int) -> dict[str, Any]:
    """One engine's warning, lead, false warning, healthy alarm rate and risk trend (NaN scores: no window)."""
    alarm = np.nan_to_num(score, nan=0.0) >= 1.0
    scored = np.isfinite(score)
    healthy_scored = scored[:healthy]
    warned_at = first_sustained(alarm, healthy, sustain)
    false_at = first_sustained(alarm[:healthy], 0, sustain)
    trend = float("nan")
    if scored.sum() > 2 and np.ptp(risk[scored]) > 0:
        trend = float(spearmanr(np.flatnonzero(scored), risk[scored]).statistic)
    return {
        "cycles": int(score.size),
        "warned": warned_at is not None,
        "lead_cycles": None if warned_at is None else int(score.size - warned_at),
        "false_warning": false_at is not None,
        "healthy_alarms": int((alarm[:healthy] & healthy_scored).sum()),
        "healthy_scored": int(healthy_scored.sum()),
        "risk_trend": trend,
    }


def evaluate_cmapss(data: Path, cfg: EvalConfig, say: Callable[[str], None] | None = None) -> EvalResult:
    path = data / FILE
    if not path.is_file():
        raise EvaluationError(f"C-MAPSS needs {FILE} in {data}")
    started = time.monotonic()
    runs = load_runs(path)
    missing = [u for u in (*FIT_UNITS, *CALIBRATION_UNITS, *TEST_UNITS) if u not in runs]
    if missing:
        raise EvaluationError(f"{FILE}: engines {missing[:5]}{'…' if len(missing) > 5 else ''} missing (need 1-100)")
    short = [u for u, r in runs.items() if r.shape[0] <= HEALTHY_CYCLES + SUSTAIN]
    if short:
        raise EvaluationError(f"{FILE}: engines {short[:5]} run for {HEALTHY_CYCLES + SUSTAIN} cycles or fewer")
    sensors = sensor_names()
    fitted = fit_model(
        [runs[u][:HEALTHY_CYCLES] for u in FIT_UNITS],
        [runs[u][:HEALTHY_CYCLES] for u in CALIBRATION_UNITS],
        sensors,
        cfg.cmapss,
        CADENCE_S,
        name="cmapss",
    )
    per_file: dict[str, Any] = {}
    series: list[SeriesPlot] = []
    for unit in TEST_UNITS:
        scored = score_rows(fitted, runs[unit], None, CADENCE_S)
        calibrator = fitted.model.calibrator
        raw = scored.anomaly_score * calibrator.threshold  # the detector's score, which the risk is calibrated on
        risk = np.where(np.isfinite(raw), calibrator.failure_risk(np.nan_to_num(raw, nan=0.0)), np.nan)
        figures = engine_figures(scored.anomaly_score, risk, HEALTHY_CYCLES, SUSTAIN)
        per_file[f"engine {unit}"] = figures
        # Nothing is labelled anomalous (the failure is the run's end), so the plot shades nothing: the score
        # over the run, against the alarm line, is the picture.
        series.append(SeriesPlot(f"engine {unit}", scored.anomaly_score, np.zeros(len(raw), dtype=bool), 1.0))
        if say:
            lead = f"warned {figures['lead_cycles']} cycles before failure" if figures["warned"] else "no warning"
            say(f"cmapss engine {unit}: {figures['cycles']} cycles, {lead}")
    engines = list(per_file.values())
    leads = [e["lead_cycles"] for e in engines if e["warned"]]
    healthy_scored = sum(e["healthy_scored"] for e in engines)
    summary = {
        "engines": len(engines),
        "warned_share": float(np.mean([e["warned"] for e in engines])),
        "median_lead_cycles": float(np.median(leads)) if leads else None,
        "mean_lead_cycles": float(np.mean(leads)) if leads else None,
        "false_warning_share": float(np.mean([e["false_warning"] for e in engines])),
        "healthy_alarm_rate": sum(e["healthy_alarms"] for e in engines) / healthy_scored if healthy_scored else None,
        "median_risk_trend": float(np.nanmedian([e["risk_trend"] for e in engines])),
        "healthy_cycles": HEALTHY_CYCLES,
        "sustain_cycles": SUSTAIN,
        "threshold": fitted.model.calibrator.threshold,
        "excluded_sensors": fitted.excluded,
        "seconds": time.monotonic() - started,
    }
    return EvalResult("cmapss", cfg.model_dump(mode="json"), summary, per_file, series, [])
