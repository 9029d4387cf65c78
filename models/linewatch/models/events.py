"""Turning per-window decisions into alert episodes, and episodes into event-level metrics. Pure numpy.

Operators experience alerts, not windows: one fault should be one alert, and a false alarm is an alert that no
fault explains. These functions define both the same way for evaluation and for the serving alert policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Episode:
    start: int  # index of the first flagged window
    end: int  # index after the last flagged window


def episodes(flags: npt.ArrayLike, *, min_run: int = 1, merge_gap: int = 0) -> list[Episode]:
    """Runs of True of at least ``min_run`` windows; runs separated by at most ``merge_gap`` False are merged.

    >>> episodes([0, 1, 1, 0, 1, 1, 1], min_run=2)
    [Episode(start=1, end=3), Episode(start=4, end=7)]
    >>> episodes([1, 1, 0, 1, 1], min_run=2, merge_gap=1)
    [Episode(start=0, end=5)]
    """
    f = np.asarray(flags, dtype=bool)
    if f.size == 0:
        return []
    padded = np.concatenate([[False], f, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= merge_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    out = []
    for a, b in merged:
        if int(f[a:b].sum()) >= min_run:
            out.append(Episode(a, b))
    return out


def overlaps(ep_start_us: int, ep_end_us: int, spans_us: Sequence[tuple[int, int]]) -> int | None:
    """Index of the first span ``[lo, hi)`` that overlaps ``[ep_start_us, ep_end_us)``, else None."""
    for i, (lo, hi) in enumerate(spans_us):
        if ep_start_us < hi and ep_end_us > lo:
            return i
    return None


def ranked_sensors(contributions: npt.ArrayLike, flagged: npt.ArrayLike | None = None) -> npt.NDArray[np.int64]:
    """Sensor indices, most responsible first: by ``flagged`` (per sensor, the windows flagged unhealthy, or a
    bool), then by summed contribution.

    A failing sensor explains an anomaly better than any share the detector gives it, so health flags lead; and a
    sensor flagged through most of a fault outranks one flagged in a window or two of it, as in the sensor alert
    an operator sees (it lists the unhealthy sensors as they persist; a blip of two windows is under the 30 s a
    sensor alert waits for).
    """
    c = np.asarray(contributions, dtype=np.float64).sum(axis=0)
    key = c.copy()
    if flagged is not None:
        key = key + np.asarray(flagged, dtype=np.float64) * (c.sum() + 1.0) * 10
    return np.argsort(-key, kind="stable").astype(np.int64)
