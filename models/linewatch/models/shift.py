"""Whether the held-out part of the training history looks like the part the detector learned from.

Why: the alarm threshold is an extreme quantile of held-out normal scores. Where the held-out hours sit outside
what the training hours showed (on a few hours of history, a bearing temperature still following the day's
warmth), the threshold rises to cover them, and the model is then blind to every fault weaker than that shift:
on the demo's six hours of history the calibrated thresholds ranged from 1.06 to 32 by start hour (README).
Nothing in the model says so, and a reliability engineer reading "trained, promoted" would trust it. So training
compares the two parts: the share of held-out windows that score above the training windows' own
:data:`TRAINING_LINE_QUANTILE` line (about 1 % where the two parts are alike) and the threshold in units of that
line. Either can show the shift: many held-out windows a little above the line, or a few far above it, which the
extreme-value tail then extrapolates (the demo's threshold of 32 came from 0.9 % of windows over the line). Where
the share is over :data:`SHIFT_WARN_SHARE` or the ratio over :data:`RATIO_WARN`, training warns and names the
sensors that carry the over-line windows' scores, so that the warning says what moved and what to do (train on
a longer history).

Measured (2026-12-01, default detector): three days of the simulated plant (seeds 0-2, every group) gave shares of
0.4-2.0 % and ratios of 1.9-4.8 (no warning); one day (seeds 0-4) warned for 1 of 15 trainings (a compressor, ratio
11.5); the demo's six hours from six start hours gave shares up to 14 % and ratios up to 27, and the warning fires
for 5 of its 18 trainings (3 of 6 compressor trainings, 2 of 6 pump trainings). On SKAB's 20 labelled files, with the
benchmark's split (fit on 300 s, calibrate on the next 100 s), it warns for 17 (`make evaluate` reports it per file),
14 of them led by the two temperature sensors whose wander causes nearly all of SKAB's false alarms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Detector

#: The training windows' score quantile held-out windows are compared with.
TRAINING_LINE_QUANTILE = 0.99
#: A share of held-out windows over the training line above this (ten times the 1 % expected) is a warning.
SHIFT_WARN_SHARE = 0.10
#: A threshold more than this many times the training line is a warning: twice the largest ratio three days of the
#: simulated plant gave (4.8); a fault must then move the score ten times as far as training's rare windows.
RATIO_WARN = 10.0
#: Training windows scored for the line, at most (evenly spaced): a quantile does not need every window.
MAX_LINE_WINDOWS = 20_000


@dataclass(frozen=True)
class HoldoutShift:
    """The comparison; ``sensors`` is empty unless :attr:`shifted`."""

    over_line: float  # share of held-out windows scoring above the training line
    threshold_ratio: float  # calibrated threshold / training line (NaN where the line is not positive)
    sensors: tuple[tuple[str, float], ...]  # (sensor, share of the over-line windows' score), largest first

    @property
    def shifted(self) -> bool:
        return warns(self.over_line, self.threshold_ratio)

    def message(self, group: str) -> str:
        """The warning ``linewatch train`` prints for a shifted hold-out (a line of plain text)."""
        named = ", ".join(f"{s} ({share:.0%})" for s, share in self.sensors[:3])
        ratio = ""
        if math.isfinite(self.threshold_ratio):
            ratio = f" and the threshold is {self.threshold_ratio:.1f}x that line"
            if self.threshold_ratio > RATIO_WARN:
                ratio += ", so weaker faults will not alarm"
        return (
            f"warning: group {group}: the held-out hours differ from the hours trained on: {self.over_line:.1%} of "
            f"their windows score above the training windows' {TRAINING_LINE_QUANTILE:.0%} line "
            f"({1 - TRAINING_LINE_QUANTILE:.0%} expected){ratio}"
            + (f"; their scores come from {named}" if named else "")
            + "; train on a longer history"
        )

    def metrics(self) -> dict[str, float]:
        """Figures for the bundle's metrics (floats only; no ratio where the line is not positive)."""
        out = {"holdout_over_training_line": self.over_line}
        if math.isfinite(self.threshold_ratio):
            out["threshold_over_training_line"] = self.threshold_ratio
        return out


def warns(over_line: float, threshold_ratio: float) -> bool:
    """Whether a hold-out this far from training gets a warning (NaN ratio: the share decides alone)."""
    return over_line > SHIFT_WARN_SHARE or (math.isfinite(threshold_ratio) and threshold_ratio > RATIO_WARN)


def threshold_ratio(threshold: float, line: float) -> float:
    """The threshold in units of the training line; NaN where the line is not positive (no unit to count in)."""
    return threshold / line if line > 0 else math.nan


def line_sample(n_windows: int) -> npt.NDArray[np.intp]:
    """Indices of the training windows scored for the line: all, or :data:`MAX_LINE_WINDOWS` evenly spaced."""
    if n_windows <= MAX_LINE_WINDOWS:
        return np.arange(n_windows, dtype=np.intp)
    return np.unique(np.linspace(0, n_windows - 1, MAX_LINE_WINDOWS).round().astype(np.intp))


def training_line(train_scores: npt.ArrayLike) -> float:
    """The training windows' :data:`TRAINING_LINE_QUANTILE` score."""
    scores = np.asarray(train_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise ValueError("no finite training score to draw the line from")
    return float(np.quantile(scores, TRAINING_LINE_QUANTILE))


def holdout_shift(
    line: float,
    held_scores: npt.ArrayLike,
    threshold: float,
    over_shares: npt.ArrayLike | None = None,
    sensors: Sequence[str] = (),
) -> HoldoutShift:
    """Compare held-out scores with the training ``line``.

    ``over_shares`` are the per-sensor shares ``(n_over, S)`` of the held-out windows scoring above the line, in
    their order (computed only where the caller needs the names: see :attr:`HoldoutShift.shifted`); each window
    counts by its score, as in a segment's attribution.
    """
    held = np.asarray(held_scores, dtype=np.float64)
    held = held[np.isfinite(held)]
    if held.size == 0:
        raise ValueError("no finite held-out score to compare")
    over = held > line
    share = float(over.mean())
    ratio = threshold_ratio(threshold, line)
    named: tuple[tuple[str, float], ...] = ()
    if over_shares is not None and warns(share, ratio):
        shares = np.asarray(over_shares, dtype=np.float64)
        if shares.shape != (int(over.sum()), len(sensors)):
            raise ValueError(f"over_shares shaped {shares.shape}, expected ({int(over.sum())}, {len(sensors)})")
        total = (np.nan_to_num(shares) * held[over][:, None]).sum(axis=0)
        if total.sum() > 0:
            total = total / total.sum()
            order = np.argsort(-total, kind="stable")
            named = tuple((sensors[j], float(total[j])) for j in order if total[j] > 0)
    return HoldoutShift(share, ratio, named)


def compare_holdout(
    detector: Detector,
    train_X: npt.NDArray[np.float32],
    held_X: npt.NDArray[np.float32],
    held_scores: npt.NDArray[np.float64],
    threshold: float,
    sensors: Sequence[str],
) -> HoldoutShift:
    """:func:`holdout_shift` for a fitted detector: scores a sample of the training windows for the line and,
    where the hold-out is shifted, attributes the held-out windows above it."""
    line = training_line(detector.decision_function(train_X[line_sample(len(train_X))]))
    over = held_scores > line
    ratio = threshold_ratio(threshold, line)
    shares = detector.contributions(held_X[over]) if warns(float(over.mean()), ratio) and over.any() else None
    return holdout_shift(line, held_scores, threshold, shares, sensors)
