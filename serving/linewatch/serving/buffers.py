"""Ring buffers of recent binned readings, so serving scores every asset's latest window with a few numpy calls.

Re-reading and pivoting each asset's readings with polars every tick costs milliseconds per asset; at a thousand
assets scored every second on one core that is far too slow. Instead every asset owns a fixed number of slots on
the model's cadence grid and each tick only scatters the new readings into them.

* **Bins** are epoch-aligned like :func:`linewatch.ingest.reader.to_wide`: bin ``k`` holds readings with
  ``k * cadence_us <= ts_us < (k + 1) * cadence_us``. A slot keeps per sensor the sum and the count of its
  readings, so several readings in one bin average exactly as ``to_wide``'s mean does.
* **Slots** form a ring: bin ``k`` lives in slot ``k % capacity`` and each slot records which bin it holds, so a
  slot left over from an older lap reads as empty rather than as stale data.
* The ring covers the ``capacity`` bins ending at the asset's **newest bin** (newest reading seen). A reading in
  an older bin is dropped and counted in ``late_dropped``; a batch that advances the newest bin is applied
  first, so old rows in that same batch are judged against the new range.
* **Future readings**: when ``add`` is given ``now_us``, readings more than ``max_future_s`` beyond it are
  dropped (``future_dropped``), since one reading from a wrong clock would otherwise move the ring far ahead and
  turn every correct reading into a late one. Ingest already refuses such timestamps; this is a safety net.
  Without ``now_us`` no reading is judged to be in the future.
* Non-finite values (ingest refuses them) and sensors the model does not use are ignored and counted.
* **Memory is bounded**: ``capacity`` slots per asset and at most ``max_assets`` assets; readings of further
  assets are refused and counted (``refused_readings``).

:meth:`BufferSet.latest` cuts the same windows as ``to_wide`` + :func:`linewatch.models.windows.make_windows` on
the same readings (tested for equality), and :func:`linewatch.serving.model_windows.to_model_windows` turns them
into the
:class:`~linewatch.models.windows.Windows` that ``Preprocessor.transform`` would build.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from linewatch.models.windows import WindowSpec

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
#: Newest bin of an asset that has no reading yet (far below any real bin, yet safe from overflow).
_EMPTY: Final = np.iinfo(np.int64).min // 4
DEFAULT_MAX_ASSETS: Final = 10_000
DEFAULT_MAX_FUTURE_S: Final = 60.0
#: Slots beyond ``length + max_gap`` in :func:`capacity_for`: room for the newest bin to run ahead of the window
#: end (the bin being filled now, readings up to ``max_future_s`` ahead) without evicting the window's start.
DEFAULT_MARGIN: Final = 4
_INITIAL_ROWS: Final = 64


def capacity_for(spec: WindowSpec, *, max_future_s: float = DEFAULT_MAX_FUTURE_S, margin: int = DEFAULT_MARGIN) -> int:
    """Slots per asset so that :meth:`BufferSet.latest` of ``spec``'s window never needs an evicted bin."""
    ahead = int(np.ceil(max_future_s / spec.cadence_s))
    return spec.length + spec.history_steps + spec.max_gap_steps + ahead + margin


@dataclass(slots=True)
class BufferStats:
    """Counters since the buffer set was created (a metrics module exports them as ``_total`` counters)."""

    readings_added: int = 0
    late_dropped: int = 0
    future_dropped: int = 0
    invalid_dropped: int = 0
    other_sensor: int = 0
    refused_readings: int = 0


@dataclass(frozen=True, slots=True)
class AssetBuffer:
    """A copy of one asset's ring in time order, oldest bin first (for inspection and tests)."""

    asset: str
    bins_us: I64  # (C,) bin starts in epoch µs
    values: F64  # (C, S) bin means, NaN where nothing was observed
    observed: Bools  # (C, S)
    newest_ts_us: int


class LatestWindows(NamedTuple):
    """Latest windows of several assets; ``values`` are filled forward within ``max_gap`` (else NaN).

    A named tuple, so ``values, observed, end_ts = buffers.latest(...)`` works.
    """

    values: F64  # (n, L, S)
    observed: Bools  # (n, L, S)
    end_ts: I64  # (n,) start of each window's last bin, epoch µs


class BufferSet:
    """Per-asset ring buffers of bin sums and counts for a fixed, ordered list of sensors (the model's)."""

    def __init__(
        self,
        sensors: Sequence[str],
        cadence_s: float,
        capacity: int,
        *,
        max_assets: int = DEFAULT_MAX_ASSETS,
        max_future_s: float = DEFAULT_MAX_FUTURE_S,
    ) -> None:
        if not sensors or len(set(sensors)) != len(sensors):
            raise ValueError("sensors must be a non-empty list of distinct names")
        if capacity < 1 or max_assets < 1 or max_future_s < 0:
            raise ValueError("capacity and max_assets must be >= 1 and max_future_s >= 0")
        self.sensors: tuple[str, ...] = tuple(sensors)
        self.cadence_us = WindowSpec(cadence_s, 1).cadence_us  # validates the cadence like the model does
        self.capacity = capacity
        self.max_assets = max_assets
        self.max_future_us = round(max_future_s * 1e6)
        self.stats = BufferStats()
        self._sensor_index = {name: i for i, name in enumerate(self.sensors)}
        self._rows: dict[str, int] = {}
        self._names: list[str] = []
        self._warned_full = False
        self._trackers: list[ChangeTracker] = []
        self._alloc(0)

    # ------------------------------------------------------------------------------------------------ storage

    def _alloc(self, rows: int) -> None:
        n_s, cap = len(self.sensors), self.capacity
        self._sums = np.zeros((rows, cap, n_s), dtype=np.float64)
        self._counts = np.zeros((rows, cap, n_s), dtype=np.int32)
        self._slot_bin = np.full((rows, cap), _EMPTY, dtype=np.int64)
        self._head = np.full(rows, _EMPTY, dtype=np.int64)
        self._newest = np.full(rows, _EMPTY, dtype=np.int64)

    def _grow(self, needed: int) -> None:
        old = self._head.shape[0]
        if needed <= old:
            return
        new = min(self.max_assets, max(needed, 2 * old, _INITIAL_ROWS))
        sums, counts, slot_bin, head, newest = self._sums, self._counts, self._slot_bin, self._head, self._newest
        self._alloc(new)
        self._sums[:old], self._counts[:old], self._slot_bin[:old] = sums, counts, slot_bin
        self._head[:old], self._newest[:old] = head, newest

    def _rows_for(self, names: list[str]) -> dict[str, int]:
        """Rows of ``names``, registering new assets while there is room; refused names map to -1."""
        fresh = [n for n in names if n not in self._rows]
        room = self.max_assets - len(self._names)
        if len(fresh) > room and not self._warned_full:
            log.warning("buffer holds %s assets, the limit; readings of further assets are refused", self.max_assets)
            self._warned_full = True
        for name in fresh[: max(room, 0)]:
            self._rows[name] = len(self._names)
            self._names.append(name)
        self._grow(len(self._names))
        return {n: self._rows.get(n, -1) for n in names}

    # ------------------------------------------------------------------------------------------------ writing

    def add(self, long: pl.DataFrame, *, now_us: int | None = None) -> int:
        """Scatter long readings (``ts``, ``asset``, ``sensor``, ``value``; more columns ignored) into the rings.

        Returns how many readings were stored; the others are counted in :attr:`stats` (see the module doc).
        """
        if long.height == 0:
            return 0
        assets = long.get_column("asset").unique(maintain_order=True).to_list()
        rows_of = self._rows_for(assets)
        coded = long.select(
            pl.col("ts").dt.epoch("us").alias("ts"),
            pl.col("asset").replace_strict(rows_of, default=-1, return_dtype=pl.Int64).alias("row"),
            pl.col("sensor").replace_strict(self._sensor_index, default=-1, return_dtype=pl.Int64).alias("col"),
            pl.col("value").cast(pl.Float64),
        )
        ts = coded.get_column("ts").to_numpy().astype(np.int64, copy=False)
        row = coded.get_column("row").to_numpy().astype(np.int64, copy=False)
        col = coded.get_column("col").to_numpy().astype(np.int64, copy=False)
        value = coded.get_column("value").to_numpy().astype(np.float64, copy=False)
        stats = self.stats
        refused, other = row < 0, col < 0
        stats.refused_readings += int(refused.sum())
        stats.other_sensor += int((other & ~refused).sum())
        keep = ~refused & ~other
        finite = np.isfinite(value)
        stats.invalid_dropped += int((keep & ~finite).sum())
        keep &= finite
        if now_us is not None:
            future = ts > now_us + self.max_future_us
            stats.future_dropped += int((keep & future).sum())
            keep &= ~future
        ts, row, col, value = ts[keep], row[keep], col[keep], value[keep]
        if ts.size == 0:
            return 0
        k = ts // self.cadence_us
        np.maximum.at(self._head, row, k)
        np.maximum.at(self._newest, row, ts)
        late = k <= self._head[row] - self.capacity
        stats.late_dropped += int(late.sum())
        if late.any():
            k, row, col, value = k[~late], row[~late], col[~late], value[~late]
        slot = k % self.capacity
        stale = self._slot_bin[row, slot] != k
        if stale.any():  # first reading of this bin: the slot still holds a bin from an older lap (or nothing)
            r, s = row[stale], slot[stale]
            self._sums[r, s] = 0.0
            self._counts[r, s] = 0
            self._slot_bin[r, s] = k[stale]
        np.add.at(self._sums, (row, slot, col), value)
        np.add.at(self._counts, (row, slot, col), 1)
        stats.readings_added += int(k.size)
        if self._trackers:
            oldest = int(k.min())
            for tracker in self._trackers:
                tracker.mark(oldest)
        return int(k.size)

    def track(self) -> ChangeTracker:
        """A tracker of the oldest bin written from now on (for caches of derived data, e.g. the look-back)."""
        tracker = ChangeTracker()
        self._trackers.append(tracker)
        return tracker

    # ------------------------------------------------------------------------------------------------ reading

    def assets(self) -> list[str]:
        """Assets with a ring, in the order they were first seen."""
        return list(self._names)

    def __contains__(self, asset: object) -> bool:
        return asset in self._rows

    def newest_ts(self, asset: str) -> int | None:
        """Timestamp (epoch µs) of the newest reading stored for ``asset``; ``None`` if none was."""
        row = self._rows.get(asset)
        if row is None or self._newest[row] == _EMPTY:
            return None
        return int(self._newest[row])

    def snapshot(self, asset: str) -> AssetBuffer:
        """Copy of ``asset``'s ring, oldest bin first, ending at its newest bin."""
        row = self._rows[asset]
        newest = int(self._newest[row])
        if newest == _EMPTY:
            raise KeyError(f"no readings stored for asset {asset!r}")
        values, observed = self._gather(np.array([row]), np.array([self._head[row]]), self.capacity)
        bins = (self._head[row] - self.capacity + 1 + np.arange(self.capacity)) * self.cadence_us
        return AssetBuffer(asset, bins.astype(np.int64), values[:, 0], observed[:, 0], newest)

    def rows_of(self, assets: Sequence[str]) -> I64:
        """Each asset's ring row, -1 for an asset without one."""
        return np.array([self._rows.get(a, -1) for a in assets], dtype=np.int64)

    def lowest_held(self, rows: I64) -> int:
        """The oldest bin that every ring of ``rows`` still holds (older bins may have been overwritten)."""
        known = rows[rows >= 0]
        heads = self._head[known]
        heads = heads[heads != _EMPTY]
        return int(heads.max()) - self.capacity + 1 if heads.size else _EMPTY

    def filled_time_major(self, rows: I64, end_bin: int, steps: int, max_gap: int) -> tuple[F64, Bools]:
        """The ``steps`` bins ending at ``end_bin`` of ``rows``, time first, filled forward within ``max_gap``
        with the bins before them as context: what :meth:`latest_time_major` returns for those bins."""
        values, observed = self._gather(rows, np.full(rows.shape[0], end_bin, dtype=np.int64), steps + max_gap)
        _fill_time_major(values, observed, max_gap)
        return values[max_gap:], observed[max_gap:]

    def _gather(self, rows: I64, end_bins: I64, steps: int) -> tuple[F64, Bools]:
        """Bin means ``(steps, n, S)``, time first, NaN where unobserved, for the bins ending at ``end_bins``.

        Rows of unknown assets (-1) come back empty. Time-major order keeps the forward fill's per-step numpy
        calls on contiguous memory (accumulating along a middle axis is several times slower).
        """
        n_s = len(self.sensors)
        if self._slot_bin.size == 0:  # no asset stored yet: every requested window is empty
            shape = (steps, rows.shape[0], n_s)
            return np.full(shape, np.nan), np.zeros(shape, dtype=bool)
        bins = end_bins[None, :] - (steps - 1) + np.arange(steps)[:, None]  # (T, n)
        slots = bins % self.capacity
        flat = (np.maximum(rows, 0)[None, :] * self.capacity + slots).ravel()
        known = np.broadcast_to(rows >= 0, bins.shape)
        held = (self._slot_bin.ravel()[flat] == bins.ravel()) & known.ravel()
        counts = np.take(self._counts.reshape(-1, n_s), flat, axis=0)
        counts[~held] = 0
        observed = counts > 0
        means = np.take(self._sums.reshape(-1, n_s), flat, axis=0)  # a copy: divided in place into bin means
        np.divide(means, counts, out=means, where=observed)
        means[~observed] = np.nan
        shape = (steps, rows.shape[0], n_s)
        return means.reshape(shape), observed.reshape(shape)

    def latest(self, assets: Sequence[str], length: int, max_gap: int, now_us: int | None = None) -> LatestWindows:
        """The last ``length`` bins of each of ``assets``, filled forward for at most ``max_gap`` bins.

        Without ``now_us`` a window ends at the asset's newest bin holding a reading, which may still be filling
        (use it on complete data: tests, replay); an asset without readings raises ``KeyError``. With ``now_us``
        every window ends at the bin containing ``now_us - cadence``, the newest bin that is over, so a silent
        asset's window moves on and shows its silence instead of freezing on the last data, and assets without
        readings get an empty window. Pass ``now_us`` less the expected store latency (flush interval) so the
        last bin is not routinely empty just because its readings are still in ingest's queue.

        The fill looks back ``max_gap`` bins before the window, as ``to_wide`` does; the result equals the last
        window of ``make_windows(to_wide(...))`` on the same readings.
        """
        values, observed, end_ts = self.latest_time_major(assets, length, max_gap, now_us)
        return LatestWindows(
            np.ascontiguousarray(values.transpose(1, 0, 2)), np.ascontiguousarray(observed.transpose(1, 0, 2)), end_ts
        )

    def latest_time_major(
        self, assets: Sequence[str], length: int, max_gap: int, now_us: int | None = None
    ) -> LatestWindows:
        """:meth:`latest` with time first, ``(L, n, S)`` (views of the gathered arrays, not copies).

        The whole look-back computed afresh: serving keeps it between ticks instead
        (:class:`linewatch.serving.lookback.Lookback`, tested equal to this), and time-first is the layout both
        use, since turning 30 minutes of look-back per asset asset-first cost as much as the lag filter.
        """
        if length < 1 or max_gap < 0:
            raise ValueError("length must be >= 1 and max_gap >= 0")
        steps = length + max_gap
        if steps > self.capacity:
            raise ValueError(f"length + max_gap = {steps} exceeds the buffer capacity {self.capacity}")
        rows = np.array([self._rows.get(a, -1) for a in assets], dtype=np.int64)
        if now_us is not None:
            end_bins = np.full(len(assets), (now_us - self.cadence_us) // self.cadence_us, dtype=np.int64)
        else:
            missing = [a for a, r in zip(assets, rows, strict=True) if r < 0 or self._head[r] == _EMPTY]
            if missing:
                raise KeyError(f"no readings stored for assets {missing[:10]}")
            end_bins = self._head[rows]
        values, observed = self._gather(rows, end_bins, steps)
        _fill_time_major(values, observed, max_gap)
        return LatestWindows(values[max_gap:], observed[max_gap:], end_bins * self.cadence_us)


@dataclass(slots=True)
class ChangeTracker:
    """The oldest bin :meth:`BufferSet.add` wrote since :meth:`take` was last called (None: nothing written)."""

    oldest: int | None = None

    def mark(self, bin_index: int) -> None:
        self.oldest = bin_index if self.oldest is None else min(self.oldest, bin_index)

    def take(self) -> int | None:
        oldest, self.oldest = self.oldest, None
        return oldest


def _fill_time_major(values: F64, observed: Bools, max_gap: int) -> None:
    """Fill NaN cells of ``(T, ...)`` arrays in place from the last observed value at most ``max_gap`` steps back.

    One vectorised step per time step: a cell within the bound copies the (already filled) cell before it, which
    holds the last observed value exactly when the gap so far is within the bound.
    """
    if max_gap == 0 or values.shape[0] == 0:
        return
    age = np.where(observed[0], 0, max_gap + 1)
    for t in range(1, values.shape[0]):
        age = np.where(observed[t], 0, np.minimum(age + 1, max_gap + 1))
        np.copyto(values[t], values[t - 1], where=np.isnan(values[t]) & (age <= max_gap))


def fill_forward(values: F64, observed: Bools, max_gap: int) -> F64:
    """:func:`linewatch.models.windows.bounded_fill` along axis 1 of ``(n, T, S)`` arrays, all windows at once."""
    vals = np.array(np.moveaxis(np.asarray(values, dtype=np.float64), 1, 0))
    _fill_time_major(vals, np.moveaxis(np.asarray(observed, dtype=bool), 1, 0), max_gap)
    return np.ascontiguousarray(np.moveaxis(vals, 0, 1))
