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

import fnmatch
import hashlib
import importlib.metadata
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from linewatch.core.config import AssetGroupConfig
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.reader import list_assets, scan_readings
from linewatch.models import detectors as _detectors  # noqa: F401  (registers every detector)
from linewatch.models.adapt import (
    adapted_calibration,
    adapted_scaling,
    covered_hours,
    related_levels,
    related_spreads,
)
from linewatch.models.base import DETECTORS, make_detector
from linewatch.models.bundle import write_bundle
from linewatch.models.calibration import Calibrator
from linewatch.models.holdout import split_assets
from linewatch.models.model import Model
from linewatch.models.promotion import decide, holdout_metrics
from linewatch.models.quality import (
    UsabilityRules,
    render_text,
    summarise,
    usable_sensors,
    wander_as_in,
    wandering_levels,
)
from linewatch.models.registry import Registry
from linewatch.models.shift import compare_holdout
from linewatch.models.window_labels import exclude_labelled, in_labels
from linewatch.models.windows import Preprocessor, WindowSpec, concat_windows

log = logging.getLogger(__name__)

#: Less training history than this gets a warning. Why: a threshold for "one false alert per week" is
#: extrapolated from the held-out scores, and a single day shows each daily condition and load combination once.
#: On the simulated plant (5 seeds, one week scored, budget 0.5) one day of training gave 0-1.62 false alerts per
#: asset-week (worst seed above the goal of 1), three days 0-0.81.
ADVISED_TRAINING_S = 3 * 86400.0
#: Lag and time-of-day inputs need this much history: slow inputs are learned from slow episodes (thermal
#: transients of tens of minutes, the day), and one day holds too few of them. Measured on a fault-free simulated
#: pump trained on one day: 14 % of the next days' windows above the held-out 99.9 % score with lag inputs, 10 %
#: without; with three days of training 0.5-0.6 % either way.
SLOW_INPUTS_MIN_SPAN_S = 2 * 86400.0

Say = Callable[[str], None]


class TrainingError(RuntimeError):
    """Training cannot produce a trustworthy model from this data; the message says what is missing."""


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


def window_spec(group: AssetGroupConfig, span_s: float = math.inf) -> WindowSpec:
    """The group's windows; derived inputs only for detectors that take them, from ``span_s`` >= 2 days of data."""
    w = group.window
    takes = _takes_inputs(group.detector.name) and span_s >= SLOW_INPUTS_MIN_SPAN_S
    return WindowSpec(
        cadence_s=group.cadence_s,
        length=w.length,
        stride=w.stride,
        max_gap_steps=w.max_gap_steps,
        min_observed_fraction=w.min_observed_fraction,
        lag_s=w.lag_s if takes else 0.0,
        daily=w.daily and takes,
        timezone=w.timezone,
    )


def adapted_spec(source: Model, group: AssetGroupConfig, emit: Say) -> WindowSpec:
    """The source's window layout on this group's clock: a detector that learnt the morning shift at 06:00 local
    time expects it at 06:00 on the new site's clock too."""
    spec = source.preprocessor.spec
    if spec.timezone != group.window.timezone:
        emit(
            f"the time of day is read on {group.window.timezone} (window.timezone of group {group.name}), the "
            f"source model's on {spec.timezone}: if this group is at the source's site, set window.timezone"
        )
    return replace(spec, timezone=group.window.timezone)


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


def _takes_inputs(detector: str) -> bool:
    cls = DETECTORS.get(detector)
    return cls is not None and cls.takes_inputs


def _unlabelled(readings: pl.DataFrame, labels: Sequence[FaultLabel]) -> pl.DataFrame:
    """The readings outside every labelled period: whether a level wanders is a question about normal operation,
    and a labelled fault (a bearing's vibration climbing for ten minutes) is not trained on either."""
    inside = pl.lit(False)
    for label in labels:
        inside = inside | (
            (pl.col("asset") == label.asset) & (pl.col("ts") >= label.start) & (pl.col("ts") < label.end)
        )
    return readings.filter(~inside)


def select_assets(available: Sequence[str], patterns: Sequence[str]) -> list[str]:
    return sorted(a for a in available if any(fnmatch.fnmatchcase(a, p) for p in patterns))


def fingerprint(frame: pl.DataFrame) -> str:
    """A cheap identity of the training data (same readings -> same fingerprint for one polars version)."""
    digest = hashlib.sha256()
    digest.update(str(frame.shape).encode())
    digest.update(str(int(frame.hash_rows(seed=0).sum())).encode() if frame.height else b"empty")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("linewatch", "numpy", "scipy", "polars", "pyarrow", "scikit-learn", "pyod", "torch", "tsfresh"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


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
    assets = select_assets(list_assets(root), group.assets)
    if not assets:
        raise TrainingError(f"asset group {group.name!r}: no stored asset matches {group.assets}")
    start = None if group.training.days is None or end is None else end - timedelta(days=group.training.days)
    readings = scan_readings(root, assets, start, end).collect()
    if readings.height == 0:
        raise TrainingError(f"asset group {group.name!r}: no readings in the selected period")
    if group.training.days is not None and end is None:
        newest = readings["ts"].max()
        assert isinstance(newest, datetime)
        readings = readings.filter(pl.col("ts") >= newest - timedelta(days=group.training.days))
    emit(f"group {group.name}: {readings.height:,} readings of {len(assets)} assets ({', '.join(assets)})")
    span_s = training_span_s(readings)
    if adapt_from is not None:
        emit(
            f"adapting model {adapt_from.group}/{adapt_from.version} ({adapt_from.detector.name}): its detector and "
            f"threshold are kept; sensor levels and spreads are learned from {span_s / 3600:.1f} h of this group"
        )
        if span_s < 86400:
            first, last = readings["ts"].min(), readings["ts"].max()
            assert isinstance(first, datetime) and isinstance(last, datetime)
            emit(
                f"warning: group {group.name}: {first:%H:%M}-{last:%H:%M} UTC is less than a day: a sensor that "
                "follows the day (a bearing's warmth) gets its level from those hours, and other hours may alarm; "
                "adapt from a full day where you can"
            )
    elif span_s < ADVISED_TRAINING_S:
        emit(
            f"warning: group {group.name}: the training data spans {span_s / 3600:.1f} h, less than the advised "
            f"{ADVISED_TRAINING_S / 86400:.0f} days; expect more false alarms than the budget until it is retrained "
            "on more history"
        )
    spec = window_spec(group, span_s) if adapt_from is None else adapted_spec(adapt_from, group, emit)
    wanted = (group.window.lag_s or group.window.daily) and _takes_inputs(group.detector.name)
    if adapt_from is None and wanted and span_s < SLOW_INPUTS_MIN_SPAN_S:
        emit(
            f"group {group.name}: no lag or time-of-day inputs: they need {SLOW_INPUTS_MIN_SPAN_S / 86400:.0f} days "
            "of history"
        )

    # The wandering-level rule asks whether these hours are long enough to learn a sensor's level. An adapted
    # model's levels come from the source's daily profile and relations instead, so the rule does not apply: on the
    # few hours adaptation is for, it would otherwise reject the bearing temperature the source needs.
    # For the same reason an adapted model keeps the source's detector as trained, wandering levels included.
    wander_p = group.training.max_unit_root_p if adapt_from is None else None
    wandering_p = group.training.wandering_level_p if adapt_from is None else None
    rules = UsabilityRules(max_unit_root_p=wander_p)
    wander_at = min((p for p in (wander_p, wandering_p) if p), default=None)
    report = summarise(readings, group.cadence_s, wander_p=wander_at)
    # Only a rule reads the wander tests; without one the report keeps the whole data's (one summary, not two).
    unlabelled = _unlabelled(readings, labels) if labels and wander_at is not None else readings
    if unlabelled.height and unlabelled.height < readings.height:
        report = wander_as_in(report, summarise(unlabelled, group.cadence_s, wander_p=wander_at))
    usable, excluded = usable_sensors(report, rules)
    if adapt_from is not None:
        sensors = list(adapt_from.sensors)
        missing = [s for s in sensors if s not in usable]
        if missing:
            why = "; ".join(f"{s}: {excluded.get(s, 'no readings')}" for s in missing)
            raise TrainingError(
                f"asset group {group.name!r} cannot adapt {adapt_from.group}/{adapt_from.version}: it needs "
                f"sensors this group lacks or cannot use ({why})"
            )
    elif group.sensors is not None:
        missing = [s for s in group.sensors if s not in usable]
        if missing:
            raise TrainingError(f"configured sensors unusable or absent: {', '.join(missing)} ({excluded})")
        sensors = list(group.sensors)
    else:
        sensors = sorted(usable)
    if not sensors:
        raise TrainingError(f"asset group {group.name!r}: no usable sensors ({excluded})")
    quality_text = render_text(report, excluded)
    emit(quality_text)

    per_asset = split_assets(readings, assets, sensors, spec, group.training.holdout_fraction)
    train_frames = [(a.asset, f) for a in per_asset for f in a.train if f.height]
    if not train_frames:
        raise TrainingError(f"asset group {group.name!r}: no training data after the hold-out split")
    # Scaling is learned on the training segments themselves, without the look-back each frame carries.
    own = [
        (a.asset, f.filter(pl.col("ts").dt.epoch("us") >= start))
        for a in per_asset
        for f, start in zip(a.train, a.train_starts, strict=True)
    ]
    train_wide = pl.concat([f for _, f in own])
    exclude = np.concatenate(
        [in_labels(f["ts"].to_numpy(), labels, asset, spec.length * spec.cadence_s) for asset, f in own]
    )
    pre = Preprocessor(spec).fit(train_wide, sensors, exclude=exclude)
    if adapt_from is not None:
        hours, fitted = covered_hours(pre), pre
        sized = adapted_scaling(fitted, adapt_from.preprocessor)
        hours_windows = [exclude_labelled(sized.transform(frame), labels, asset) for asset, frame in train_frames]
        seen = concat_windows([w.select(w.valid) for w in hours_windows])
        pre = adapted_scaling(fitted, adapt_from.preprocessor, spread=related_spreads(sized, adapt_from, seen))
        _say_spreads(sized, pre, adapt_from, emit)
        pre = related_levels(pre, adapt_from, hours, seen)

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
        detector = adapt_from.detector  # kept as trained: only the scaling around it was relearned
    else:
        emit(
            f"training {group.detector.name} on {len(train):,} windows of {spec.length} steps x {len(sensors)} sensors"
        )
        params: dict[str, Any] = dict(group.detector.params)
        if _takes_inputs(group.detector.name):
            params.update(lag_inputs=bool(spec.lag_s), daily_inputs=spec.daily)
        kind = DETECTORS.get(group.detector.name)
        if kind is not None and kind.takes_wandering and "wandering" not in params:
            params["wandering"] = wandering_levels(report, sensors, wandering_p)
            if params["wandering"]:
                names = ", ".join(sensors[j] for j in params["wandering"])
                emit(
                    f"group {group.name}: the level of {names} wanders over the training data and no other sensor "
                    "explains it: kept, with room to wander as far again as normal (train on a longer history to "
                    "learn it)"
                )
        detector = make_detector(group.detector.name, seed=group.training.seed, **params)
        detector.fit(train.X)
        clean = concat_windows([w for w in clean_parts if len(w)] or clean_parts)
        if spec.history_steps and len(clean) >= 20:
            detector.fit_inputs(clean.X)  # lag inputs that remember a labelled fault are not normal for it

    holdout_frames = [(a.asset, f) for a in per_asset for f in a.holdout if f.height]
    holdout_normal = []
    for asset, frame in holdout_frames:
        windows = exclude_labelled(pre.transform(frame), labels, asset)
        holdout_normal.append(windows.select(windows.valid))
    normal = [w for w in holdout_normal if len(w)]
    if not normal or sum(len(w) for w in normal) < 50:
        raise TrainingError(f"asset group {group.name!r}: fewer than 50 held-out normal windows to calibrate on")
    held = concat_windows(normal)
    scores = detector.decision_function(held.X)
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


def training_span_s(readings: pl.DataFrame) -> float:
    """Seconds from the oldest to the newest reading (0 for no readings)."""
    if readings.height == 0:
        return 0.0
    first, last = readings["ts"].min(), readings["ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    return (last - first).total_seconds()


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
