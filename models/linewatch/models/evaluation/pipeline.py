"""The shipped pipeline on benchmark arrays: wide frames -> Preprocessor -> detector -> Calibrator -> Model.score.

Benchmarks come as numpy arrays without (or with irregular) timestamps, so rows get synthetic timestamps on the
dataset's cadence and every sensor is marked observed where its value is finite: exactly the wide-frame format
the raw-store reader produces. Training mirrors :func:`linewatch.models.train.train_group`: data-quality filter,
preprocessing fitted on the fit rows only, detector on valid windows of the fit rows, threshold from windows of
held-out rows; scoring goes through :meth:`linewatch.models.model.Model.score`, as serving does.

Every evaluated row is scored by the window *ending* at it (stride 1). Callers pass the rows before the
evaluated part as history (SKAB: the training rows; SMD: the tail of ``train``), so every evaluated row has a
full window; where there is no history (TEP's fault files) the first ``length - 1`` rows have no score (NaN)
and protocols leave them out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from linewatch.ingest.reader import observed_column
from linewatch.models import detectors as _detectors  # noqa: F401  (registers every detector)
from linewatch.models.base import DETECTORS, make_detector
from linewatch.models.calibration import Calibrator
from linewatch.models.evaluation.config import DatasetEval
from linewatch.models.model import Model
from linewatch.models.quality import UsabilityRules, summarise, usable_sensors, wandering_levels
from linewatch.models.shift import HoldoutShift, compare_holdout
from linewatch.models.windows import Preprocessor, Windows, WindowSpec, concat_windows

F64 = npt.NDArray[np.float64]
#: Synthetic start of every benchmark series (only differences matter).
EVAL_START = datetime(2000, 1, 1, tzinfo=UTC)


class EvaluationError(RuntimeError):
    """The benchmark data cannot be evaluated as asked (too short, no usable sensor, bad format)."""


def wide_frame(values: npt.ArrayLike, sensors: Sequence[str], cadence_s: float, first_step: int = 0) -> pl.DataFrame:
    """A wide frame (``ts`` UTC µs, a column per sensor, ``<sensor>:observed``) on a synthetic cadence grid."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(sensors):
        raise EvaluationError(f"expected values shaped (T, {len(sensors)}), got {arr.shape}")
    start = EVAL_START + timedelta(seconds=cadence_s * first_step)
    ts = pl.datetime_range(
        start,
        start + timedelta(seconds=cadence_s * max(arr.shape[0] - 1, 0)),
        timedelta(seconds=cadence_s),
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )[: arr.shape[0]]
    data: dict[str, pl.Series] = {"ts": ts.alias("ts")}
    for j, name in enumerate(sensors):
        data[name] = pl.Series(name, arr[:, j])
        data[observed_column(name)] = pl.Series(observed_column(name), np.isfinite(arr[:, j]))
    return pl.DataFrame(data)


@dataclass(frozen=True)
class Fitted:
    """A trained model plus which of the benchmark's sensors it uses (the rest were left out by quality checks)."""

    model: Model
    all_sensors: tuple[str, ...]
    excluded: dict[str, str]
    train_windows: int
    calibration_windows: int
    shift: HoldoutShift | None = None  # how the calibration windows score against the training windows' line

    def shift_figures(self) -> dict[str, Any]:
        """The held-out check training runs (:mod:`linewatch.models.shift`), as JSON-able figures."""
        if self.shift is None:
            return {}
        ratio = self.shift.threshold_ratio
        return {
            "holdout_shift_warned": self.shift.shifted,
            "holdout_over_training_line": self.shift.over_line,
            "threshold_over_training_line": ratio if math.isfinite(ratio) else None,
            "holdout_shift_led_by": [name for name, _ in self.shift.sensors[:3]],
        }

    @property
    def used_index(self) -> npt.NDArray[np.intp]:
        used = set(self.model.sensors)
        return np.array([i for i, s in enumerate(self.all_sensors) if s in used], dtype=np.intp)


def _windows(pre: Preprocessor, chunks: Sequence[F64], sensors: Sequence[str], cadence_s: float) -> Windows | None:
    parts = [pre.transform(wide_frame(c, sensors, cadence_s)) for c in chunks if c.shape[0] >= pre.spec.length]
    parts = [p.select(p.valid) for p in parts]
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else concat_windows(parts)


def fit_model(
    fit_chunks: Sequence[F64],
    calib_chunks: Sequence[F64],
    sensors: Sequence[str],
    cfg: DatasetEval,
    cadence_s: float,
    name: str = "benchmark",
) -> Fitted:
    """Train as ``linewatch train`` does: quality filter, preprocessing and detector on ``fit_chunks``, threshold
    from windows of ``calib_chunks`` (contiguous pieces; windows never span two pieces)."""
    spec = WindowSpec(cadence_s=cadence_s, length=cfg.window_length, stride=1)
    fit_all = np.concatenate(list(fit_chunks))
    fit_wide = wide_frame(fit_all, sensors, cadence_s)
    wander_ps = [p for p in (cfg.max_unit_root_p, cfg.wandering_level_p) if p is not None]
    needed = cfg.quality_filter or cfg.wandering_level_p is not None
    report = summarise(fit_wide, cadence_s, wander_p=min(wander_ps, default=None)) if needed else None
    if report is not None and cfg.quality_filter:
        usable, excluded = usable_sensors(report, UsabilityRules(max_unit_root_p=cfg.max_unit_root_p))
        used = [s for s in sensors if s in set(usable)]
    else:
        used, excluded = list(sensors), {}
    if not used:
        raise EvaluationError(f"{name}: no usable sensor in the training data ({excluded})")
    pre = Preprocessor(spec).fit(fit_wide, used)
    train = _windows(pre, fit_chunks, sensors, cadence_s)
    if train is None or len(train) < 20:
        raise EvaluationError(f"{name}: fewer than 20 training windows")
    params = dict(cfg.params)
    kind = DETECTORS.get(cfg.detector)
    if kind is not None and kind.takes_wandering and report is not None:
        params.setdefault("wandering", wandering_levels(report, used, cfg.wandering_level_p))
    detector = make_detector(cfg.detector, seed=cfg.seed, **params)
    detector.fit(train.X)
    held = _windows(pre, calib_chunks, sensors, cadence_s)
    if held is None:
        raise EvaluationError(f"{name}: no calibration windows")
    held_scores = detector.decision_function(held.X)
    try:
        calibrator = Calibrator.fit(held_scores, quantile=cfg.quantile)
    except ValueError as exc:  # e.g. a detector whose normal scores are not positive
        raise EvaluationError(f"{name}: cannot calibrate {cfg.detector}: {exc}") from exc
    shift = compare_holdout(detector, train.X, held.X, held_scores, calibrator.threshold, used)
    model = Model(group=name, version="evaluation", preprocessor=pre, detector=detector, calibrator=calibrator)
    return Fitted(model, tuple(sensors), excluded, len(train), len(held), shift)


@dataclass(frozen=True)
class Scores:
    """Per evaluated row: anomaly score (NaN without a full window) and contributions over *all* sensors."""

    anomaly_score: F64  # (T,)
    contributions: F64  # (T, D), zero for sensors the model left out, NaN rows without a window
    #: (T,): a sensor-health status other than ok in the window ending at the row (serving raises a sensor alert
    #: where one persists); None where not computed.
    sensor_fault: npt.NDArray[np.bool_] | None = None

    @property
    def scored(self) -> npt.NDArray[np.bool_]:
        return np.asarray(np.isfinite(self.anomaly_score))

    def any_alarm(self) -> npt.NDArray[np.bool_]:
        """The machine alarm (anomaly score >= 1) or a sensor-health status: everything serving may alert on.

        Why report it beside the protocols' alarm: the shipped pipeline has two kinds of alert, and a fault the
        score misses may still reach an operator as a sensor alert (a valve held at one position reads as a
        stuck sensor). An extra figure, not the protocol's: the protocols' binary output is the score's.
        """
        alarm = self.anomaly_score >= 1.0
        return alarm if self.sensor_fault is None else alarm | self.sensor_fault

    def segment_contribution(self, start: int, end: int) -> F64:
        """Each sensor's contribution summed over rows ``[start, end)``: share x anomaly score per row (shares sum
        to 1 per row, so a row counts as much as it is anomalous); rows without a score add nothing."""
        weighted = self.contributions[start:end] * self.anomaly_score[start:end, None]
        return np.asarray(np.nansum(weighted, axis=0), dtype=np.float64)


def score_rows(fitted: Fitted, values: F64, history: F64 | None, cadence_s: float, chunk: int = 20_000) -> Scores:
    """Score every row of ``values`` with the window ending at it; ``history`` rows precede ``values``."""
    hist = np.zeros((0, values.shape[1])) if history is None else history
    series = np.concatenate([hist, values])
    length = fitted.model.preprocessor.spec.length
    n_hist, n = hist.shape[0], values.shape[0]
    score = np.full(n, np.nan)
    sensor_fault = np.zeros(n, dtype=bool)
    contrib = np.full((n, len(fitted.all_sensors)), np.nan)
    used = fitted.used_index
    # Window ending at series row r covers rows r-L+1..r; evaluate rows r >= max(n_hist, L-1), in chunks.
    first = max(n_hist, length - 1)
    for lo in range(first, n_hist + n, chunk):
        hi = min(lo + chunk, n_hist + n)
        piece = series[lo - length + 1 : hi]
        wide = wide_frame(piece, fitted.all_sensors, cadence_s, first_step=lo - length + 1)
        scored = fitted.model.score(fitted.model.preprocessor.transform(wide))
        rows = slice(lo - n_hist, hi - n_hist)
        score[rows] = scored.anomaly_score
        sensor_fault[rows] = scored.sensor_fault
        block = np.zeros((hi - lo, len(fitted.all_sensors)))
        block[:, used] = scored.contributions
        contrib[rows] = block
    return Scores(score, contrib, sensor_fault)
