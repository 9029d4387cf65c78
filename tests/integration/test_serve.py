"""simulate -> ingest -> train -> serve, live: alerts, root cause, sensor-health alerts, hot reload, promtool.

Six hours of normal history are published first (as fast as possible, ending now) and a model is trained on
them; then the plant runs in real time with a leak on pump-02 and a stuck pressure sensor on pump-01 while
`linewatch serve` is scraped four times a second.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from linewatch.ingest.labels import FaultLabel, write_labels
from linewatch.ingest.publish import publish_stream
from linewatch.ingest.simulate import AssetSpec, Plant, PlantConfig
from linewatch.models.bundle import WEIGHTS, bundle_digest
from linewatch.models.registry import Registry
from tests.integration.conftest import BrokerFactory, free_port
from tests.integration.ingest_proc import SHIPPED_LIMITS, IngestProcess, linewatch_exe, metric_value, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

ASSETS = (AssetSpec("pump-01", "pump"), AssetSpec("pump-02", "pump"))
INTERVAL = 0.5
RAISE_AFTER = 3.0


def _serve_config(tmp: Path, base: Path) -> tuple[Path, int]:
    doc = yaml.safe_load(base.read_text())
    port = free_port()
    doc["ingest"]["flush_interval_s"] = 0.5
    doc["models"] = {"asset_groups": [{"name": "pumps", "assets": ["pump-*"]}]}
    doc["serve"] = {
        "interval_s": INTERVAL,
        "reload_check_s": 1.0,
        "stale_after_s": 30,
        "client_id": "lw-test-serve",
        "metrics": {"host": "127.0.0.1", "port": port},
        "alerts": {
            "raise_after_s": RAISE_AFTER,
            "clear_after_s": 5.0,
            "cooldown_s": 30.0,
            "sensor_raise_after_s": 3.0,
            "sensor_clear_after_s": 5.0,
        },
    }
    base.write_text(yaml.safe_dump(doc))
    return base, port


def _scrape(port: int) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.status, resp.read().decode()


def _model_version(page: str) -> str | None:
    for line in page.splitlines():
        if line.startswith("linewatch_model_info{") and 'asset_group="pumps"' in line:
            return line.split('version="', 1)[1].split('"', 1)[0]
    return None


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [linewatch_exe(), *args, "--config", str(config)], capture_output=True, text=True, timeout=180
    )


def test_live_alerts_root_cause_sensor_health_and_hot_reload(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    config, port = _serve_config(tmp_path, write_config(tmp_path, broker))
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    serve: subprocess.Popen[bytes] | None = None
    try:
        # 1. Six hours of normal history, ending now; train on it.
        now = datetime.now(UTC).replace(microsecond=0)
        history = Plant(PlantConfig(assets=ASSETS, seed=21, fault_rate_per_asset_per_hour=0)).iter_steps(
            now - timedelta(hours=6), 6 * 3600
        )
        publish_stream(history, host=broker.host, port=broker.port, fmt="record", speed=0, client_id="hist")
        deadline = time.monotonic() + 60
        while metric_value(ingest.http("/metrics")[1], "linewatch_ingest_readings_total") < 2 * 6 * 6 * 3600:
            assert time.monotonic() < deadline, "history not ingested"
            time.sleep(0.3)
        trained = _cli("train", config=config)
        assert trained.returncode == 0, trained.stderr[-3000:]

        # 2. serve, then the live plant with a leak (machine fault) and a stuck sensor.
        with (tmp_path / "serve.log").open("wb") as log:
            serve = subprocess.Popen([linewatch_exe(), "serve", "--config", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if _scrape(port)[0] == 200 and _model_version(_scrape(port)[1]):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.2)
        first_version = _model_version(_scrape(port)[1])

        live_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        fault_start, fault_end = live_start + timedelta(seconds=30), live_start + timedelta(seconds=90)
        schedule = (
            FaultLabel("pump-02", fault_start, fault_end, "machine_fault", "leak", ("pressure", "flow")),
            FaultLabel("pump-01", fault_start, fault_end, "sensor_fault", "stuck", ("pressure",)),
        )
        labels_file = tmp_path / "labels.csv"
        write_labels(labels_file, list(schedule))
        live = Plant(PlantConfig(assets=ASSETS, seed=22, schedule=schedule)).iter_steps(live_start, 135)
        publisher = threading.Thread(
            target=publish_stream,
            kwargs={
                "steps": live,
                "host": broker.host,
                "port": broker.port,
                "fmt": "record",
                "speed": 1.0,
                "client_id": "live",
            },
            daemon=True,
        )
        publisher.start()

        samples: list[dict[str, Any]] = []
        failures = 0
        reload_done = tamper_done = False
        while publisher.is_alive() or len(samples) < 10:
            try:
                code, page = _scrape(port)
            except OSError:
                failures += 1
                code, page = 0, ""
            if code != 200:
                failures += 1
            else:
                samples.append(
                    {
                        "t": datetime.now(UTC),
                        "version": _model_version(page),
                        "refused": metric_value(page, "linewatch_bundles_refused_total", 'asset_group="pumps"'),
                        "m2": metric_value(page, "linewatch_alert_active", 'asset="pump-02",kind="machine"'),
                        "m1": metric_value(page, "linewatch_alert_active", 'asset="pump-01",kind="machine"'),
                        "s1": metric_value(page, "linewatch_alert_active", 'asset="pump-01",kind="sensor"'),
                        "score2": metric_value(page, "linewatch_anomaly_score", 'asset="pump-02"'),
                        "contrib": {
                            s: metric_value(
                                page, "linewatch_sensor_contribution_ratio", f'asset="pump-02",sensor="{s}"'
                            )
                            for s in ("pressure", "flow", "motor_current", "speed", "bearing_temp", "vibration_rms")
                        },
                        "raised": metric_value(
                            page, "linewatch_alerts_raised_total", 'kind="machine",severity="warning"'
                        )
                        + metric_value(page, "linewatch_alerts_raised_total", 'kind="machine",severity="major"')
                        + metric_value(page, "linewatch_alerts_raised_total", 'kind="machine",severity="critical"'),
                    }
                )
            elapsed = (datetime.now(UTC) - live_start).total_seconds()
            if not reload_done and elapsed > 100:  # promote a new model while serving
                out = _cli("train", "--promote", "always", "--labels", str(labels_file), config=config)
                assert out.returncode == 0, out.stderr[-2000:]
                reload_done = True
            if reload_done and not tamper_done and elapsed > 115:  # a tampered champion must be refused
                registry = Registry(ingest.data_root / "models")
                out = _cli("train", "--promote", "never", "--labels", str(labels_file), config=config)
                assert out.returncode == 0, out.stderr[-2000:]
                newest = registry.versions("pumps")[-1]
                path = registry.group_dir("pumps") / newest
                digest = bundle_digest(path)
                weights = path / WEIGHTS
                data = bytearray(weights.read_bytes())
                data[len(data) // 2] ^= 0xFF
                weights.write_bytes(bytes(data))
                pointer = registry.group_dir("pumps") / "champion.json"
                doc = json.loads(pointer.read_text())
                doc.update({"version": newest, "digest": digest})
                pointer.write_text(json.dumps(doc))
                tamper_done = True
            time.sleep(0.25)
        time.sleep(3)
        code, final_page = _scrape(port)
        assert code == 200

        assert failures == 0, "a scrape failed during the run"
        # Leak on pump-02: one machine alert, raised within raise_after + 2 intervals of the score crossing 1.
        crossings = [s["t"] for s in samples if s["score2"] >= 1.0 and s["t"] >= fault_start]
        raised = [s["t"] for s in samples if s["m2"] == 1.0]
        assert crossings and raised, "the leak raised no alert"
        assert raised[0] >= fault_start
        # The score must stay >= 1 for raise_after_s; allow the scrape period and two scoring intervals.
        assert (raised[0] - crossings[0]).total_seconds() <= RAISE_AFTER + 2 * INTERVAL + 2.0
        # Root cause while the alert is on *and* the window is anomalous. Not in the hysteresis tail: the alert is
        # held there for clear_after_s while the score falls back to normal, and a normal window's shares are led
        # by whichever sensor is noisiest (here bearing_temp), so whether a scrape lands in that tail is timing.
        during = [s for s in samples if s["m2"] == 1.0 and s["score2"] >= 1.0]
        assert during, "no anomalous sample while the alert was on"
        top = {max(s["contrib"], key=s["contrib"].get) for s in during}
        wrong = [
            f"{(s['t'] - fault_start).total_seconds():.1f}s score {s['score2']:.2f} {s['contrib']}"
            for s in during
            if max(s["contrib"], key=s["contrib"].get) not in {"pressure", "flow"}
        ]
        assert top <= {"pressure", "flow"}, f"top contributions named {top}; first wrong: {wrong[:3]}"
        # The raised alert itself (serve's structured log of the transition) names a leak sensor as its root cause.
        raised_top = re.findall(
            r"'asset': 'pump-02', 'kind': 'machine', 'event': 'raised'.*?'top_sensor': '(\w+)'",
            (tmp_path / "serve.log").read_text(),
        )
        assert raised_top and set(raised_top) <= {"pressure", "flow"}, raised_top
        after = [s for s in samples if s["t"] > fault_end + timedelta(seconds=35)]
        assert after and all(s["m2"] == 0.0 for s in after), "the alert did not clear after the fault ended: " + str(
            [(round((s["t"] - fault_end).total_seconds(), 1), round(s["score2"], 2), s["version"]) for s in after][:8]
        )
        assert max(s["raised"] for s in samples) == 1.0, "more than one raise for one fault episode"
        # Stuck pressure sensor on pump-01: a sensor-health alert, never a machine alert.
        assert any(s["s1"] == 1.0 for s in samples)
        assert all(s["m1"] == 0.0 for s in samples)
        # Hot reload: the version changed without a restart; the tampered champion changed only the counter.
        versions = [s["version"] for s in samples if s["version"]]
        assert versions[0] == first_version and versions[-1] != first_version
        assert metric_value(final_page, "linewatch_bundles_refused_total", 'asset_group="pumps"') == 1.0
        assert _model_version(final_page) == versions[-1]
        assert serve.poll() is None

        # The metrics page passes promtool's linter.
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.fail("promtool not installed (Debian package prometheus; .ci/run installs it)")
        check = subprocess.run([promtool, "check", "metrics"], input=final_page, capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
    finally:
        if serve is not None:
            serve.terminate()
            assert serve.wait(15) == 0
        ingest.cleanup()
