"""deploy/prometheus against real Prometheus: config and rules load, rule unit tests pass, alerts fire live.

The rule file is only worth something if Prometheus evaluates it against what linewatch really exports, so
besides ``promtool``, a real Prometheus scrapes linewatch's own metrics server (the class both daemons run)
with the shipped rules and must raise, describe and clear a machine alert.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from linewatch.core.http import MetricsServer
from linewatch.ingest.metrics import IngestMetrics
from linewatch.serving.metrics import ServeMetrics
from tests.deploy_support import DASHBOARDS, dashboard_panels, exposed_metrics, expr_problems, load_dashboard
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
RULES = PROM_DIR / "linewatch-alerts.yml"
SEVERITIES = {"critical", "major", "warning"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed (Debian package prometheus; .ci/run installs it)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_shipped_config_and_rules_pass_promtool() -> None:
    promtool = _tool("promtool")
    check = _run(promtool, "check", "config", str(PROM_DIR / "prometheus.yml"))
    assert check.returncode == 0 and "SUCCESS: 1 rule files found" in check.stdout, check
    tests = _run(promtool, "test", "rules", str(PROM_DIR / "tests" / "linewatch-alerts.test.yml"))
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests


def test_every_alert_is_unit_tested_firing() -> None:
    """An alert nobody has seen fire may never fire: each needs a promtool case that expects it."""
    doc = yaml.safe_load((PROM_DIR / "tests" / "linewatch-alerts.test.yml").read_text(encoding="utf-8"))
    fired = {
        case["alertname"] for group in doc["tests"] for case in group.get("alert_rule_test", []) if case["exp_alerts"]
    }
    assert {rule["alert"] for rule in _rules()} <= fired


def test_rules_use_only_exported_metrics_and_carry_routing_labels() -> None:
    catalogue = exposed_metrics()
    for rule in _rules():
        # Annotation templates query by asset and instance (``{asset=%q,instance=%q}``): their names must exist too.
        annotations = json.dumps(rule["annotations"])
        problems = expr_problems(rule["expr"], catalogue) + expr_problems(annotations, catalogue)
        assert not problems, f"{rule['alert']}: {problems}"
        severity = rule["labels"]["severity"]
        assert severity in SEVERITIES or "{{" in severity, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    # The check itself can fail: a misspelt name and a label the metric lacks are reported.
    assert expr_problems(
        'rate(linewatch_ingest_reading_total[5m]) > 0 or linewatch_alert_active{severity="x"}', catalogue
    )


def test_scrape_jobs_match_the_rules_and_default_ports() -> None:
    doc = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in doc["scrape_configs"]}
    assert targets == {"linewatch-ingest": ["127.0.0.1:19880"], "linewatch-serve": ["127.0.0.1:19881"]}
    exprs = " ".join(rule["expr"] for rule in _rules())
    assert all(f'job="{job}"' in exprs for job in targets)


def _dashboard_queries() -> Iterator[tuple[str, str]]:
    """(dashboard file, expr) of every panel query."""
    for path in DASHBOARDS:
        for panel in dashboard_panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield path.name, str(target["expr"])


def _fill_variables(expr: str) -> str:
    """What Grafana substitutes before sending a query: template variables and its interval macros."""
    for name, value in {"$__rate_interval": "1m", "$__interval": "15s", "$asset": ".*", "$sensor": ".*"}.items():
        expr = expr.replace(name, value)
    return expr


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def exporters() -> Iterator[tuple[ServeMetrics, int, IngestMetrics, int]]:
    """Both daemons' metrics, each on its own real MetricsServer (port 0), as Prometheus scrapes them."""
    serve, ingest = ServeMetrics(CollectorRegistry()), IngestMetrics(CollectorRegistry())
    servers = [MetricsServer("127.0.0.1", 0, m.registry).start() for m in (serve, ingest)]
    try:
        yield serve, servers[0].port, ingest, servers[1].port
    finally:
        for server in servers:
            server.stop()


def _prometheus(tmp_path: Path, serve_port: int, ingest_port: int) -> tuple[subprocess.Popen[bytes], int]:
    """Prometheus with the shipped config, made fast (1 s scrapes and evaluations) and pointed at our ports."""
    doc = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    doc["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    doc["rule_files"] = [str(RULES)]
    ports = {"linewatch-serve": serve_port, "linewatch-ingest": ingest_port}
    for job in doc["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            _tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    return proc, port


def _wait_for(predicate: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}: {log.read_text(errors='replace')[-2000:]}")


def test_real_prometheus_raises_describes_and_clears_alerts(
    tmp_path: Path, exporters: tuple[ServeMetrics, int, IngestMetrics, int]
) -> None:
    serve, serve_port, ingest, ingest_port = exporters
    # What linewatch serve exports during a critical machine alert on pump-02 and a stuck sensor on pump-01.
    serve.models_loaded.set(1)
    serve.failure_risk.labels(asset="pump-02").set(0.93)
    serve.alert_active.labels(asset="pump-02", kind="machine").set(1)
    serve.alert_severity.labels(asset="pump-02").set(3)
    for sensor, share in {"flow": 0.55, "pressure": 0.25, "bearing_temp": 0.15, "vibration": 0.05}.items():
        serve.contribution.labels(asset="pump-02", sensor=sensor).set(share)
    serve.alert_active.labels(asset="pump-01", kind="sensor").set(1)
    serve.sensor_health.labels(asset="pump-01", sensor="pressure").set(3)
    serve.sensor_health.labels(asset="pump-01", sensor="flow").set(0)
    ingest.connected.set(1)

    proc, port = _prometheus(tmp_path, serve_port, ingest_port)
    log = tmp_path / "prometheus.log"
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def firing() -> dict[str, dict[str, Any]]:
            alerts = _get(f"{api}/alerts")["data"]["alerts"]
            return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}

        alerts = _wait_for(
            lambda: (f := firing()) and {"LinewatchMachineAnomaly", "LinewatchSensorFault"} <= set(f) and f,
            "machine and sensor alerts",
            proc,
            log,
        )
        machine = alerts["LinewatchMachineAnomaly"]
        assert machine["labels"]["severity"] == "critical" and machine["labels"]["asset"] == "pump-02"
        assert machine["labels"]["job"] == "linewatch-serve"
        assert machine["annotations"]["description"].startswith(
            "Failure risk 93%. Sensors driving it: flow (55%), pressure (25%), bearing_temp (15%)."
        ), machine
        sensor = alerts["LinewatchSensorFault"]
        assert sensor["labels"]["asset"] == "pump-01" and sensor["annotations"]["description"] == "pressure stuck."
        assert not set(alerts) - {"LinewatchMachineAnomaly", "LinewatchSensorFault"}, alerts

        # serve clears the alert: Prometheus follows within a scrape and an evaluation.
        serve.alert_active.labels(asset="pump-02", kind="machine").set(0)
        serve.alert_severity.labels(asset="pump-02").set(0)
        _wait_for(lambda: "LinewatchMachineAnomaly" not in firing(), "the machine alert to clear", proc, log)
        # Both exporters were scraped as the rules expect them (job names, up).
        up = _get(f"{api}/query?query=up")["data"]["result"]
        # Every dashboard query is valid PromQL to this Prometheus (Grafana's variables filled in) and returns data
        # where the exporters have it; Grafana itself is not run here.
        for dashboard, expr in _dashboard_queries():
            query = urllib.parse.urlencode({"query": _fill_variables(expr)})
            try:
                answer = _get(f"{api}/query?{query}")
            except urllib.error.HTTPError as exc:
                pytest.fail(f"{dashboard}: {expr!r} rejected by Prometheus: {exc.read().decode()[:300]}")
            assert answer["status"] == "success", (dashboard, expr, answer)
        assert {(r["metric"]["job"], r["value"][1]) for r in up} == {
            ("linewatch-serve", "1"),
            ("linewatch-ingest", "1"),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
