"""Two days of a simulated pump at a 10 s cadence: trained with lag and time-of-day inputs, bundled, loaded,
and scored from serving's ring buffers exactly as training's preprocessing would score the same readings.

The plant runs on New York's clock and the data span its autumn change (2026-11-01 06:00 UTC), so the time of
day, read on that clock in training and in serving, moves an hour against UTC inside the training data."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from prometheus_client import CollectorRegistry

from linewatch.core.config import AssetGroupConfig, LinewatchConfig
from linewatch.ingest.reader import scan_readings, to_wide
from linewatch.ingest.records import Reading
from linewatch.ingest.simulate import AssetSpec, Plant, PlantConfig
from linewatch.ingest.store import ParquetStore
from linewatch.models.model import Model
from linewatch.models.registry import Registry
from linewatch.models.train import train_group
from linewatch.serving.buffers import BufferSet, capacity_for
from linewatch.serving.metrics import ServeMetrics
from linewatch.serving.model_windows import to_model_windows
from linewatch.serving.scorer import Scorer

START = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_model_with_slow_inputs_scores_the_same_in_serving(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    zone = "America/New_York"
    plant = Plant(
        PlantConfig(
            assets=(AssetSpec("pump-01", "pump"),), cadence_s=10.0, fault_rate_per_asset_per_hour=0.0, timezone=zone
        )
    )
    frame, _ = plant.generate(START, 2.1 * 86400)
    us = frame["ts"].dt.epoch("us").to_list()
    rows = [
        Reading(t, a, s, v, t) for t, a, s, v in zip(us, frame["asset"], frame["sensor"], frame["value"], strict=True)
    ]
    ParquetStore(tmp_path / "store", "t").write_readings(rows)
    registry = Registry(tmp_path / "models")
    window = {"length": 12, "stride": 3, "timezone": zone}
    group = AssetGroupConfig.model_validate({"name": "pumps", "cadence_s": 10.0, "window": window})
    report = train_group(tmp_path / "store", group, registry, say=lambda _: None)
    model = Model.from_bundle(*registry.load_champion("pumps"))
    spec = model.preprocessor.spec
    assert report.promoted and spec.lag_s == 900.0 and spec.daily and spec.history_steps == 180
    assert spec.timezone == zone
    assert model.detector.config()["lag_inputs"] and model.detector.config()["daily_inputs"]

    long = scan_readings(tmp_path / "store", ["pump-01"]).collect()
    buffers = BufferSet(list(model.sensors), spec.cadence_s, capacity_for(spec))
    buffers.add(long.filter(pl.col("ts") >= long["ts"].max() - (spec.history_steps + spec.length + 20) * spec.cadence))
    latest = buffers.latest(["pump-01"], spec.length + spec.history_steps, spec.max_gap_steps)
    served_windows = to_model_windows(latest.values, latest.observed, latest.end_ts, model.preprocessor)
    served = model.score(served_windows)
    end = int(latest.end_ts[0])
    first = int(us[0]) // spec.cadence_us * spec.cadence_us
    wide = to_wide(long, first, end, spec.cadence_us, sensors=list(model.sensors), max_gap=spec.max_gap_steps)
    trained_windows = model.preprocessor.transform(wide)
    trained = model.score(trained_windows)
    assert trained.end_ts[-1] == served.end_ts[0]
    np.testing.assert_allclose(served.raw_score[0], trained.raw_score[-1], rtol=1e-4)
    np.testing.assert_array_equal(served.health[0], trained.health[-1])
    assert served.valid[0] and np.isfinite(served.anomaly_score[0])
    # The lag and time-of-day inputs (read by the isolation) are training's too.
    np.testing.assert_allclose(served_windows.X[0], trained_windows.X[-1], rtol=1e-5, atol=1e-5)
    iso_served, iso_trained = model.detector.isolation(served_windows.X), model.detector.isolation(trained_windows.X)
    assert iso_served is not None and iso_trained is not None
    np.testing.assert_allclose(iso_served.fault_z[0], iso_trained.fault_z[-1], rtol=1e-3, atol=1e-3)

    # Serving reads the clock the bundle was trained on; a configuration that now says otherwise is named.
    utc = group.model_copy(update={"window": group.window.model_copy(update={"timezone": "UTC"})})
    cfg = LinewatchConfig(storage={"root": tmp_path}, models={"asset_groups": [utc.model_dump()]})
    scorer = Scorer(cfg, ServeMetrics(CollectorRegistry()))
    with caplog.at_level(logging.WARNING, logger="linewatch.serving.scorer"):
        scorer.refresh_models()
    assert scorer.groups["pumps"].model.preprocessor.spec.timezone == zone
    assert any(f"time of day on {zone}, the configuration says UTC" in r.getMessage() for r in caplog.records)
