"""The linear algebra of the PCA monitor (:mod:`linewatch.models.detectors.pca`), as pure functions on arrays.

Why a module of its own: the detector class deals with window layouts, derived inputs, options and bundle
state; what a score, a share or a fault size *is* fits here, where it can be read and tested on literal arrays.
Arrays are standardised samples ``Z`` shaped ``(n, steps, F)`` (F coordinates: each sensor's level, then its
slope or lag input where the detector has them), components ``P`` ``(F, k)`` orthonormal, eigenvalues ``Λ``.

Attribution (:func:`deviation_contributions`, :func:`movement_contributions`; the detector's
``attribution``): ``"deviation"`` (the default) shares each scored step's combined index among the
sensors in proportion to their squared standardised distance from their training means, and averages over the
steps: "which sensors are furthest from their normal, at the steps that made the window anomalous". The
contributions add up to the combined index. Why weighted by step: a window at the end of a short fault holds a few
anomalous steps and many normal ones, and a plain average of distances then let a sensor sitting near the edge of
its normal range for the whole window (a bearing temperature following the evening's cooling) outrank the sensor
that carried the fault (the live serve test named bearing_temp for a leak that way, in the evening only).
``"decomposition"`` splits the combined index exactly: Q into squared per-sensor residuals, and T² = ||D^½ z||²
with D = P Λ⁻¹ Pᵀ into the squared entries of D^½ z (the "complete decomposition" of Alcala & Qin 2009), so both
parts are non-negative and the per-sensor contributions sum to the score: "which sensors break the learned
relations". The two answer different questions: a sensor that stays in its usual range but no longer agrees with
its partners is found only by the decomposition, while the decomposition smears a large excursion over every
sensor correlated with it (its residual ``C z`` is spread along the column of ``C``), so the sensor that actually
moved may rank below its partners. Measured on SMD's and TEP's root causes (README): deviation names them better
on both (SMD HitRate@100 0.596 against 0.559, 0.611 before the step weighting; TEP's entering loop first in 6 of
8 faults against 5), and on the simulated plant and the demo it names every fault as the decomposition does (the
health checks name a failing sensor first, by how long it was flagged). It became the default on 2026-12-01 by a
rule set before those last runs; bundles saved without the option keep the decomposition they were saved with.
``"movement"`` gives each sensor its variance over the window's steps in units of its training spread: "which
sensors are moving unusually right now". A sensor that sits at an unusual but steady level gets nothing, so it
names the sensors that jump at an incident rather than those that sit in another regime than training (on SMD's
servers both decomposition and deviation keep naming offset sensors over a whole segment). It is blind to a
steady offset and to a slow drift (the health checks name drifting and stuck sensors first, before any share),
and during a long steady fault its shares fall back towards noise (on TEP's steady shifts it names the
entering loop half as often); an option, measured in the README.

Isolation (:func:`isolation_parts`, behind ``PcaT2Q.isolation``) is reconstruction-based (Dunia & Qin's sensor
validity index, on the combined index as in Alcala & Qin 2009): with ``Φ = D / T²_lim + C / Q_lim`` (``D = P Λ⁻¹ Pᵀ``,
``C = I - P Pᵀ``), so that ``zᵀΦz`` is the per-step index, and ``g = Φ z``, a fault of size ``f`` along sensor ``j``
best explaining the index is ``f_j = g_j / Φ_jj``, and removing it leaves ``φ_j = zᵀΦz - g_j² / Φ_jj`` (reported
relative to the training quantile of the index; with slope coordinates the fault direction of sensor ``j`` spans its
level and slope coordinates ``I_j``, ``φ_j = zᵀΦz - g_Iᵀ (Φ_II)⁺ g_I`` and ``f_j`` is the level part of ``(Φ_II)⁺
g_I``). A drifting sensor has a persistent ``f_j`` (averaged over the scored steps, so noise averages out) far beyond
its spread on normal training windows, and ``φ_j`` back to normal; a machine fault moves several sensors in a pattern
no single sensor's fault reproduces, so ``φ_j`` stays high for every ``j``. Why the combined index and not Q alone: a
sensor that varies on its own (a press's vibration barely follows its load) is a principal direction by itself, so
``C_jj`` is nearly 0 and a drift on it shows in T² only; the residual-only form could not see such drifts (on the
simulated plant every press vibration drift went unnoticed). Bundles saved before this keep the residual-only form
(``Φ = C``, limit ``Q_lim``), which their saved fault spreads were measured with."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_EPS = 1e-12
Floats = npt.NDArray[np.float64]


def select_components(eigenvalues: Floats, variance: float, n_sensors: int) -> int:
    """Smallest k whose components explain ``variance`` of the total, leaving at least one residual direction.

    >>> select_components(np.array([3.0, 0.9, 0.1]), 0.95, 3)
    2
    """
    total = float(eigenvalues.sum())
    if total <= 0:
        return 1
    explained = np.cumsum(eigenvalues) / total
    k = int(np.searchsorted(explained, variance - 1e-12) + 1)
    return max(1, min(k, n_sensors - 1)) if n_sensors > 1 else 1


def principal_components(cov: Floats, variance: float, n_components: int | None) -> tuple[Floats, Floats]:
    """The kept components ``(F, k)`` of a covariance and their eigenvalues ``(k,)``, largest first.

    ``n_components`` overrides the :func:`select_components` count. Signs are made deterministic (each
    component's largest-magnitude loading positive), so a refit on the same data gives the same bundle; eigenvalues
    are floored a little above 0, because ``T²`` divides by them.
    """
    eigenvalues, vectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = np.clip(eigenvalues[order], 0.0, None), vectors[:, order]
    n = cov.shape[0]
    k = n_components or select_components(eigenvalues, variance, n)
    k = max(1, min(k, n - 1)) if n > 1 else 1
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(n)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    kept = np.maximum(eigenvalues[:k], _EPS * max(float(eigenvalues[0]), 1.0))
    return np.ascontiguousarray(vectors[:, :k]), kept


def control_limits(t2: Floats, q: Floats, quantile: float) -> tuple[float, float, float]:
    """``T²``, ``Q`` and combined-index limits: the ``quantile`` of each statistic over the training samples.

    Taken from the data rather than from chi-squared approximations that assume Gaussian samples; floored so
    that a statistic that is 0 on training (a perfect fit) does not divide by 0.
    """
    t2_limit = max(float(np.quantile(t2, quantile)), _EPS)
    q_limit = max(float(np.quantile(q, quantile)), 1e-6)
    phi_limit = max(float(np.quantile(t2 / t2_limit + q / q_limit, quantile)), _EPS)
    return t2_limit, q_limit, phi_limit


def sensor_limits(residual: Floats, q_limit: float, index: Floats, quantile: float) -> tuple[Floats, float]:
    """Each sensor's limit on its window-mean squared residual ``(n, S)``, and the scale of the worst ratio.

    No limit is below its equal share of ``Q``'s (``q_limit / S``): a sensor the others explain almost exactly in
    training would otherwise alarm on the first change of noise, not on a broken relation. The worst of ``S``
    ratios passes 1 far more often than any one sensor's does (``S`` tests at once), and calibration would answer
    by raising the threshold for the combined index as well; scaling it to the combined ``index``'s own training
    quantile gives both tests the same false-alarm share.
    """
    limits = np.maximum(np.quantile(residual, quantile, axis=0), q_limit / residual.shape[1])
    worst = (residual / limits).max(axis=1)
    union = max(float(np.quantile(index, quantile)), _EPS) / max(float(np.quantile(worst, quantile)), _EPS)
    return np.asarray(limits, dtype=np.float64), union


def t2_q_parts(Z: Floats, components: Floats, eigenvalues: Floats) -> tuple[Floats, Floats, Floats]:
    """Per-sample, per-sensor T² parts, squared residuals, and the reconstruction of standardised samples.

    ``Z`` is ``(..., S)``; ``components`` ``(S, k)`` orthonormal; returns arrays shaped like ``Z``. The T² parts
    sum over sensors to Hotelling's T² and the residual parts to Q.
    """
    scores = Z @ components
    recon = scores @ components.T
    residual = Z - recon
    half = (components / np.sqrt(eigenvalues)) @ components.T  # D^½, symmetric
    t2_parts = (Z @ half) ** 2
    return t2_parts, residual**2, recon


def deviation_contributions(squared: Floats, index: Floats) -> Floats:
    """Each step's combined index shared by the sensors' squared distances ``(n, steps, S)``, averaged: ``(n, S)``.

    ``index`` is the per-step combined index ``(n, steps)``; the result sums over sensors to its mean over steps.
    """
    shares = squared / np.maximum(squared.sum(axis=2, keepdims=True), _EPS)
    return np.asarray((shares * index[..., None]).mean(axis=1), dtype=np.float64)


def movement_contributions(values: Floats, scale: Floats) -> Floats:
    """Each sensor's variance over the window's steps in units of its training spread ``scale``: ``(n, S)``."""
    moves = (values - values[:, :1, :]) / scale  # from the first step: a still sensor is 0
    return np.asarray(moves.var(axis=1), dtype=np.float64)


def isolation_metric(
    components: Floats, eigenvalues: Floats, t2_limit: float, q_limit: float, phi_limit: float | None
) -> tuple[Floats, float]:
    """The quadratic form whose per-step value the isolation reconstructs, and its limit.

    ``Φ = D / T²_lim + C / Q_lim`` (the combined index, so ``zᵀΦz`` is the per-step score) with the limit
    ``phi_limit``; a bundle saved before the combined isolation existed has no such limit (None) and keeps the
    residual-only form ``C`` with ``Q_lim``, matching the fault spreads it was saved with.
    """
    P = components
    C = np.eye(P.shape[0]) - P @ P.T
    if phi_limit is None:
        return C, q_limit
    D = (P / eigenvalues) @ P.T
    return D / t2_limit + C / q_limit, phi_limit


def isolation_parts(Z: Floats, Phi: Floats, limit: float, blocks: npt.NDArray[np.intp]) -> tuple[Floats, Floats]:
    """Window-mean single-sensor fault sizes ``f_j`` (n, S) and the index left after removing each (n, S).

    ``blocks`` ``(S, B)`` lists each sensor's coordinates (its level first): a sensor's fault direction spans them.
    """
    g = Z @ Phi  # Φ z (Φ symmetric)
    index = (Z * g).sum(axis=2, keepdims=True)
    if blocks.shape[1] == 1:
        diag = np.maximum(np.diag(Phi)[blocks[:, 0]], _EPS)
        g_s = g[..., blocks[:, 0]]
        remaining = np.maximum(index - g_s**2 / diag, 0.0) / limit
        return (g_s / diag).mean(axis=1), remaining.mean(axis=1)
    # Several coordinates per sensor (its level and its slope or lag input).
    pinv = np.linalg.pinv(Phi[blocks[:, :, None], blocks[:, None, :]])  # (S, B, B) pseudo-inverses of Φ_II
    g_blocks = g[..., blocks]  # (n, steps, S, B)
    f = np.einsum("sab,ntsb->ntsa", pinv, g_blocks)
    remaining = np.maximum(index - (g_blocks * f).sum(axis=3), 0.0) / limit
    return f[..., 0].mean(axis=1), remaining.mean(axis=1)
