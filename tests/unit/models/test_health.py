"""Sensor health on literal windows: one test per status, and a machine fault that must stay "ok"."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.models.health import HealthResult, SensorHealth, Status, check_health, sensor_faults
from linewatch.models.sensor_stats import SensorStats

NAN = np.nan
L = 20


def stats(n: int = 1, **over: float) -> SensorStats:
    """A sensor around 50 with noise 1 (steps of ~1.4), range 46..54, that changes on every step."""
    base = {
        "median": 50.0, "scale": 1.0, "p001": 46.0, "p999": 54.0, "min": 45.0, "max": 55.0, "std": 1.0,
        "diff_scale": 1.4, "change_fraction": 1.0, "max_repeat": 1.0, "observed_rate": 1.0,
    }  # fmt: skip
    base.update(over)
    return SensorStats(**{k: np.full(n, v) for k, v in base.items()})


def noisy(seed: int = 0, n: int = L) -> np.ndarray:
    return 50.0 + np.random.default_rng(seed).normal(0, 1.0, n)


def status_of(series: np.ndarray, st: SensorStats | None = None, **kw: object) -> Status:
    result = check_health(series.reshape(1, -1, 1), st or stats(), **kw)  # type: ignore[arg-type]
    return Status(int(result.status[0, 0]))


def test_normal_noise_is_ok() -> None:
    for seed in range(20):
        assert status_of(noisy(seed)) == Status.OK


def test_stuck_needs_repeats_beyond_training_and_a_varying_sensor() -> None:
    series = np.concatenate([noisy()[:8], np.full(12, 51.25)])
    assert status_of(series) == Status.STUCK
    assert status_of(series, stats(max_repeat=15.0)) == Status.OK  # repeats that long were normal
    assert status_of(series, stats(change_fraction=0.1)) == Status.OK  # a sensor that rarely changes
    gappy = series.copy()
    gappy[[12, 14]] = NAN  # gaps neither break nor extend the run
    assert status_of(gappy) == Status.STUCK
    assert status_of(np.concatenate([noisy()[:12], np.full(8, 51.25)])) == Status.OK  # too short


def test_flatlined_is_variance_below_noise_without_exact_repeats() -> None:
    series = 50.0 + np.arange(L) % 2 * 1e-3
    assert status_of(series) == Status.FLATLINED


def test_a_flatness_training_showed_again_and_again_is_the_sensors_normal() -> None:
    """A flow at zero while its pump idles, a position at its end stop: such a sensor sits still in training too."""
    series = 50.0 + np.arange(L) % 2 * 1e-3  # std 5e-4, far below 0.05 x 1.4
    assert status_of(series, stats(normal_flat=0.0)) == Status.OK  # training had exactly constant blocks
    assert status_of(series, stats(normal_flat=1e-3)) == Status.FLATLINED  # flatter than training ever was
    assert status_of(series, stats(normal_flat=1.0)) == Status.FLATLINED  # never above flat_rel_std


def test_out_of_range_by_jump_by_hard_margin_and_by_limits() -> None:
    jump = noisy()
    jump[-5:] = 70.0 + np.arange(5) * 0.5  # jumped 2+ spans above p99.9
    assert status_of(jump) == Status.OUT_OF_RANGE
    assert status_of(np.full(L, -500.0) + np.arange(L) % 3) == Status.OUT_OF_RANGE  # 68 spans below
    within = noisy()
    within[-1] = 53.0  # inside the training range, above a configured limit
    assert status_of(within) == Status.OK
    assert status_of(within, limits={"s0": (None, 52.0)}) == Status.OUT_OF_RANGE
    low = noisy()
    low[-1] = 10.0
    assert status_of(low, limits={"s0": (20.0, None)}) == Status.OUT_OF_RANGE


def test_silent_trailing_and_sparse() -> None:
    tail = noisy()
    tail[-5:] = NAN
    assert status_of(tail) == Status.SILENT
    assert status_of(np.full(L, NAN)) == Status.SILENT
    sparse = np.full(L, NAN)
    sparse[[0, 19]] = [50.0, 50.5]
    assert status_of(sparse) == Status.SILENT  # 2 of 20 readings < 25 %
    slow = np.full(L, NAN)
    slow[::5] = noisy()[::5]  # a sensor that reports every 5th step in training too
    slow[-1] = 50.2
    assert status_of(slow, stats(observed_rate=0.2, change_fraction=1.0)) == Status.OK


def test_spike_returns_at_once_but_a_step_change_does_not() -> None:
    spike = noisy()
    spike[10] = 70.0
    assert status_of(spike) == Status.SPIKING
    step = noisy()
    step[10:] += 12.0  # a setpoint change: jumps, never comes back
    assert status_of(step, stats(p999=70.0, max=70.0)) == Status.OK


def test_a_spike_no_bigger_than_training_showed_again_and_again_is_the_sensors_normal() -> None:
    """A flow meter in turbulent flow jumps out and back in normal operation (SKAB's pump testbed: its flow
    sensor's normal readings were flagged as spiking in 29 % of windows); training learns how far."""
    spike = noisy()
    spike[10] = 70.0  # a jump of 20 = 14 step spreads, out and back
    assert status_of(spike, stats(normal_spike=20.0)) == Status.OK
    assert status_of(spike, stats(normal_spike=10.0)) == Status.SPIKING
    assert status_of(spike, stats(normal_spike=2.0)) == Status.SPIKING  # never below spike_z


def test_a_spike_on_several_sensors_at_once_is_the_process_not_a_sensor() -> None:
    """A load step and straight back (or a trip) jumps every load-driven sensor at the same step; a sensor's own
    spike jumps it alone (simulated bigger pump: pressure and speed both dropped for one second with flow and
    current, and were called spiking)."""
    raw = np.stack([noisy(s) for s in range(3)], axis=1)[None]
    one = raw.copy()
    one[0, 10, 0] = 70.0
    assert sensor_faults(check_health(one, stats(3), sensors=["a", "b", "c"]), 0) == {"a": Status.SPIKING}
    both = raw.copy()
    both[0, 10, :2] = 70.0
    assert sensor_faults(check_health(both, stats(3), sensors=["a", "b", "c"]), 0) == {}


def test_drift_of_one_sensor_while_partners_agree_with_the_model() -> None:
    n = 3
    raw = np.stack([noisy(s) for s in range(n)], axis=1)[None]
    raw[0, :, 0] += np.linspace(0, 6, L)  # slow drift of sensor 0
    expected = np.full((1, n), 50.0)
    expected[0, 1:] = raw[0, -1, 1:]  # partners read what the model expects
    result = check_health(raw, stats(n), expected=expected, sensors=["a", "b", "c"])
    assert sensor_faults(result, 0) == {"a": Status.DRIFTING}
    assert check_health(raw, stats(n), sensors=["a", "b", "c"]).status.tolist() == [[0, 0, 0]]  # off by default


def test_machine_fault_rising_together_is_not_a_sensor_fault() -> None:
    """Bearing wear: vibration and temperature rise smoothly together, beyond training, and stay noisy."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0.0, 1.0, L)
    vib = 1.0 + 1.2 * ramp + rng.normal(0, 0.05, L)  # training 0.85..1.15, noise 0.05
    temp = 60.0 + 12.0 * ramp + rng.normal(0, 0.5, L)  # training 58.5..61.5, noise 0.5
    raw = np.stack([vib, temp], axis=1)[None]
    st = SensorStats(
        median=np.array([1.0, 60.0]), scale=np.array([0.05, 0.5]), p001=np.array([0.85, 58.5]),
        p999=np.array([1.15, 61.5]), min=np.array([0.8, 58.0]), max=np.array([1.2, 62.0]),
        std=np.array([0.05, 0.5]), diff_scale=np.array([0.07, 0.7]), change_fraction=np.ones(2),
        max_repeat=np.ones(2), observed_rate=np.ones(2),
    )  # fmt: skip
    expected = np.array([[1.0, 60.0]])  # the model expected normal values: both residuals are large together
    result = check_health(raw, st, expected=expected, sensors=["vibration_rms", "bearing_temp"])
    assert sensor_faults(result, 0) == {}
    assert not result.sensor_fault.any()


def test_mask_input_shapes_and_helpers() -> None:
    raw = np.stack([noisy(), noisy(1)], axis=1)[None].repeat(2, axis=0)
    mask = np.ones_like(raw, dtype=bool)
    mask[1, -6:, 1] = False
    result = check_health(raw, stats(2), mask=mask, sensors=["a", "b"])
    assert isinstance(result, HealthResult) and result.status.dtype == np.int8
    assert result.status.tolist() == [[0, 0], [0, Status.SILENT]]
    assert result.to_dict(1) == {"a": "ok", "b": "silent"}
    assert result.sensor_fault.tolist() == [False, True]
    assert check_health(np.zeros((0, L, 2)), stats(2)).status.shape == (0, 2)
    with pytest.raises(ValueError, match="raw must be"):
        check_health(np.zeros((1, L, 3)), stats(2))
    with pytest.raises(ValueError):
        SensorHealth(partner_z=5.0, drift_z=4.0)
