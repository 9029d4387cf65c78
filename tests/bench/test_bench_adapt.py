"""Benchmark: adapting a model to a new machine from little data (``make bench``; .bench/adapt.json).

Three ways to watch a new machine that has only hours of history, compared on what follows:
``source`` (a sibling's model as it is), ``fresh`` (trained on the hours, as ``linewatch train`` would) and
``adapted`` (``linewatch train --adapt-from``: the sibling's detector and threshold, the hours' levels).
``adapted_other_site`` and ``adapted_other_site_on_utc``: the same new pump at a site five hours behind, adapted
with and without its time zone (``window.timezone``).

- Simulated plant, seeds 0-4 fixed in advance: the source is trained on 48 h of pump-01; the new machine is
  pump-02 made bigger (readings scaled and offset per sensor, as a larger pump of the same type reads), with 6 h
  to learn from and the next 72 h, with random faults, scored with the shared alert policy.
- SMD, machines 1-2 ... 1-8: each machine in turn is the new one, with the first day (1,440 rows) of its train
  data; the source is the next machine's model trained on its whole train split. Scored on the test data with
  the evaluation protocol (VUS-PR, AUC-PR, event recall, false alarms per day). SMD's "machines" are servers
  with different workloads, not one machine type: the harder case for adapting.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from linewatch.core.config import AssetGroupConfig
from linewatch.ingest.simulate import AssetSpec, Plant, PlantConfig
from linewatch.models.adapt import (
    adapted_calibration,
    adapted_scaling,
    covered_hours,
    load_source,
    related_levels,
    related_spreads,
)
from linewatch.models.calibration import Calibrator
from linewatch.models.evaluation.config import EvalConfig
from linewatch.models.evaluation.metrics import confusion, event_stats, false_alarms_per_day
from linewatch.models.evaluation.pipeline import Fitted, _windows, fit_model, score_rows, wide_frame
from linewatch.models.evaluation.rangeauc import auc_pr, vus_pr
from linewatch.models.evaluation.smd import CADENCE_S, _split, find_machines, load_machine
from linewatch.models.model import Model
from linewatch.models.registry import Registry
from linewatch.models.simeval import evaluate
from linewatch.models.train import train_group
from linewatch.models.windows import Preprocessor
from tests.unit.models.test_adapt import START, _bigger, _store

pytestmark = pytest.mark.timeout(3600)
OUT = Path(__file__).resolve().parents[2] / ".bench" / "adapt.json"
SMD = Path(__file__).resolve().parents[3] / "shared" / "data" / "smd"
SEEDS = (0, 1, 2, 3, 4)
SOURCE_H, NEW_H, TEST_H = 48, 6, 72
SMD_DAY_ROWS = 1440
OTHER_SITE_ZONE = "America/New_York"  # EST all November: the bench starts the day after the US change
WAYS = ("source", "fresh", "adapted", "adapted_other_site", "adapted_other_site_on_utc")


def _sim_seed(seed: int) -> dict[str, dict[str, float]]:
    assets = (AssetSpec("pump-01", "pump"), AssetSpec("pump-02", "pump"))
    config = PlantConfig(
        assets=assets, seed=seed, fault_free_s=(SOURCE_H + NEW_H) * 3600 + 1800, fault_rate_per_asset_per_hour=0.25
    )
    frame, labels = Plant(config).generate(START, (SOURCE_H + NEW_H + TEST_H) * 3600)
    t_src, t_new = START + timedelta(hours=SOURCE_H), START + timedelta(hours=SOURCE_H + NEW_H)
    pump2 = _bigger(frame.filter(pl.col("asset") == "pump-02"))
    root = Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    _store(frame.filter((pl.col("asset") == "pump-01") & (pl.col("ts") < t_src)), root / "store")
    _store(pump2.filter((pl.col("ts") >= t_src) & (pl.col("ts") < t_new)), root / "store")
    registry = Registry(root / "models")
    quiet = lambda text: None  # noqa: E731
    train_group(root / "store", AssetGroupConfig(name="pumps", assets=["pump-01"]), registry, say=quiet)
    source = load_source(registry, "pumps")
    train_group(root / "store", AssetGroupConfig(name="fresh", assets=["pump-02"]), registry, say=quiet)
    train_group(
        root / "store", AssetGroupConfig(name="adapted", assets=["pump-02"]), registry, say=quiet, adapt_from=source
    )
    later, test = [lb for lb in labels if lb.start >= t_new], pump2.filter(pl.col("ts") >= t_new)
    models = {"source": source, "fresh": load_source(registry, "fresh"), "adapted": load_source(registry, "adapted")}
    out = {name: evaluate({"pump-02": m}, test, later).summary() for name, m in models.items()}
    return out | _other_site(config, root, registry, source)


def _other_site(config: PlantConfig, root: Path, registry: Registry, source: Model) -> dict[str, dict[str, float]]:
    """The same bigger pump at a second site whose day runs on New York's clock (UTC-5: its loads and warmth come
    five hours later in UTC), adapted from the same source with ``window.timezone`` set to the site's zone, and
    with the stored clock (UTC) as every model used before ``window.timezone`` existed."""
    site = replace(config, timezone=OTHER_SITE_ZONE)
    frame, labels = Plant(site).generate(START, (SOURCE_H + NEW_H + TEST_H) * 3600)
    t_src, t_new = START + timedelta(hours=SOURCE_H), START + timedelta(hours=SOURCE_H + NEW_H)
    pump2 = _bigger(frame.filter(pl.col("asset") == "pump-02"))
    _store(pump2.filter((pl.col("ts") >= t_src) & (pl.col("ts") < t_new)), root / "other-site")
    later, test = [lb for lb in labels if lb.start >= t_new], pump2.filter(pl.col("ts") >= t_new)
    out = {}
    for name, zone in (("adapted_other_site", OTHER_SITE_ZONE), ("adapted_other_site_on_utc", "UTC")):
        group = AssetGroupConfig(name=name.replace("_", "-"), assets=["pump-02"])
        group = group.model_copy(update={"window": group.window.model_copy(update={"timezone": zone})})
        train_group(root / "other-site", group, registry, say=lambda text: None, adapt_from=source)
        out[name] = evaluate({"pump-02": load_source(registry, group.name)}, test, later).summary()
    return out


def _smd_adapt(source: Fitted, train: np.ndarray, sensors: list[str], quantile: float) -> Fitted:
    """What ``train_group(adapt_from=...)`` does, on SMD arrays: new levels, source detector and threshold."""
    fit, cal = _split(train.shape[0], 0.25)
    model = source.model
    own = Preprocessor(model.preprocessor.spec).fit(
        wide_frame(np.concatenate([train[s] for s in fit]), sensors, CADENCE_S), list(model.sensors)
    )
    hours = covered_hours(own)
    pre = adapted_scaling(own, model.preprocessor)
    seen = _windows(pre, [train[s] for s in fit], sensors, CADENCE_S)
    assert seen is not None
    seen = seen.select(seen.valid)
    pre = adapted_scaling(own, model.preprocessor, spread=related_spreads(pre, model, seen))
    pre = related_levels(pre, model, hours, seen)
    held = _windows(pre, [train[s] for s in cal], sensors, CADENCE_S)
    assert held is not None
    calibrator = adapted_calibration(
        Calibrator.fit(model.detector.decision_function(held.X), quantile=quantile), model.calibrator
    )
    adapted = Model(group="adapted", version="bench", preprocessor=pre, detector=model.detector, calibrator=calibrator)
    return Fitted(adapted, source.all_sensors, source.excluded, 0, len(held))


def _smd() -> dict[str, Any]:
    cfg = EvalConfig().smd
    names = find_machines(SMD)
    machines = {n: load_machine(SMD, n) for n in names}
    sensors = [f"d{i + 1}" for i in range(next(iter(machines.values()))["train"].shape[1])]

    def fit_on(train: np.ndarray) -> Fitted:
        fit, cal = _split(train.shape[0], cfg.holdout_fraction)
        return fit_model([train[s] for s in fit], [train[s] for s in cal], sensors, cfg, CADENCE_S)

    full = {n: fit_on(m["train"]) for n, m in machines.items()}
    per_machine: dict[str, Any] = {}
    for i, name in enumerate(names):
        m, source = machines[name], full[names[(i + 1) % len(names)]]
        day = m["train"][:SMD_DAY_ROWS]
        history = m["train"][-(cfg.window_length - 1) :]
        ways = {
            "source": source,
            "fresh": fit_on(day),
            "adapted": _smd_adapt(source, day, sensors, cfg.quantile),
            "full_history": full[name],
        }
        per_machine[name] = {}
        for way, fitted in ways.items():
            score = score_rows(fitted, m["test"], history, CADENCE_S).anomaly_score
            pred, label = score >= 1.0, m["label"]
            events = event_stats(pred, label)
            per_machine[name][way] = {
                "vus_pr": vus_pr(label, score, 100),
                "auc_pr": auc_pr(label, score),
                "f1": confusion(pred, label).f1,
                "event_recall": events.recall,
                "false_alarms_per_day": false_alarms_per_day(events, CADENCE_S),
            }
    metrics = ("vus_pr", "auc_pr", "f1", "event_recall", "false_alarms_per_day")
    ways_done = next(iter(per_machine.values())).keys()
    mean = {way: {k: float(np.mean([r[way][k] for r in per_machine.values()])) for k in metrics} for way in ways_done}
    return {"mean": mean, "per_machine": per_machine}


def test_bench_adapt() -> None:
    started = time.perf_counter()
    per_seed = {seed: _sim_seed(seed) for seed in SEEDS}
    watched = ("false_alerts_per_asset_week", "machine_fault_recall", "false_sensor_alerts_per_asset_week")
    sim: dict[str, Any] = {"per_seed": per_seed, "mean": {}, "worst": {}}
    for way in WAYS:
        rows = [per_seed[s][way] for s in SEEDS]
        sim["mean"][way] = {k: float(np.nanmean([r[k] for r in rows])) for k in watched}
        sim["worst"][way] = {
            k: float(np.nanmin([r[k] for r in rows]) if "recall" in k else np.nanmax([r[k] for r in rows]))
            for k in watched
        }
    doc: dict[str, Any] = {
        "machine": platform.machine(),
        "simulated_plant": {"source_h": SOURCE_H, "new_h": NEW_H, "test_h": TEST_H, **sim},
    }
    if SMD.is_dir():
        doc["smd"] = {"new_machine_rows": SMD_DAY_ROWS, **_smd()}
    doc["seconds"] = time.perf_counter() - started
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2, default=float))
    print(json.dumps({"sim_mean": sim["mean"], "sim_worst": sim["worst"], "smd": doc.get("smd", {}).get("mean")}))
