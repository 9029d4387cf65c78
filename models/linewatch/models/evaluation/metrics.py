"""Pure metric functions of the benchmark protocols (numpy in, numbers out; tested with literal arrays).

Definitions follow ``../shared/data/README.md``:

* SKAB: pooled confusion counts; ``F1 = TP / (TP + (FP + FN) / 2)``, ``FAR = 100 FP / (FP + TN)``,
  ``MAR = 100 FN / (FN + TP)``.
* NAB (standard profile) for changepoints, see :func:`nab_score`.
* Events: runs of consecutive positive points; event recall, false alarms per day, detection delay.
* Attribution: HitRate@P% (top ``floor(P/100 * |true|)`` sensors, fraction of the true sensors among them),
  NDCG@|true| and AC@k (top-1/top-3), each with the *exact expectation* of a uniformly random ranking, which is
  what "a random ranking computed the same way" converges to (no sampling noise in the comparison column).

Threshold-free VUS-PR and AUC-PR live in :mod:`linewatch.models.evaluation.rangeauc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Confusion:
    """Point-wise confusion counts; add them to pool over files."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def f1(self) -> float:
        """SKAB's F1 = TP / (TP + (FP + FN) / 2) (equal to the usual F1); 0 when there is nothing to count."""
        denom = self.tp + (self.fp + self.fn) / 2
        return self.tp / denom if denom else 0.0

    @property
    def far(self) -> float:
        """False-alarm rate in percent of normal points."""
        return 100.0 * self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        """Missed-alarm rate in percent of anomalous points."""
        return 100.0 * self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


def confusion(pred: npt.ArrayLike, label: npt.ArrayLike) -> Confusion:
    """Counts of binary predictions against binary labels (same length)."""
    p = np.asarray(pred, dtype=bool)
    y = np.asarray(label, dtype=bool)
    if p.shape != y.shape:
        raise ValueError(f"pred and label differ in shape: {p.shape} vs {y.shape}")
    return Confusion(int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum()), int((~p & ~y).sum()))


def segments(label: npt.ArrayLike) -> list[tuple[int, int]]:
    """Runs of True as ``(start, end)`` with ``end`` exclusive.

    >>> segments([0, 1, 1, 0, 1])
    [(1, 3), (4, 5)]
    """
    y = np.asarray(label, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], y, [0]]))
    return [(int(s), int(e)) for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)]


@dataclass(frozen=True, slots=True)
class EventStats:
    events: int
    detected: int
    delays: tuple[int, ...]  # steps from segment start to its first alarm, per detected segment
    false_events: int  # alarm runs overlapping no labelled segment
    normal_steps: int

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 0.0

    def mean_delay(self) -> float:
        return float(np.mean(self.delays)) if self.delays else math.nan


def event_stats(pred: npt.ArrayLike, label: npt.ArrayLike) -> EventStats:
    """Event recall (a labelled segment counts as detected if any of its points alarms), detection delays, and
    false alarms counted as *alarm runs* that overlap no labelled segment (an operator sees runs, not points)."""
    p = np.asarray(pred, dtype=bool)
    y = np.asarray(label, dtype=bool)
    truth = segments(y)
    delays = []
    for s, e in truth:
        hits = np.flatnonzero(p[s:e])
        if hits.size:
            delays.append(int(hits[0]))
    false = sum(1 for s, e in segments(p) if not y[s:e].any())
    return EventStats(len(truth), len(delays), tuple(delays), false, int((~y).sum()))


def false_alarms_per_day(stats: EventStats, cadence_s: float) -> float:
    """False alarm runs per day of normal operation."""
    days = stats.normal_steps * cadence_s / 86400.0
    return stats.false_events / days if days > 0 else 0.0


# -- NAB ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NabProfile:
    """Application profile weights (NAB's ``config/profiles.json``)."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


NAB_STANDARD = NabProfile()


def scaled_sigmoid(position: float) -> float:
    """NAB's ``scaledSigmoid``: +0.987 at a window's start (position -1), 0 at its end, -> -1 after it."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_windows(changepoints: Sequence[int], width: int, n: int) -> list[tuple[int, int]]:
    """Windows ``[c, c + width]`` (inclusive, clipped to the series) to the right of each changepoint; overlapping
    windows are merged, as NAB does."""
    out: list[tuple[int, int]] = []
    for c in sorted(changepoints):
        lo, hi = c, min(c + width, n - 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@dataclass(frozen=True, slots=True)
class NabRaw:
    """Raw NAB score of one series with the perfect and null detectors' scores on the same windows."""

    score: float = 0.0
    perfect: float = 0.0
    null: float = 0.0

    def __add__(self, other: NabRaw) -> NabRaw:
        return NabRaw(self.score + other.score, self.perfect + other.perfect, self.null + other.null)

    @property
    def normalised(self) -> float:
        """``100 (score - null) / (perfect - null)``; the null detector scores 0, the perfect one 100."""
        span = self.perfect - self.null
        return 100.0 * (self.score - self.null) / span if span else 0.0


def nab_score(
    detections: npt.ArrayLike, windows: Sequence[tuple[int, int]], profile: NabProfile = NAB_STANDARD
) -> NabRaw:
    """NAB scoring of binary detections (one per point) against inclusive windows ``(a, b)``.

    * The first detection inside a window scores ``tp * scaled_sigmoid(-(b - i + 1) / (b - a + 1))``; later
      ones in the same window count nothing.
    * A window without a detection scores ``-fn``.
    * A detection outside every window scores ``fp * scaled_sigmoid((i - b) / (b - a + 1))`` relative to the
      last window ``(a, b)`` before it (close after a window costs little), or ``-fp`` with no window before.
    * Perfect: one detection at each window's start; null: no detection (``-fn`` per window).
    """
    det = np.flatnonzero(np.asarray(detections, dtype=bool))
    wins = sorted(windows)
    score = 0.0
    for a, b in wins:
        inside = det[(det >= a) & (det <= b)]
        if inside.size:
            score += profile.tp * scaled_sigmoid(-(b - int(inside[0]) + 1) / (b - a + 1))
        else:
            score -= profile.fn
    ends = np.array([b for _, b in wins], dtype=np.int64)
    starts = np.array([a for a, _ in wins], dtype=np.int64)
    for i in det:
        if any(a <= i <= b for a, b in wins):
            continue
        before = np.flatnonzero(ends < i)
        if before.size:
            k = int(before[-1])
            score += profile.fp * scaled_sigmoid((int(i) - int(ends[k])) / (int(ends[k] - starts[k]) + 1))
        else:
            score -= profile.fp
    perfect = sum(profile.tp * scaled_sigmoid(-1.0) for _ in wins)
    return NabRaw(score, perfect, -profile.fn * len(wins))


def transitions(pred: npt.ArrayLike) -> Bools:
    """Predicted changepoints from binary predictions: points where the prediction changes (SKAB's convention,
    ``prediction.diff().abs()``); the first point is never a change."""
    p = np.asarray(pred, dtype=np.int8)
    out = np.zeros(p.shape, dtype=bool)
    out[1:] = np.diff(p) != 0
    return out


# -- attribution ----------------------------------------------------------------------------------------------
def ranking(contribution: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Sensor indices by decreasing contribution; ties keep index order (stable, deterministic)."""
    return np.argsort(-np.asarray(contribution, dtype=np.float64), kind="stable")


def hit_rate(rank: npt.ArrayLike, true_dims: Sequence[int], percent: float) -> float:
    """Fraction of the true dims among the top ``floor(percent/100 * |true|)`` ranked sensors."""
    truth = set(true_dims)
    if not truth:
        raise ValueError("a segment needs at least one true dimension")
    k = math.floor(percent / 100.0 * len(truth) + 1e-9)
    top = set(np.asarray(rank)[:k].tolist())
    return len(top & truth) / len(truth)


def hit_rate_random(n_dims: int, n_true: int, percent: float) -> float:
    """Expected :func:`hit_rate` of a uniformly random ranking: ``min(k, D) / D``."""
    k = math.floor(percent / 100.0 * n_true + 1e-9)
    return min(k, n_dims) / n_dims


def ndcg(rank: npt.ArrayLike, true_dims: Sequence[int], k: int | None = None) -> float:
    """NDCG@k with binary relevance (k defaults to |true|): DCG of the ranking over the ideal DCG."""
    truth = set(true_dims)
    k = len(truth) if k is None else k
    r = np.asarray(rank)[:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(sum(d for d, s in zip(discounts, r.tolist(), strict=False) if s in truth))
    ideal = float(discounts[: min(k, len(truth))].sum())
    return dcg / ideal if ideal else 0.0


def ndcg_random(n_dims: int, n_true: int, k: int | None = None) -> float:
    """Expected NDCG@k of a random ranking: each position is relevant with probability |true|/D."""
    k = n_true if k is None else k
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return float(n_true / n_dims * discounts.sum() / discounts[: min(k, n_true)].sum())


def top_k_accuracy(rank: npt.ArrayLike, true_dims: Sequence[int], k: int) -> float:
    """AC@k: true dims among the top k over ``min(k, |true|)`` (1 when the top k are as good as possible)."""
    truth = set(true_dims)
    top = set(np.asarray(rank)[:k].tolist())
    return len(top & truth) / min(k, len(truth))


def top_k_accuracy_random(n_dims: int, n_true: int, k: int) -> float:
    """Expected AC@k of a random ranking: ``k |true| / D / min(k, |true|)``."""
    return min(k, n_dims) * n_true / n_dims / min(k, n_true)


def attribution_scores(contribution: npt.ArrayLike, true_dims: Sequence[int]) -> dict[str, float]:
    """All attribution metrics of one segment, next to their random-ranking expectations."""
    c = np.asarray(contribution, dtype=np.float64)
    rank, d, g = ranking(c), c.size, len(set(true_dims))
    return {
        "hitrate_100": hit_rate(rank, true_dims, 100),
        "hitrate_150": hit_rate(rank, true_dims, 150),
        "ndcg": ndcg(rank, true_dims),
        "top1": top_k_accuracy(rank, true_dims, 1),
        "top3": top_k_accuracy(rank, true_dims, 3),
        "hitrate_100_random": hit_rate_random(d, g, 100),
        "hitrate_150_random": hit_rate_random(d, g, 150),
        "ndcg_random": ndcg_random(d, g),
        "top1_random": top_k_accuracy_random(d, g, 1),
        "top3_random": top_k_accuracy_random(d, g, 3),
    }


def parse_interpretation(text: str) -> list[tuple[int, int, list[int]]]:
    """SMD ``interpretation_label`` lines ``s-e:d1,d2,...`` -> ``(s, e, dims)`` with 0-based dims.

    ``s`` is the 0-based first anomalous index and ``e`` the exclusive end (data README); dims are 1-based in
    the file.
    """
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        span, dims = line.split(":")
        s, e = (int(x) for x in span.split("-"))
        out.append((s, e, [int(d) - 1 for d in dims.split(",") if d.strip()]))
    return out
