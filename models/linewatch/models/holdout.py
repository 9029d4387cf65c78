"""Which part of a training span is held out: the newest share of every cycle, not one newest block.

The held-out share is the newest part of every :data:`HOLDOUT_CYCLE_S` cycle of the span (for a span shorter
than two cycles: the newest share of the whole span), not one newest block. Why: the threshold is an extreme
quantile of held-out normal scores, so the held-out data must show every normal condition the model will meet.
One newest block of a one-day training run is six hours of one part of the day under whatever loads happened
then; on the simulated plant such a block scored far calmer than the rest of the day (pump windows: maximum
0.67 of the threshold held out vs 1.26 on the following days), the threshold came out too low and the
false-alert rate was ~20x the budget. Interleaved blocks cover the daily pattern and the spread of loads, and
the newest data is still held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from linewatch.ingest.reader import to_wide
from linewatch.models.windows import WindowSpec

#: Length of one train/hold-out cycle: its newest ``holdout_fraction`` is held out (1 h of every 4 h at 0.25).
HOLDOUT_CYCLE_S = 4 * 3600.0


@dataclass
class AssetSplit:
    """One asset's wide frames, cut into contiguous segments (windows never end in two segments).

    Each frame starts ``history_steps`` before its segment (the lag inputs' look-back, read from whatever came
    before); ``train_starts`` marks where each training segment itself begins.
    """

    asset: str
    train: list[pl.DataFrame]
    holdout: list[pl.DataFrame]
    train_starts: list[int]


def split_assets(
    readings: pl.DataFrame, assets: list[str], sensors: list[str], spec: WindowSpec, holdout_fraction: float
) -> list[AssetSplit]:
    """Each asset's readings on the cadence grid, cut by :func:`holdout_cycles` (assets without readings left out)."""
    out = []
    cadence_us = spec.cadence_us
    for asset in assets:
        mine = readings.filter(pl.col("asset") == asset)
        if mine.height == 0:
            continue
        epoch_us = mine["ts"].dt.epoch("us").to_numpy()
        first = int(epoch_us.min()) // cadence_us * cadence_us
        last = int(epoch_us.max()) // cadence_us * cadence_us
        wide = to_wide(mine, first, last, cadence_us, sensors=sensors, max_gap=spec.max_gap_steps)
        ts_us = wide["ts"].dt.epoch("us")
        lead = spec.history_steps * cadence_us
        train, holdout, starts = [], [], []
        for lo, cut, hi in holdout_cycles(first, last + cadence_us, holdout_fraction, cadence_us):
            train.append(wide.filter((ts_us >= lo - lead) & (ts_us < cut)))
            holdout.append(wide.filter((ts_us >= cut - lead) & (ts_us < hi)))
            starts.append(lo)
        out.append(AssetSplit(asset, train, holdout, starts))
    return out


def holdout_cycles(
    first_us: int, end_us: int, holdout_fraction: float, cadence_us: int, cycle_s: float = HOLDOUT_CYCLE_S
) -> list[tuple[int, int, int]]:
    """``(start, cut, end)`` per cycle of ``[first_us, end_us)``: train on ``[start, cut)``, hold out ``[cut, end)``.

    Whole cycles of about ``cycle_s`` (the span is divided evenly); a span shorter than two cycles is one cycle.
    Boundaries fall on the cadence grid.

    >>> holdout_cycles(0, 8 * 3600 * 10**6, 0.25, 10**6)
    [(0, 10800000000, 14400000000), (14400000000, 25200000000, 28800000000)]
    """
    span = end_us - first_us
    n = max(1, int(span // round(cycle_s * 1e6)))
    out = []
    for i in range(n):
        lo = first_us + span * i // n // cadence_us * cadence_us
        hi = end_us if i == n - 1 else first_us + span * (i + 1) // n // cadence_us * cadence_us
        cut = lo + int((hi - lo) * (1 - holdout_fraction)) // cadence_us * cadence_us
        out.append((lo, cut, hi))
    return out
