"""What linewatch exports, for the tests that check deploy/ (alert rules, dashboards) against it.

Rules and dashboards name metrics and labels in strings no type checker sees; a rename in the exporters would
leave a panel empty or an alert that can never fire. These helpers compare both sides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from linewatch.ingest.metrics import IngestMetrics
from linewatch.serving.metrics import ServeMetrics

#: Labels Prometheus attaches to every scraped series; legends and groupings may use them with any metric.
TARGET_LABELS = frozenset({"job", "instance"})
#: Patterns for a rough reading of PromQL (not a parser): string literals, metric names, selectors, matchers.
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
METRIC = re.compile(r"\b(linewatch_\w+)")
SELECTOR = re.compile(r'\b(linewatch_\w+)\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}')
MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def exposed_metrics() -> dict[str, frozenset[str]]:
    """Every series name the two exporters expose, with its label names: the only names a dashboard may query.

    Counters gain ``_total`` and histograms ``_bucket`` (with ``le``), ``_sum`` and ``_count`` on exposition.
    """
    out: dict[str, frozenset[str]] = {}
    for holder in (ServeMetrics(CollectorRegistry()), IngestMetrics(CollectorRegistry())):
        # A labelled metric with no children yet exposes no samples, so its label names come from the wrappers.
        labels = {m._name: frozenset(m._labelnames) for m in vars(holder).values() if isinstance(m, MetricWrapperBase)}
        for family in holder.registry.collect():
            names = labels[family.name]
            if family.type == "counter":
                out[family.name + "_total"] = names
            elif family.type == "histogram":
                out[family.name + "_bucket"] = names | {"le"}
                out[family.name + "_sum"] = names
                out[family.name + "_count"] = names
            else:
                out[family.name] = names
    return out


def expr_problems(expr: str, catalogue: dict[str, frozenset[str]], legend: str = "") -> list[str]:
    """What in one PromQL expression (and its legend) names a linewatch series or label that is not exported.

    Not a PromQL parser: string literals are blanked, then every ``linewatch_*`` identifier must be an exposed
    series, every matcher on such a series one of its labels, and every label in ``by``/``on``/... groupings or in
    the legend a label of at least one linewatch series in the expression.
    """
    bare = STRING.sub('""', expr)
    metrics = set(METRIC.findall(bare))
    problems = [f"unknown metric {m}" for m in sorted(metrics - catalogue.keys())]
    known = [catalogue[m] for m in metrics if m in catalogue]
    for metric, body in SELECTOR.findall(expr):
        for label, _value in MATCHER.findall(body):
            if metric in catalogue and label not in catalogue[metric] | TARGET_LABELS:
                problems.append(f"{metric} has no label {label!r}")
    if not known:
        return problems
    available = frozenset().union(*known) | TARGET_LABELS
    grouped = [label.strip() for group in GROUPING.findall(bare) for label in group.split(",") if label.strip()]
    problems += [
        f"grouping label {label!r} is on no linewatch metric used" for label in grouped if label not in available
    ]
    problems += [
        f"legend label {label!r} is on no metric used" for label in LEGEND.findall(legend) if label not in available
    ]
    return problems


#: The provisioned Grafana dashboards.
DASHBOARDS = sorted((Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards").glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    """A dashboard's JSON model."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def dashboard_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])
