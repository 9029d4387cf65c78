"""Data quality before training: which sensors carry usable information, and why the others are left out.

A model trained on a sensor that was offline half the time, stuck at one value, or is a running counter learns
nothing useful and raises false alarms later. :func:`summarise` measures every sensor on the training data
(long readings from the store, or a wide frame), :func:`usable_sensors` applies stated rules, and the report
goes into the bundle and onto the operator's terminal so that an excluded sensor is never a silent decision.

Wandering level (reported as ``unit_root_p`` and ``unexplained_p``; an opt-in rule, off by default): a detector
learns each sensor's normal *level* from the training data. When that data is too short for the sensor's own slow
dynamics (a thermocouple that drifts 0.1 degC over SKAB's 400 training seconds), the series looks like a random
walk: whatever range it covered in training says little about where it will be next hour. The augmented
Dickey-Fuller test (statsmodels) asks this of the training data alone: a p-value above 0.05 means a unit root cannot
be rejected. That alone does not make a sensor useless: on short training spans of a plant whose load steps now and
then, *every* load-driven sensor looks like a random walk (three simulated hours: all six pump sensors, p
0.17-0.83), yet the others explain it, and a multivariate model learns those relations well. So a wandering sensor
is regressed on the other wandering sensors of its asset and the residual tested again (Engle-Granger, MacKinnon's
cointegration p-values; both tests are in :mod:`linewatch.models.unit_root`): the rule (``max_unit_root_p``) leaves
out only a level that wanders *and* that nothing else explains. Why it is still not the default: the simulated
plant's bearing temperature is such a level on a few hours of training (it follows the day's warmth, which no other
sensor carries), and leaving it out gives up the first sign of a failing bearing; from one day of training on the
rule leaves every simulated sensor in. On SKAB's unlabelled normal run it takes alarming rows from 68.3 % to 32.4 %.
A second opt-in keeps such a level instead (``wandering_level_p``, :func:`wandering_levels`) and lets the detector
allow it to wander one more training span (``pca_t2q``'s ``wandering``; 56.9 % on that normal run); not the default
either: on the demo's few hours it reports 2 of 48 faults worse than the default (README, demo replay). Both are
asked of the readings outside labelled periods (:func:`wander_as_in`): a labelled fault's climb is not a level
wandering in normal operation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from linewatch.ingest.reader import OBSERVED_SUFFIX
from linewatch.models.unit_root import WANDER_P, unexplained_p, unit_root_p

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Limits = Mapping[str, tuple[float | None, float | None]]
_DIST = ("min", "p1", "median", "p99", "max", "mean", "std")


@dataclass(frozen=True, slots=True)
class SensorQuality:
    """Quality of one sensor over the summarised data (steps are cadence bins; shares in [0, 1])."""

    sensor: str
    readings: int  # rows (after removing duplicates)
    expected_steps: int
    observed_steps: int
    coverage: float  # observed / expected steps
    gaps: int  # runs of missing steps
    longest_gap_steps: int
    flat_share: float  # share of observed steps inside runs of >= flat_run equal values
    duplicates: int  # extra rows with the same timestamp
    non_finite: int
    monotonic: bool  # never decreases and rises overall: a counter, unusable as is
    out_of_range_share: float | None  # vs configured limits; None without limits
    distinct: int
    unit_root_p: float | None = None  # ADF p-value, median over assets: high = the level wanders (random walk)
    # Engle-Granger p-value, median over assets, of what is left of a wandering level after the other wandering
    # sensors explain what they can (None: the level does not wander); high = nothing else explains the wander
    unexplained_p: float | None = None
    min: float | None = None
    p1: float | None = None
    median: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True, slots=True)
class QualityReport:
    cadence_s: float
    flat_run: int
    sensors: dict[str, SensorQuality] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cadence_s": self.cadence_s,
            "flat_run": self.flat_run,
            "sensors": {name: asdict(q) for name, q in self.sensors.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityReport:
        sensors = {name: SensorQuality(**q) for name, q in data["sensors"].items()}
        return cls(float(data["cadence_s"]), int(data["flat_run"]), sensors)


@dataclass(frozen=True, slots=True)
class UsabilityRules:
    """When a sensor is left out of training. Defaults are deliberately lenient: exclusion loses information.

    Coverage below 80 % means gap filling would invent much of the data; flat-lined more than 95 % of the time
    means the sensor hardly ever moves (stuck, or idle for all but a few steps), so its normal behaviour cannot
    be learned; a counter (monotonic) needs differencing before it means anything; zero variance carries no
    information and would break scaling. ``max_unit_root_p`` (opt-in, None = off; 0.05 is the usual choice)
    leaves out a sensor whose level wanders like a random walk over the training span (ADF unit root not
    rejected) and that the other wandering sensors do not explain (Engle-Granger, same level); see the module
    docstring for why it is not on by default.

    Why 95 % and not "half the time": a sensor that rests at one value most of the time but moves now and then
    (a valve position, a door switch, a load step, a server's error count) carries events, and the events are
    often the anomaly. On SMD, where such sensors are common, excluding every sensor flat more than half the
    time left out between 9 and 14 of 38 and lowered both detection and attribution (see the issue notes).
    """

    min_readings: int = 10
    min_coverage: float = 0.8
    max_flat_share: float = 0.95
    exclude_monotonic: bool = True
    max_out_of_range_share: float = 0.01
    min_distinct: int = 2
    max_unit_root_p: float | None = None


@dataclass(slots=True)
class _Part:
    """One asset's binned series of one sensor: sorted unique bins, their mean values, the expected range."""

    bins: I64
    values: F64
    first: int
    last: int
    asset: str = ""


def _gap_lengths(part: _Part) -> I64:
    if part.bins.size == 0:
        return np.array([part.last - part.first + 1], dtype=np.int64)
    inner = np.diff(part.bins) - 1
    edges = np.array([part.bins[0] - part.first, part.last - part.bins[-1]], dtype=np.int64)
    lengths = np.concatenate([inner, edges])
    return lengths[lengths > 0]


def _flat_steps(values: F64, run: int) -> int:
    """Observed steps inside runs of at least ``run`` equal consecutive values."""
    if values.size == 0:
        return 0
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(values) != 0) + 1, [values.size]])
    lengths = np.diff(bounds)
    return int(lengths[lengths >= run].sum())


def _aligned(part: _Part, partners: list[_Part]) -> tuple[F64, F64]:
    """The target's values and its partners' (columns) on the bins all of them observed."""
    common = part.bins
    for other in partners:
        common = np.intersect1d(common, other.bins, assume_unique=True)
    target = part.values[np.searchsorted(part.bins, common)]
    cols = [o.values[np.searchsorted(o.bins, common)] for o in partners]
    return target, np.column_stack(cols) if cols else np.zeros((common.size, 0))


def _unexplained(
    parts: Mapping[str, list[_Part]], report: dict[str, SensorQuality], wander_p: float
) -> dict[str, SensorQuality]:
    """Add ``unexplained_p`` to every wandering sensor: its partners are the other wandering sensors, per asset."""
    wandering = [s for s, q in report.items() if q.unit_root_p is not None and q.unit_root_p > wander_p]
    by_asset = {name: {part.asset: part for part in parts[name]} for name in wandering}
    out = dict(report)
    for sensor in wandering:
        ps = []
        for part in parts[sensor]:
            partners = [by_asset[name].get(part.asset) for name in wandering if name != sensor]
            p = unexplained_p(*_aligned(part, [o for o in partners if o is not None and o.bins.size]))
            if p is not None:
                ps.append(p)
        if ps:
            out[sensor] = replace(report[sensor], unexplained_p=float(np.median(ps)))
    return out


def _is_monotonic(parts: list[_Part]) -> bool:
    series = [p.values[np.isfinite(p.values)] for p in parts if p.values.size >= 3]
    return bool(series) and all(bool((np.diff(s) >= 0).all()) and s[-1] > s[0] for s in series)


def _summarise_sensor(
    name: str, parts: list[_Part], raw: F64, duplicates: int, flat_run: int, limits: Limits | None
) -> SensorQuality:
    finite = raw[np.isfinite(raw)]
    expected = sum(p.last - p.first + 1 for p in parts)
    observed = sum(int(p.bins.size) for p in parts)
    gaps = [_gap_lengths(p) for p in parts]
    dist: dict[str, float | None] = dict.fromkeys(_DIST)
    if finite.size:
        p1, med, p99 = np.percentile(finite, [1.0, 50.0, 99.0])
        stats = (finite.min(), p1, med, p99, finite.max(), finite.mean(), finite.std())
        dist = dict(zip(_DIST, map(float, stats), strict=True))
    oor: float | None = None
    if limits is not None and name in limits:
        lo, hi = limits[name]
        bad = np.zeros(finite.shape, dtype=bool)
        bad |= finite < lo if lo is not None else False
        bad |= finite > hi if hi is not None else False
        oor = float(bad.mean()) if finite.size else 0.0
    adf = [p for p in (unit_root_p(part.values) for part in parts) if p is not None]
    return SensorQuality(
        sensor=name,
        readings=int(raw.size),
        expected_steps=int(expected),
        observed_steps=observed,
        coverage=observed / expected if expected else 0.0,
        gaps=int(sum(g.size for g in gaps)),
        longest_gap_steps=int(max((int(g.max()) for g in gaps if g.size), default=0)),
        flat_share=sum(_flat_steps(p.values, flat_run) for p in parts) / observed if observed else 0.0,
        duplicates=duplicates,
        non_finite=int(raw.size - finite.size),
        monotonic=_is_monotonic(parts),
        out_of_range_share=oor,
        distinct=int(np.unique(finite).size),
        unit_root_p=float(np.median(adf)) if adf else None,
        **dist,
    )


def _parts_long(frame: pl.DataFrame, cadence_us: int) -> tuple[dict[str, list[_Part]], dict[str, int]]:
    if "asset" not in frame.columns:
        frame = frame.with_columns(pl.lit("").alias("asset"))
    frame = frame.with_columns((pl.col("ts").dt.epoch("us") // cadence_us).alias("bin"))
    dups = frame.group_by("sensor").agg((pl.len() - pl.struct("asset", "ts").n_unique()).alias("d"))
    duplicates = dict(zip(dups["sensor"].to_list(), dups["d"].to_list(), strict=True))
    spans = frame.group_by("asset").agg(pl.col("bin").min().alias("first"), pl.col("bin").max().alias("last"))
    span = {a: (f, la) for a, f, la in spans.iter_rows()}
    binned = (
        frame.filter(pl.col("value").is_finite())
        .group_by("asset", "sensor", "bin")
        .agg(pl.col("value").mean())
        .sort("asset", "sensor", "bin")
    )
    parts: dict[str, list[_Part]] = {s: [] for s in sorted(duplicates)}
    for (asset, sensor), group in binned.group_by("asset", "sensor", maintain_order=True):
        first, last = span[asset]
        bins, values = group["bin"].to_numpy(), group["value"].to_numpy()
        parts[str(sensor)].append(_Part(bins, values, first, last, str(asset)))
    for lst in parts.values():  # a sensor with only non-finite readings still counts its assets' range
        if not lst:
            lst.extend(_Part(np.zeros(0, np.int64), np.zeros(0), f, la, str(a)) for a, (f, la) in span.items())
    return parts, duplicates


def summarise(
    frame: pl.DataFrame,
    cadence_s: float,
    *,
    limits: Limits | None = None,
    flat_run: int = 10,
    wander_p: float | None = None,
) -> QualityReport:
    """Quality of every sensor in ``frame``, either long readings (``ts, [asset,] sensor, value``) or a wide
    frame (``ts``, a column per sensor, optional ``<sensor>:observed``).

    Long readings are binned to ``cadence_s``; each asset's expected steps run from its first to its last bin,
    so a sensor that started late or stopped early shows low coverage. Several assets are pooled per sensor.
    ``limits`` maps sensors to physical (low, high) limits; ``flat_run`` is the run length (steps) of an
    unchanged value that counts as flat-lined. ``wander_p`` (default :data:`WANDER_P`): the ADF p-value above which
    a level counts as wandering and gets ``unexplained_p``; pass the usability rule's ``max_unit_root_p`` so that
    every sensor the rule judges has it.
    """
    wander = WANDER_P if wander_p is None else wander_p
    if cadence_s <= 0 or flat_run < 2:
        raise ValueError("cadence_s must be positive and flat_run >= 2")
    cadence_us = round(cadence_s * 1e6)
    report: dict[str, SensorQuality] = {}
    if {"ts", "sensor", "value"} <= set(frame.columns):
        parts, duplicates = _parts_long(frame, cadence_us)
        raw_by_sensor = frame.group_by("sensor").agg(pl.col("value"))
        raws = {s: np.asarray(v, dtype=np.float64) for s, v in raw_by_sensor.iter_rows()}
        for sensor, sensor_parts in parts.items():
            report[sensor] = _summarise_sensor(sensor, sensor_parts, raws[sensor], duplicates[sensor], flat_run, limits)
        return QualityReport(cadence_s, flat_run, _unexplained(parts, report, wander))
    sensors = [c for c in frame.columns if c != "ts" and not c.endswith(OBSERVED_SUFFIX)]
    wide_parts: dict[str, list[_Part]] = {}
    for sensor in sensors:
        values = frame.get_column(sensor).cast(pl.Float64).fill_null(np.nan).to_numpy()
        mask_col = sensor + OBSERVED_SUFFIX
        observed = frame.get_column(mask_col).fill_null(False).to_numpy() if mask_col in frame.columns else None
        observed = ~np.isnan(values) if observed is None else observed.astype(bool) & ~np.isnan(values)
        rows = np.flatnonzero(observed).astype(np.int64)
        wide_parts[sensor] = [_Part(rows, values[rows], 0, frame.height - 1)]
        report[sensor] = _summarise_sensor(sensor, wide_parts[sensor], values[rows], 0, flat_run, limits)
    return QualityReport(cadence_s, flat_run, _unexplained(wide_parts, report, wander))


def wander_as_in(report: QualityReport, other: QualityReport) -> QualityReport:
    """``report`` with each sensor's wander tests (``unit_root_p``, ``unexplained_p``) taken from ``other``, e.g.
    the same readings without their labelled faults: coverage and gaps are the whole data's, but whether a level
    wanders is asked of normal operation."""
    sensors = {
        name: replace(q, unit_root_p=other.sensors[name].unit_root_p, unexplained_p=other.sensors[name].unexplained_p)
        if name in other.sensors
        else q
        for name, q in report.sensors.items()
    }
    return QualityReport(report.cadence_s, report.flat_run, sensors)


def wanders_alone(quality: SensorQuality, p: float) -> bool:
    """The level wanders like a random walk over the training data (ADF p above ``p``) and the other wandering
    sensors do not explain it (Engle-Granger p above ``p``): training cannot tell where its level will be next."""
    if quality.unit_root_p is None or quality.unit_root_p <= p:
        return False
    # No unexplained_p: a report saved before it existed, or summarised at a higher wander level.
    alone = quality.unit_root_p if quality.unexplained_p is None else quality.unexplained_p
    return alone > p


def wandering_levels(report: QualityReport, sensors: Sequence[str], p: float | None) -> list[int]:
    """Indices into ``sensors`` of the levels that :func:`wanders_alone` (none when ``p`` is None)."""
    if p is None:
        return []
    return [j for j, s in enumerate(sensors) if s in report.sensors and wanders_alone(report.sensors[s], p)]


def usable_sensors(report: QualityReport, rules: UsabilityRules | None = None) -> tuple[list[str], dict[str, str]]:
    """Sensors fit for training (report order) and, for the rest, every reason they were left out."""
    r = rules or UsabilityRules()
    usable: list[str] = []
    excluded: dict[str, str] = {}
    for name, q in report.sensors.items():
        reasons = []
        if q.readings < r.min_readings:
            reasons.append(f"only {q.readings} readings (< {r.min_readings})")
        if q.coverage < r.min_coverage:
            reasons.append(f"coverage {q.coverage:.0%} < {r.min_coverage:.0%}")
        if q.flat_share > r.max_flat_share:
            reasons.append(f"flat-lined {q.flat_share:.0%} of the time (> {r.max_flat_share:.0%})")
        if r.exclude_monotonic and q.monotonic:
            reasons.append("monotonic (a counter: difference it first)")
        if q.distinct < r.min_distinct or (q.std is not None and q.std <= 1e-12 * max(1.0, abs(q.mean or 0.0))):
            reasons.append("zero variance")
        if r.max_unit_root_p is not None and wanders_alone(q, r.max_unit_root_p):
            assert q.unit_root_p is not None
            alone = q.unit_root_p if q.unexplained_p is None else q.unexplained_p
            reasons.append(
                f"level wanders like a random walk over the training data (ADF p = {q.unit_root_p:.2f}) and"
                f" no other sensor explains it (Engle-Granger p = {alone:.2f} > {r.max_unit_root_p:g}):"
                " train on a longer history"
            )
        if q.out_of_range_share is not None and q.out_of_range_share > r.max_out_of_range_share:
            reasons.append(f"{q.out_of_range_share:.1%} of readings outside the configured limits")
        if reasons:
            excluded[name] = "; ".join(reasons)
        else:
            usable.append(name)
    return usable, excluded


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render_text(report: QualityReport, excluded: Mapping[str, str] | None = None) -> str:
    """A compact plain-text table (one row per sensor); with ``excluded``, a verdict column and the reasons."""
    head = ["sensor", "readings", "coverage", "gaps", "longest", "flat", "dups", "counter", "oor", "adf p", "alone p"]
    head += ["min", "median", "max", "std"] + (["use"] if excluded is not None else [])
    rows = []
    for name, q in report.sensors.items():
        oor = "-" if q.out_of_range_share is None else f"{q.out_of_range_share:.1%}"
        row = [name, str(q.readings), f"{q.coverage:.1%}", str(q.gaps), str(q.longest_gap_steps)]
        row += [f"{q.flat_share:.1%}", str(q.duplicates), "yes" if q.monotonic else "no", oor, _fmt(q.unit_root_p)]
        row.append(_fmt(q.unexplained_p))
        row += [_fmt(q.min), _fmt(q.median), _fmt(q.max), _fmt(q.std)]
        if excluded is not None:
            row.append("no" if name in excluded else "yes")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [head, *rows]
    ]
    for name, reason in (excluded or {}).items():
        lines.append(f"excluded {name}: {reason}")
    return "\n".join(lines) + "\n"
