"""Windows on literal arrays: bounded fill, end-anchored strides, scaling, round-trip, label handling."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore
from linewatch.models.sensor_stats import SensorStats, normal_flatness, normal_spike, robust_scale
from linewatch.models.window_labels import exclude_labelled, in_labels, label_windows
from linewatch.models.windows import (
    MissingSensorsError,
    Preprocessor,
    WindowSpec,
    bounded_fill,
    make_windows,
    windows_from_store,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_US = 1_704_067_200_000_000
NAN = np.nan


def ts_us(n: int, cadence_s: int = 10) -> np.ndarray:
    return T0_US + np.arange(n, dtype=np.int64) * cadence_s * 1_000_000


def test_bounded_fill_only_from_observed_and_idempotent() -> None:
    values = np.array([[1.0], [NAN], [NAN], [NAN], [5.0], [NAN]])
    observed = ~np.isnan(values)
    once = bounded_fill(values, observed, 2)
    assert np.array_equal(once, [[1.0], [1.0], [1.0], [NAN], [5.0], [5.0]], equal_nan=True)
    assert np.array_equal(bounded_fill(once, observed, 2), once, equal_nan=True)  # reader-filled input
    head = np.array([[7.0], [NAN], [2.0]])  # the reader filled row 0 from before the frame
    assert np.array_equal(
        bounded_fill(head, np.array([[False], [False], [True]]), 2), [[7.0], [NAN], [2.0]], equal_nan=True
    )


def test_windows_are_end_anchored_read_only_views() -> None:
    values = np.arange(14, dtype=np.float64).reshape(7, 2)
    spec = WindowSpec(cadence_s=10, length=3, stride=2)
    w = make_windows(values, np.ones_like(values, dtype=bool), ts_us(7), spec)
    assert w.X.shape == (3, 3, 2)
    assert w.X[:, -1, 0].tolist() == [4.0, 8.0, 12.0]  # window ends at rows 2, 4, 6: the last row included
    assert w.end_ts.astype(np.int64).tolist() == ts_us(7)[[2, 4, 6]].tolist()
    assert w.X.dtype == np.float32 and not w.X.flags.writeable
    assert np.shares_memory(w.X, w.X[0:1])  # a view over one series, not n copies
    assert w.last_raw.tolist() == [[4.0, 5.0], [8.0, 9.0], [12.0, 13.0]]


def test_short_series_gives_no_windows() -> None:
    w = make_windows(np.zeros((2, 3)), np.ones((2, 3), bool), ts_us(2), WindowSpec(10, 5))
    assert w.X.shape == (0, 5, 3) and len(w) == 0 and w.end_ts.shape == (0,)


def test_gaps_become_zero_masked_and_coverage_counts_filled() -> None:
    values = np.array([[1.0, 10.0], [NAN, 20.0], [NAN, 30.0], [NAN, 40.0]])
    observed = ~np.isnan(values)
    spec = WindowSpec(10, length=4, max_gap_steps=1, min_observed_fraction=0.6)
    w = make_windows(values, observed, ts_us(4), spec, center=[1.0, 25.0], scale=[1.0, 10.0])
    assert w.X[0, :, 0].tolist() == [0.0, 0.0, 0.0, 0.0]  # filled 1.0 -> 0, then gaps -> 0
    assert w.mask[0, :, 0].tolist() == [True, False, False, False]
    assert np.isnan(w.raw[0, 1:, 0]).all() and w.raw[0, 0, 0] == 1.0  # health sees observed values only
    assert w.coverage.tolist() == [0.5] and w.valid.tolist() == [False]
    assert w.X[0, :, 1].tolist() == pytest.approx([-1.5, -0.5, 0.5, 1.5])


def wide(n: int = 200, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = 50.0 + rng.normal(0, 2.0, n)
    b = np.full(n, 3.0)  # constant: the scale floor must hold
    obs_a = np.ones(n, bool)
    obs_a[10:13] = False
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=10 * i) for i in range(n)],
            "a": pl.Series(np.where(obs_a, a, np.nan)).fill_nan(None),
            "b": b,
            "a:observed": obs_a,
            "b:observed": np.ones(n, bool),
        }
    )


def test_fit_transform_inverse_and_exact_json_round_trip() -> None:
    frame = wide()
    pre = Preprocessor(WindowSpec(10, length=16, stride=4, max_gap_steps=2)).fit(frame, ["a", "b"])
    stats = pre.stats
    assert stats.scale[1] == pytest.approx(3e-3)  # constant sensor: 1e-3 * |median|
    assert 1.5 < stats.scale[0] < 2.5 and stats.min[0] <= stats.p001[0] < stats.p999[0] <= stats.max[0]
    w = pre.transform(frame.select("ts", "b", "a", "a:observed", "b:observed"))  # column order irrelevant
    assert w.sensors == ("a", "b") and w.X.shape[2] == 2
    back = pre.inverse(w.X[:, -1, :])
    assert np.allclose(back, w.last_raw, rtol=1e-5)
    assert np.allclose(pre.inverse(w.X[:, -1, 0], 0), w.last_raw[:, 0], rtol=1e-5)
    clone = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert clone.to_dict() == pre.to_dict()
    assert np.array_equal(clone.transform(frame).X, w.X)


def test_daily_profile_per_clock_hour_round_trips_with_unseen_hours_as_null() -> None:
    # 20 h from midnight at 10 min: "a" reads 100 + its clock hour, "b" is unobserved between 05:00 and 06:00.
    n = 20 * 6
    ts = [T0 + timedelta(minutes=10 * i) for i in range(n)]
    hour = np.array([t.hour for t in ts], dtype=np.float64)
    b_seen = hour != 5
    frame = pl.DataFrame({"ts": ts, "a": 100.0 + hour, "b": np.where(b_seen, 2.0 * hour, np.nan), "b:observed": b_seen})
    pre = Preprocessor(WindowSpec(600, 4)).fit(frame, ["a", "b"])
    profile = pre.daily_median_
    assert profile is not None and profile.shape == (24, 2)
    np.testing.assert_array_equal(profile[:20, 0], 100.0 + np.arange(20))
    assert np.isnan(profile[20:]).all()  # no readings from 20:00 on
    assert np.isnan(profile[5, 1]) and profile[6, 1] == 12.0
    document = json.loads(json.dumps(pre.to_dict(), allow_nan=False))  # strict JSON: unseen hours are null
    assert document["daily_median"][5][1] is None
    clone = Preprocessor.from_dict(document)
    np.testing.assert_array_equal(clone.daily_median_, profile)  # NaN where NaN, equal elsewhere
    assert clone.to_dict() == pre.to_dict()
    # A bundle saved before the profile existed has none; a malformed one is refused.
    older = {k: v for k, v in document.items() if k != "daily_median"}
    assert Preprocessor.from_dict(older).daily_median_ is None
    with pytest.raises(ValueError, match=r"daily_median shaped \(23, 2\)"):
        Preprocessor.from_dict({**document, "daily_median": document["daily_median"][:23]})
    for damaged in (7, [7] * 24, [["warm"] * 2] * 24):
        with pytest.raises(ValueError, match="daily_median"):
            Preprocessor.from_dict({**document, "daily_median": damaged})


def test_daily_profile_follows_the_plants_clock_across_a_daylight_saving_change() -> None:
    """A Berlin plant that reads 10 from 06:00 to 22:00 local and 0 otherwise: on UTC hours the step is at 05:00
    in winter and 04:00 in summer, so with four days of each the hours 04:00 and 20:00 read half (a median of
    0s and 10s); the plant's clock sees the step at 06:00 every day."""
    start = datetime(2026, 3, 25, tzinfo=UTC)  # four days either side of the change on the 29th
    ts = [start + timedelta(minutes=15 * i) for i in range(8 * 96)]
    berlin = [t.astimezone(ZoneInfo("Europe/Berlin")) for t in ts]
    value = np.array([10.0 if 6 <= b.hour < 22 else 0.0 for b in berlin])
    frame = pl.DataFrame({"ts": ts, "a": value})
    local = Preprocessor(WindowSpec(900, 4, timezone="Europe/Berlin")).fit(frame, ["a"]).daily_median_
    utc = Preprocessor(WindowSpec(900, 4)).fit(frame, ["a"]).daily_median_
    assert local is not None and utc is not None
    np.testing.assert_array_equal(local[:, 0], [0.0] * 6 + [10.0] * 16 + [0.0] * 2)
    np.testing.assert_array_equal(utc[:, 0], [0.0] * 4 + [5.0] + [10.0] * 15 + [5.0] + [0.0] * 3)


def test_normal_spike_is_the_third_largest_out_and_back_move_over_observed_steps() -> None:
    values = np.array([0.0, 5.0, 0.0, 0.0, -3.0, 0.0, 0.0, 8.0, 1.0, 2.0, 2.0, 4.0, 2.0])
    observed = np.ones(values.size, dtype=bool)
    # Out-and-back moves (the smaller of the two opposite steps): 5, 3, 7, 1 and 2; a one-way step is none.
    assert normal_spike(values, observed, diff_scale=0.5) == pytest.approx(3.0 / 0.5)
    gap = observed.copy()
    gap[4] = False  # the move through a missing reading is not a spike
    assert normal_spike(values, gap, diff_scale=1.0) == pytest.approx(2.0)
    assert normal_spike(values[:4], observed[:4], diff_scale=1.0) == 0.0  # fewer than three moves: none is normal


def test_normal_flatness_is_the_third_flattest_block_of_ten_observed_readings() -> None:
    blocks = [np.full(10, 3.0), np.arange(10.0), np.full(10, 1.0) + np.arange(10) % 2, np.full(10, 7.0)]
    values = np.concatenate(blocks)  # block spreads 0, 2.87, 0.5, 0
    observed = np.ones(values.size, dtype=bool)
    assert normal_flatness(values, observed, diff_scale=0.25) == pytest.approx(0.5 / 0.25)
    gap = observed.copy()
    gap[:10] = False  # unobserved readings are skipped: three blocks left, the flattest third is the ramp
    assert normal_flatness(values, gap, diff_scale=1.0) == pytest.approx(np.arange(10.0).std())
    assert normal_flatness(values[:25], observed[:25], diff_scale=1.0) == 1.0  # two blocks: none is normal


def test_older_stats_without_what_is_normal_load_and_round_trip_without_it() -> None:
    pre = Preprocessor(WindowSpec(10, length=16, stride=4, max_gap_steps=2)).fit(wide(), ["a", "b"])
    saved = pre.stats.to_dict()
    assert len(saved["normal_spike"]) == len(saved["normal_flat"]) == 2
    del saved["normal_spike"], saved["normal_flat"]
    older = SensorStats.from_dict(saved)
    assert older.normal_spike is None and older.normal_flat is None
    assert "normal_spike" not in older.to_dict() and "normal_flat" not in older.to_dict()


def test_window_spec_carries_its_clock_and_older_bundles_read_as_utc() -> None:
    spec = WindowSpec(60, 10, lag_s=900, daily=True, timezone="America/Chicago")
    assert WindowSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    older = {k: v for k, v in spec.to_dict().items() if k != "timezone"}
    assert WindowSpec.from_dict(older).timezone == "UTC"
    with pytest.raises(ValueError, match="unknown time zone 'Chicago'"):
        WindowSpec.from_dict({**spec.to_dict(), "timezone": "Chicago"})


def test_missing_sensors_are_named() -> None:
    pre = Preprocessor(WindowSpec(10, 4)).fit(wide(), ["a", "b"])
    with pytest.raises(MissingSensorsError, match="b") as info:
        pre.transform(wide().drop("b", "b:observed"))
    assert info.value.missing == ("b",)


def test_fit_refuses_a_sensor_without_data() -> None:
    frame = wide().with_columns(pl.lit(None, dtype=pl.Float64).alias("c"))
    with pytest.raises(ValueError, match="'c' has no observed"):
        Preprocessor(WindowSpec(10, 4)).fit(frame, ["a", "c"])


def test_robust_scale_fallbacks() -> None:
    assert robust_scale(np.array([0.0, 0, 0, 0, 0, 0, 0, 1, 1, 10]), 0.0) > 0  # IQR 0 -> MAD 0 -> std
    assert robust_scale(np.zeros(5), 0.0) == 1e-6


def label(start_s: int, end_s: int, kind: str = "machine_fault", asset: str = "p") -> FaultLabel:
    return FaultLabel(asset, T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s), kind, "leak")  # type: ignore[arg-type]


def test_exclude_labelled_drops_overlapping_windows_of_that_asset_only() -> None:
    spec = WindowSpec(10, length=3)
    w = make_windows(np.zeros((10, 1)), np.ones((10, 1), bool), ts_us(10), spec)  # windows end at rows 2..9
    labels = [label(50, 60), label(0, 100, asset="q")]
    kept = exclude_labelled(w, labels, "p", margin_s=0)
    # window ending at row r covers [10(r-2), 10(r+1)); overlaps [50, 60) for r in 5..7
    assert (kept.end_ts.astype(np.int64) - T0_US).tolist() == [s * 1_000_000 for s in (20, 30, 40, 80, 90)]
    assert len(exclude_labelled(w, labels, "p", margin_s=10)) == 3  # r in 4..8 dropped too
    assert len(exclude_labelled(w, labels, "p")) == 0  # default margin: one window (30 s) on each side
    assert exclude_labelled(w, [], "p") is w


def test_label_windows_and_in_labels() -> None:
    labels = [label(20, 40), label(30, 50, "maintenance"), label(0, 99, asset="q")]
    info = label_windows(ts_us(6), labels, "p")
    assert info.index.tolist() == [-1, -1, 0, 1, 1, -1]
    assert info.kinds.tolist() == ["normal", "normal", "machine_fault", "maintenance", "maintenance", "normal"]
    assert info.is_fault.tolist() == [False, False, True, False, False, False]
    assert in_labels(ts_us(6), labels, "p", margin_s=10).tolist() == [False, True, True, True, True, True]


def test_windows_from_store_matches_in_memory(tmp_path: Path) -> None:
    rows = [Reading(T0_US + i * 10_000_000, "p", "a", float(i % 7), T0_US) for i in range(40) if i not in (20, 21)]
    ParquetStore(tmp_path, "w").write_readings(rows)
    spec = WindowSpec(10, length=8, stride=1, max_gap_steps=1)
    start, end = T0 + timedelta(seconds=100), T0 + timedelta(seconds=400)
    pre = Preprocessor(spec)
    from linewatch.ingest.reader import wide_frame

    frame = wide_frame(tmp_path, "p", start, end, spec.cadence, sensors=["a"], max_gap=1)
    pre.fit(frame, ["a"])
    w = windows_from_store(tmp_path, "p", start, end, pre)
    assert np.array_equal(w.X, pre.transform(frame).X)
    assert len(w) == 30 - 8 + 1
    # window 6 holds rows 16..23: rows 20 and 21 unobserved; 20 is filled from 19 in X, 21 is a gap (0)
    assert np.isnan(w.raw[6, :, 0]).tolist() == [False] * 4 + [True, True, False, False]
    assert w.X[6, 4, 0] == w.X[6, 3, 0] and w.X[6, 5, 0] == 0.0 and w.X[6, 3, 0] != 0.0


def test_serving_window_equals_the_training_window_ending_at_the_same_step(tmp_path: Path) -> None:
    """Serving reads only the last L steps; the reader's look-back makes its fill match training's."""
    rows = [Reading(T0_US + i * 10_000_000, "p", "a", float(i % 5), T0_US) for i in range(60) if i % 4 == 0]
    ParquetStore(tmp_path, "w").write_readings(rows)
    spec = WindowSpec(10, length=6, max_gap_steps=3)
    end = T0 + timedelta(seconds=410)
    pre = Preprocessor(spec)
    from linewatch.ingest.reader import wide_frame

    pre.fit(wide_frame(tmp_path, "p", T0, end, spec.cadence, sensors=["a"], max_gap=3), ["a"])
    training = windows_from_store(tmp_path, "p", T0, end, pre)
    serving = windows_from_store(tmp_path, "p", end - 6 * spec.cadence, end, pre)
    assert len(serving) == 1 and serving.coverage[0] == 1.0  # the first row was filled from before the window
    assert np.array_equal(serving.X[0], training.X[-1]) and np.array_equal(serving.mask[0], training.mask[-1])
    assert serving.end_ts[0] == training.end_ts[-1]
