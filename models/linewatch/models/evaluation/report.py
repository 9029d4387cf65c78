"""Writing results: ``RESULT.json`` (DESIGN §8) and a Markdown report with PNG plots.

Plots need matplotlib (Agg backend, no display); without it the report is written without images and says so.
Per evaluated series: the anomaly score over time (log scale, alarm line at 1) with labelled anomalies shaded.
Per SMD machine: a heat map of the attributed share of each sensor per labelled segment, true root-cause sensors
marked.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from linewatch.models.evaluation.metrics import segments
from linewatch.models.evaluation.reference import comparison_rows
from linewatch.models.evaluation.result import AttributionPlot, EvalResult, SeriesPlot

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def write_json(result: EvalResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    if isinstance(value, list):  # e.g. the sensors named first, in order
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):  # counts per sensor show their counts; reasons per sensor only the sensors
        return ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k}" for k, v in value.items()) or "-"
    return str(value)


def is_row_table(value: Any) -> bool:
    """A summary value that is a table of its own (name -> row of figures), not one figure."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _table(rows: dict[str, dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    # Columns: every key of any row, in order of first appearance (TEP's normal file has other keys than its
    # fault files); lists of records (SMD's segments) stay in the JSON.
    columns: list[str] = []
    for row in rows.values():
        for c, v in row.items():
            nested = isinstance(v, list) and any(isinstance(x, dict | list) for x in v)
            if c not in columns and not nested:
                columns.append(c)
    out = ["| file | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        out.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return out


def write_report(result: EvalResult, folder: Path, *, plots: bool = True) -> Path:
    """``folder/report.md`` (plus ``folder/plots/*.png``); returns the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# linewatch evaluate {result.dataset}", "", "## Summary", "", "| metric | value |", "|---|---|"]
    sections = {k: v for k, v in result.summary.items() if is_row_table(v)}
    lines += [f"| {k} | {_fmt(v)} |" for k, v in result.summary.items() if k not in sections]
    if compared := comparison_rows(result.dataset, result.summary):
        lines += ["", "## Against published figures and the project's goals", ""]
        lines += ["| metric | linewatch | published / baseline | goal | met |", "|---|---|---|---|---|"]
        lines += [f"| {m} | {_fmt(v)} | {pub} | {goal} | {met} |" for m, v, pub, goal, met in compared]
    lines += ["", "## Configuration", "", "```json", json.dumps(result.config, indent=2), "```", ""]
    lines += ["## Per file", "", *_table(result.per_file), ""]
    for key, rows in sections.items():  # runs beside the protocol's files (SKAB normal runs, TEP testing runs)
        lines += [f"## {key}", "", *_table(rows), ""]
    images = _plots(result, folder / "plots") if plots else None
    if images is None:
        lines += ["(plots not drawn: matplotlib is not installed or plots are switched off)", ""]
    else:
        lines += [
            "## Scores over time",
            "",
            "Shaded: labelled anomalies; dashed: the alarm line (anomaly_score = 1).",
            "",
        ]
        lines += [f"![{name}]({rel})" for name, rel in images["series"]]
        if images["attribution"]:
            lines += ["", "## Attribution per labelled segment", "", "Dots: the labelled root-cause sensors (SMD).", ""]
            lines += [f"![{name}]({rel})" for name, rel in images["attribution"]]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plots(result: EvalResult, folder: Path) -> dict[str, list[tuple[str, str]]] | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: the report has no plots")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[tuple[str, str]]] = {"series": [], "attribution": []}
    for series in result.series:
        file = f"score_{_SAFE.sub('_', series.name)}.png"
        _plot_series(plt, series, folder / file)
        out["series"].append((series.name, f"plots/{file}"))
    groups: dict[str, list[AttributionPlot]] = defaultdict(list)
    for item in result.attributions:
        groups[item.name.split(" [")[0]].append(item)
    for name, items in groups.items():
        file = f"attribution_{_SAFE.sub('_', name)}.png"
        _plot_attribution(plt, name, items, folder / file)
        out["attribution"].append((name, f"plots/{file}"))
    return out


def _plot_series(plt: Any, series: SeriesPlot, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 2.6))
    x = np.arange(series.score.size)
    ax.plot(x, np.clip(series.score, 1e-3, None), lw=0.7, color="tab:blue")
    for s, e in segments(series.label):
        ax.axvspan(s, e, color="tab:red", alpha=0.15, lw=0)
    ax.axhline(series.threshold, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("row")
    ax.set_ylabel("anomaly_score")
    ax.set_title(series.name)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_attribution(plt: Any, name: str, items: list[AttributionPlot], path: Path) -> None:
    shares = np.array([i.contribution / max(float(np.sum(i.contribution)), 1e-12) for i in items])
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(items) + 1.5))
    ax.imshow(shares, aspect="auto", cmap="viridis", interpolation="nearest")
    for row, item in enumerate(items):
        ax.scatter(list(item.true_dims), [row] * len(item.true_dims), s=6, color="red")
    ax.set_yticks(range(len(items)), [i.name.split(" ", 1)[-1] for i in items], fontsize=6)
    ax.set_xticks(range(len(items[0].sensors)), items[0].sensors, fontsize=6, rotation=90)
    ax.set_title(f"{name}: attributed share per sensor and segment")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
