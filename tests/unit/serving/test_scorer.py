"""The scorer against a real store and registry: a model whose sensors the data lacks is refused."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from linewatch.core.config import AssetGroupConfig, LinewatchConfig
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore
from linewatch.models.registry import Registry
from linewatch.models.train import train_group
from linewatch.serving.metrics import ServeMetrics
from linewatch.serving.scorer import Scorer


def _store(root: Path, sensors: list[str], seconds: int, end_s: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for t in range(end_s - seconds, end_s):
        base = 1 + 0.2 * np.sin(t / 200)
        for j, sensor in enumerate(sensors):
            us = t * 1_000_000
            rows.append(Reading(us, "pump-01", sensor, float(base * (j + 1) + rng.normal(0, 0.01)), us))
    ParquetStore(root, "t").write_readings(rows)


def test_model_needing_a_sensor_the_data_lacks_is_refused(tmp_path: Path) -> None:
    now_s = int(datetime.now(UTC).timestamp())
    group = AssetGroupConfig(name="pumps", assets=["pump-*"])
    trained = tmp_path / "trained"
    _store(trained, ["a", "b", "c"], 3 * 3600, now_s - 600)
    train_group(trained, group, Registry(trained / "models"), say=lambda _: None)

    live = tmp_path / "live"
    _store(live, ["a", "b"], 300, now_s)  # sensor c is gone
    shutil.copytree(trained / "models", live / "models")
    cfg = LinewatchConfig(storage={"root": live}, models={"asset_groups": [group.model_dump()]})
    registry = CollectorRegistry()
    scorer = Scorer(cfg, ServeMetrics(registry))
    scorer.refresh_models()
    assert "pumps" in scorer.groups  # no data read yet: nothing to check against
    scorer.backfill()
    assert "pumps" not in scorer.groups
    assert registry.get_sample_value("linewatch_bundles_refused_total", {"asset_group": "pumps"}) == 1.0
    ratio = "linewatch_model_threshold_training_ratio"
    assert registry.get_sample_value(ratio, {"asset_group": "pumps"}) is None  # refused: no figure of it served
    scorer.refresh_models()  # the same bundle is not retried (and not counted twice)
    assert "pumps" not in scorer.groups
    assert registry.get_sample_value("linewatch_bundles_refused_total", {"asset_group": "pumps"}) == 1.0

    # With all sensors present, the same bundle is served and scores the asset.
    ok_root = tmp_path / "ok"
    _store(ok_root, ["a", "b", "c"], 300, now_s)
    shutil.copytree(trained / "models", ok_root / "models")
    cfg_ok = LinewatchConfig(storage={"root": ok_root}, models={"asset_groups": [group.model_dump()]})
    served = CollectorRegistry()
    ok = Scorer(cfg_ok, ServeMetrics(served))
    ok.refresh_models()
    ok.backfill()
    assert "pumps" in ok.groups and ok.tick() == 1
    # The model's threshold against its training line is exported, as training measured it.
    figure = ok.groups["pumps"].model.manifest["metrics"]["threshold_over_training_line"]
    assert served.get_sample_value(ratio, {"asset_group": "pumps"}) == figure > 0
