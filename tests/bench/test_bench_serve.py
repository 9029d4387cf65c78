"""Serving benchmark (``make bench``; not part of ``make test``). Writes ``.bench/serve.json``.

1. Scoring capacity on one core (the process is pinned to CPU 0): a real :class:`Scorer` with the default
   detector (pca_t2q) over 1,000 assets x 8 sensors, one new reading per sensor per tick, measured in two
   parts: the store follower (reading the new Parquet files ingest wrote) and scoring (buffers, model, alert
   policy, metrics). Goal: a whole tick within 1 s.
2. Serve RSS with 100 assets, and publish -> metric latency with the default intervals, end to end through a
   real broker, `linewatch ingest` and `linewatch serve` subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client import CollectorRegistry

from linewatch.core.config import AssetGroupConfig, LinewatchConfig
from linewatch.ingest.records import Reading
from linewatch.ingest.store import ParquetStore
from linewatch.models import train as train_module
from linewatch.models.registry import Registry
from linewatch.models.train import train_group
from linewatch.serving.lookback import Lookback
from linewatch.serving.metrics import ServeMetrics
from linewatch.serving.model_windows import to_model_windows
from linewatch.serving.scorer import Scorer
from tests.integration.conftest import BrokerFactory, free_port
from tests.integration.ingest_proc import SHIPPED_LIMITS, IngestProcess, linewatch_exe, write_config

pytestmark = pytest.mark.timeout(1800)

OUT = Path(__file__).resolve().parents[2] / ".bench"
SENSORS = [f"s{i}" for i in range(8)]
N_ASSETS = int(os.environ.get("LINEWATCH_BENCH_ASSETS", "1000"))


def _readings(assets: list[str], start_s: int, seconds: int, rng: np.random.Generator) -> list[Reading]:
    rows = []
    load = rng.uniform(0.5, 1.0, size=len(assets))
    for t in range(start_s, start_s + seconds):
        for k, asset in enumerate(assets):
            base = load[k] * (1 + 0.1 * np.sin(t / 300))
            for j, sensor in enumerate(SENSORS):
                us = t * 1_000_000
                rows.append(Reading(us, asset, sensor, float(base * (j + 1) + rng.normal(0, 0.02)), us))
    return rows


def _capacity(tmp: Path, *, slow_inputs: bool = False) -> dict[str, Any]:
    """One scoring tick of ``N_ASSETS`` on one core. ``slow_inputs``: the model carries lag and time-of-day inputs
    (as one trained on two days or more does: 30 minutes of history per asset in the ring buffers); three hours of
    bench data are enough to measure their cost, so the two-day rule is lifted for this model only."""
    rng = np.random.default_rng(0)
    root = tmp / "data"
    store = ParquetStore(root, "bench")
    now_s = int(time.time())
    train_assets = [f"a-{i:04d}" for i in range(4)]
    store.write_readings(_readings(train_assets, now_s - 3 * 3600, 3 * 3600 - 200, rng))
    group = AssetGroupConfig(name="bench", assets=["a-*"])
    rule = train_module.SLOW_INPUTS_MIN_SPAN_S
    train_module.SLOW_INPUTS_MIN_SPAN_S = 0.0 if slow_inputs else rule
    try:
        train_group(root, group, Registry(root / "models"), say=lambda _: None)
    finally:
        train_module.SLOW_INPUTS_MIN_SPAN_S = rule
    assets = [f"a-{i:04d}" for i in range(N_ASSETS)]
    history_s = 120 + (1800 if slow_inputs else 0)
    store.write_readings(_readings(assets, now_s - history_s, history_s - 10, rng))  # history to backfill

    cfg = LinewatchConfig(storage={"root": root}, models={"asset_groups": [group.model_dump()]})
    scorer = Scorer(cfg, ServeMetrics(CollectorRegistry()), now=time.time)
    scorer.refresh_models()
    scorer.backfill()
    os.sched_setaffinity(0, {0})
    follow_s, score_s, total_s, kept_s, full_s = [], [], [], [], []
    (runtime,) = scorer.groups.values()
    spec = runtime.model.preprocessor.spec
    kept = Lookback(runtime.buffers, runtime.model.preprocessor)  # a second one, timed alone
    try:
        for tick in range(10):
            store.write_readings(_readings(assets, now_s - 10 + tick, 1, rng))  # one ingest flush per tick
            t0 = time.perf_counter()
            result = scorer.follower.poll()
            t1 = time.perf_counter()
            scorer._route(result.frame)
            now = time.time()
            n = sum(scorer._score_group(rt, now) for rt in scorer.groups.values())
            t2 = time.perf_counter()
            assert n == N_ASSETS
            follow_s.append(t1 - t0)
            score_s.append(t2 - t1)
            total_s.append(t2 - t0)
            # The windows alone, kept look-back against the full computation it replaced (same buffers, same
            # instant): the ratio is this run's own baseline.
            now_us = int((now - cfg.ingest.flush_interval_s - cfg.serve.interval_s) * 1e6)
            t3 = time.perf_counter()
            got, _ = kept.windows(sorted(runtime.assets), now_us)
            t4 = time.perf_counter()
            full = runtime.buffers.latest_time_major(
                sorted(runtime.assets), spec.length + spec.history_steps, spec.max_gap_steps, now_us=now_us
            )
            want = to_model_windows(*full, runtime.model.preprocessor, spec, time_major=True)
            t5 = time.perf_counter()
            np.testing.assert_array_equal(got.X, want.X)
            kept_s.append(t4 - t3)
            full_s.append(t5 - t4)
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {
        "windows_kept_lookback_median_s": float(np.median(kept_s[1:])),  # the first tick builds it
        "windows_full_computation_median_s": float(np.median(full_s[1:])),
        "windows_speedup": float(np.median(full_s[1:]) / np.median(kept_s[1:])),
        "assets": N_ASSETS,
        "sensors": len(SENSORS),
        "detector": "pca_t2q" + (" with lag and time-of-day inputs" if slow_inputs else ""),
        "follow_median_s": float(np.median(follow_s)),
        "score_median_s": float(np.median(score_s)),
        "tick_median_s": float(np.median(total_s)),
        "tick_p90_s": float(np.percentile(total_s, 90)),
        "assets_scored_per_s_one_core": N_ASSETS / float(np.median(total_s)),
        "goal": "1000 assets x 8 sensors scored every second: tick <= 1 s",
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _live(tmp: Path, broker_factory: BrokerFactory) -> dict[str, Any]:
    """100 assets through broker -> ingest -> serve with default intervals: RSS and publish->metric latency."""
    broker = broker_factory(config_extra=SHIPPED_LIMITS)
    config = write_config(tmp, broker)
    doc = yaml.safe_load(config.read_text())
    serve_port = free_port()
    doc["models"] = {"asset_groups": [{"name": "bench", "assets": ["a-*"]}]}
    doc["serve"] = {"metrics": {"host": "127.0.0.1", "port": serve_port}, "publish_alerts": False}
    doc["ingest"]["subscriptions"] = [
        {"topic": "plant/+/+", "template": "plant/{site}/{asset}", "decoder": "json_record"}
    ]
    config.write_text(yaml.safe_dump(doc))
    root = Path(doc["home"]) / "data"
    rng = np.random.default_rng(1)
    now_s = int(time.time())
    assets = [f"a-{i:04d}" for i in range(100)]
    store = ParquetStore(root, "bench-history")
    store.write_readings(_readings(assets[:4], now_s - 3 * 3600, 3 * 3600 - 300, rng))
    train_group(root, AssetGroupConfig(name="bench", assets=["a-*"]), Registry(root / "models"), say=lambda _: None)

    ingest = IngestProcess(config, tmp / "ingest.log").start()
    with (tmp / "serve.log").open("wb") as serve_log:
        serve = subprocess.Popen(
            [linewatch_exe(), "serve", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=serve_log
        )
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    latencies: list[float] = []
    peak = 0.0
    try:
        import urllib.request

        marker_asset = assets[0]
        deadline = time.monotonic() + 60
        while True:  # serve starts (imports torch, loads the model) before the clock runs
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{serve_port}/healthz", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp / "serve.log").read_text()[-2000:]
                time.sleep(0.2)
        for second in range(90):
            t = time.time()
            for k, asset in enumerate(assets):
                values = {s: float((k % 7 + 1) * (j + 1) + rng.normal(0, 0.02)) for j, s in enumerate(SENSORS)}
                if asset == marker_asset:
                    values["s0"] = 1000.0 + second  # a unique value to find on the metrics page
                pub.publish(f"plant/b/{asset}", json.dumps({"ts": t, "values": values}), qos=1)
            # Follow the marker until the serve metrics page shows it (as the window's latest value).
            deadline = t + 10
            while time.time() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{serve_port}/metrics", timeout=5) as resp:
                    page = resp.read().decode()
                if f'linewatch_sensor_value{{asset="{marker_asset}",sensor="s0"}} {1000.0 + second}' in page:
                    latencies.append(time.time() - t)
                    break
                time.sleep(0.05)
            peak = max(peak, _rss_mb(serve.pid))
            time.sleep(max(0.0, t + 1 - time.time()))
    finally:
        pub.loop_stop()
        serve.terminate()
        serve.wait(15)
        ingest.terminate()
    arr = np.array(latencies)
    return {
        "assets": 100,
        "serve_peak_rss_mb": peak,
        "goal_rss_mb": 600,
        "latency_samples": int(arr.size),
        "publish_to_metric_p50_s": float(np.percentile(arr, 50)) if arr.size else None,
        "publish_to_metric_p99_s": float(np.percentile(arr, 99)) if arr.size else None,
        "defaults": "ingest flush_interval_s 1.0, serve interval_s 1.0",
    }


def test_bench_serve(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    results: dict[str, Any] = {
        "capacity": _capacity(tmp_path / "capacity"),
        "capacity_slow_inputs": _capacity(tmp_path / "capacity-inputs", slow_inputs=True),
        "live": _live(tmp_path / "live", mosquitto_factory),
    }
    results["measured_at"] = datetime.now(UTC).isoformat()
    OUT.mkdir(exist_ok=True)
    (OUT / "serve.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
