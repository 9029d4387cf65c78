"""SMD (Server Machine Dataset): loader and protocol, detection and root-cause attribution.

Per machine: fit on ``train`` (a ``holdout_fraction`` of it, in interleaved cycles exactly as
:func:`linewatch.models.holdout.holdout_cycles` splits a plant's history, is held out to set the threshold), then
score every ``test`` row with the window ending at it, the last rows of ``train`` serving as history (the test
half follows the train half in time). Rows get a synthetic 60 s cadence.

Detection: threshold-free VUS-PR (buffer ``vus_window``) and AUC-PR on the anomaly score; point-wise
precision/recall/F1 of ``anomaly_score >= 1`` (threshold from training data only); event recall, false alarm
runs per day of normal test time, mean detection delay of detected segments. Summary values are means over
machines (TSB-AD's convention: per series, then averaged); the pooled point-wise F1 is added beside them.

Attribution: per ``interpretation_label`` segment, each sensor's contribution summed over the segment's rows ranks
the sensors. :meth:`Model.score` reports per-step *shares* (summing to 1); the contribution of a step is its share
times the step's anomaly score, so a step that is barely anomalous does not weigh as much as the peak (for
``pca_t2q`` with ``attribution: decomposition`` this is exactly the per-sensor part of the T² + Q index).
HitRate@100/150 %, NDCG@|true| and AC@1/AC@3 average over all segments of all machines, each next to the exact
expectation for a random ranking (see :mod:`linewatch.models.evaluation.metrics`) and next to the per-sensor z-score
baseline computed the same way (``*_zscore``: each test row's ``|x - mean| / std`` with the whole ``train``'s
statistics, std floored at :data:`ZSCORE_STD_FLOOR`, summed over the segment). The data README quotes 0.78 / 0.88
for a z-score ranking; summed over segments as this protocol prescribes, it scores lower, so the baseline is
recomputed here rather than compared with a figure measured another way.

Layouts: this copy ships ``npy/<machine>_{train,test,test_label}.npy``; the authors' original release has the
same arrays as comma-separated text, ``train/<machine>.txt``, ``test/<machine>.txt`` and
``test_label/<machine>.txt``. Both are read (``npy`` first where a machine has both), so SMD machines kept back
for independent evaluation run whichever way they are delivered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from linewatch.models.evaluation.config import EvalConfig
from linewatch.models.evaluation.metrics import (
    Confusion,
    attribution_scores,
    confusion,
    event_stats,
    false_alarms_per_day,
    parse_interpretation,
)
from linewatch.models.evaluation.pipeline import EvaluationError, fit_model, score_rows
from linewatch.models.evaluation.rangeauc import auc_pr, vus_pr
from linewatch.models.evaluation.result import AttributionPlot, EvalResult, SeriesPlot
from linewatch.models.holdout import holdout_cycles

CADENCE_S = 60.0
#: SMD is min-max scaled to [0, 1]: a sensor that never moved in ``train`` gets a std of 0.1 % of that range.
ZSCORE_STD_FLOOR = 1e-3
_ATTR_BASE = ("hitrate_100", "hitrate_150", "ndcg", "top1", "top3")
_ATTR_KEYS = (
    "hitrate_100",
    "hitrate_150",
    "ndcg",
    "top1",
    "top3",
    "hitrate_100_random",
    "hitrate_150_random",
    "ndcg_random",
    "top1_random",
    "top3_random",
    *(f"{k}_zscore" for k in _ATTR_BASE),
)


def find_machines(data: Path) -> list[str]:
    """Machines with ``npy/<name>_train.npy`` or ``train/<name>.txt`` (their test data, labels and
    interpretation must exist too)."""
    npy = {p.name.removesuffix("_train.npy") for p in (data / "npy").glob("*_train.npy")}
    text = {p.stem for p in (data / "train").glob("*.txt")}
    return sorted(npy | text)


def _arrays(data: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, test, label)`` from ``npy/`` if the machine is there, else from the original text files."""
    npy = data / "npy"
    if (npy / f"{name}_train.npy").is_file():
        return (
            np.load(npy / f"{name}_train.npy", allow_pickle=False),
            np.load(npy / f"{name}_test.npy", allow_pickle=False),
            np.load(npy / f"{name}_test_label.npy", allow_pickle=False),
        )
    try:
        return (
            np.loadtxt(data / "train" / f"{name}.txt", delimiter=",", ndmin=2),
            np.loadtxt(data / "test" / f"{name}.txt", delimiter=",", ndmin=2),
            np.loadtxt(data / "test_label" / f"{name}.txt", delimiter=",", ndmin=1),
        )
    except ValueError as exc:  # a non-numeric cell
        raise EvaluationError(f"SMD machine {name}: unreadable text data: {exc}") from exc


def load_machine(data: Path, name: str, max_rows: int | None = None) -> dict[str, Any]:
    """Arrays of one machine; ``max_rows`` truncates train and test (for quick checks), dropping segments past it."""
    try:
        train_raw, test_raw, label_raw = _arrays(data, name)
        segments = parse_interpretation((data / "interpretation_label" / f"{name}.txt").read_text())
    except FileNotFoundError as exc:
        raise EvaluationError(f"SMD machine {name}: missing file {exc.filename}") from exc
    train, test = train_raw.astype(np.float64), test_raw.astype(np.float64)
    label = label_raw.astype(bool).ravel()
    if max_rows is not None:
        train, test, label = train[:max_rows], test[:max_rows], label[:max_rows]
        segments = [(s, min(e, max_rows), d) for s, e, d in segments if s < max_rows]
    if test.shape[0] != label.shape[0] or train.shape[1] != test.shape[1]:
        raise EvaluationError(f"SMD machine {name}: shapes disagree {train.shape}, {test.shape}, {label.shape}")
    return {"train": train, "test": test, "label": label, "segments": segments}


def _split(n_rows: int, holdout_fraction: float) -> tuple[list[slice], list[slice]]:
    us = int(CADENCE_S * 1e6)
    cycles = holdout_cycles(0, n_rows * us, holdout_fraction, us)
    return [slice(lo // us, cut // us) for lo, cut, _ in cycles], [slice(cut // us, hi // us) for _, cut, hi in cycles]


def evaluate_smd(
    data: Path,
    cfg: EvalConfig,
    say: Callable[[str], None] | None = None,
    *,
    machines: list[str] | None = None,
    max_rows: int | None = None,
) -> EvalResult:
    names = machines if machines is not None else find_machines(data)
    if not names:
        raise EvaluationError(f"no SMD npy/*_train.npy or train/*.txt below {data}")
    ds = cfg.smd
    started = time.monotonic()
    per_file: dict[str, Any] = {}
    series: list[SeriesPlot] = []
    attributions: list[AttributionPlot] = []
    all_segments: list[dict[str, float]] = []
    pooled = Confusion()
    for name in names:
        m = load_machine(data, name, max_rows)
        train, test, label = m["train"], m["test"], m["label"]
        sensors = [f"d{i + 1}" for i in range(train.shape[1])]
        fit_slices, cal_slices = _split(train.shape[0], ds.holdout_fraction)
        fitted = fit_model(
            [train[s] for s in fit_slices], [train[s] for s in cal_slices], sensors, ds, CADENCE_S, name=name
        )
        history = train[-(ds.window_length - 1) :] if ds.window_length > 1 else None
        scores = score_rows(fitted, test, history, CADENCE_S)
        score = scores.anomaly_score
        pred = score >= 1.0
        counts = confusion(pred, label)
        pooled = pooled + counts
        events = event_stats(pred, label)
        events_any = event_stats(scores.any_alarm(), label)
        seg_scores = []
        zscore = np.abs(test - train.mean(axis=0)) / np.maximum(train.std(axis=0), ZSCORE_STD_FLOOR)
        for s, e, dims in m["segments"]:
            contribution = scores.segment_contribution(s, e)
            baseline = attribution_scores(zscore[s:e].sum(axis=0), dims)
            seg_scores.append(
                {**attribution_scores(contribution, dims), **{f"{k}_zscore": baseline[k] for k in _ATTR_BASE}}
            )
            attributions.append(AttributionPlot(f"{name} [{s}, {e})", tuple(sensors), contribution, tuple(dims)))
        all_segments.extend(seg_scores)
        per_file[name] = {
            "vus_pr": vus_pr(label, score, cfg.vus_window) if label.any() else None,
            "auc_pr": auc_pr(label, score) if label.any() else None,
            "f1": counts.f1,
            "precision": counts.precision,
            "recall": counts.recall,
            "event_recall": events.recall,
            "events": events.events,
            "false_alarms_per_day": false_alarms_per_day(events, CADENCE_S),
            "mean_detection_delay_s": events.mean_delay() * CADENCE_S,
            "event_recall_with_sensor_alerts": events_any.recall,
            "false_alarms_per_day_with_sensor_alerts": false_alarms_per_day(events_any, CADENCE_S),
            "segments": len(seg_scores),
            **{k: _mean([x[k] for x in seg_scores]) for k in _ATTR_KEYS},
            "threshold": fitted.model.calibrator.threshold,
            "excluded_sensors": fitted.excluded,
            "train_windows": fitted.train_windows,
            "calibration_windows": fitted.calibration_windows,
            **fitted.shift_figures(),
        }
        series.append(SeriesPlot(name, score, label, 1.0))
        if say:
            r = per_file[name]
            say(f"smd {name}: VUS-PR {r['vus_pr']:.3f} AUC-PR {r['auc_pr']:.3f} HitRate@100 {r['hitrate_100']:.3f}")
    machines_done = list(per_file.values())
    summary: dict[str, Any] = {
        "vus_pr": _mean([r["vus_pr"] for r in machines_done]),
        "auc_pr": _mean([r["auc_pr"] for r in machines_done]),
        "f1": _mean([r["f1"] for r in machines_done]),
        "f1_pooled": pooled.f1,
        "precision_pooled": pooled.precision,
        "recall_pooled": pooled.recall,
        "event_recall": _mean([r["event_recall"] for r in machines_done]),
        "false_alarms_per_day": _mean([r["false_alarms_per_day"] for r in machines_done]),
        "mean_detection_delay_s": _mean([r["mean_detection_delay_s"] for r in machines_done]),
        "event_recall_with_sensor_alerts": _mean([r["event_recall_with_sensor_alerts"] for r in machines_done]),
        "false_alarms_per_day_with_sensor_alerts": _mean(
            [r["false_alarms_per_day_with_sensor_alerts"] for r in machines_done]
        ),
        **{k: _mean([x[k] for x in all_segments]) for k in _ATTR_KEYS},
        "machines": len(machines_done),
        "holdout_shift_warned": sum(bool(r.get("holdout_shift_warned")) for r in machines_done),
        "segments": len(all_segments),
        "seconds": time.monotonic() - started,
    }
    return EvalResult("smd", cfg.model_dump(mode="json"), summary, per_file, series, attributions)


def _mean(values: list[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None
