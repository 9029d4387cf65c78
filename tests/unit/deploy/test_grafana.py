"""The provisioned Grafana dashboards (deploy/grafana) must load and show real data.

Grafana is not run here, so the checks are the mistakes that would otherwise only show up as an empty or broken
panel on site: a metric or label name the exporters do not have, a panel pointing at a datasource that is not
provisioned, overlapping or duplicated panels, a value mapping that disagrees with the codes linewatch exports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from tests.deploy_support import (
    DASHBOARDS,
    MATCHER,
    METRIC,
    SELECTOR,
    STRING,
    exposed_metrics,
    expr_problems,
)
from tests.deploy_support import dashboard_panels as panels
from tests.deploy_support import load_dashboard as load

from linewatch.models.health import STATUS_NAMES
from linewatch.serving.metrics import SEVERITIES, ServeMetrics

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "linewatch.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "linewatch.yaml"

#: Job names of the scrape configuration in deploy/prometheus/prometheus.yml.
JOBS = ("linewatch-ingest", "linewatch-serve")


@dataclass(frozen=True)
class Target:
    """One query of one panel, with where it is for error messages."""

    dashboard: str
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.dashboard} panel {self.panel.get('id')} {self.panel.get('title')!r}"

    @property
    def expr(self) -> str:
        return str(self.target.get("expr", ""))


def help_text(name: str) -> str:
    """The HELP line of a serve metric, for the code lists it documents."""
    for family in ServeMetrics(CollectorRegistry()).registry.collect():
        if family.name == name:
            return family.documentation
    raise KeyError(name)


def targets() -> Iterator[Target]:
    """Every query in every dashboard."""
    for path in DASHBOARDS:
        for panel in panels(load(path)):
            for target in panel.get("targets", []):
                yield Target(path.name, panel, target)


def provisioned_uid() -> str:
    """The uid the datasource provisioning file gives Prometheus: the one every panel must use."""
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus"
    return str(source["uid"])


def value_mappings(panel: dict[str, Any]) -> dict[int, str]:
    """A panel's value mappings as code -> text."""
    out: dict[int, str] = {}
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        if mapping["type"] == "value":
            out.update({int(code): spec["text"] for code, spec in mapping["options"].items()})
    return out


def test_both_dashboards_exist_and_are_distinct() -> None:
    names = {p.name for p in DASHBOARDS}
    assert names == {"linewatch-plant.json", "linewatch-service.json"}
    docs = [load(p) for p in DASHBOARDS]
    assert len({d["uid"] for d in docs}) == len(docs)
    assert len({d["title"] for d in docs}) == len(docs)
    for doc in docs:
        assert doc["editable"] is False  # provisioned read-only: edits belong in the repository
        assert doc["schemaVersion"] == 39
        assert doc["panels"], doc["uid"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_have_unique_ids_and_do_not_overlap(path: Path) -> None:
    all_panels = list(panels(load(path)))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], int] = {}
    for panel in all_panels:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["id"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['id']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_uses_the_provisioned_datasource(path: Path) -> None:
    wanted = {"type": "prometheus", "uid": provisioned_uid()}
    doc = load(path)
    for panel in panels(doc):
        assert panel.get("datasource") == wanted, panel["id"]
        for target in panel.get("targets", []):
            assert target.get("datasource") == wanted, (panel["id"], target["refId"])
        if panel["type"] != "row":
            assert panel.get("targets"), panel["id"]
            assert len(panel.get("description", "")) > 20, f"panel {panel['id']} needs a description"
    for variable in doc["templating"]["list"]:
        assert variable["datasource"] == wanted, variable["name"]


def test_every_query_names_exported_metrics_and_labels() -> None:
    catalogue = exposed_metrics()
    problems = [
        f"{t.where}: {problem}"
        for t in targets()
        for problem in expr_problems(t.expr, catalogue, str(t.target.get("legendFormat", "")))
    ]
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_on_a_dashboard() -> None:
    """A metric with no panel is invisible to the plant; histograms count as shown through their buckets."""
    used = {m for t in targets() for m in METRIC.findall(STRING.sub('""', t.expr))}
    bases = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    missing = {name for name in exposed_metrics() if re.sub(r"_(total|bucket|sum|count)$", "", name) not in bases}
    assert not missing, sorted(missing)


def test_validator_reports_wrong_names() -> None:
    catalogue = exposed_metrics()
    assert expr_problems('sum by (asset) (linewatch_failure_risk{asset=~"$asset"})', catalogue, "{{asset}}") == []
    assert expr_problems("rate(linewatch_no_such_metric_total[5m])", catalogue) == [
        "unknown metric linewatch_no_such_metric_total"
    ]
    assert expr_problems("linewatch_alerts_raised[5m]", catalogue) == ["unknown metric linewatch_alerts_raised"]
    assert expr_problems('linewatch_failure_risk{sensor="x"}', catalogue) == [
        "linewatch_failure_risk has no label 'sensor'"
    ]
    assert expr_problems("sum by (sensor) (linewatch_failure_risk)", catalogue) != []
    assert expr_problems("linewatch_failure_risk", catalogue, "{{sensor}}") != []
    # Names inside strings are label values, not metrics.
    assert expr_problems('up{job="linewatch_not_a_metric"}', catalogue) == []


def test_job_matchers_cover_both_scrape_jobs() -> None:
    """The service dashboard's ``up`` panel must match the job names Prometheus scrapes linewatch under."""
    patterns = [value for t in targets() for label, value in MATCHER.findall(t.expr) if label == "job"]
    assert patterns, "no panel watches the scrape jobs"
    for pattern in patterns:
        for job in JOBS:
            assert re.fullmatch(pattern, job), (pattern, job)


def test_asset_variable_queries_a_real_metric_and_filters_every_asset_panel() -> None:
    catalogue = exposed_metrics()
    doc = load(GRAFANA / "dashboards" / "linewatch-plant.json")
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    asset = variables["asset"]
    query = asset["query"]["query"] if isinstance(asset["query"], dict) else asset["query"]
    match = re.fullmatch(r"label_values\(\s*(\w+)\s*,\s*asset\s*\)", query)
    assert match, query
    assert "asset" in catalogue[match.group(1)]
    assert asset["multi"] and asset["includeAll"]
    # A selector on a per-asset metric that ignores $asset would show every asset whatever the reader picked.
    for t in [t for t in targets() if t.dashboard == "linewatch-plant.json"] + [
        Target("linewatch-plant.json", {"id": "variable", "title": v["name"]}, {"expr": v["definition"]})
        for v in variables.values()
        if v["name"] != "asset"
    ]:
        bare = STRING.sub('""', t.expr)
        for metric in METRIC.findall(bare):
            if "asset" not in catalogue[metric]:
                continue
            selectors = [body for name, body in SELECTOR.findall(t.expr) if name == metric]
            assert selectors, f"{t.where}: {metric} without a selector"
            for body in selectors:
                assert ("asset", "$asset") in MATCHER.findall(body), f"{t.where}: {metric} ignores $asset"


def test_code_mappings_match_what_serve_exports() -> None:
    """Health and severity panels must name codes the way serve sets them, or a stuck sensor reads as 'spiking'."""
    wanted = {
        "linewatch_sensor_health_status": dict(enumerate(STATUS_NAMES)),
        "linewatch_alert_severity": {0: "none", **{i + 1: name for i, name in enumerate(SEVERITIES)}},
    }
    # The HELP text documents the same codes to whoever reads /metrics.
    for metric, codes in wanted.items():
        for code, name in codes.items():
            if code:
                assert f"{code} {name}" in help_text(metric), (metric, code, name)
    seen: set[str] = set()
    for t in targets():
        metrics = METRIC.findall(STRING.sub('""', t.expr))
        if metrics and metrics[0] in wanted:  # the first series sets the panel's value
            seen.add(metrics[0])
            assert value_mappings(t.panel) == wanted[metrics[0]], t.where
    assert seen == set(wanted)


def test_provisioning_files_point_at_the_dashboards() -> None:
    doc = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    path = provider["options"]["path"]
    assert path.startswith("/") and Path(path).is_absolute(), path
    uid = provisioned_uid()
    used = {
        p["datasource"]["uid"] for d in DASHBOARDS for p in panels(load(d)) if isinstance(p.get("datasource"), dict)
    }
    assert used == {uid}
