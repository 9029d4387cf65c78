"""``linewatch store report``: what the plant's own data looks like, against what its model learned.

People who run a plant cannot "feel" a store of Parquet files, and a model silently goes stale when the data
moves away from what it was trained on. The report puts both in front of them, per asset group: for each asset
the data-quality table training uses (:func:`linewatch.models.quality.summarise`: coverage, gaps, flat-lined,
counters, wandering levels), and one plot per sensor of its readings over the period (the band between each time
bin's minimum and maximum, the median as a line, bins without a reading shaded) beside its distribution. Where
the group has a model in service, its training range (0.1-99.9 % of the training readings, from the bundle) is
drawn on both, and the share of readings outside it is in the table: the number that says "retrain" before the
alerts do. The model also scores the period as serving would (at most :data:`MAX_SCORED_WINDOWS` windows per asset,
strided over long periods): its anomaly score is drawn above the sensors, with the share of windows over the
threshold and the sensors it blamed there.

The binning and the shares are pure functions of arrays (tested on literal numbers); the Markdown is a pure
function of the views; only :func:`write_report` touches files and matplotlib (Agg backend, no display). Without
matplotlib the report is written without plots and says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from linewatch.models.model import ScoredWindows
from linewatch.models.quality import QualityReport, summarise

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
#: Time bins per sensor plot: enough to see a day's shape over a week, few enough for a small PNG.
DEFAULT_BINS = 600
HISTOGRAM_BINS = 50
#: At most this many windows are scored per asset for the model's view (a stride over longer periods).
MAX_SCORED_WINDOWS = 20_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One sensor's readings binned in time: per bin the minimum, median and maximum (NaN: no reading)."""

    edges_us: npt.NDArray[np.int64]  # (bins + 1,) bin edges, epoch µs
    low: F64
    median: F64
    high: F64
    count: npt.NDArray[np.int64]


def envelope(ts_us: npt.ArrayLike, values: npt.ArrayLike, start_us: int, end_us: int, bins: int) -> Envelope:
    """Bin ``values`` at ``ts_us`` into ``bins`` equal time bins over ``[start_us, end_us)``.

    Why min/median/max and not a mean: a spike or a dropout is what a person looks for, and a mean hides both.
    Readings outside the span and non-finite values are ignored.
    """
    if bins < 1 or end_us <= start_us:
        raise ValueError("need at least one bin and end_us > start_us")
    ts = np.asarray(ts_us, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    keep = (ts >= start_us) & (ts < end_us) & np.isfinite(v)
    ts, v = ts[keep], v[keep]
    edges = start_us + (np.arange(bins + 1, dtype=np.float64) * (end_us - start_us) / bins).astype(np.int64)
    idx = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, bins - 1)
    low, med, high = (np.full(bins, np.nan) for _ in range(3))
    count = np.bincount(idx, minlength=bins).astype(np.int64)
    order = np.lexsort((v, idx))  # by bin, then value: each bin's values are one sorted run
    idx, v = idx[order], v[order]
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    filled = count > 0
    low[filled] = v[starts[filled]]
    high[filled] = v[starts[filled] + count[filled] - 1]
    mid_lo, mid_hi = starts + (count - 1) // 2, starts + count // 2
    med[filled] = (v[mid_lo[filled]] + v[mid_hi[filled]]) / 2
    return Envelope(edges, low, med, high, count)


def outside_share(values: npt.ArrayLike, low: float, high: float) -> float:
    """Share of finite ``values`` below ``low`` or above ``high`` (NaN when there is none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.mean((v < low) | (v > high))) if v.size else float("nan")


@dataclass(frozen=True, slots=True)
class AssetView:
    """Everything the report shows for one asset."""

    asset: str
    quality: QualityReport
    envelopes: dict[str, Envelope]
    histograms: dict[str, tuple[F64, F64]]  # sensor -> (counts, bin edges) of the period's readings
    trained: dict[str, tuple[float, float]]  # sensor -> the model's training range; empty without a model
    outside: dict[str, float]  # sensor -> share of readings outside that range
    model_view: ModelView | None = None  # how the model in service scores the period; None without one


@dataclass(frozen=True, slots=True)
class ModelView:
    """The model's verdict on the period: its anomaly score over time and where it points when it alarms."""

    score: Envelope  # anomaly score per time bin (>= 1: over the threshold)
    scored: int  # windows scored (every ``stride``-th step)
    stride: int
    alarm_share: float  # share of valid scored windows at or over the threshold
    sensor_fault_share: float  # share of scored windows where a health check flagged a sensor
    blamed: tuple[tuple[str, float], ...]  # sensors by mean contribution over the alarmed windows, top three
    note: str = ""  # why there is no score (e.g. a sensor the model needs is missing)


def model_view(
    scored: ScoredWindows | None, start_us: int, end_us: int, stride: int, bins: int = DEFAULT_BINS, note: str = ""
) -> ModelView:
    """Summarise scored windows for the report (pure: the scoring itself is the caller's)."""
    if scored is None or not len(scored.end_ts):
        empty = envelope([], [], start_us, end_us, bins)
        return ModelView(empty, 0, stride, float("nan"), float("nan"), (), note or "no window could be scored")
    ts = scored.end_ts.astype("datetime64[us]").astype(np.int64)
    score = np.where(scored.valid, scored.anomaly_score, np.nan)
    alarmed = scored.valid & (scored.anomaly_score >= 1.0)
    valid = int(scored.valid.sum())
    blamed: tuple[tuple[str, float], ...] = ()
    if alarmed.any():
        mean = scored.contributions[alarmed].mean(axis=0)
        order = np.argsort(mean)[::-1][:3]
        blamed = tuple((scored.sensors[int(j)], float(mean[j])) for j in order if mean[j] > 0)
    return ModelView(
        score=envelope(ts, score, start_us, end_us, bins),
        scored=len(ts),
        stride=stride,
        alarm_share=float(alarmed.sum() / valid) if valid else float("nan"),
        sensor_fault_share=float(scored.sensor_fault.mean()),
        blamed=blamed,
        note=note,
    )


def asset_view(
    readings: pl.DataFrame,
    asset: str,
    cadence_s: float,
    start: datetime,
    end: datetime,
    trained: Mapping[str, tuple[float, float]] | None = None,
    bins: int = DEFAULT_BINS,
) -> AssetView:
    """The view of one asset's long readings (``ts, asset, sensor, value``) over ``[start, end)``."""
    mine = readings.filter(pl.col("asset") == asset).select("ts", "sensor", "value")
    quality = summarise(mine, cadence_s) if mine.height else QualityReport(cadence_s, 10)
    start_us, end_us = epoch_us(start), epoch_us(end)
    envelopes: dict[str, Envelope] = {}
    histograms: dict[str, tuple[F64, F64]] = {}
    outside: dict[str, float] = {}
    ranges = dict(trained or {})
    for (sensor,), part in sorted(mine.partition_by("sensor", as_dict=True).items(), key=lambda kv: str(kv[0])):
        name = str(sensor)
        ts = part["ts"].dt.epoch("us").to_numpy()
        v = part["value"].to_numpy().astype(np.float64)
        envelopes[name] = envelope(ts, v, start_us, end_us, bins)
        finite = v[np.isfinite(v)]
        if finite.size:  # counts, not the readings: a report over many assets keeps only what it draws
            counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
            histograms[name] = (counts.astype(np.float64), edges.astype(np.float64))
        if name in ranges:
            outside[name] = outside_share(v, *ranges[name])
    shown = {s: r for s, r in ranges.items() if s in envelopes}
    return AssetView(asset, quality, envelopes, histograms, shown, outside)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware moment (the store's time unit)."""
    return int(moment.astimezone(UTC).timestamp() * 1_000_000)


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.1%}"


def _num(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.4g}"


def render_markdown(
    group: str,
    start: datetime,
    end: datetime,
    views: Sequence[AssetView],
    *,
    model: str | None,
    images: Mapping[str, str] | None = None,
    quarantined: Mapping[str, int] | None = None,
    note: str = "",
) -> str:
    """The report's Markdown: a section per asset with its quality table, training-range shares and plot."""
    lines = [f"# Data report: asset group {group}", ""]
    lines += [f"Readings from {start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC.", ""]
    if model:
        lines.append(
            f"Model in service: {model}. *outside training* is the share of the period's readings outside the "
            "0.1-99.9 % range of the readings it was trained on (the band in the plots); a sensor far outside "
            "it is one the model has not seen like this: check the sensor, or retrain."
        )
    else:
        lines.append("No model in service for this group yet: `linewatch train` makes one from this data.")
    lines.append("")
    if quarantined is not None:
        if quarantined:
            text = ", ".join(f"{reason} {n:,}" for reason, n in sorted(quarantined.items(), key=lambda kv: -kv[1]))
            lines.append(f"Quarantined in the period (whole store, by reason): {text}.")
        else:
            lines.append("Quarantined in the period: nothing.")
    if note:
        lines += ["", note]
    head = ["sensor", "readings", "coverage", "gaps", "longest gap (steps)", "flat", "counter", "adf p", "min"]
    head += ["median", "max", "outside training"]
    for view in views:
        lines += ["", f"## {view.asset}", ""]
        if not view.quality.sensors:
            lines.append("No readings in the period.")
            continue
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, q in view.quality.sensors.items():
            row = [name, f"{q.readings:,}", _pct(q.coverage), str(q.gaps), str(q.longest_gap_steps)]
            row += [_pct(q.flat_share), "yes" if q.monotonic else "no", _num(q.unit_root_p), _num(q.min)]
            row += [_num(q.median), _num(q.max), _pct(view.outside.get(name)) if view.trained else "-"]
            lines.append("| " + " | ".join(row) + " |")
        if view.model_view is not None:
            lines += ["", _model_line(view.model_view)]
        if images and view.asset in images:
            lines += ["", f"![{view.asset}]({images[view.asset]})"]
    return "\n".join(lines) + "\n"


def _model_line(mv: ModelView) -> str:
    if not mv.scored:
        return f"Model's view: not scored ({mv.note})."
    every = "every step" if mv.stride == 1 else f"one every {mv.stride} steps"
    text = (
        f"Model's view ({mv.scored:,} windows, {every}): anomaly score at or over the threshold in "
        f"{_pct(mv.alarm_share)} of them; a sensor flagged by the health checks in {_pct(mv.sensor_fault_share)}."
    )
    if mv.blamed:
        text += " Sensors it blamed most when over: " + ", ".join(f"{s} ({share:.0%})" for s, share in mv.blamed) + "."
    return text


def _plot(view: AssetView, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sensors = list(view.envelopes)
    mv = view.model_view if view.model_view is not None and view.model_view.scored else None
    top = 1 if mv is not None else 0
    rows = len(sensors) + top
    fig, axes = plt.subplots(rows, 2, figsize=(12, 1.8 * rows + 0.6), squeeze=False, width_ratios=(4, 1), sharey="row")
    if mv is not None:
        ax = axes[0, 0]
        mid = ((mv.score.edges_us[:-1] + mv.score.edges_us[1:]) // 2).astype("datetime64[us]")
        floor = 1e-3  # a log axis cannot show 0
        ax.fill_between(
            mid,
            np.maximum(mv.score.low, floor),
            np.maximum(mv.score.high, floor),
            color="tab:red",
            alpha=0.25,
            linewidth=0,
        )
        ax.plot(mid, np.maximum(mv.score.median, floor), color="tab:red", linewidth=0.8)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="threshold")
        ax.set_yscale("log")
        ax.set_ylabel("anomaly score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
        axes[0, 1].axis("off")
        axes[0, 1].text(0, 0.5, f"over threshold: {_pct(mv.alarm_share)}", fontsize=8, va="center")
    for row, name in enumerate(sensors, start=top):
        env, series, hist = view.envelopes[name], axes[row, 0], axes[row, 1]
        mid = ((env.edges_us[:-1] + env.edges_us[1:]) // 2).astype("datetime64[us]")
        series.fill_between(mid, env.low, env.high, color="tab:blue", alpha=0.3, linewidth=0, label="min-max")
        series.plot(mid, env.median, color="tab:blue", linewidth=0.8, label="median")
        empty = env.count == 0
        if empty.any():
            upper = np.nanmax(env.high) if np.isfinite(env.high).any() else 1.0
            lower = np.nanmin(env.low) if np.isfinite(env.low).any() else 0.0
            series.fill_between(mid, lower, upper, where=empty, color="0.85", step="mid", label="no reading")
        if name in view.histograms:
            counts, edges = view.histograms[name]
            hist.stairs(counts, edges, orientation="horizontal", fill=True, color="tab:blue", alpha=0.6)
        if name in view.trained:
            low, high = view.trained[name]
            series.axhspan(low, high, color="tab:green", alpha=0.12, label="training range")
            for ax in (series, hist):
                ax.axhline(low, color="tab:green", linewidth=0.7)
                ax.axhline(high, color="tab:green", linewidth=0.7)
        series.set_ylabel(name, fontsize=8)
        series.tick_params(labelsize=7)
        hist.tick_params(labelsize=7)
    axes[top, 0].legend(fontsize=7, loc="upper right", ncols=4)
    axes[0, 0].set_title(view.asset, fontsize=9)
    axes[top, 1].set_title("distribution", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(
    out: Path,
    group: str,
    start: datetime,
    end: datetime,
    views: Sequence[AssetView],
    *,
    model: str | None,
    quarantined: Mapping[str, int] | None = None,
    plots: bool = True,
) -> Path:
    """Write ``out/report.md`` and a PNG per asset (``out/<asset>.png``); returns the Markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    note = ""
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            note = "Plots were left out: matplotlib is not installed."
        else:
            for view in views:
                if view.envelopes:
                    name = _SAFE.sub("_", view.asset) + ".png"
                    _plot(view, out / name)
                    images[view.asset] = name
    text = render_markdown(group, start, end, views, model=model, images=images, quarantined=quarantined, note=note)
    path = out / "report.md"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
