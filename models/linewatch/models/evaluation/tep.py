"""TEP (Tennessee Eastman Process, Braatz set): loader and protocol.

Fit on ``d00.dat`` (stored transposed, 52 x 500: transposed back on load), calibrate the threshold on
``d00_te.dat`` (960 x 52), then report the false-alarm rate on ``d00_te.dat`` and the detection rate on each
``dNN.dat`` (480 x 52, the fault active throughout): the share of rows with ``anomaly_score >= 1``. Each file is
a separate run, so there is no history before its first row: the first ``window_length - 1`` rows of every file
have no full window and are left out of its rate (documented rather than padded with another run's data).
The mean detection rate excludes faults 3, 9 and 15, known to be nearly undetectable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from linewatch.models.evaluation.config import EvalConfig
from linewatch.models.evaluation.pipeline import EvaluationError, fit_model, score_rows
from linewatch.models.evaluation.result import AttributionPlot, EvalResult, SeriesPlot, top_sensors

CADENCE_S = 180.0
N_VARS = 52
EXCLUDED_FAULTS = (3, 9, 15)
_FAULT = re.compile(r"^d(\d\d)\.dat$")


def sensor_names() -> list[str]:
    return [f"XMEAS({i})" for i in range(1, 42)] + [f"XMV({i})" for i in range(1, 12)]


def load_dat(path: Path) -> np.ndarray:
    """Rows x 52; a file stored 52 x N (``d00.dat``) is transposed."""
    arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if arr.shape[1] != N_VARS and arr.shape[0] == N_VARS:
        arr = arr.T
    if arr.shape[1] != N_VARS:
        raise EvaluationError(f"{path.name}: expected {N_VARS} columns, got shape {arr.shape}")
    return arr


def find_faults(data: Path) -> dict[int, Path]:
    return {
        int(m.group(1)): p for p in sorted(data.glob("d*.dat")) if (m := _FAULT.match(p.name)) and m.group(1) != "00"
    }


def _alarm_rate(score: np.ndarray) -> tuple[float, int]:
    scored = np.isfinite(score)
    n = int(scored.sum())
    return (float((score[scored] >= 1.0).sum()) / n if n else float("nan")), n


def evaluate_tep(data: Path, cfg: EvalConfig, say: Callable[[str], None] | None = None) -> EvalResult:
    for required in ("d00.dat", "d00_te.dat"):
        if not (data / required).is_file():
            raise EvaluationError(f"TEP needs {required} in {data}")
    started = time.monotonic()
    sensors = sensor_names()
    normal = load_dat(data / "d00.dat")
    normal_te = load_dat(data / "d00_te.dat")
    fitted = fit_model([normal], [normal_te], sensors, cfg.tep, CADENCE_S, name="tep")
    te_scores = score_rows(fitted, normal_te, None, CADENCE_S).anomaly_score
    far, n_te = _alarm_rate(te_scores)
    series = [SeriesPlot("d00_te.dat", te_scores, np.zeros(te_scores.size, dtype=bool), 1.0)]
    per_file: dict[str, Any] = {"d00_te.dat": {"false_alarm_rate": far, "scored_rows": n_te}}
    rates: dict[int, float] = {}
    attributions: list[AttributionPlot] = []
    for fault, path in find_faults(data).items():
        scored = score_rows(fitted, load_dat(path), None, CADENCE_S)
        score = scored.anomaly_score
        rate, n = _alarm_rate(score)
        rates[fault] = rate
        # The whole file is the labelled segment: which variables the model blames for the fault.
        contribution = scored.segment_contribution(0, score.size)
        attributions.append(AttributionPlot(f"tep [fault {fault:02d}]", tuple(sensors), contribution, ()))
        per_file[path.name] = {
            "fault": fault,
            "detection_rate": rate,
            "scored_rows": n,
            "named": top_sensors(contribution, sensors),
        }
        series.append(SeriesPlot(path.name, score, np.isfinite(score), 1.0))
        if say:
            say(f"tep {path.name}: detection rate {rate:.3f}")
    counted = [r for f, r in rates.items() if f not in EXCLUDED_FAULTS]
    summary = {
        "mean_detection_rate": float(np.mean(counted)) if counted else None,
        "false_alarm_rate": far,
        "faults_counted": len(counted),
        "mean_detection_rate_all": float(np.mean(list(rates.values()))) if rates else None,
        "threshold": fitted.model.calibrator.threshold,
        "excluded_sensors": fitted.excluded,
        "seconds": time.monotonic() - started,
    }
    return EvalResult("tep", cfg.model_dump(mode="json"), summary, per_file, series, attributions)
