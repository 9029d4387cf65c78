"""SKAB (Skoltech Anomaly Benchmark): loader and the published per-file protocol.

Protocol (data README): per labelled file, the first ``skab_train_rows`` (400) rows are training data (fit and
threshold; here the last ``holdout_fraction`` of them calibrate the threshold, held out from fitting), the
model is refit per file, and the rest is predicted with binary output ``anomaly_score >= 1``. TP/FP/FN/TN are
pooled over all files. Rows are taken at the nominal 1 Hz (row index = seconds); the test rows are scored with
the training rows as history, so every test row has a full window.

Changepoints are scored with NAB (standard profile, a ``nab_window_s`` window to the right of each true
changepoint); the predicted changepoints are the points where the binary prediction changes, SKAB's own
convention. Raw NAB scores, perfect and null scores are summed over files before normalising.

Normal runs (``anomaly-free/anomaly-free.csv``: any CSV without the label columns): cut into consecutive pieces
as long as the labelled experiments are on average, each piece run through the same protocol (fit and
calibrate on its first rows, predict the rest). Every alarm there is false, so ``normal_far`` is a false-alarm
rate measured without any label, and ``normal_false_alarms_named`` says which sensors those alarms blame.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from linewatch.models.evaluation.config import EvalConfig
from linewatch.models.evaluation.metrics import (
    Confusion,
    NabRaw,
    confusion,
    nab_score,
    nab_windows,
    segments,
    transitions,
)
from linewatch.models.evaluation.pipeline import EvaluationError, fit_model, score_rows
from linewatch.models.evaluation.result import AttributionPlot, EvalResult, SeriesPlot, top_sensors

log = logging.getLogger(__name__)
CADENCE_S = 1.0
_LABELS = ("anomaly", "changepoint")
_INDEX = "datetime"


def find_files(data: Path) -> list[Path]:
    """Every ``*.csv`` below ``data`` that carries SKAB labels (the anomaly-free file has none)."""
    out = []
    for path in sorted(data.rglob("*.csv")):
        header = path.open(encoding="utf-8").readline()
        if all(label in header.strip().split(";") for label in _LABELS):
            out.append(path)
    return out


def find_normal_runs(data: Path) -> list[Path]:
    """Every ``*.csv`` below ``data`` with SKAB's index column but no label columns (normal operation only)."""
    out = []
    for path in sorted(data.rglob("*.csv")):
        header = path.open(encoding="utf-8").readline().strip().split(";")
        if _INDEX in header and not any(label in header for label in _LABELS):
            out.append(path)
    return out


def _read(path: Path) -> tuple[pl.DataFrame, list[str], np.ndarray]:
    """The frame of a SKAB CSV, its sensor columns (all but the index and labels) and their values (T, S)."""
    frame = pl.read_csv(path, separator=";", infer_schema_length=10_000)
    sensors = [c for c in frame.columns if c not in (*_LABELS, _INDEX)]
    return frame, sensors, frame.select(pl.col(s).cast(pl.Float64) for s in sensors).to_numpy()


def load_normal(path: Path) -> tuple[list[str], np.ndarray]:
    """``(sensors, values (T, S))`` of an unlabelled SKAB CSV."""
    _, sensors, values = _read(path)
    return sensors, values


def load_file(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(sensors, values (T, S), anomaly (T,), changepoint (T,))`` of one SKAB CSV."""
    frame, sensors, values = _read(path)
    anomaly = frame["anomaly"].cast(pl.Float64).fill_null(0).to_numpy() > 0.5
    changepoint = frame["changepoint"].cast(pl.Float64).fill_null(0).to_numpy() > 0.5
    return sensors, values, anomaly, changepoint


def _named_by(contributions: np.ndarray, sensors: list[str]) -> dict[str, int]:
    """How many rows name each sensor first (largest contribution): which sensors the false alarms blame."""
    if not len(contributions):
        return {}
    top = np.bincount(np.argmax(contributions, axis=1), minlength=len(sensors))
    return {sensors[i]: int(top[i]) for i in np.flatnonzero(top)}


def evaluate_skab(data: Path, cfg: EvalConfig, say: Callable[[str], None] | None = None) -> EvalResult:
    files = find_files(data)
    if not files:
        raise EvaluationError(f"no labelled SKAB *.csv below {data}")
    ds = cfg.skab
    n_train = cfg.skab_train_rows
    n_fit = round(n_train * (1 - ds.holdout_fraction))
    width = round(cfg.nab_window_s / CADENCE_S)
    pooled, nab, pooled_any = Confusion(), NabRaw(), Confusion()
    false_named: Counter[str] = Counter()  # false alarms by the sensor the attribution names first
    per_file: dict[str, Any] = {}
    plots: list[SeriesPlot] = []
    attributions: list[AttributionPlot] = []
    started = time.monotonic()
    for path in files:
        name = path.relative_to(data).as_posix()
        sensors, values, anomaly, changepoint = load_file(path)
        if values.shape[0] <= n_train:
            raise EvaluationError(f"{name}: {values.shape[0]} rows, need more than {n_train}")
        fitted = fit_model([values[:n_fit]], [values[n_fit:n_train]], sensors, ds, CADENCE_S, name=name)
        scores = score_rows(fitted, values[n_train:], values[:n_train], CADENCE_S)
        pred = scores.anomaly_score >= 1.0
        truth = anomaly[n_train:]
        counts = confusion(pred, truth)
        counts_any = confusion(scores.any_alarm(), truth)
        pooled_any = pooled_any + counts_any
        named = _named_by(scores.contributions[pred & ~truth], sensors)
        blamed = np.zeros(len(sensors))
        for s, e in segments(truth):  # which sensors the model blames for each labelled anomaly (no true dims)
            contribution = scores.segment_contribution(s, e)
            blamed += contribution
            attributions.append(AttributionPlot(f"skab [{name} rows {s}-{e})", tuple(sensors), contribution, ()))
        false_named.update(named)
        pooled = pooled + counts
        cps = np.flatnonzero(changepoint[n_train:]).tolist()
        file_nab = nab_score(transitions(pred), nab_windows(cps, width, truth.size))
        nab = nab + file_nab
        per_file[name] = {
            "f1": counts.f1,
            "far": counts.far,
            "mar": counts.mar,
            "tp": counts.tp,
            "fp": counts.fp,
            "fn": counts.fn,
            "tn": counts.tn,
            "nab_standard": file_nab.normalised,
            "test_rows": int(truth.size),
            "threshold": fitted.model.calibrator.threshold,
            "excluded_sensors": fitted.excluded,
            "false_alarms_named": named,
            "anomaly_named": top_sensors(blamed, sensors),
            "f1_with_sensor_alerts": counts_any.f1,
            "far_with_sensor_alerts": counts_any.far,
            "mar_with_sensor_alerts": counts_any.mar,
            **fitted.shift_figures(),
        }
        plots.append(SeriesPlot(name, scores.anomaly_score, truth, 1.0))
        if say:
            say(f"skab {name}: F1 {counts.f1:.3f} FAR {counts.far:.1f}% MAR {counts.mar:.1f}%")
    lengths = [v["test_rows"] + n_train for v in per_file.values()]
    normal = _normal_runs(data, cfg, round(float(np.mean(lengths))), say)
    summary = {
        "f1": pooled.f1,
        "far": pooled.far,
        "mar": pooled.mar,
        "nab_standard": nab.normalised,
        "files": len(files),
        "tp": pooled.tp,
        "fp": pooled.fp,
        "fn": pooled.fn,
        "tn": pooled.tn,
        "false_alarms_named": dict(false_named.most_common()),
        "f1_with_sensor_alerts": pooled_any.f1,
        "far_with_sensor_alerts": pooled_any.far,
        "mar_with_sensor_alerts": pooled_any.mar,
        "holdout_shift_warned": sum(bool(v.get("holdout_shift_warned")) for v in per_file.values()),
        **normal,
        "seconds": time.monotonic() - started,
    }
    return EvalResult("skab", cfg.model_dump(mode="json"), summary, per_file, plots, attributions)


def _normal_runs(data: Path, cfg: EvalConfig, piece: int, say: Callable[[str], None] | None) -> dict[str, Any]:
    """False alarms on unlabelled normal runs, cut into experiment-long pieces, each under the file protocol.

    Summary keys, with the pieces as a table of their own (``normal_runs``): ``per_file`` keeps the protocol's
    labelled files only, as the result format promises.
    """
    runs: dict[str, Any] = {}
    ds, n_train = cfg.skab, cfg.skab_train_rows
    n_fit = round(n_train * (1 - ds.holdout_fraction))
    alarms = rows = pieces = 0
    named: Counter[str] = Counter()
    for path in find_normal_runs(data):
        sensors, values = load_normal(path)
        for start in range(0, values.shape[0] - piece + 1, piece):
            part = values[start : start + piece]
            name = f"{path.relative_to(data).as_posix()} rows {start}-{start + piece}"
            try:
                fitted = fit_model([part[:n_fit]], [part[n_fit:n_train]], sensors, ds, CADENCE_S, name=name)
            except EvaluationError as exc:  # an extra beside the protocol: say why, keep the protocol's figures
                runs[name] = {"skipped": str(exc)}
                if say:
                    say(f"skab {name} (normal run): skipped: {exc}")
                continue
            scores = score_rows(fitted, part[n_train:], part[:n_train], CADENCE_S)
            pred = scores.anomaly_score >= 1.0
            blamed = _named_by(scores.contributions[pred], sensors)
            named.update(blamed)
            n_alarms, n_scored = int(pred.sum()), int(scores.scored.sum())
            alarms, rows, pieces = alarms + n_alarms, rows + n_scored, pieces + 1
            far = 100.0 * n_alarms / max(n_scored, 1)
            runs[name] = {"far": far, "test_rows": int(pred.size), "false_alarms_named": blamed}
            if say:
                say(f"skab {name} (normal run): FAR {far:.1f}%")
    if not runs:
        return {}
    return {
        "normal_far": 100.0 * alarms / rows if rows else None,
        "normal_alarms": alarms,
        "normal_rows": rows,
        "normal_pieces": pieces,
        "normal_false_alarms_named": dict(named.most_common()),
        "normal_runs": runs,
    }
