"""Thresholds and failure risk from held-out normal scores (never from a ``contamination`` guess).

A detector's raw scores mean nothing on their own; what matters is how rare a score is under normal operation.
:class:`Calibrator` learns that from scores of **held-out normal windows**:

* the body of the distribution is the empirical CDF (compressed to at most ``n_quantiles`` quantiles, linearly
  interpolated so risk is continuous);
* the tail above ``u``, the empirical ``1 - tail_fraction`` quantile, is a generalised Pareto distribution
  (peaks over threshold) fitted to the exceedances. A budget of one false alarm per week at a 10 s stride is a
  per-window exceedance probability of ~1.7e-5, far beyond what a few thousand held-out windows can show
  empirically, so the threshold has to be extrapolated, and extreme-value theory says the GPD is the tail to use.

Exported conventions (DESIGN.md §4): ``anomaly_score = score / threshold`` (>= 1 is anomalous) and
``failure_risk`` = the calibrated CDF of normal scores at the score, in [0, 1], continuous and non-decreasing,
equal to ``1 - p`` at the threshold (``p`` the target exceedance probability).

Degenerate fits fall back, and :attr:`Calibrator.tail_model` records which tail was used:

* ``"gpd"``: at least :data:`MIN_GPD_EXCEEDANCES` exceedances with spread, and a fitted shape at most
  :data:`MAX_SHAPE` (a shape above 1 has no mean and makes extrapolated thresholds explode). The shape is
  constrained to ``>= MIN_SHAPE = 0``: where the unconstrained fit is negative, the constrained maximum-likelihood
  fit is on the boundary, shape 0 with the mean excess as scale. Why: a negative shape means a bounded tail
  whose endpoint sits close to the largest score seen, and a budget of one false alarm per week extrapolates
  ~100x beyond a few thousand held-out windows, which cannot tell a bounded tail from a light one. On the
  simulated plant the fitted shape of one group flipped between about -0.1 and +0.2 from one training period
  to the next, moving the threshold by a factor of 2-3, and every negative fit gave a threshold that normal
  operation crossed several times a day; shape 0 (exponential tail) is the conservative light-tail choice.
* ``"exponential"``: otherwise, if there are exceedances: GPD with shape 0 and the mean excess as scale (the
  maximum-likelihood exponential tail, the conservative light-tail choice);
* ``"constant"``: no score above ``u`` (e.g. a detector that scores all normal windows the same): an
  exponential tail with scale :data:`CONSTANT_MARGIN` x max(|u|, range of scores), so the threshold sits a
  little above the largest normal score instead of on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Fewer held-out normal scores than this is a ``ValueError``: a threshold from 30 scores is a guess.
MIN_SCORES = 50
#: Fewer exceedances over ``u`` than this: exponential tail instead of a GPD fit (shape is poorly identified).
MIN_GPD_EXCEEDANCES = 20
MIN_SHAPE = 0.0
MAX_SHAPE = 1.0
CONSTANT_MARGIN = 0.1
DEFAULT_QUANTILE = 0.999
SCHEMA_VERSION = 1


def _gpd_cdf(y: npt.NDArray[np.float64], shape: float, scale: float) -> npt.NDArray[np.float64]:
    """GPD CDF of excesses ``y >= 0`` (closed form so it is exactly invertible by :func:`_gpd_ppf`)."""
    z = np.maximum(y, 0.0) / scale
    if shape == 0.0:
        return np.asarray(-np.expm1(-z), dtype=np.float64)
    base = 1.0 + shape * z
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tail = np.where(base > 0.0, np.power(np.maximum(base, 0.0), -1.0 / shape), 0.0)
    return np.asarray(1.0 - tail, dtype=np.float64)


def _gpd_ppf(prob_exceed: float, shape: float, scale: float) -> float:
    """Excess ``y`` with GPD survival ``prob_exceed`` (0 < prob_exceed <= 1)."""
    if shape == 0.0:
        return -scale * math.log(prob_exceed)
    return scale / shape * math.expm1(-shape * math.log(prob_exceed))


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration; build it with :meth:`fit`, store it with :meth:`to_dict`."""

    threshold: float
    exceedance: float  # target per-window false-alarm probability p; failure_risk(threshold) == 1 - p
    u: float  # tail start: the empirical (1 - zeta) quantile of the normal scores
    zeta: float  # probability mass above u (the tail_fraction used)
    shape: float  # GPD shape xi (0 for an exponential tail)
    scale: float  # GPD scale sigma
    tail_model: str  # "gpd" | "exponential" | "constant"
    body: tuple[float, ...]  # quantiles of the normal scores at levels linspace(0, 1 - zeta, len(body))
    n_scores: int

    # -- fitting -------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        normal_scores: npt.ArrayLike,
        *,
        quantile: float | None = None,
        false_alarms_per_week: float | None = None,
        windows_per_week: float | None = None,
        tail_fraction: float = 0.1,
        n_quantiles: int = 1000,
    ) -> Calibrator:
        """Fit from held-out normal scores; the threshold from ``quantile`` (default 0.999) or a false-alarm budget.

        With a budget, ``windows_per_week`` is the number of scoring decisions per week
        (``7 * 86400 / stride_seconds``) and the per-window exceedance is
        ``false_alarms_per_week / windows_per_week``.
        """
        x = np.sort(np.asarray(normal_scores, dtype=np.float64).ravel())
        if x.size < MIN_SCORES:
            raise ValueError(f"need at least {MIN_SCORES} held-out normal scores to calibrate, got {x.size}")
        if not np.isfinite(x).all():
            raise ValueError("normal scores contain NaN or inf")
        if not 0.0 < tail_fraction < 1.0:
            raise ValueError(f"tail_fraction must be in (0, 1), got {tail_fraction}")
        if n_quantiles < 2:
            raise ValueError("n_quantiles must be at least 2")
        p = _exceedance(quantile, false_alarms_per_week, windows_per_week)

        zeta = float(tail_fraction)
        levels = np.linspace(0.0, 1.0 - zeta, min(n_quantiles, x.size))
        body = np.quantile(x, levels)
        u = float(body[-1])
        excess = x[x > u] - u
        shape, scale, tail_model = _fit_tail(excess, u, float(x[-1] - x[0]))

        # Inside the observed body: invert the interpolated empirical CDF; beyond it: the GPD quantile.
        in_body = p >= zeta
        threshold = float(np.interp(1.0 - p, levels, body)) if in_body else u + _gpd_ppf(p / zeta, shape, scale)
        if not (math.isfinite(threshold) and threshold > 0.0):
            raise ValueError(
                f"calibrated threshold is {threshold}; anomaly_score = score / threshold needs a positive threshold "
                "(make detector scores positive, e.g. shift them, before calibrating)"
            )
        return cls(
            threshold=threshold,
            exceedance=p,
            u=u,
            zeta=zeta,
            shape=shape,
            scale=scale,
            tail_model=tail_model,
            body=tuple(float(v) for v in body),
            n_scores=int(x.size),
        )

    # -- exported scores -----------------------------------------------------------------------------------
    def anomaly_score(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``score / threshold``: 1 is the alarm line; NaN stays NaN."""
        return np.asarray(np.asarray(scores, dtype=np.float64) / self.threshold, dtype=np.float64)

    def failure_risk(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Probability that a normal window scores at most this: body ECDF below ``u``, GPD tail above; NaN -> NaN."""
        s = np.asarray(scores, dtype=np.float64)
        body = np.asarray(self.body, dtype=np.float64)
        top = 1.0 - self.zeta
        levels = np.linspace(0.0, top, body.size)
        below = np.interp(s, body, levels, left=0.0, right=top)
        above = top + self.zeta * _gpd_cdf(s - self.u, self.shape, self.scale)
        risk = np.where(s <= self.u, below, above)
        return np.asarray(np.where(np.isnan(s), np.nan, np.clip(risk, 0.0, 1.0)), dtype=np.float64)

    # -- persistence ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (Python floats survive JSON exactly, so the round trip is exact)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "threshold": self.threshold,
            "exceedance": self.exceedance,
            "u": self.u,
            "zeta": self.zeta,
            "shape": self.shape,
            "scale": self.scale,
            "tail_model": self.tail_model,
            "body": list(self.body),
            "n_scores": self.n_scores,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported calibration schema_version {version!r} (expected {SCHEMA_VERSION})")
        return cls(
            threshold=float(data["threshold"]),
            exceedance=float(data["exceedance"]),
            u=float(data["u"]),
            zeta=float(data["zeta"]),
            shape=float(data["shape"]),
            scale=float(data["scale"]),
            tail_model=str(data["tail_model"]),
            body=tuple(float(v) for v in data["body"]),
            n_scores=int(data["n_scores"]),
        )


def _exceedance(quantile: float | None, false_alarms_per_week: float | None, windows_per_week: float | None) -> float:
    """The target per-window exceedance probability from exactly one of the two ways to ask for it."""
    if false_alarms_per_week is not None:
        if quantile is not None:
            raise ValueError("give either quantile or false_alarms_per_week, not both")
        if windows_per_week is None or not windows_per_week > 0:
            raise ValueError("false_alarms_per_week needs windows_per_week > 0 (7 * 86400 / stride_seconds)")
        p = float(false_alarms_per_week) / float(windows_per_week)
    else:
        if windows_per_week is not None:
            raise ValueError("windows_per_week is only used with false_alarms_per_week")
        p = 1.0 - float(DEFAULT_QUANTILE if quantile is None else quantile)
    if not 0.0 < p < 1.0:
        raise ValueError(f"target exceedance probability must be in (0, 1), got {p}")
    return p


def _fit_tail(excess: npt.NDArray[np.float64], u: float, spread: float) -> tuple[float, float, str]:
    """(shape, scale, model) of the tail above ``u``; see the module docstring for the fallbacks."""
    if excess.size == 0:
        return 0.0, CONSTANT_MARGIN * max(abs(u), spread, 1e-12), "constant"
    mean_excess = float(np.mean(excess))
    if excess.size >= MIN_GPD_EXCEEDANCES and float(np.ptp(excess)) > 0.0:
        from scipy.stats import genpareto

        try:
            shape, _, scale = genpareto.fit(excess, floc=0.0)
        except (ValueError, RuntimeError, FloatingPointError):
            shape, scale = math.nan, math.nan
        shape, scale = float(shape), float(scale)
        if math.isfinite(shape) and math.isfinite(scale) and scale > 0.0 and shape <= MAX_SHAPE:
            if shape < MIN_SHAPE:  # constrained fit: the likelihood's maximum over shape >= 0 is at shape 0
                return MIN_SHAPE, mean_excess, "gpd"
            return shape, scale, "gpd"
    return 0.0, mean_excess, "exponential"
