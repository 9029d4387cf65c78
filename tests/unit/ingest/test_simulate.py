"""The synthetic plant: determinism, a clean warm-up, and faults that move the named sensors as documented."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from linewatch.core.schema import is_valid_name
from linewatch.ingest.faults import FAULT_CODES, fault_kind
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.simulate import SENSORS, AssetSpec, Plant, PlantConfig

START = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
ONE_PUMP = (AssetSpec("pump-01", "pump"),)


def _label(fault: str, sensors: tuple[str, ...], start_s: float = 600, end_s: float = 1800) -> FaultLabel:
    return FaultLabel(
        "pump-01",
        START + timedelta(seconds=start_s),
        START + timedelta(seconds=end_s),
        fault_kind(fault),
        fault,
        sensors,
    )


def _run(schedule: tuple[FaultLabel, ...], duration_s: float = 2400) -> pl.DataFrame:
    config = PlantConfig(assets=ONE_PUMP, seed=7, schedule=schedule)
    frame, _ = Plant(config).generate(START, duration_s)
    return frame


def _window(frame: pl.DataFrame, sensor: str, start_s: float, end_s: float) -> pl.Series:
    lo, hi = START + timedelta(seconds=start_s), START + timedelta(seconds=end_s)
    return frame.filter((pl.col("sensor") == sensor) & (pl.col("ts") >= lo) & (pl.col("ts") < hi))["value"]


@pytest.fixture(scope="module")
def baseline() -> pl.DataFrame:
    return _run(())


def test_same_seed_same_data_and_labels() -> None:
    config = PlantConfig(seed=11, fault_free_s=600, fault_rate_per_asset_per_hour=4)
    a_frame, a_labels = Plant(config).generate(START, 3600)
    b_frame, b_labels = Plant(config).generate(START, 3600)
    assert a_frame.equals(b_frame)
    assert a_labels == b_labels
    assert a_labels, "a high fault rate over 50 minutes should schedule faults"
    other, _ = Plant(PlantConfig(seed=12, fault_free_s=600)).generate(START, 600)
    assert not other.equals(a_frame.filter(pl.col("ts") < START + timedelta(seconds=600)))


def test_default_plant_shape_and_names() -> None:
    frame, _ = Plant().generate(START, 10)
    assert frame.columns == ["ts", "asset", "sensor", "value"]
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame["asset"].n_unique() == 4
    assert set(frame["sensor"].unique()) == set(SENSORS)
    assert frame.height == 10 * 4 * 6
    assert all(is_valid_name(n) for n in [*frame["asset"].unique(), *frame["sensor"].unique()])


def test_warm_up_is_fault_free_and_labels_are_well_formed() -> None:
    config = PlantConfig(seed=3, fault_free_s=1800, fault_rate_per_asset_per_hour=6)
    labels = Plant(config).schedule(START, 4 * 3600)
    assert labels
    run_end = START + timedelta(hours=4)
    for label in labels:
        assert label.start >= START + timedelta(seconds=1800)
        assert label.end <= run_end
        assert label.fault in FAULT_CODES and label.kind == fault_kind(label.fault)
        assert label.sensors and set(label.sensors) <= set(SENSORS)


def test_streaming_is_a_prefix_of_a_longer_run_and_reports_faults() -> None:
    config = PlantConfig(seed=5, fault_free_s=60, fault_rate_per_asset_per_hour=20)
    seen: list[FaultLabel] = []
    steps = list(Plant(config).iter_steps(START, 900, on_fault=seen.append))
    longer = Plant(config).iter_steps(START, None)
    assert [next(longer) for _ in range(len(steps))] == steps
    assert [ts for ts, _, _ in steps] == sorted(ts for ts, _, _ in steps)
    assert seen == Plant(config).schedule(START, 900)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        next(Plant().iter_steps(datetime(2024, 1, 1), 10))


def test_bearing_wear_raises_vibration_and_temperature(baseline: pl.DataFrame) -> None:
    faulty = _run((_label("bearing_wear", ("vibration_rms", "bearing_temp")),))
    assert _window(faulty, "flow", 0, 2400).equals(_window(baseline, "flow", 0, 2400))  # only named sensors move
    base_vib, vib = _window(baseline, "vibration_rms", 1700, 1800), _window(faulty, "vibration_rms", 1700, 1800)
    ratio = vib.mean() / base_vib.mean()  # type: ignore[operator]
    assert 1.8 < ratio < 4.5
    temp_rise = (
        _window(faulty, "bearing_temp", 1700, 1800).mean() - _window(baseline, "bearing_temp", 1700, 1800).mean()
    )  # type: ignore[operator]
    assert 5 < temp_rise < 20
    assert _window(faulty, "vibration_rms", 0, 600).equals(_window(baseline, "vibration_rms", 0, 600))


def test_leak_drops_pressure_and_raises_flow_at_same_speed(baseline: pl.DataFrame) -> None:
    faulty = _run((_label("leak", ("pressure", "flow")),))
    drop = 1 - _window(faulty, "pressure", 1200, 1800).mean() / _window(baseline, "pressure", 1200, 1800).mean()  # type: ignore[operator]
    assert 0.12 < drop < 0.33
    assert _window(faulty, "flow", 1200, 1800).mean() > _window(baseline, "flow", 1200, 1800).mean()  # type: ignore[operator]
    assert _window(faulty, "speed", 0, 2400).equals(_window(baseline, "speed", 0, 2400))


def test_stuck_sensor_is_frozen(baseline: pl.DataFrame) -> None:
    faulty = _run((_label("stuck", ("motor_current",)),))
    stuck = _window(faulty, "motor_current", 600, 1800)
    assert stuck.n_unique() == 1
    assert _window(baseline, "motor_current", 600, 1800).n_unique() > 100
    assert _window(faulty, "motor_current", 1800, 2400).equals(_window(baseline, "motor_current", 1800, 2400))


@pytest.mark.parametrize("sensor", ["bearing_temp", "pressure"])
def test_drift_walks_away_progressively(baseline: pl.DataFrame, sensor: str) -> None:
    faulty = _run((_label("drift", (sensor,)),))
    early = (_window(faulty, sensor, 600, 700) - _window(baseline, sensor, 600, 700)).abs().mean()
    late = (_window(faulty, sensor, 1700, 1800) - _window(baseline, sensor, 1700, 1800)).abs().mean()
    assert late > 5 * early  # type: ignore[operator]
    nominal = _window(baseline, sensor, 0, 600).mean()
    assert 0.07 < late / nominal < 0.25  # type: ignore[operator]


def test_spikes_are_isolated_large_outliers(baseline: pl.DataFrame) -> None:
    faulty = _run((_label("spike", ("vibration_rms",)),))
    diff = (_window(faulty, "vibration_rms", 600, 1800) - _window(baseline, "vibration_rms", 600, 1800)).abs()
    level = _window(baseline, "vibration_rms", 0, 600).mean()
    spikes = int((diff > 0.25 * level).sum())  # type: ignore[operator]
    assert 10 <= spikes <= 200  # about 5 % of 1200 readings
    assert int((diff > 0).sum()) == spikes  # everything else untouched


def test_dropout_removes_readings(baseline: pl.DataFrame) -> None:
    faulty = _run((_label("dropout", ("flow",)),))
    assert _window(faulty, "flow", 600, 1800).len() == 0
    assert _window(baseline, "flow", 600, 1800).len() == 1200
    assert faulty.height == baseline.height - 1200
    assert _window(faulty, "pressure", 600, 1800).equals(_window(baseline, "pressure", 600, 1800))


def test_invalid_explicit_schedule_is_refused() -> None:
    wrong_kind = FaultLabel("pump-01", START, START + timedelta(seconds=5), "sensor_fault", "leak", ())
    with pytest.raises(ValueError, match="machine_fault"):
        PlantConfig(assets=ONE_PUMP, schedule=(wrong_kind,))
    no_sensor = FaultLabel("pump-01", START, START + timedelta(seconds=5), "sensor_fault", "stuck", ())
    with pytest.raises(ValueError, match="must name"):
        PlantConfig(assets=ONE_PUMP, schedule=(no_sensor,))
    with pytest.raises(ValueError, match="unknown asset"):
        other = FaultLabel("pump-09", START, START + timedelta(seconds=5), "machine_fault", "leak", ())
        PlantConfig(assets=ONE_PUMP, schedule=(other,))


def test_a_plant_in_another_time_zone_follows_its_own_clock() -> None:
    """A Tokyo plant (UTC+9) from midnight UTC reads what a UTC plant reads from 09:00 UTC: the same steps at the
    same wall-clock time of day, so the daily pattern follows the local clock."""
    shift = timedelta(hours=9)
    config = PlantConfig(assets=ONE_PUMP, seed=3, fault_rate_per_asset_per_hour=0.0)
    tokyo, _ = Plant(replace(config, timezone="Asia/Tokyo")).generate(START, 1800)
    utc, _ = Plant(config).generate(START + shift, 1800)
    assert tokyo.with_columns(pl.col("ts") + shift).equals(utc)
    assert not tokyo.equals(Plant(config).generate(START, 1800)[0])  # the pattern did move
    with pytest.raises(ValueError, match="unknown time zone"):
        PlantConfig(assets=ONE_PUMP, timezone="Asia/Tokio")
