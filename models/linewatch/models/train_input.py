"""What training reads: an asset group's stored history, what its span allows, and the sensors fit to learn from.

Kept apart from :mod:`linewatch.models.train` (fitting, calibration, registry) because these are the decisions an
engineer checks first when a model surprises them: which readings were used, what the span warned of, which
sensors the data-quality report left out and why. Every refusal is a :class:`TrainingError` whose message says
what is missing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from linewatch.core.config import AssetGroupConfig
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.reader import list_assets, scan_readings
from linewatch.models.base import DETECTORS
from linewatch.models.model import Model
from linewatch.models.quality import QualityReport, UsabilityRules, summarise, usable_sensors, wander_as_in
from linewatch.models.windows import WindowSpec

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


def select_assets(available: Sequence[str], patterns: Sequence[str]) -> list[str]:
    return sorted(a for a in available if any(fnmatch.fnmatchcase(a, p) for p in patterns))


def read_history(root: Path, group: AssetGroupConfig, end: datetime | None) -> tuple[list[str], pl.DataFrame]:
    """The group's assets and their readings over ``training.days`` up to ``end`` (the newest reading without one)."""
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
    return assets, readings


def training_span_s(readings: pl.DataFrame) -> float:
    """Seconds from the oldest to the newest reading (0 for no readings)."""
    if readings.height == 0:
        return 0.0
    first, last = readings["ts"].min(), readings["ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    return (last - first).total_seconds()


def warn_span(group: AssetGroupConfig, readings: pl.DataFrame, adapt_from: Model | None, emit: Say) -> float:
    """Say what the history's span allows (short training, adapting from less than a day); returns the span."""
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
    return span_s


def takes_inputs(detector: str) -> bool:
    """Whether the detector reads derived inputs (lag, time of day) after the sensors."""
    cls = DETECTORS.get(detector)
    return cls is not None and cls.takes_inputs


def window_spec(group: AssetGroupConfig, span_s: float = math.inf) -> WindowSpec:
    """The group's windows; derived inputs only for detectors that take them, from ``span_s`` >= 2 days of data."""
    w = group.window
    takes = takes_inputs(group.detector.name) and span_s >= SLOW_INPUTS_MIN_SPAN_S
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


def group_spec(group: AssetGroupConfig, span_s: float, adapt_from: Model | None, emit: Say) -> WindowSpec:
    """The windows training uses: the group's own, or the adapted source's; says when slow inputs are left out."""
    spec = window_spec(group, span_s) if adapt_from is None else adapted_spec(adapt_from, group, emit)
    wanted = (group.window.lag_s or group.window.daily) and takes_inputs(group.detector.name)
    if adapt_from is None and wanted and span_s < SLOW_INPUTS_MIN_SPAN_S:
        emit(
            f"group {group.name}: no lag or time-of-day inputs: they need {SLOW_INPUTS_MIN_SPAN_S / 86400:.0f} days "
            "of history"
        )
    return spec


def _unlabelled(readings: pl.DataFrame, labels: Sequence[FaultLabel]) -> pl.DataFrame:
    """The readings outside every labelled period: whether a level wanders is a question about normal operation,
    and a labelled fault (a bearing's vibration climbing for ten minutes) is not trained on either."""
    inside = pl.lit(False)
    for label in labels:
        inside = inside | (
            (pl.col("asset") == label.asset) & (pl.col("ts") >= label.start) & (pl.col("ts") < label.end)
        )
    return readings.filter(~inside)


def quality_check(
    readings: pl.DataFrame, group: AssetGroupConfig, labels: Sequence[FaultLabel], adapt_from: Model | None
) -> tuple[QualityReport, list[str], dict[str, str]]:
    """The data-quality report, the usable sensors and, for the rest, why they were left out.

    The wandering-level rule asks whether these hours are long enough to learn a sensor's level. An adapted
    model's levels come from the source's daily profile and relations instead, so the rule does not apply: on the
    few hours adaptation is for, it would otherwise reject the bearing temperature the source needs.
    """
    wander_p = group.training.max_unit_root_p if adapt_from is None else None
    wandering_p = group.training.wandering_level_p if adapt_from is None else None
    wander_at = min((p for p in (wander_p, wandering_p) if p), default=None)
    report = summarise(readings, group.cadence_s, wander_p=wander_at)
    # Only a rule reads the wander tests; without one the report keeps the whole data's (one summary, not two).
    unlabelled = _unlabelled(readings, labels) if labels and wander_at is not None else readings
    if unlabelled.height and unlabelled.height < readings.height:
        report = wander_as_in(report, summarise(unlabelled, group.cadence_s, wander_p=wander_at))
    usable, excluded = usable_sensors(report, UsabilityRules(max_unit_root_p=wander_p))
    return report, usable, excluded


def choose_sensors(
    group: AssetGroupConfig, usable: Sequence[str], excluded: dict[str, str], adapt_from: Model | None
) -> list[str]:
    """The adapted source's sensors, the configured ones, or every usable one; refuses what cannot be had."""
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
    return sensors


def fingerprint(frame: pl.DataFrame) -> str:
    """A cheap identity of the training data (same readings -> same fingerprint for one polars version)."""
    digest = hashlib.sha256()
    digest.update(str(frame.shape).encode())
    digest.update(str(int(frame.hash_rows(seed=0).sum())).encode() if frame.height else b"empty")
    return digest.hexdigest()
