"""Serving's scaled look-back per asset group, kept up to date bin by bin instead of rebuilt every tick.

A model with lag inputs reads ``history_steps`` bins before each window (30 minutes at 1 s: 1,800 bins per asset,
14 million numbers for 1,000 assets x 8 sensors). Gathering, filling and scaling all of them every tick was most
of a tick's scoring time, yet from one tick to the next only the newest bins change, and the few older ones that late
readings land in. :class:`Lookback` keeps the scaled look-back (:func:`~linewatch.serving.model_windows.scale_lookback`
of the filled bins) and each tick:

* drops the bins that left the look-back and recomputes, from the ring buffers, only the bins from the oldest one
  written since the last tick (a :class:`~linewatch.serving.buffers.ChangeTracker`) or the first new bin, with
  ``max_gap`` bins before them as the forward fill's context, so a late reading also refills the gap after it;
* rebuilds everything when the asset list changes, the clock goes backwards or jumps past the look-back, or a
  ring no longer holds a bin the look-back or its fill context needs (then the rebuilt look-back shows the bin as
  missing, as the full computation does).

Why exact and not approximate: a bin's filled value depends only on itself and the ``max_gap`` bins before it,
and scaling is per bin, so recomputing every bin from the oldest changed one gives bit for bit the array the full
computation builds (tested against it tick by tick, late readings and gaps included). The lag filter itself
still runs over the whole look-back each tick: it is one matrix-vector product (milliseconds).

Memory: one float64 array of ``(length + history) x assets x sensors`` per group plus a quarter for slack (145 MB
for the 1,000 x 8 x 1,810 above); the full computation allocated the look-back anew every tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from linewatch.models.windows import Preprocessor, Windows, WindowSpec
from linewatch.serving.buffers import (
    F64,
    I64,
    Bools,
    BufferSet,
    LatestWindows,
)
from linewatch.serving.model_windows import scale_lookback, windows_from_lookback


@dataclass(slots=True)
class LookbackStats:
    """How ticks were served (for tests and the benchmark): whole rebuilds and bins recomputed."""

    rebuilds: int = 0
    updates: int = 0
    bins_recomputed: int = 0


class Lookback:
    """The windows of one asset group's model for the assets asked, from ``buffers``, reusing unchanged bins."""

    def __init__(self, buffers: BufferSet, preprocessor: Preprocessor) -> None:
        self.buffers = buffers
        self.preprocessor = preprocessor
        self.spec: WindowSpec = preprocessor.spec
        self.steps = self.spec.length + self.spec.history_steps
        self.tail = max(self.spec.length, self.spec.max_gap_steps + 1)  # the window and the "recent" check
        self.stats = LookbackStats()
        self._tracker = buffers.track()
        #: Rows after the live look-back in its store: a copy back to the start every ``slack`` ticks.
        self.slack = max(64, self.steps // 4)
        self._assets: tuple[str, ...] | None = None
        self._end = 0
        self._store: F64 = np.empty((0, 0, 0))  # (steps + slack, assets, sensors); the live part starts at _at
        self._at = 0

    def windows(self, assets: Sequence[str], now_us: int) -> tuple[Windows, LatestWindows]:
        """Model windows of ``assets`` ending at the last bin over before ``now_us`` (as
        :meth:`BufferSet.latest_time_major` with ``now_us``), and the window's filled bins, time first (at least
        ``max_gap + 1`` of them, for the caller's "any recent reading" check)."""
        spec, buffers = self.spec, self.buffers
        max_gap = spec.max_gap_steps
        cad = buffers.cadence_us
        end = (now_us - cad) // cad
        rows = buffers.rows_of(assets)
        end_ts = np.full(rows.shape[0], end * cad, dtype=np.int64)
        if not spec.lag_s:  # nothing to keep: the window is all there is
            values, observed = buffers.filled_time_major(rows, end, max(self.steps, self.tail), max_gap)
            return self._model(values, observed, end_ts, None), LatestWindows(values, observed, end_ts)
        changed = self._tracker.take()
        first = self._first_to_compute(tuple(assets), rows, end, changed)
        start = end - self.steps + 1
        count = end - first + 1
        values, observed = buffers.filled_time_major(rows, end, max(count, self.tail), max_gap)
        scaled_new = scale_lookback(values[values.shape[0] - count :], self.preprocessor)
        if first == start:
            self._store = np.empty((self.steps + self.slack, *scaled_new.shape[1:]))
            self._at = 0
            self.stats.rebuilds += 1
        else:
            self._advance(end - self._end)
            self.stats.updates += 1
        live = self._store[self._at : self._at + self.steps]
        live[self.steps - count :] = scaled_new
        self.stats.bins_recomputed += count
        self._assets, self._end = tuple(assets), end
        return self._model(values, observed, end_ts, live), LatestWindows(values, observed, end_ts)

    def _advance(self, shift: int) -> None:
        """Move the live look-back ``shift`` bins on; the slack rows after it take new bins without copying the
        look-back (115 MB at 1,000 assets) every tick: only when they run out is it moved back to the start."""
        if self._at + shift + self.steps > self._store.shape[0]:
            keep = self.steps - shift
            self._store[:keep] = self._store[self._at + shift : self._at + self.steps]
            self._at = 0
        else:
            self._at += shift

    def _first_to_compute(self, assets: tuple[str, ...], rows: I64, end: int, changed: int | None) -> int:
        """The oldest bin to recompute: the look-back's start when it must be rebuilt."""
        start = end - self.steps + 1
        rebuild = (
            self._store.shape[0] == 0
            or assets != self._assets
            or end < self._end
            or end - self._end >= self.steps
            or self.buffers.lowest_held(rows) > start - self.spec.max_gap_steps
        )
        if rebuild:
            return start
        first = self._end + 1 if end > self._end else end + 1  # the first new bin (none: nothing new)
        if changed is not None:
            first = min(first, changed)
        return max(min(first, end), start)

    def _model(self, values: F64, observed: Bools, end_ts: I64, scaled: F64 | None) -> Windows:
        return windows_from_lookback(values, observed, end_ts, scaled, self.preprocessor, self.spec)
