"""Adapting a trained model to a new machine with hours of its data (``linewatch train --adapt-from``).

The scaling rule on literal numbers; finding the source model; and the whole path on the simulated plant: a
model trained on one pump, adapted to a bigger pump of the same type from three hours of its data, must keep
its detector and threshold, learn the new levels, stay quiet on the bigger pump's normal running, where the
unadapted model alarms, and still catch a leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from linewatch.core.config import AssetGroupConfig, TrainingConfig
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.records import Reading
from linewatch.ingest.simulate import AssetSpec, Plant, PlantConfig
from linewatch.ingest.store import ParquetStore
from linewatch.models.adapt import (
    AdaptSourceError,
    adapted_scaling,
    daily_swing,
    load_source,
    related_levels,
    related_spreads,
)
from linewatch.models.base import make_detector
from linewatch.models.calibration import Calibrator
from linewatch.models.model import Model
from linewatch.models.registry import Registry
from linewatch.models.sensor_stats import SensorStats
from linewatch.models.simeval import score_asset
from linewatch.models.train import TrainingError, train_group
from linewatch.models.windows import Preprocessor, WindowSpec

START = datetime(2026, 11, 2, tzinfo=UTC)
#: store root, registry with the source group "pumps", the bigger pump's later readings, fault labels
Setup = tuple[Path, Registry, pl.DataFrame, list[FaultLabel]]
#: A bigger pump of the same type: readings scaled (size) and offset (a warmer bearing, a stiffer base).
BIGGER = {
    "flow": (1.6, 0.0),
    "pressure": (1.3, 0.5),
    "motor_current": (1.5, 0.0),
    "vibration_rms": (1.2, 0.3),
    "bearing_temp": (1.0, 8.0),
    "speed": (1.0, 0.0),
}


def _stats(median: list[float], scale: list[float]) -> SensorStats:
    m, s = np.asarray(median), np.asarray(scale)
    return SensorStats(m, s, m - 3 * s, m + 3 * s, m - 4 * s, m + 4 * s, s, s / 10, m * 0 + 0.9, m * 0 + 2, m * 0 + 1)


def _pre(sensors: Sequence[str], median: list[float], scale: list[float]) -> Preprocessor:
    return Preprocessor(WindowSpec(cadence_s=1.0, length=10), tuple(sensors), _stats(median, scale))


def test_spread_is_never_narrower_than_the_source_scaled_by_size() -> None:
    source = _pre(("flow", "temp", "signed", "huge"), [100.0, 50.0, 0.0, 10.0], [10.0, 4.0, 2.0, 1.0])
    # Hours of a machine 1.6x the size: narrow spreads; a warmer bearing; a sensor near zero; a level 100x.
    new = _pre(("flow", "temp", "signed", "huge"), [160.0, 58.0, 0.3, 1000.0], [9.0, 5.0, 0.5, 3.0])
    out = adapted_scaling(new, source)
    # flow: 10 x 1.6; temp: its own spread is the wider; signed: no size from a level near zero (ratio 1, not
    # 0.3 / 1e-12); huge: the ratio is bounded at 4.
    np.testing.assert_allclose(out.stats.scale, [16.0, 5.0, 2.0, 4.0])
    np.testing.assert_array_equal(out.stats.median, new.stats.median)  # levels are the new machine's own
    # Health ranges: the source's, carried onto the new level and spread, when wider than the hours' own.
    np.testing.assert_allclose(out.stats.p999[0], 160.0 + 3 * 10.0 * 1.6)  # source p999 = median + 3 spreads
    np.testing.assert_allclose(out.stats.p001[1], new.stats.p001[1])  # temp: its own range is the wider
    assert np.all(out.stats.max_repeat >= new.stats.max_repeat)
    assert new.stats.scale[0] == 9.0  # the input is not modified
    with pytest.raises(ValueError, match="sensors differ"):
        adapted_scaling(_pre(("flow",), [1.0], [1.0]), source)


def test_level_from_hours_is_set_for_the_whole_day_by_the_sources_daily_profile() -> None:
    # The source's bearing swings with the day, 45 - 5 cos(2 pi h / 24): 40 at midnight, 50 at noon, 45 on average;
    # flow does not follow the day. The new machine, 1.2x the size, has only 00:00-05:59, its bearing at 1.2x the
    # source's at those hours.
    hour = np.arange(24)
    swing = 45.0 - 5.0 * np.cos(2 * np.pi * hour / 24)
    source = _pre(("bearing", "flow"), [45.0, 100.0], [2.0, 10.0])
    source.daily_median_ = np.column_stack([swing, np.full(24, 100.0)])
    night = swing[:6].mean()  # 41.42
    new = _pre(("bearing", "flow"), [1.2 * night, 120.0], [1.0, 5.0])
    new.daily_median_ = np.full((24, 2), np.nan)
    new.daily_median_[:6] = np.column_stack([1.2 * swing[:6], np.full(6, 120.0)])
    out = adapted_scaling(new, source)
    # Size from like hours: 1.2 (not 1.2 x 41.42 / 45); spreads from the source's times that.
    np.testing.assert_allclose(out.stats.scale, [2.4, 12.0])
    # Daily level: the source's daily mean carried over, 1.2 x 41.42 + (45 - 41.42) x 1.2 = 54.
    np.testing.assert_allclose(out.stats.median, [54.0, 120.0])
    assert out.daily_median_ is not None
    np.testing.assert_allclose(out.daily_median_[[0, 12], 0], [48.0, 60.0])  # the adapted profile: night, noon
    # Without a profile on either side (bundles saved before it), the hours' level stands, as before.
    hours_only = [1.2 * night, 120.0]
    np.testing.assert_allclose(adapted_scaling(replace(new, daily_median_=None), source).stats.median, hours_only)
    np.testing.assert_allclose(adapted_scaling(new, replace(source, daily_median_=None)).stats.median, hours_only)


def _site_day(start: datetime, hours: int, timezone: str, size: float) -> pl.DataFrame:
    """A bearing that warms with the plant's local day, 45 - 5 cos(2 pi h / 24) times ``size``, every 10 minutes."""
    ts = [start + timedelta(minutes=10 * i) for i in range(hours * 6)]
    local_h = np.array([(t.astimezone(ZoneInfo(timezone)).hour) for t in ts], dtype=np.float64)
    return pl.DataFrame({"ts": ts, "bearing": size * (45.0 - 5.0 * np.cos(2 * np.pi * local_h / 24))})


def test_a_site_in_another_time_zone_lines_its_hours_up_by_the_local_clock() -> None:
    """A source trained at a Berlin plant, adapted at a New York plant from its first local night (00:00-05:59
    EST, 05:00-10:59 UTC): on each site's clock the new hours are the source's night, and the day's level comes
    out at 1.2 x 45 = 54; on UTC both profiles, those hours are the source's morning and the level is wrong."""
    berlin, new_york = "Europe/Berlin", "America/New_York"
    source_day = _site_day(datetime(2026, 11, 1, tzinfo=UTC), 48, berlin, 1.0)
    night = _site_day(datetime(2026, 11, 3, 5, tzinfo=UTC), 6, new_york, 1.2)

    def adapted_level(source_zone: str, new_zone: str) -> float:
        source = Preprocessor(WindowSpec(600, 4, timezone=source_zone)).fit(source_day, ["bearing"])
        new = Preprocessor(WindowSpec(600, 4, timezone=new_zone)).fit(night, ["bearing"])
        return float(adapted_scaling(new, source).stats.median[0])

    assert adapted_level(berlin, new_york) == pytest.approx(54.0, abs=0.01)
    assert adapted_level("UTC", "UTC") < 54.0 - 5.0  # the old UTC clock: 46.8, 7 degC too cold


def test_hour_to_hour_noise_is_smoothed_out_of_a_profile_and_a_daily_swing_kept() -> None:
    """Two days of random loads leave hourly medians that jump from hour to hour: not a shape of the day."""
    hour = np.arange(24)
    swing = 45.0 - 5.0 * np.cos(2 * np.pi * hour / 24) + 2.0 * np.sin(4 * np.pi * hour / 24)  # warmth, two shifts
    noise = np.where(hour % 2 == 0, 3.0, -3.0)  # loads that alternate hour by hour
    profile = np.column_stack([swing, 100.0 + noise, 100.0 + noise])
    profile[3::4] = np.nan  # the hours a held-out cycle took
    profile[6:, 2] = np.nan  # six hours only: too few to tell a swing from noise
    out = daily_swing(profile)
    seen = ~np.isnan(profile[:, 0])
    np.testing.assert_allclose(out[seen, 0], swing[seen])  # a swing within two harmonics is kept exactly
    assert np.ptp(out[seen, 1]) < 0.25 * np.ptp(noise)  # the noise mostly gone: no shape of the day left
    assert np.nanmean(out[:, 1]) == pytest.approx(np.nanmean(profile[:, 1]))  # the day's level unchanged
    np.testing.assert_array_equal(np.isnan(out), np.isnan(profile))
    np.testing.assert_array_equal(out[:6, 2], profile[:6, 2])  # six hours: taken as they are


def _related(offset: float, n: int = 2000, seed: int = 0) -> pl.DataFrame:
    """Two sensors that move together (b follows a), b sitting ``offset`` above where a says it should."""
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.normal(0, 0.1, n))
    a = (a - a.mean()) / a.std()
    b = a + offset + rng.normal(0, 0.05, n)
    return pl.DataFrame({"ts": [START + timedelta(seconds=i) for i in range(n)], "a": a, "b": b})


def test_levels_are_moved_until_the_source_relations_hold_on_the_new_hours() -> None:
    spec = WindowSpec(cadence_s=1.0, length=10)
    trained = Preprocessor(spec).fit(_related(0.0), ["a", "b"])
    windows = trained.transform(_related(0.0))
    detector = make_detector("pca_t2q", seed=0).fit(windows.X)
    calibrator = Calibrator.fit(detector.decision_function(windows.X), quantile=0.99)
    source = Model(group="src", version="v1", preprocessor=trained, detector=detector, calibrator=calibrator)
    # The new machine's b reads 0.8 above what its a implies, and its levels were carried (here: both 0, as a
    # source's daily level might say), so on its hours b sits off its partner by 0.8.
    hours = _related(0.8, seed=1)
    own = Preprocessor(spec).fit(hours, ["a", "b"])
    carried = replace(own, stats_=replace(own.stats, median=np.zeros(2)))
    seen = carried.transform(hours)
    seen = seen.select(seen.valid)
    out = related_levels(carried, source, None, seen)
    # The relation fixes the difference between the two levels (which of them moved, it cannot tell).
    assert out.stats.median[1] - out.stats.median[0] == pytest.approx(0.8, abs=0.05)
    assert out.daily_median_ is not None and own.daily_median_ is not None  # the profile moves with the level
    np.testing.assert_allclose(out.daily_median_[0] - carried.daily_median_[0], out.stats.median)
    np.testing.assert_array_equal(out.stats.scale, carried.stats.scale)
    rescaled = out.transform(hours)
    residual = (rescaled.X[:, -1, :] - detector.expected(rescaled.X)).mean(axis=0)
    before = (seen.X[:, -1, :] - detector.expected(seen.X)).mean(axis=0)
    assert np.abs(before).max() > 0.2  # the carried levels did break the relation
    assert np.abs(residual).max() < 0.1 * np.abs(before).max()
    # A detector without an expectation of its own (IForest: the training level) leaves the levels alone.
    forest = make_detector("iforest", seed=0).fit(windows.X)
    plain = replace(source, detector=forest)
    assert related_levels(carried, plain, None, seen) is carried


def _loaded(size: float, offset: float, n: int, seed: int) -> pl.DataFrame:
    """Three sensors driven by one load (a, b, c) and one that moves on its own (d), on a machine ``size`` times
    bigger whose c also reads ``offset`` high at every load."""
    rng = np.random.default_rng(seed)
    load = np.cumsum(rng.normal(0, 0.1, n))
    load = 100 + 10 * (load - load.mean()) / load.std()
    cols = {
        "a": load + rng.normal(0, 0.5, n),
        "b": 2 * load + rng.normal(0, 1.0, n),
        "c": 0.5 * load + rng.normal(0, 0.25, n),
        "d": 20 + rng.normal(0, 1.0, n),
    }
    out = {k: size * v + (offset if k == "c" else 0.0) for k, v in cols.items()}
    return pl.DataFrame({"ts": [START + timedelta(seconds=i) for i in range(n)], **out})


def test_spreads_are_read_off_the_relations_where_an_offset_misleads_the_size_ratio() -> None:
    """A bigger machine (1.5x) whose c carries an offset: its level ratio (2.1) is not its size, so the size
    ratio makes c's spread 36 % too wide. The relations with a and b say how far c moves per unit of load and
    bring c in line with them; d, which no partner explains, keeps the size ratio's spread."""
    spec = WindowSpec(cadence_s=1.0, length=10)
    sensors = ["a", "b", "c", "d"]
    trained = Preprocessor(spec).fit(_loaded(1.0, 0.0, 3000, 0), sensors)
    windows = trained.transform(_loaded(1.0, 0.0, 3000, 0))
    detector = make_detector("pca_t2q", seed=0).fit(windows.X)
    calibrator = Calibrator.fit(detector.decision_function(windows.X), quantile=0.99)
    source = Model(group="src", version="v1", preprocessor=trained, detector=detector, calibrator=calibrator)
    hours = _loaded(1.5, 30.0, 2000, 1)
    own = Preprocessor(spec).fit(hours, sensors)
    sized = adapted_scaling(own, trained)
    seen = sized.transform(hours)
    seen = seen.select(seen.valid)
    true = 1.5 * trained.stats.scale
    assert sized.stats.scale[2] / true[2] > 1.3  # the offset misleads the size ratio
    np.testing.assert_allclose(sized.stats.scale[:2] / true[:2], 1.0, atol=0.02)  # a's and b's it gets right
    spread = related_spreads(sized, source, seen)
    # c comes in line with a and b, whose spreads keep the size ratio's (relations cannot tell size: a, b and c
    # all twice as wide relate as well, so an offset sensor must not pull the others towards its error).
    np.testing.assert_allclose(spread[:3] / true[:3], 1.0, atol=0.05)
    assert spread[3] == sized.stats.scale[3]
    fixed = adapted_scaling(own, trained, spread=spread)
    np.testing.assert_allclose(fixed.stats.scale[:3] / true[:3], 1.0, atol=0.05)
    # Hours whose own spread of a is too wide (they swept loads the source rarely saw): a tracks its partners, so
    # what the relations read wins over the hours' spread, which would otherwise hold a 30 % too wide.
    # (Here without c's offset: the size ratio is what the majority of sensors gets right.)
    plain = _loaded(1.5, 0.0, 2000, 1)
    mine = Preprocessor(spec).fit(plain, sensors)
    swept = replace(mine, stats_=replace(mine.stats, scale=mine.stats.scale * np.array([1.3, 1.0, 1.0, 1.0])))
    held = adapted_scaling(swept, trained)
    assert held.stats.scale[0] / true[0] > 1.25
    swept_seen = held.transform(plain)
    swept_seen = swept_seen.select(swept_seen.valid)
    narrowed = adapted_scaling(swept, trained, spread=related_spreads(held, source, swept_seen))
    np.testing.assert_allclose(narrowed.stats.scale[:3] / true[:3], 1.0, atol=0.05)
    # A detector without an expectation of its own leaves the size ratio's spreads as they are.
    forest = replace(source, detector=make_detector("iforest", seed=0).fit(windows.X))
    np.testing.assert_array_equal(related_spreads(sized, forest, seen), sized.stats.scale)


def _bigger(frame: pl.DataFrame) -> pl.DataFrame:
    parts = [
        frame.filter(pl.col("sensor") == sensor).with_columns(pl.col("value") * a + b)
        for sensor, (a, b) in BIGGER.items()
    ]
    return pl.concat(parts).sort("ts")


def _store(frame: pl.DataFrame, root: Path) -> None:
    us = frame["ts"].dt.epoch("us").to_list()
    rows = zip(us, frame["asset"], frame["sensor"], frame["value"], strict=True)
    ParquetStore(root, "test").write_readings([Reading(t, a, s, v, t) for t, a, s, v in rows])


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """pump-01: 24 h to train the source on; pump-02 (made bigger): 3 h to adapt on, then 6 h with a leak."""
    src_h, new_h, test_h = 24, 3, 6
    leak_at = START + timedelta(hours=src_h + new_h + 3)
    leak = FaultLabel(
        "pump-02", leak_at, leak_at + timedelta(minutes=40), "machine_fault", "leak", ("pressure", "flow")
    )
    assets = (AssetSpec("pump-01", "pump"), AssetSpec("pump-02", "pump"))
    frame, labels = Plant(PlantConfig(assets=assets, seed=11, schedule=(leak,))).generate(
        START, (src_h + new_h + test_h) * 3600
    )
    t_src, t_new = START + timedelta(hours=src_h), START + timedelta(hours=src_h + new_h)
    pump2 = _bigger(frame.filter(pl.col("asset") == "pump-02"))
    root = tmp_path_factory.mktemp("adapt")
    _store(frame.filter((pl.col("asset") == "pump-01") & (pl.col("ts") < t_src)), root / "store")
    _store(pump2.filter((pl.col("ts") >= t_src) & (pl.col("ts") < t_new)), root / "store")
    registry = Registry(root / "models")
    train_group(root / "store", AssetGroupConfig(name="pumps", assets=["pump-01"]), registry)
    return root, registry, pump2.filter(pl.col("ts") >= t_new), labels


def test_adapted_model_keeps_detector_and_threshold_and_fits_the_new_pump(
    plant: Setup,
) -> None:
    root, registry, later, labels = plant
    source = load_source(registry, "pumps")
    messages: list[str] = []
    report = train_group(
        root / "store",
        AssetGroupConfig(name="big-pumps", assets=["pump-02"]),
        registry,
        adapt_from=source,
        say=messages.append,
    )
    assert report.promoted and report.sensors == list(source.sensors)
    adapted = load_source(registry, "big-pumps")
    assert adapted.manifest["training"]["adapted_from"] == {"asset_group": "pumps", "version": source.version}
    (listed,) = registry.info("big-pumps")
    assert listed.adapted_from == f"pumps@{source.version}" and registry.info("pumps")[0].adapted_from is None
    assert adapted.preprocessor.spec == source.preprocessor.spec
    ours, theirs = adapted.detector.get_state()[0], source.detector.get_state()[0]
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)
    assert adapted.calibrator.threshold >= source.calibrator.threshold
    assert any("adapting model pumps/" in m for m in messages)
    assert any("00:00-02:59 UTC is less than a day" in m for m in messages), messages  # 3 h from midnight
    # The vibration's offset (a stiffer base) misleads the size ratio; the relations correct it, and say so.
    (spreads,) = [m for m in messages if m.startswith("spreads read off the relations")]
    assert "vibration_rms" in spreads and "flow" not in spreads, spreads
    # The new levels were learned (flow 1.6x; the bearing's level also depends on the hours' time of day).
    i_flow = adapted.sensors.index("flow")
    ratio = adapted.preprocessor.stats.median[i_flow] / source.preprocessor.stats.median[i_flow]
    assert 1.2 < ratio < 2.0

    # On the bigger pump's normal hours the adapted model is quiet; the unadapted one alarms all the time.
    (leak,) = [lb for lb in labels if lb.asset == "pump-02"]
    normal = later.filter(pl.col("ts") < leak.start)
    calm, loud = (score_asset(m, normal, 10) for m in (adapted, source))
    assert np.mean(calm.anomaly_score[calm.valid] >= 1) <= 0.01
    assert np.mean(loud.anomaly_score[loud.valid] >= 1) >= 0.5
    # And the leak is caught, blamed on pressure or flow.
    during = later.filter((pl.col("ts") >= leak.start + timedelta(minutes=10)) & (pl.col("ts") < leak.end))
    scored = score_asset(adapted, during, 10)
    hot = scored.valid & (scored.anomaly_score >= 1)
    assert hot.mean() >= 0.5
    blamed = {adapted.sensors[int(j)] for j in scored.contributions[hot].argmax(axis=1)}
    assert blamed & {"pressure", "flow"}


def test_an_adapted_model_reads_the_time_of_day_on_the_new_groups_clock(plant: Setup) -> None:
    root, registry, _, _ = plant
    source = load_source(registry, "pumps")
    group = AssetGroupConfig(name="chicago-pumps", assets=["pump-02"])
    group = group.model_copy(update={"window": group.window.model_copy(update={"timezone": "America/Chicago"})})
    said: list[str] = []
    train_group(root / "store", group, registry, adapt_from=source, say=said.append)
    spec = load_source(registry, "chicago-pumps").preprocessor.spec
    assert spec == replace(source.preprocessor.spec, timezone="America/Chicago")
    assert any("read on America/Chicago" in m and "source model's on UTC" in m for m in said), said
    assert registry.info("chicago-pumps")[0].clock == "America/Chicago" and registry.info("pumps")[0].clock == "UTC"


def test_the_wandering_level_rule_does_not_stop_an_adaptation(plant: Setup) -> None:
    """Three hours of the new pump are too few to learn its bearing's level, which is why the level is carried."""
    root, registry, _, _ = plant
    source = load_source(registry, "pumps")
    training = TrainingConfig(max_unit_root_p=0.05)
    group = AssetGroupConfig(name="ruled-pumps", assets=["pump-02"], training=training)
    # Trained on the same three hours, the rule leaves sensors out; adapting, every one of the source's is kept.
    with pytest.raises(TrainingError, match="level wanders"):
        train_group(root / "store", group.model_copy(update={"sensors": list(source.sensors)}), registry)
    report = train_group(root / "store", group, registry, adapt_from=source)
    assert report.promoted and report.sensors == list(source.sensors)


def test_source_by_version_and_by_bundle_directory(
    plant: Setup,
) -> None:
    _, registry, _, _ = plant
    (version,) = registry.versions("pumps")
    by_version = load_source(registry, f"pumps@{version}")
    by_path = load_source(registry, str(registry.group_dir("pumps") / version))
    assert by_version.version == by_path.version == version
    with pytest.raises(AdaptSourceError, match="no model version 'v0'"):
        load_source(registry, "pumps@v0")
    with pytest.raises(AdaptSourceError, match="no champion"):
        load_source(registry, "compressors")
    with pytest.raises(AdaptSourceError, match="invalid asset group"):
        load_source(registry, "../etc")


def test_a_group_without_the_sources_sensors_cannot_adapt(
    plant: Setup,
) -> None:
    root, registry, _, _ = plant
    source = load_source(registry, "pumps")
    lacking = replace(source, preprocessor=replace(source.preprocessor, sensors_=(*source.sensors[:-1], "torque")))
    with pytest.raises(TrainingError, match="torque"):
        train_group(root / "store", AssetGroupConfig(name="other", assets=["pump-02"]), registry, adapt_from=lacking)


def test_cli_adapt_needs_a_group_and_an_existing_source(tmp_path: Path) -> None:
    from linewatch.serving.cli import app

    config = tmp_path / "lw.yaml"
    config.write_text(f"home: {tmp_path}\n")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(config), "--adapt-from", "pumps"])
    assert res.exit_code == 2 and "--asset-group" in res.output
    res = runner.invoke(app, ["train", "--config", str(config), "--adapt-from", "nowhere", "--asset-group", "default"])
    assert res.exit_code == 1 and "cannot adapt from 'nowhere'" in res.output
