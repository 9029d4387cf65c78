"""The kept look-back gives, tick after tick, bit for bit the windows the full computation gives.

Each scenario replays readings tick by tick into one :class:`BufferSet` and compares :class:`Lookback` with
``latest_time_major`` + ``to_model_windows`` (what serving computed every tick before) on the same buffers:
readings arriving a bin or two late, a gateway delivering minutes late into a gap, silent stretches longer than
the fill bound, a clock that stands still, jumps past the look-back or goes back, an asset joining.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.serving.test_buffers import SENSORS, T0, fitted, long_frame

from linewatch.models.windows import WindowSpec
from linewatch.serving.buffers import BufferSet, capacity_for
from linewatch.serving.lookback import Lookback
from linewatch.serving.model_windows import to_model_windows

S = 1_000_000
Row = tuple[int, str, str, float]
SPEC = WindowSpec(1.0, length=6, max_gap_steps=3, lag_s=10.0, daily=True)  # 20 bins of look-back


def _full(buffers: BufferSet, assets: list[str], now_us: int, lookback: Lookback) -> tuple[np.ndarray, ...]:
    spec = lookback.spec
    latest = buffers.latest_time_major(assets, spec.length + spec.history_steps, spec.max_gap_steps, now_us=now_us)
    w = to_model_windows(latest.values, latest.observed, latest.end_ts, lookback.preprocessor, spec, time_major=True)
    return w.X, w.mask, w.raw, w.coverage, latest.observed[-(spec.max_gap_steps + 1) :]


def _kept(lookback: Lookback, assets: list[str], now_us: int) -> tuple[np.ndarray, ...]:
    w, latest = lookback.windows(assets, now_us)
    return w.X, w.mask, w.raw, w.coverage, latest.observed[-(lookback.spec.max_gap_steps + 1) :]


def _readings(rng: np.random.Generator, asset: str, second: int, *, delay: int = 0) -> list[Row]:
    """One second's readings of ``asset`` (some sensors silent at random), ``delay`` seconds in the past."""
    rows = []
    for sensor in SENSORS:
        if rng.random() < 0.2:
            continue
        offset = int(rng.integers(0, S))
        rows.append((T0 + (second - delay) * S + offset, asset, sensor, round(float(rng.normal(50, 10)) * 64) / 64))
    return rows


@pytest.mark.parametrize(("seed", "slack"), [(0, None), (1, None), (2, 1), (3, 5)])
def test_kept_look_back_equals_the_full_computation_tick_by_tick(seed: int, slack: int | None) -> None:
    """``slack``: rows for new bins before the look-back moves back in its store (small: it moves often)."""
    rng = np.random.default_rng(seed)
    pre = fitted(SPEC, rng)
    assert SPEC.history_steps == 20
    buffers = BufferSet(SENSORS, 1.0, capacity_for(SPEC))
    lookback = Lookback(buffers, pre)
    lookback.slack = slack or lookback.slack
    assets = ["a", "b", "c"]
    silent: dict[str, range] = {"b": range(40, 52)}  # longer than the fill bound
    held: list[Row] = []  # a gateway's readings, delivered late in one burst
    clock = 0
    for tick in range(120):
        step = {30: 0, 31: 0, 70: 45, 90: -3}.get(tick, 1)  # stand still, jump past the look-back, go back
        clock += step
        batch = []
        for asset in assets:
            if clock in silent.get(asset, ()):
                continue
            rows = _readings(rng, asset, clock)
            if asset == "c" and 55 <= clock < 62:
                held.extend(rows)
                continue
            batch.extend(rows)
            if rng.random() < 0.3:  # a reading one or two bins late
                batch.extend(_readings(rng, asset, clock, delay=int(rng.integers(1, 3)))[:1])
        if clock == 64:
            batch.extend(held)  # seven seconds of c, into its gap
        if tick == 100:
            assets = [*assets, "d"]  # a new asset joins
        if batch:
            buffers.add(long_frame(batch))
        now_us = T0 + (clock + 2) * S
        want, got = _full(buffers, assets, now_us, lookback), _kept(lookback, assets, now_us)
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=f"tick {tick}")
    # Most ticks recomputed a few bins; the clock's jumps and the new asset rebuilt all of them.
    stats = lookback.stats
    assert stats.updates >= 100 and 3 <= stats.rebuilds <= 8, stats
    assert stats.bins_recomputed < 0.4 * 120 * (SPEC.length + SPEC.history_steps), stats


def test_without_lag_inputs_the_window_is_computed_afresh() -> None:
    spec = WindowSpec(1.0, length=6, max_gap_steps=2)
    rng = np.random.default_rng(5)
    pre = fitted(spec, rng)
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec))
    lookback = Lookback(buffers, pre)
    buffers.add(long_frame([r for s in range(30) for r in _readings(rng, "a", s)]))
    now_us = T0 + 31 * S
    w, latest = lookback.windows(["a", "never-seen"], now_us)
    full = buffers.latest_time_major(["a", "never-seen"], spec.length, spec.max_gap_steps, now_us=now_us)
    want = to_model_windows(full.values, full.observed, full.end_ts, pre, time_major=True)
    np.testing.assert_array_equal(w.X, want.X)
    np.testing.assert_array_equal(w.mask, want.mask)
    assert lookback.stats.rebuilds == lookback.stats.updates == 0
    assert not latest.observed[:, 1].any()


def test_a_ring_that_lost_a_look_back_bin_is_rebuilt() -> None:
    """Readings far ahead of the clock lap the ring: the look-back must then show those bins as missing."""
    rng = np.random.default_rng(6)
    pre = fitted(SPEC, rng)
    buffers = BufferSet(SENSORS, 1.0, capacity_for(SPEC, max_future_s=0.0, margin=0))
    lookback = Lookback(buffers, pre)
    buffers.add(long_frame([r for s in range(40) for r in _readings(rng, "a", s)]))
    now_us = T0 + 41 * S
    lookback.windows(["a"], now_us)
    buffers.add(long_frame(_readings(rng, "a", 50)))  # ten bins ahead of the clock: the oldest bins are overwritten
    want, got = _full(buffers, ["a"], now_us, lookback), _kept(lookback, ["a"], now_us)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)
    assert lookback.stats.rebuilds == 2
