"""Windows against fault labels: which windows training must not see, and which label each window belongs to.

Training keeps normal data only, so every window that overlaps a label of its asset (faults *and* maintenance),
widened by a margin, is dropped; evaluation asks which label holds each window's last step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from linewatch.ingest.labels import FaultLabel
from linewatch.models.windows import Windows, to_us

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


def _label_us(when: datetime) -> int:
    return (when - _EPOCH) // _US


def in_labels(
    ts: npt.ArrayLike, labels: Sequence[FaultLabel], asset: str, margin_s: float = 0.0, span_us: int = 0
) -> npt.NDArray[np.bool_]:
    """True where ``[ts, ts + span_us)`` overlaps a label of ``asset`` widened by ``margin_s`` on both sides."""
    t = to_us(ts)
    hit = np.zeros(t.shape, dtype=bool)
    margin = round(margin_s * 1e6)
    for label in labels:
        if label.asset == asset:
            lo, hi = _label_us(label.start) - margin, _label_us(label.end) + margin
            hit |= (t < hi) & (t + max(span_us, 1) > lo)
    return hit


def exclude_labelled(
    windows: Windows,
    labels: Sequence[FaultLabel],
    asset: str,
    margin_s: float | None = None,
    *,
    look_back: bool = False,
) -> Windows:
    """Drop windows overlapping any label of ``asset`` (faults *and* maintenance): training sees normal data only.

    A window covers ``[end - (L-1)*cadence, end + cadence)``. ``margin_s`` widens every label on both sides
    (default: one window's duration), since degradation starts before anyone labels it and a machine settles
    after maintenance. ``look_back``: the window also covers its lag inputs' ``history_steps``, which remember a
    fault that long; the detector's own model is trained without that (excluding the cool-down after every
    fault raised false machine alerts on the simulated plant, seed 3: 3 -> 5 in a week), the model that reads
    the inputs with it (:meth:`linewatch.models.base.Detector.fit_inputs`).
    """
    spec = windows.spec
    steps = spec.length + (spec.history_steps if look_back else 0)
    margin = spec.length * spec.cadence_s if margin_s is None else margin_s
    starts = to_us(windows.end_ts) - (steps - 1) * spec.cadence_us
    hit = in_labels(starts, labels, asset, margin, span_us=steps * spec.cadence_us)
    return windows if not hit.any() else windows.select(~hit)


@dataclass(frozen=True, slots=True)
class WindowLabels:
    """Per-window ground truth for evaluation: ``index[i]`` points into ``labels`` (-1: normal)."""

    labels: tuple[FaultLabel, ...]
    index: npt.NDArray[np.int64]

    @property
    def kinds(self) -> npt.NDArray[np.str_]:
        names = np.array(["normal", *(lb.kind for lb in self.labels)])
        return names[self.index + 1]

    @property
    def is_fault(self) -> npt.NDArray[np.bool_]:
        """Machine or sensor fault (maintenance is neither normal nor a fault: evaluation may skip it)."""
        return np.isin(self.kinds, ["machine_fault", "sensor_fault"])


def label_windows(end_ts: npt.ArrayLike, labels: Sequence[FaultLabel], asset: str) -> WindowLabels:
    """Which label (of ``asset``) holds each window's last step; the latest-starting one where labels overlap."""
    t = to_us(end_ts)
    mine = tuple(sorted((lb for lb in labels if lb.asset == asset), key=lambda lb: lb.start))
    index = np.full(t.shape, -1, dtype=np.int64)
    for i, label in enumerate(mine):
        index[(t >= _label_us(label.start)) & (t < _label_us(label.end))] = i
    return WindowLabels(mine, index)
