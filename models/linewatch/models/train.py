"""Training one asset group: store -> quality check -> windows -> detector -> calibration -> bundle -> registry.

A ``holdout_fraction`` of each asset's time span is never trained on: its normal windows set the threshold,
and the same held-out windows compare the new model with the champion, so a model is promoted only if it is
no worse on identical data.

The held-out share is the newest part of every cycle of the span, not one newest block: see
:mod:`linewatch.models.holdout` for why. Promotion is decided in :mod:`linewatch.models.promotion`.

Adapting (``adapt_from``): a new machine or site rarely has the days of normal history a model needs, but a
sibling's model already knows how its sensors move together. Adapting keeps that model's window layout,
detector (weights, components, learned relations) and alarm threshold, and relearns from the new group's data
only what differs between machines of one type: each sensor's level and spread (the spread never narrower than
the source's scaled by the machines' size ratio) and the sensor-health ranges. The threshold is raised, never
lowered, when the new group's held-out data asks for a higher one: hours of data do not show the score tail an
extreme quantile needs. See :mod:`linewatch.models.adapt`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from linewatch.core.config import AssetGroupConfig
from linewatch.ingest.labels import FaultLabel
from linewatch.models import detectors as _detectors  # noqa: F401  (registers every detector)
from linewatch.models.adapt import (
    adapted_calibration,
    adapted_scaling,
    covered_hours,
    related_levels,
    related_spreads,
)
from linewatch.models.base import DETECTORS, Detector, make_detector
from linewatch.models.bundle import write_bundle
from linewatch.models.calibration import Calibrator
from linewatch.models.holdout import AssetSplit, split_assets
from linewatch.models.model import Model
from linewatch.models.promotion import decide, holdout_metrics
from linewatch.models.quality import QualityReport, render_text, wandering_levels
from linewatch.models.registry import Registry
from linewatch.models.shift import compare_holdout
from linewatch.models.train_input import (
    ADVISED_TRAINING_S,
    SLOW_INPUTS_MIN_SPAN_S,
    Say,
    TrainingError,
    adapted_spec,
    choose_sensors,
    fingerprint,
    group_spec,
    quality_check,
    read_history,
    select_assets,
    takes_inputs,
    training_span_s,
    warn_span,
    window_spec,
)
from linewatch.models.window_labels import exclude_labelled, in_labels
from linewatch.models.windows import Preprocessor, Windows, WindowSpec, concat_windows

__all__ = [
    "ADVISED_TRAINING_S",
    "SLOW_INPUTS_MIN_SPAN_S",
    "TrainReport",
    "TrainingError",
    "adapted_spec",
    "describe",
    "fingerprint",
    "library_versions",
    "select_assets",
    "train_group",
    "training_span_s",
    "window_spec",
]

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    group: str
    assets: list[str]
    sensors: list[str]
    excluded: dict[str, str]
    quality_text: str
    metrics: dict[str, float]
    version: str | None = None
    promoted: bool = False
    decision: str = ""
    champion_metrics: dict[str, float] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _say_spreads(sized: Preprocessor, related: Preprocessor, source: Model, emit: Say) -> None:
    """Name the spreads the relations moved: an engineer checking an adapted model sees where the size ratio was
    not the sensor's size (an offset, a different transmitter range)."""
    moved = [
        f"{name} {a:.3g} -> {b:.3g}"
        for name, a, b in zip(related.sensors_, sized.stats.scale, related.stats.scale, strict=True)
        if abs(b / a - 1.0) > 0.05
    ]
    if moved:
        emit(
            f"spreads read off the relations between sensors of {source.group}/{source.version} on these hours, "
            f"not off the size ratio of levels: {', '.join(moved)}"
        )


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("linewatch", "numpy", "scipy", "polars", "pyarrow", "scikit-learn", "pyod", "torch", "tsfresh"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _scaling(
    per_asset: Sequence[AssetSplit],
    train_frames: Sequence[tuple[str, pl.DataFrame]],
    sensors: Sequence[str],
    spec: WindowSpec,
    labels: Sequence[FaultLabel],
    adapt_from: Model | None,
    emit: Say,
) -> Preprocessor:
    """The preprocessing the bundle carries, learned on the training segments themselves (without the look-back
    each frame carries); when adapting, moved onto the source model's relations (:mod:`linewatch.models.adapt`)."""
    own = [
        (a.asset, f.filter(pl.col("ts").dt.epoch("us") >= start))
        for a in per_asset
        for f, start in zip(a.train, a.train_starts, strict=True)
    ]
    train_wide = pl.concat([f for _, f in own])
    exclude = np.concatenate(
        [in_labels(f["ts"].to_numpy(), labels, asset, spec.length * spec.cadence_s) for asset, f in own]
    )
    pre = Preprocessor(spec).fit(train_wide, list(sensors), exclude=exclude)
    if adapt_from is None:
        return pre
    hours, fitted = covered_hours(pre), pre
    sized = adapted_scaling(fitted, adapt_from.preprocessor)
    hours_windows = [exclude_labelled(sized.transform(frame), labels, asset) for asset, frame in train_frames]
    seen = concat_windows([w.select(w.valid) for w in hours_windows])
    pre = adapted_scaling(fitted, adapt_from.preprocessor, spread=related_spreads(sized, adapt_from, seen))
    _say_spreads(sized, pre, adapt_from, emit)
    return related_levels(pre, adapt_from, hours, seen)


def _fit_detector(
    group: AssetGroupConfig,
    spec: WindowSpec,
    sensors: Sequence[str],
    report: QualityReport,
    train: Windows,
    clean: Windows,
    emit: Say,
) -> Detector:
    """A new detector fitted on the training windows; ``clean`` (no look-back into a labelled fault) fits the
    slow inputs, which would otherwise remember the fault as normal."""
    emit(f"training {group.detector.name} on {len(train):,} windows of {spec.length} steps x {len(sensors)} sensors")
    params: dict[str, Any] = dict(group.detector.params)
    if takes_inputs(group.detector.name):
        params.update(lag_inputs=bool(spec.lag_s), daily_inputs=spec.daily)
    kind = DETECTORS.get(group.detector.name)
    if kind is not None and kind.takes_wandering and "wandering" not in params:
        params["wandering"] = wandering_levels(report, list(sensors), group.training.wandering_level_p)
        if params["wandering"]:
            names = ", ".join(sensors[j] for j in params["wandering"])
            emit(
                f"group {group.name}: the level of {names} wanders over the training data and no other sensor "
                "explains it: kept, with room to wander as far again as normal (train on a longer history to "
                "learn it)"
            )
    detector = make_detector(group.detector.name, seed=group.training.seed, **params)
    detector.fit(train.X)
    if spec.history_steps and len(clean) >= 20:
        detector.fit_inputs(clean.X)
    return detector


def _held_out(
    holdout_frames: Sequence[tuple[str, pl.DataFrame]], pre: Preprocessor, labels: Sequence[FaultLabel], group: str
) -> Windows:
    """The held-out normal windows the threshold is calibrated on (at least 50)."""
    holdout_normal = []
    for asset, frame in holdout_frames:
        windows = exclude_labelled(pre.transform(frame), labels, asset)
        holdout_normal.append(windows.select(windows.valid))
    normal = [w for w in holdout_normal if len(w)]
    if not normal or sum(len(w) for w in normal) < 50:
        raise TrainingError(f"asset group {group!r}: fewer than 50 held-out normal windows to calibrate on")
    return concat_windows(normal)


def _calibrate(
    group: AssetGroupConfig,
    spec: WindowSpec,
    detector: Detector,
    scores: np.ndarray,
    adapt_from: Model | None,
    emit: Say,
) -> Calibrator:
    """The alarm threshold from the held-out scores; an adapted model's is raised, never lowered."""
    cal = group.calibration
    windows_per_week = 7 * 86400 / (spec.stride * spec.cadence_s)
    try:
        calibrator = Calibrator.fit(
            scores,
            quantile=cal.quantile,
            false_alarms_per_week=cal.false_alarms_per_week,
            windows_per_week=windows_per_week if cal.false_alarms_per_week is not None else None,
        )
    except ValueError as exc:  # e.g. a detector whose normal scores are not positive
        raise TrainingError(f"asset group {group.name!r}: cannot calibrate {detector.name}: {exc}") from exc
    if adapt_from is not None:
        calibrator = adapted_calibration(calibrator, adapt_from.calibrator)
        kept = calibrator is adapt_from.calibrator
        emit(f"threshold {'kept from' if kept else 'raised above that of'} {adapt_from.group}/{adapt_from.version}")
    return calibrator


def train_group(
    root: Path,
    group: AssetGroupConfig,
    registry: Registry,
    *,
    labels: Sequence[FaultLabel] = (),
    end: datetime | None = None,
    promote: str = "if_better",
    say: Say | None = None,
    adapt_from: Model | None = None,
) -> TrainReport:
    """Train, bundle and register a model for one asset group; promote per ``promote`` (if_better/always/never).

    With ``adapt_from``, the detector, window layout and threshold come from that model and only scaling and
    health ranges are learned here (the threshold may rise; see the module docstring).
    """
    emit = say or (lambda text: log.info("%s", text))
    assets, readings = read_history(root, group, end)
    emit(f"group {group.name}: {readings.height:,} readings of {len(assets)} assets ({', '.join(assets)})")
    span_s = warn_span(group, readings, adapt_from, emit)
    spec = group_spec(group, span_s, adapt_from, emit)
    report, usable, excluded = quality_check(readings, group, labels, adapt_from)
    sensors = choose_sensors(group, usable, excluded, adapt_from)
    quality_text = render_text(report, excluded)
    emit(quality_text)

    per_asset = split_assets(readings, assets, sensors, spec, group.training.holdout_fraction)
    train_frames = [(a.asset, f) for a in per_asset for f in a.train if f.height]
    if not train_frames:
        raise TrainingError(f"asset group {group.name!r}: no training data after the hold-out split")
    pre = _scaling(per_asset, train_frames, sensors, spec, labels, adapt_from, emit)
    train_parts, clean_parts = [], []
    for asset, frame in train_frames:
        windows = pre.transform(frame)
        windows = windows.select(windows.valid)
        train_parts.append(exclude_labelled(windows, labels, asset))
        clean_parts.append(exclude_labelled(windows, labels, asset, look_back=True))
    train = concat_windows([w for w in train_parts if len(w)] or train_parts)
    if len(train) < 20:
        raise TrainingError(f"asset group {group.name!r}: only {len(train)} usable training windows (need 20)")
    if adapt_from is not None:
        # Kept as trained, wandering levels included: only the scaling around it was relearned.
        detector = adapt_from.detector
    else:
        clean = concat_windows([w for w in clean_parts if len(w)] or clean_parts)
        detector = _fit_detector(group, spec, sensors, report, train, clean, emit)

    holdout_frames = [(a.asset, f) for a in per_asset for f in a.holdout if f.height]
    held = _held_out(holdout_frames, pre, labels, group.name)
    scores = detector.decision_function(held.X)
    calibrator = _calibrate(group, spec, detector, scores, adapt_from, emit)
    shift = compare_holdout(detector, train.X, held.X, scores, calibrator.threshold, sensors)
    if shift.shifted:
        emit(shift.message(group.name))
    model = Model(group=group.name, version="candidate", preprocessor=pre, detector=detector, calibrator=calibrator)
    metrics = holdout_metrics(model, holdout_frames, labels)
    metrics.update(shift.metrics())
    metrics.update(
        {
            "train_windows": float(len(train)),
            "calibration_windows": float(len(held)),
            "training_span_hours": span_s / 3600,
        }
    )
    out = TrainReport(group.name, assets, sensors, excluded, quality_text, metrics)
    manifest, tensors = model.to_bundle(
        {
            "assets": assets,
            "excluded_sensors": excluded,
            "quality": report.to_dict(),
            "feature_spec": None,
            "training": {
                "data_fingerprint": fingerprint(readings),
                "first_ts": str(readings["ts"].min()),
                "last_ts": str(readings["ts"].max()),
                "labels_used": len([lb for lb in labels if lb.asset in assets]),
                "seed": group.training.seed,
                "adapted_from": None
                if adapt_from is None
                else {"asset_group": adapt_from.group, "version": adapt_from.version},
            },
            "metrics": metrics,
            "library_versions": library_versions(),
        }
    )
    staging = registry.group_dir(group.name) / f".new-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    write_bundle(staging, manifest, tensors)
    out.version = registry.add(group.name, staging)
    out.promoted, out.decision, out.champion_metrics = decide(
        registry, group.name, out.sensors, out.metrics, holdout_frames, labels, promote
    )
    if out.promoted:
        registry.promote(group.name, out.version, reason=out.decision)
    return out


def describe(report: TrainReport) -> dict[str, Any]:
    """JSON-able summary for the CLI and logs."""
    return {
        "group": report.group,
        "version": report.version,
        "promoted": report.promoted,
        "decision": report.decision,
        "sensors": report.sensors,
        "excluded_sensors": report.excluded,
        "metrics": report.metrics,
        "champion_metrics": report.champion_metrics,
    }
