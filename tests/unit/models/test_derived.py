"""Lag and time-of-day inputs: the filter's definition, windows that carry them, and isolation that uses them."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.models.derived import derived_inputs, lag_filter
from linewatch.models.detectors.pca import PcaT2Q
from linewatch.models.windows import WindowSpec, make_windows

DAY_US = 86_400_000_000


def test_lag_filter_is_the_restarted_first_order_lag() -> None:
    x = np.random.default_rng(0).normal(100.0, 10.0, size=(400, 3))
    tau, history = 15.0, 30
    got = lag_filter(x, tau, history)
    assert np.isnan(got[:history]).all() and np.isfinite(got[history:]).all()
    a = 1 - np.exp(-1 / tau)
    for t in (history, 123, 399):
        literal = (1 - a) ** history * x[t - history] + a * sum((1 - a) ** i * x[t - i] for i in range(history))
        np.testing.assert_allclose(got[t], literal, rtol=1e-12)
    # Each row reads only its own history: the last row of a short slice is the long series' row.
    np.testing.assert_allclose(lag_filter(x[299 - history : 300], tau, history)[-1], got[299], rtol=1e-12)
    constant = lag_filter(np.full((100, 1), 7.0), tau, history)
    np.testing.assert_allclose(constant[history:], 7.0)  # the weights sum to one


@pytest.mark.parametrize("last", [1, 7, 60, 95, 100, 400])
def test_lag_filter_last_rows_equal_the_whole_series(last: int) -> None:
    """Serving asks for a window's rows only (a weighted sum and a short recursion); they equal training's filter
    over the whole series to rounding, along any axis, including rows that have no full look-back yet (NaN)."""
    rng = np.random.default_rng(3)
    x = rng.normal(50.0, 5.0, size=(4, 100, 3))  # (assets, time, sensors)
    tau, history = 20.0, 40
    whole = lag_filter(x, tau, history, axis=1)
    got = lag_filter(x, tau, history, axis=1, last=last)
    keep = min(last, 100)
    assert got.shape == (4, keep, 3)
    np.testing.assert_allclose(got, whole[:, 100 - keep :], rtol=1e-12, equal_nan=True)
    assert np.isnan(got[:, : max(0, history - (100 - keep))]).all()
    # Time last and contiguous, as serving lays it out.
    along = lag_filter(np.ascontiguousarray(x.transpose(0, 2, 1)), tau, history, axis=2, last=last)
    np.testing.assert_allclose(along, got.transpose(0, 2, 1), rtol=1e-12, equal_nan=True)


def test_derived_inputs_layout() -> None:
    ts = np.arange(0, 48) * 3_600_000_000 // 2  # half-hour steps over a day
    scaled = np.ones((48, 2))
    none = derived_inputs(scaled, ts, 0.0, 0, daily=False)
    assert none.shape == (48, 0)
    both = derived_inputs(scaled, ts, 4.0, 8, daily=True)
    assert both.shape == (48, 4)
    np.testing.assert_allclose(both[:8, :2], 0.0)  # no history yet: the lag inputs read the median
    np.testing.assert_allclose(both[8:, :2], 1.0)
    np.testing.assert_allclose(both[12, 2:], [1.0, 0.0], atol=1e-12)  # 06:00: a quarter of the day


def test_time_of_day_is_read_on_the_plants_clock() -> None:
    """06:00 in Berlin is 05:00 UTC before the spring change and 04:00 UTC after it: the same input both days."""
    winter, summer = 1_774_587_600_000_000, 1_774_843_200_000_000  # 2026-03-27T06:00 CET, 2026-03-30T06:00 CEST
    ts = np.array([winter, summer], dtype=np.int64)
    local = derived_inputs(np.zeros((2, 1)), ts, 0.0, 0, daily=True, timezone="Europe/Berlin")
    np.testing.assert_allclose(local, [[1.0, 0.0], [1.0, 0.0]], atol=1e-12)  # a quarter of the day, both days
    utc = derived_inputs(np.zeros((2, 1)), ts, 0.0, 0, daily=True)
    assert not np.allclose(utc[0], utc[1], atol=0.1)


def test_windows_need_their_history() -> None:
    spec = WindowSpec(1.0, length=5, stride=2, lag_s=3.0, daily=True)
    assert spec.history_steps == 6 and spec.n_inputs(2) == 6
    values = np.arange(40.0).reshape(20, 2)
    w = make_windows(values, np.ones_like(values, dtype=bool), np.arange(20) * 1_000_000, spec)
    assert w.X.shape[1:] == (5, 6) and w.raw.shape[1:] == (5, 2)
    ends = w.end_ts.astype(np.int64) // 1_000_000
    assert ends[0] >= spec.history_steps + spec.length - 1 and ends[-1] == 19
    short = make_windows(values[:10], np.ones((10, 2), dtype=bool), np.arange(10) * 1_000_000, spec)
    assert len(short) == 0
    with pytest.raises(ValueError, match="lag_s"):
        WindowSpec(1.0, length=5, lag_s=0.5)


def plant(n_steps: int, seed: int, drift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) load-driven current, a temperature that lags load and warms with the day, and vibration; 60 s steps."""
    rng = np.random.default_rng(seed)
    load = np.repeat(rng.uniform(0.4, 1.0, n_steps // 20 + 1), 20)[:n_steps]
    ts = np.arange(n_steps, dtype=np.int64) * 60_000_000
    day = np.sin(2 * np.pi * (ts % DAY_US) / DAY_US)
    temp = 40 + 20 * lag_filter(load[:, None], 10.0, 60)[:, 0] + 3 * day
    temp = np.where(np.isnan(temp), 40 + 20 * load + 3 * day, temp) + 0.05 * rng.normal(size=n_steps)
    temp += drift * np.clip((np.arange(n_steps) - (n_steps - 30)) / 30, 0, 1)  # the last half hour drifts
    current = 10 + 30 * load + 0.2 * rng.normal(size=n_steps)
    vib = 2 + 0.5 * load + 0.02 * rng.normal(size=n_steps)
    return np.stack([current, temp, vib], axis=1), ts


def test_context_isolation_finds_a_drift_that_the_per_step_model_calls_normal() -> None:
    spec = WindowSpec(60.0, length=10, lag_s=600.0, daily=True)
    values, ts = plant(6 * 1440, seed=0)  # six days of training
    centre, scale = values.mean(axis=0), values.std(axis=0)
    train = make_windows(values, np.ones_like(values, dtype=bool), ts, spec, center=centre, scale=scale)
    with_inputs = PcaT2Q(lag_inputs=True, daily_inputs=True).fit(train.X)
    plain = PcaT2Q().fit(train.X[:, :, :3])
    test_values, test_ts = plant(1440, seed=1, drift=4.0)  # a day later: +4 degC over the last half hour
    test = make_windows(
        test_values, np.ones_like(test_values, dtype=bool), test_ts + 6 * DAY_US, spec, center=centre, scale=scale
    )
    # The detector's own score and attribution ignore the inputs: they equal the per-step model's.
    np.testing.assert_allclose(with_inputs.decision_function(test.X), plain.decision_function(test.X[:, :, :3]))
    iso, iso_plain = with_inputs.isolation(test.X), plain.isolation(test.X[:, :, :3])
    assert iso is not None and iso_plain is not None
    last = slice(-3, None)  # windows deep in the drift
    assert (iso.fault_z[last].argmax(axis=1) == 1).all() and (iso.fault_z[last, 1] > 6).all()
    assert (iso.remaining[last, 1] < 1).all()
    assert (iso_plain.fault_z[last, 1] < 6).all()  # temperature swings too much with load and the day
    normal = slice(100, -40)
    assert (iso.fault_z[normal].max(axis=1) < 6).mean() > 0.99  # and calm while nothing drifts


def test_inputs_survive_save_and_load() -> None:
    spec = WindowSpec(60.0, length=10, lag_s=600.0, daily=True)
    values, ts = plant(3 * 1440, seed=2)
    X = make_windows(values, np.ones_like(values, dtype=bool), ts, spec, center=values.mean(0), scale=values.std(0)).X
    det = PcaT2Q(lag_inputs=True, daily_inputs=True).fit(X)
    tensors, meta = det.get_state()
    assert any(k.startswith("context.") for k in tensors)
    back = PcaT2Q.from_state(det.config(), tensors, meta)
    np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))
    a, b = back.isolation(X), det.isolation(X)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a.fault_z, b.fault_z)
    with pytest.raises(ValueError, match="channels"):
        PcaT2Q(lag_inputs=True).fit(X[:, :, :5])  # five channels cannot be sensors plus one lag input each


def test_fit_inputs_refits_only_the_context_model() -> None:
    spec = WindowSpec(60.0, length=10, lag_s=600.0, daily=True)
    values, ts = plant(3 * 1440, seed=3)
    X = make_windows(values, np.ones_like(values, dtype=bool), ts, spec, center=values.mean(0), scale=values.std(0)).X
    det = PcaT2Q(lag_inputs=True, daily_inputs=True).fit(X)
    scores, before = det.decision_function(X), det.isolation(X)
    det.fit_inputs(X[: len(X) // 2])  # e.g. only windows whose look-back holds no labelled fault
    after = det.isolation(X)
    assert before is not None and after is not None
    np.testing.assert_array_equal(det.decision_function(X), scores)
    assert not np.allclose(after.fault_z, before.fault_z)
