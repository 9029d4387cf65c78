"""Threshold-free detection metrics: AUC-PR and VUS-PR as the TSB-AD benchmark defines them.

VUS-PR (Paparrizos et al., "Volume Under the Surface", VLDB 2022) averages a range-aware average precision over
buffer widths ``0..window``: labels are widened by ``window // 2`` points on each side with a soft
``sqrt(1 - distance / w)`` ramp, and recall is multiplied by the share of (widened) segments any prediction
touches. This is a vectorised re-implementation of ``TSB_AD.evaluation.basic_metrics.RangeAUC_volume_opt``
(tsb-ad 1.5, ``version="opt"``, ``thre=250``) with the same arithmetic, so the numbers agree with the package
(checked in ``tests/unit/models/test_eval_metrics.py``); it runs all 250 thresholds of a buffer width at once.
AUC-PR is scikit-learn's average precision, as TSB-AD uses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
THRESHOLDS = 250


def auc_pr(label: npt.ArrayLike, score: npt.ArrayLike) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(np.asarray(label, dtype=int), np.asarray(score, dtype=np.float64)))


def _ranges(label: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """TSB-AD's ``range_convers_new``: ``(start, end)`` with ``end`` the last anomalous index (inclusive)."""
    starts = np.flatnonzero(np.diff(label) == 1) + 1
    ends = np.flatnonzero(np.diff(label) == -1)
    if ends.size and (not starts.size or ends[0] < starts[0]):
        starts = np.concatenate([[0], starts])
    if starts.size and (not ends.size or ends[-1] < starts[-1]):
        ends = np.concatenate([ends, [label.size - 1]])
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _buffered(n: int, seq: list[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """TSB-AD's ``new_sequence``: segments widened by ``window // 2`` and merged where they touch."""
    half = window // 2
    a = max(seq[0][0] - half, 0)
    out = []
    for i in range(len(seq) - 1):
        if seq[i][1] + half < seq[i + 1][0] - half:
            out.append((a, seq[i][1] + half))
            a = seq[i + 1][0] - half
    out.append((a, min(seq[-1][1] + half, n - 1)))
    return out


def _soft_labels(label: npt.NDArray[np.int64], seq: list[tuple[int, int]], window: int) -> F64:
    """TSB-AD's ``sequencing``: ``sqrt(1 - d / window)`` ramps of ``window // 2`` points beside each segment."""
    n = label.size
    out = label.astype(np.float64)
    for s, e in seq:
        x1 = np.arange(e + 1, min(e + window // 2 + 1, n))
        out[x1] += np.sqrt(1 - (x1 - e) / window)
        x2 = np.arange(max(s - window // 2, 0), s)
        out[x2] += np.sqrt(1 - (s - x2) / window)
    return np.minimum(out, 1.0)


def vus_pr(label: npt.ArrayLike, score: npt.ArrayLike, window: int = 100) -> float:
    """VUS-PR of ``score`` against binary ``label`` with buffer widths ``0..window`` (TSB-AD's ``slidingWindow``)."""
    y = np.asarray(label, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("label and score must be 1-D of equal length")
    if not y.any():
        raise ValueError("VUS-PR needs at least one anomalous point")
    n = y.size
    positives = float(y.sum())
    seq = _ranges(y)
    ordered = -np.sort(-s)
    thresholds = ordered[np.linspace(0, n - 1, THRESHOLDS).astype(int)]
    pred = s[None, :] >= thresholds[:, None]  # (T, n)
    n_pred = pred.sum(axis=1).astype(np.float64)
    cum = np.concatenate([np.zeros((THRESHOLDS, 1), dtype=np.int64), np.cumsum(pred, axis=1)], axis=1)
    in_seq = np.zeros(n, dtype=bool)
    for a, b in seq:
        in_seq[a : b + 1] = True
    pred_in_seq = pred[:, in_seq].sum(axis=1).astype(np.float64)
    aps = []
    for w in range(window + 1):
        soft = _soft_labels(y, seq, w)
        ramp = np.flatnonzero((soft > 0) & ~in_seq)  # soft labels outside the true segments
        ramp_hit = pred[:, ramp].astype(np.float64) @ soft[ramp] if ramp.size else np.zeros(THRESHOLDS)
        # Inside true segments labels are 1; on the ramps they count where predicted (labels * pred).
        tp = pred_in_seq + ramp_hit
        n_labels = float(in_seq.sum()) + ramp_hit
        buffered = _buffered(n, seq, w)
        touched = sum((cum[:, b + 1] - cum[:, a]) > 0 for a, b in buffered)
        existence = np.asarray(touched, dtype=np.float64) / len(buffered)
        p_new = (positives + n_labels) / 2
        recall = np.minimum(tp / p_new, 1.0)
        tpr = recall * existence
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / n_pred
        widths = np.diff(np.concatenate([[0.0], tpr]))
        aps.append(float(np.dot(widths, precision)))
    return float(np.mean(aps))
