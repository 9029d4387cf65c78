"""The store report's numbers on literal arrays, and its Markdown and plots from a small frame."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from linewatch.models.datareport import (
    AssetView,
    ModelView,
    asset_view,
    envelope,
    model_view,
    outside_share,
    render_markdown,
    write_report,
)
from linewatch.models.model import ScoredWindows

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def test_envelope_bins_min_median_max_and_marks_empty_bins() -> None:
    ts = [0, 1, 2, 10, 11, 12, 13, 25]  # the last one is outside [0, 20)
    values = [5.0, 1.0, 3.0, 7.0, np.nan, 2.0, 4.0, 99.0]
    env = envelope(ts, values, 0, 20, 4)  # bins [0,5) [5,10) [10,15) [15,20)
    assert env.edges_us.tolist() == [0, 5, 10, 15, 20]
    assert env.count.tolist() == [3, 0, 3, 0]  # the NaN reading is not counted
    np.testing.assert_array_equal(env.low, [1.0, np.nan, 2.0, np.nan])
    np.testing.assert_array_equal(env.median, [3.0, np.nan, 4.0, np.nan])
    np.testing.assert_array_equal(env.high, [5.0, np.nan, 7.0, np.nan])
    even = envelope([0, 1, 2, 3], [4.0, 1.0, 3.0, 2.0], 0, 4, 1)
    assert even.median.tolist() == [2.5]
    with pytest.raises(ValueError, match="end_us > start_us"):
        envelope([0], [1.0], 5, 5, 1)


def test_outside_share_counts_finite_values_outside_the_range() -> None:
    assert outside_share([1.0, 2.0, 3.0, 10.0, np.nan], 1.5, 5.0) == pytest.approx(0.5)
    assert np.isnan(outside_share([np.nan], 0.0, 1.0))


def _frame() -> pl.DataFrame:
    n = 360  # an hour at 10 s; pump-01's flow doubles half-way, pump-02 has one sensor only
    ts = [T0 + timedelta(seconds=10 * i) for i in range(n)]
    flow = np.where(np.arange(n) < n // 2, 100.0, 200.0) + np.sin(np.arange(n))
    rows = {
        "ts": ts * 3,
        "asset": ["pump-01"] * (2 * n) + ["pump-02"] * n,
        "sensor": ["flow"] * n + ["temp"] * n + ["flow"] * n,
        "value": np.concatenate([flow, np.full(n, 40.0) + np.arange(n) * 0.01, np.full(n, 50.0)]),
    }
    return pl.DataFrame(rows)


def test_report_shows_quality_the_share_outside_training_and_plots(tmp_path: Path) -> None:
    frame = _frame()
    end = T0 + timedelta(hours=1)
    trained = {"flow": (90.0, 110.0), "temp": (30.0, 50.0)}
    views = [asset_view(frame, a, 10.0, T0, end, trained, bins=60) for a in ("pump-01", "pump-02")]
    first = views[0]
    assert set(first.envelopes) == {"flow", "temp"} and first.envelopes["flow"].count.sum() == 360
    assert first.histograms["flow"][0].sum() == 360 and len(first.histograms["flow"][1]) == 51
    assert first.outside == pytest.approx({"flow": 0.5, "temp": 0.0})  # the doubled half is outside
    assert set(views[1].trained) == {"flow"}  # no readings of temp on pump-02: no range shown for it
    path = write_report(
        tmp_path / "pumps", "pumps", T0, end, views, model="pumps/v3", quarantined={"bad_json": 4, "future_ts": 1}
    )
    text = path.read_text()
    assert "# Data report: asset group pumps" in text and "Model in service: pumps/v3" in text
    assert "bad_json 4, future_ts 1" in text
    flow_row = next(line for line in text.splitlines() if line.startswith("| flow | 360 |"))
    assert flow_row.endswith("| 50.0% |")
    assert "![pump-01](pump-01.png)" in text and "![pump-02](pump-02.png)" in text
    for asset in ("pump-01", "pump-02"):
        assert (tmp_path / "pumps" / f"{asset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bare = write_report(tmp_path / "bare", "pumps", T0, end, views, model=None, plots=False)
    text = bare.read_text()
    assert "No model in service" in text and ".png" not in text and not list((tmp_path / "bare").glob("*.png"))


def test_an_asset_without_readings_in_the_period_says_so() -> None:
    view = asset_view(_frame(), "pump-09", 10.0, T0, T0 + timedelta(hours=1))
    text = render_markdown("pumps", T0, T0 + timedelta(hours=1), [view], model=None)
    assert "## pump-09\n\nNo readings in the period." in text


def test_model_view_shares_and_the_sensors_blamed_when_over_the_threshold() -> None:
    n = 4
    scored = ScoredWindows(
        end_ts=(np.array([0, 10, 20, 30]) * 1_000_000).astype("datetime64[us]"),
        raw_score=np.zeros(n),
        anomaly_score=np.array([0.5, 2.0, 3.0, 5.0]),
        failure_risk=np.zeros(n),
        contributions=np.array([[1.0, 0, 0], [0.2, 0.8, 0], [0.4, 0.6, 0], [0.5, 0.5, 0]]),
        expected=np.zeros((n, 3)),
        actual=np.zeros((n, 3)),
        health=np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 3]], dtype=np.int8),
        valid=np.array([True, True, True, False]),  # the last window's score is not trusted: not counted
        sensors=("a", "b", "c"),
    )
    mv = model_view(scored, 0, 40_000_000, stride=10, bins=4)
    assert mv.scored == 4 and mv.alarm_share == pytest.approx(2 / 3) and mv.sensor_fault_share == 0.25
    assert mv.blamed == (("b", pytest.approx(0.7)), ("a", pytest.approx(0.3)))  # c contributed nothing
    assert mv.score.high.tolist()[:3] == [0.5, 2.0, 3.0] and np.isnan(mv.score.high[3])
    text = render_markdown("g", T0, T0 + timedelta(seconds=40), [_view_with(mv)], model="g/v1")
    assert "(4 windows, one every 10 steps): anomaly score at or over the threshold in 66.7% of them" in text
    assert "blamed most when over: b (70%), a (30%)." in text
    missing = model_view(None, 0, 40_000_000, stride=1, note="the model needs torque")
    assert missing.scored == 0
    assert "Model's view: not scored (the model needs torque)." in render_markdown(
        "g", T0, T0, [_view_with(missing)], model="g/v1"
    )


def _view_with(mv: ModelView) -> AssetView:
    base = asset_view(_frame(), "pump-02", 10.0, T0, T0 + timedelta(hours=1))
    return replace(base, model_view=mv)
