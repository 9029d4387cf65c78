"""Ring buffers: exact equality with to_wide + make_windows, ring laps, limits, and model windows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from linewatch.ingest.reader import READING_DTYPES, to_wide
from linewatch.models.windows import Preprocessor, Windows, WindowSpec, bounded_fill, make_windows
from linewatch.serving.buffers import BufferSet, capacity_for, fill_forward
from linewatch.serving.model_windows import to_model_windows

T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
S = 1_000_000
SENSORS = ("temp", "vib", "current")


def long_frame(rows: list[tuple[int, str, str, float]]) -> pl.DataFrame:
    ts, asset, sensor, value = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pl.DataFrame(
        {"ts": list(ts), "asset": list(asset), "sensor": list(sensor), "value": list(value), "received_at": list(ts)},
        schema={**READING_DTYPES, "ts": pl.Int64, "received_at": pl.Int64},
    ).with_columns(pl.col("ts", "received_at").cast(pl.Datetime("us", "UTC")))


def random_readings(
    rng: np.random.Generator, asset: str, n: int, span_s: int, *, exact: bool = True
) -> list[tuple[int, str, str, float]]:
    """Readings at random µs offsets: several per bin, silent stretches, an extra sensor the model ignores.

    ``exact`` rounds values to multiples of 1/64, so a bin's sum is exact whatever order the readings are added
    in and means can be compared for equality; otherwise summation order shows in the last bit.
    """
    rows = []
    silent = {s: (int(rng.integers(0, span_s)), int(rng.integers(5, 40))) for s in SENSORS}
    for _ in range(n):
        sensor = str(rng.choice([*SENSORS, "other"]))
        offset = int(rng.integers(0, span_s * S))
        start, width = silent.get(sensor, (-1, 0))
        if start * S <= offset < (start + width) * S:
            continue
        value = float(rng.normal(50, 10))
        rows.append((T0 + offset, asset, sensor, round(value * 64) / 64 if exact else value))
    return rows


def reference(long: pl.DataFrame, spec: WindowSpec, end_bin_us: int) -> tuple[pl.DataFrame, Windows]:
    """to_wide(...) of the window and make_windows of it: what training cuts from these readings."""
    cad = spec.cadence_us
    first = end_bin_us - (spec.length - 1) * cad
    wide = to_wide(long, first, end_bin_us, cad, sensors=list(SENSORS), max_gap=spec.max_gap_steps)
    values = wide.select(SENSORS).to_numpy().astype(np.float64)
    observed = wide.select(f"{s}:observed" for s in SENSORS).to_numpy()
    ts = wide.get_column("ts").dt.epoch("us").to_numpy()
    return wide, make_windows(values, observed, ts, spec)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("cadence_s", "max_gap"), [(1.0, 0), (1.0, 3), (2.5, 5)])
def test_latest_equals_to_wide_and_make_windows(seed: int, cadence_s: float, max_gap: int) -> None:
    rng = np.random.default_rng(seed)
    spec = WindowSpec(cadence_s, length=20, max_gap_steps=max_gap)
    rows = random_readings(rng, "p", 400, span_s=int(80 * cadence_s))
    long = long_frame(rows)
    buffers = BufferSet(SENSORS, cadence_s, capacity_for(spec))
    # Feed in several out-of-order batches, as polls would.
    for part in np.array_split(rng.permutation(len(rows)), 5):
        buffers.add(long[part.tolist()])
    latest = buffers.latest(["p"], spec.length, max_gap)
    cad = spec.cadence_us
    end_bin = max(r[0] for r in rows if r[2] in SENSORS) // cad * cad  # other sensors are ignored
    assert latest.end_ts.tolist() == [end_bin]
    wide, want = reference(long, spec, end_bin)
    values, observed = latest.values[0], latest.observed[0]
    np.testing.assert_array_equal(observed, want.mask[-1])
    np.testing.assert_array_equal(np.where(observed, values, np.nan), want.raw[-1])
    np.testing.assert_array_equal(values, wide.select(SENSORS).to_numpy().astype(np.float64))
    np.testing.assert_array_equal(np.nan_to_num(values).astype(np.float32), want.X[-1])
    np.testing.assert_array_equal(values[-1], want.last_raw[-1])
    assert buffers.stats.other_sensor == sum(r[2] == "other" for r in rows)
    assert buffers.stats.readings_added + buffers.stats.late_dropped == sum(r[2] != "other" for r in rows)


def test_latest_matches_to_wide_within_rounding_for_arbitrary_values() -> None:
    rng = np.random.default_rng(11)
    spec = WindowSpec(1.0, length=30, max_gap_steps=2)
    rows = random_readings(rng, "p", 600, span_s=60, exact=False)
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec))
    buffers.add(long_frame(rows[::-1]))
    latest = buffers.latest(["p"], spec.length, spec.max_gap_steps)
    wide, want = reference(long_frame(rows), spec, int(latest.end_ts[0]))
    np.testing.assert_array_equal(latest.observed[0], want.mask[-1])
    expected = wide.select(SENSORS).to_numpy().astype(np.float64)
    np.testing.assert_allclose(latest.values[0], expected, rtol=1e-14, atol=0, equal_nan=True)


def test_means_of_several_readings_and_literal_fill() -> None:
    buffers = BufferSet(["a"], 10.0, capacity=8)
    buffers.add(long_frame([(T0, "p", "a", 1.0), (T0 + 5 * S, "p", "a", 3.0), (T0 + 12 * S, "p", "a", 4.0)]))
    buffers.add(long_frame([(T0 + 50 * S, "p", "a", 8.0)]))
    got = buffers.latest(["p"], 6, max_gap=2)
    assert got.end_ts.tolist() == [T0 + 50 * S]
    np.testing.assert_array_equal(got.values[0, :, 0], [2.0, 4.0, 4.0, 4.0, np.nan, 8.0])
    np.testing.assert_array_equal(got.observed[0, :, 0], [True, True, False, False, False, True])


def test_ring_laps_evict_old_bins_and_late_readings_are_dropped() -> None:
    buffers = BufferSet(["a"], 1.0, capacity=4)
    buffers.add(long_frame([(T0 + i * S, "p", "a", float(i)) for i in range(10)]))
    snap = buffers.snapshot("p")
    assert snap.bins_us.tolist() == [T0 + i * S for i in range(6, 10)]
    assert snap.values[:, 0].tolist() == [6.0, 7.0, 8.0, 9.0]
    assert buffers.stats.late_dropped == 6
    buffers.add(long_frame([(T0 + 2 * S, "p", "a", 99.0), (T0 + 7 * S + 10, "p", "a", 9.0)]))
    assert buffers.stats.late_dropped == 7
    assert buffers.snapshot("p").values[:, 0].tolist() == [6.0, 8.0, 8.0, 9.0]
    # A jump ahead clears the slots of skipped bins instead of showing last lap's values.
    buffers.add(long_frame([(T0 + 13 * S, "p", "a", 13.0)]))
    snap = buffers.snapshot("p")
    assert snap.observed[:, 0].tolist() == [False, False, False, True]
    assert buffers.newest_ts("p") == T0 + 13 * S


def test_now_us_moves_a_silent_assets_window_on_and_drops_future_readings() -> None:
    buffers = BufferSet(["a"], 1.0, capacity=10, max_future_s=5.0)
    buffers.add(long_frame([(T0 + i * S, "p", "a", float(i)) for i in range(5)]), now_us=T0 + 5 * S)
    assert buffers.add(long_frame([(T0 + 60 * S, "p", "a", 1.0)]), now_us=T0 + 5 * S) == 0
    assert buffers.stats.future_dropped == 1
    got = buffers.latest(["p", "never"], 4, max_gap=1, now_us=T0 + 7 * S + 300)  # bins 3..6 are over
    assert got.end_ts.tolist() == [T0 + 6 * S] * 2
    np.testing.assert_array_equal(got.values[0, :, 0], [3.0, 4.0, 4.0, np.nan])
    assert not got.observed[1].any() and np.isnan(got.values[1]).all()
    with pytest.raises(KeyError):
        buffers.latest(["never"], 4, max_gap=1)


def test_many_assets_at_once_match_one_at_a_time_and_limits_hold() -> None:
    rng = np.random.default_rng(7)
    spec = WindowSpec(1.0, length=15, max_gap_steps=2)
    rows = [r for a in ("a", "b", "c") for r in random_readings(rng, a, 150, span_s=40)]
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec), max_assets=2)
    buffers.add(long_frame(rows))
    assert buffers.assets() == ["a", "b"]
    assert buffers.stats.refused_readings == sum(r[1] == "c" for r in rows)
    both = buffers.latest(["b", "a"], 15, 2)
    for i, asset in enumerate(["b", "a"]):
        one = buffers.latest([asset], 15, 2)
        np.testing.assert_array_equal(both.values[i], one.values[0])
        np.testing.assert_array_equal(both.observed[i], one.observed[0])
    assert buffers._sums.shape[0] == 2  # never more rows than max_assets


def test_non_finite_values_are_ignored_and_counted() -> None:
    buffers = BufferSet(["a"], 1.0, capacity=4)
    buffers.add(long_frame([(T0, "p", "a", float("nan")), (T0, "p", "a", 2.0), (T0 + S, "p", "a", float("inf"))]))
    assert buffers.stats.invalid_dropped == 2
    assert buffers.latest(["p"], 1, 0).values[0, 0, 0] == 2.0


def test_fill_forward_matches_literal() -> None:
    values = np.array([[[1.0], [np.nan], [np.nan], [np.nan]], [[np.nan], [2.0], [np.nan], [5.0]]])
    observed = ~np.isnan(values)
    got = fill_forward(values, observed, 2)
    np.testing.assert_array_equal(got[:, :, 0], [[1.0, 1.0, 1.0, np.nan], [np.nan, 2.0, 2.0, 5.0]])


def fitted(spec: WindowSpec, rng: np.random.Generator) -> Preprocessor:
    rows = random_readings(rng, "p", 600, span_s=200)
    long = long_frame(rows)
    wide = to_wide(long, T0, T0 + 199 * S, spec.cadence_us, sensors=list(SENSORS), max_gap=spec.max_gap_steps)
    return Preprocessor(spec).fit(wide, SENSORS)


@pytest.mark.parametrize("seed", range(4))
def test_to_model_windows_equals_preprocessor_transform(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec = WindowSpec(1.0, length=12, max_gap_steps=3)
    pre = fitted(spec, rng)
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec))
    rows = {a: random_readings(rng, a, 120, span_s=30) for a in ("x", "y", "z")}
    buffers.add(long_frame([r for a in rows for r in rows[a]]))
    latest = buffers.latest(["x", "y", "z"], spec.length, spec.max_gap_steps)
    got = to_model_windows(latest.values, latest.observed, latest.end_ts, pre)
    assert len(got) == 3 and got.spec == spec and got.sensors == SENSORS
    for i, asset in enumerate(["x", "y", "z"]):
        end = int(latest.end_ts[i])
        first = end - (spec.length - 1) * spec.cadence_us
        wide = to_wide(long_frame(rows[asset]), first, end, spec.cadence_us, sensors=list(SENSORS), max_gap=3)
        want = pre.transform(wide)
        assert len(want) == 1
        np.testing.assert_allclose(got.X[i], want.X[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(got.mask[i], want.mask[0])
        np.testing.assert_allclose(got.raw[i], want.raw[0], rtol=1e-14, equal_nan=True)
        np.testing.assert_allclose(got.last_raw[i], want.last_raw[0], rtol=1e-14, equal_nan=True)
        assert got.coverage[i] == want.coverage[0]
        assert got.end_ts[i] == want.end_ts[0]
        assert got.X.dtype == np.float32 and got.end_ts.dtype == np.dtype("datetime64[us]")


@pytest.mark.parametrize(("seed", "timezone"), [(0, "UTC"), (1, "Europe/Berlin"), (2, "America/New_York")])
def test_lag_and_daily_inputs_in_serving_equal_training_over_the_whole_history(seed: int, timezone: str) -> None:
    """The time of day is the plant's (``timezone``) in serving as in training: one hour apart, the inputs differ."""
    rng = np.random.default_rng(seed)
    spec = WindowSpec(1.0, length=12, max_gap_steps=3, lag_s=6.0, daily=True, timezone=timezone)  # 12 steps back
    assert spec.history_steps == 12 and capacity_for(spec) >= 12 + 12 + 3
    pre = fitted(spec, rng)
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec))
    rows = {a: random_readings(rng, a, 500, span_s=120) for a in ("x", "y")}
    buffers.add(long_frame([r for a in rows for r in rows[a]]))
    latest = buffers.latest(["x", "y"], spec.length + spec.history_steps, spec.max_gap_steps)
    got = to_model_windows(latest.values, latest.observed, latest.end_ts, pre)
    assert got.X.shape == (2, spec.length, spec.n_inputs(len(SENSORS))) == (2, 12, 8)
    for i, asset in enumerate(["x", "y"]):
        end = int(latest.end_ts[i])
        # Training sees the whole two minutes; its last window must be serving's, lag inputs included.
        wide = to_wide(long_frame(rows[asset]), T0, end, spec.cadence_us, sensors=list(SENSORS), max_gap=3)
        want = pre.transform(wide)
        np.testing.assert_allclose(got.X[i], want.X[-1], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got.mask[i], want.mask[-1])
        assert got.end_ts[i] == want.end_ts[-1]
    with pytest.raises(ValueError, match="history"):
        to_model_windows(
            latest.values[:, spec.history_steps :], latest.observed[:, spec.history_steps :], latest.end_ts, pre
        )


@pytest.mark.parametrize("lag_s", [0.0, 6.0])
def test_time_major_windows_equal_asset_major_ones(lag_s: float) -> None:
    """Serving scores from :meth:`BufferSet.latest_time_major`; its windows are bitwise those of :meth:`latest`."""
    rng = np.random.default_rng(7)
    spec = WindowSpec(1.0, length=12, max_gap_steps=3, lag_s=lag_s, daily=bool(lag_s))
    pre = fitted(spec, rng)
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec))
    buffers.add(long_frame([r for a in ("x", "y", "z") for r in random_readings(rng, a, 400, span_s=90)]))
    steps = spec.length + spec.history_steps
    now_us = T0 + 95_000_000
    assets = ["x", "y", "z", "never-seen"]
    flat = buffers.latest(assets, steps, spec.max_gap_steps, now_us=now_us)
    tm = buffers.latest_time_major(assets, steps, spec.max_gap_steps, now_us=now_us)
    assert tm.values.shape == (steps, 4, len(SENSORS))
    np.testing.assert_array_equal(tm.values.transpose(1, 0, 2), flat.values)
    np.testing.assert_array_equal(tm.observed.transpose(1, 0, 2), flat.observed)
    want = to_model_windows(flat.values, flat.observed, flat.end_ts, pre)
    got = to_model_windows(tm.values, tm.observed, tm.end_ts, pre, time_major=True)
    np.testing.assert_array_equal(got.X, want.X)
    np.testing.assert_array_equal(got.mask, want.mask)
    np.testing.assert_array_equal(got.end_ts, want.end_ts)
    np.testing.assert_array_equal(got.coverage, want.coverage)


def test_to_model_windows_of_no_assets_is_empty() -> None:
    spec = WindowSpec(1.0, length=5)
    pre = fitted(spec, np.random.default_rng(0))
    buffers = BufferSet(SENSORS, 1.0, capacity_for(spec))
    latest = buffers.latest([], 5, 0, now_us=T0)
    got = to_model_windows(latest.values, latest.observed, latest.end_ts, pre)
    assert len(got) == 0 and got.X.shape == (0, 5, 3) and got.coverage.shape == (0,)


@pytest.mark.parametrize("max_gap", [0, 1, 3])
def test_fill_forward_equals_bounded_fill_per_window(max_gap: int) -> None:
    rng = np.random.default_rng(max_gap)
    observed = rng.random((5, 30, 4)) < 0.4
    values = np.where(observed, rng.normal(size=observed.shape), np.nan)
    got = fill_forward(values, observed, max_gap)
    for i in range(5):
        np.testing.assert_array_equal(got[i], bounded_fill(values[i], observed[i], max_gap))


def test_latest_with_now_on_an_empty_buffer_set_gives_empty_windows() -> None:
    """Serving asks for assets it knows from the store before any reading reached the buffers."""
    from linewatch.serving.buffers import BufferSet

    empty = BufferSet(["a", "b"], 1.0, 32)
    values, observed, end_ts = empty.latest(["pump-01", "pump-02"], 10, 2, now_us=1_000_000_000)
    assert values.shape == (2, 10, 2) and not observed.any() and np.isnan(values).all()
    assert end_ts.tolist() == [999_000_000, 999_000_000]
