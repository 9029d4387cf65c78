"""Whether a newly trained model replaces the champion: only if it is no worse on the same held-out data.

Both models score the identical held-out windows of the new training run (the champion's own held-out data may be
older or from other assets), so the comparison is like for like: event recall where faults are labelled, minus the
false-alarm rate on normal windows. An unusable champion (a sensor it needs is gone, its bundle is refused) is
replaced by a working model.

A candidate whose held-out hours differ from its training hours (:mod:`linewatch.models.shift`) does not replace a
champion that showed no such shift, whatever the comparison says. Why: its threshold rose to cover those hours, so
on them it raises no false alarm while the champion raises many, and the comparison would prefer the model that is
blind to weaker faults. A champion alarming on changed operation is loud and gets looked at; a blind replacement
is silent. ``--promote always`` still promotes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from linewatch.ingest.labels import FaultLabel
from linewatch.models.model import Model
from linewatch.models.registry import Registry
from linewatch.models.shift import warns
from linewatch.models.window_labels import label_windows


def holdout_metrics(
    model: Model, holdout: list[tuple[str, pl.DataFrame]], labels: Sequence[FaultLabel]
) -> dict[str, float]:
    """False-alarm rate on normal held-out windows and, where faults were labelled, event recall."""
    normal_alarms = normal_total = 0
    detected = faults = 0
    for asset, wide in holdout:
        windows = model.preprocessor.transform(wide)
        if len(windows) == 0:
            continue
        scored = model.score(windows)
        tagged = label_windows(windows.end_ts, labels, asset)
        alarm = (scored.anomaly_score >= 1.0) & scored.valid
        normal = tagged.index < 0
        normal_alarms += int(alarm[normal].sum())
        normal_total += int(normal.sum())
        for i, label in enumerate(tagged.labels):
            if label.kind in ("machine_fault", "sensor_fault") and (tagged.index == i).any():
                faults += 1
                detected += int(alarm[tagged.index == i].any())
    metrics = {"holdout_normal_windows": float(normal_total)}
    metrics["false_alarm_rate"] = normal_alarms / normal_total if normal_total else 0.0
    if faults:
        metrics["event_recall"] = detected / faults
        metrics["holdout_faults"] = float(faults)
    return metrics


def _shifted(metrics: object) -> bool:
    """Whether a model's training figures show a shifted hold-out; False for bundles saved without them."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("holdout_over_training_line"), int | float):
        return False
    ratio = metrics.get("threshold_over_training_line")
    over = float(metrics["holdout_over_training_line"])
    return warns(over, float(ratio) if isinstance(ratio, int | float) else math.nan)


def comparison_score(metrics: dict[str, float]) -> float:
    """One number for "no worse than the champion": recall (when faults are labelled) minus false-alarm rate."""
    return metrics.get("event_recall", 0.0) - metrics["false_alarm_rate"]


def decide(
    registry: Registry,
    group: str,
    sensors: list[str],
    metrics: dict[str, float],
    holdout: list[tuple[str, pl.DataFrame]],
    labels: Sequence[FaultLabel],
    promote: str,
) -> tuple[bool, str, dict[str, float] | None]:
    if promote == "never":
        return False, "not promoted (--promote never)", None
    if promote == "always" or registry.champion(group) is None:
        return True, "first model of the group" if promote != "always" else "promoted by request", None
    try:
        manifest, tensors, version = registry.load_champion(group)
        champion = Model.from_bundle(manifest, tensors, version)
        champion.check_sensors(sensors)
        champ_metrics = holdout_metrics(champion, holdout, labels)
    except Exception as exc:  # an unusable champion is replaced by a working model
        return True, f"champion unusable on this data ({type(exc).__name__}: {str(exc)[:120]})", None
    if _shifted(metrics) and not _shifted(manifest.get("metrics")):
        return (
            False,
            f"kept champion {version}: this model's held-out hours differ from the hours it trained on, and its "
            "threshold rose to cover them (see the warning above); promote it with --promote always",
            champ_metrics,
        )
    ours, theirs = comparison_score(metrics), comparison_score(champ_metrics)
    if ours >= theirs - 1e-12:
        return (
            True,
            f"no worse than champion {version} on the same held-out data ({ours:.4f} >= {theirs:.4f})",
            champ_metrics,
        )
    return (
        False,
        f"kept champion {version}: it is better on the same held-out data ({theirs:.4f} > {ours:.4f})",
        champ_metrics,
    )
