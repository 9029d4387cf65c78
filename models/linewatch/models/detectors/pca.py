"""Classic multivariate statistical process control: PCA with Hotelling's T² and the Q (SPE) statistic.

Design choice: every **time step's sensor vector is one sample**. Sensors on a running machine move together
(load drives current, temperature and vibration), so the principal subspace of the per-step vectors is the
"normal relation" between sensors; T² measures an unusual position inside that subspace (an unusual but
consistent operating point) and Q the distance from it (a broken relation, e.g. one sensor drifting off).
A window's score is the mean combined index over its last ``score_steps`` steps: recent enough to follow the
machine, long enough to average out single-sample noise (the moving-window MSPC of the process literature).

Combined index (Yue & Qin 2001 style), with limits taken from the training data itself rather than from
chi-squared approximations that assume Gaussian data: ``phi = T²/T²_lim + Q/Q_lim`` where the limits are the
``limit_quantile`` quantiles of the per-step statistics on training data.

Attribution decomposes ``phi`` exactly: Q splits into squared per-sensor residuals, and T² = ||D^½ z||² with
D = P Λ⁻¹ Pᵀ splits into the squared entries of D^½ z (the "complete decomposition" of Alcala & Qin 2009),
so both parts are non-negative and the per-sensor contributions sum to the score.

Attribution (``attribution``): ``"decomposition"`` (the default) splits the combined index exactly as above:
"which sensors break the learned relations". ``"deviation"`` instead gives each sensor its squared standardised
distance from its training mean, averaged over the scored steps: "which sensors are furthest from their normal".
The two answer different questions: a sensor that stays in its usual range but no longer agrees with its
partners is found only by the decomposition, while the decomposition smears a large excursion over every sensor
correlated with it (its residual ``C z`` is spread along the column of ``C``), so the sensor that actually moved
may rank below its partners. Measured on SMD's labelled root causes (see the issue notes), not shipped as default.

Time awareness (``slope_steps``): one step's sensor vector cannot tell a bearing that is hot because the load
was high ten minutes ago from one that is hot for no reason: temperature follows load through a first-order
lag (``dT/dt = (T_eq(load) - T) / tau``), so at a single step it looks decoupled from load. The recent
*slope* of each sensor carries exactly the missing term (``T - T_eq = -tau dT/dt``, linear again), so each
sample is the step's values plus every sensor's least-squares change over the trailing ``slope_steps`` steps.
PCA then models "level and trend together", a lagging sensor after a load change fits the relation, and a
sensor that departs alone still breaks it. The slope is fitted over many steps because a two-point
difference of a noisy sensor is mostly noise. Attribution and isolation fold each sensor's two coordinates
(level, slope) back into one.

Isolation (:meth:`PcaT2Q.isolation`) is reconstruction-based (Dunia & Qin's sensor validity index, on the
combined index as in Alcala & Qin 2009): with ``Φ = D / T²_lim + C / Q_lim`` (``D = P Λ⁻¹ Pᵀ``, ``C = I - P Pᵀ``),
so that ``zᵀΦz`` is the per-step index, and ``g = Φ z``, a fault of size ``f`` along sensor ``j`` best
explaining the index is ``f_j = g_j / Φ_jj``, and removing it leaves ``φ_j = zᵀΦz - g_j² / Φ_jj`` (reported
relative to the training quantile of the index; with slope coordinates the fault direction of sensor ``j``
spans its level and slope coordinates ``I_j``, ``φ_j = zᵀΦz - g_Iᵀ (Φ_II)⁺ g_I`` and ``f_j`` is the level part
of ``(Φ_II)⁺ g_I``). A drifting sensor has a persistent ``f_j`` (averaged over the scored steps, so noise
averages out) far beyond its spread on normal training windows, and ``φ_j`` back to normal; a machine fault
moves several sensors in a pattern no single sensor's fault reproduces, so ``φ_j`` stays high for every ``j``.
Why the combined index and not Q alone: a sensor that varies on its own (a press's vibration barely follows
its load) is a principal direction by itself, so ``C_jj`` is nearly 0 and a drift on it shows in T² only; the
residual-only form could not see such drifts (on the simulated plant every press vibration drift went
unnoticed). Bundles saved before this keep the residual-only form (``Φ = C``, limit ``Q_lim``), which their
saved fault spreads were measured with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Array, Detector, Isolation, NotFittedError, Tensors, register_detector

_EPS = 1e-12
ATTRIBUTIONS = ("decomposition", "deviation")


def select_components(eigenvalues: npt.NDArray[np.float64], variance: float, n_sensors: int) -> int:
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


def t2_q_parts(
    Z: npt.NDArray[np.float64], components: npt.NDArray[np.float64], eigenvalues: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
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


@register_detector
class PcaT2Q(Detector):
    """PCA on per-step sensor vectors (and slopes); score = mean of T²/T²_lim + Q/Q_lim over the last steps."""

    name = "pca_t2q"

    def __init__(
        self,
        *,
        variance: float = 0.95,
        n_components: int | None = None,
        score_steps: int = 10,
        limit_quantile: float = 0.99,
        slope_steps: int = 0,
        attribution: str = "decomposition",
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        if attribution not in ATTRIBUTIONS:
            raise ValueError(f"attribution must be one of {', '.join(ATTRIBUTIONS)}, got {attribution!r}")
        self.attribution = attribution
        if not 0.0 < variance <= 1.0:
            raise ValueError(f"variance must be in (0, 1], got {variance!r}")
        if n_components is not None and (isinstance(n_components, bool) or n_components < 1):
            raise ValueError(f"n_components must be a positive integer or None, got {n_components!r}")
        if isinstance(score_steps, bool) or score_steps < 1:
            raise ValueError(f"score_steps must be a positive integer, got {score_steps!r}")
        if not 0.5 <= limit_quantile < 1.0:
            raise ValueError(f"limit_quantile must be in [0.5, 1), got {limit_quantile!r}")
        if isinstance(slope_steps, bool) or slope_steps < 0 or slope_steps == 1:
            raise ValueError(f"slope_steps must be 0 (off) or at least 2, got {slope_steps!r}")
        self.slope_steps = int(slope_steps)
        self.variance = float(variance)
        self.n_components = None if n_components is None else int(n_components)
        self.score_steps = int(score_steps)
        self.limit_quantile = float(limit_quantile)
        self.mean_: npt.NDArray[np.float64] | None = None
        self.scale_: npt.NDArray[np.float64] | None = None
        self.components_: npt.NDArray[np.float64] | None = None
        self.eigenvalues_: npt.NDArray[np.float64] | None = None
        self.t2_limit_: float | None = None
        self.q_limit_: float | None = None
        self.fault_scale_: npt.NDArray[np.float64] | None = None  # spread of window-mean f_j on training data
        self.phi_limit_: float | None = None  # limit of the per-step combined index (None: residual isolation)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "variance": self.variance,
            "n_components": self.n_components,
            "score_steps": self.score_steps,
            "limit_quantile": self.limit_quantile,
            "slope_steps": self.slope_steps,
            "attribution": self.attribution,
        }

    # -- samples -----------------------------------------------------------------------------------------
    def _layout(self, length: int) -> tuple[int, int]:
        """(scored steps, slope span) for windows of ``length`` steps; span 0 means no slope coordinates."""
        if not self.slope_steps:
            return min(self.score_steps, length), 0
        span = max(2, min(self.slope_steps, length))
        return max(1, min(self.score_steps, length - span + 1)), span

    def _samples(self, X: Array, steps: int) -> npt.NDArray[np.float64]:
        """The samples of the last ``steps`` steps of each window, ``(n, steps, F)``: values, then slopes."""
        values = X[:, X.shape[1] - steps :, :].astype(np.float64)
        _, span = self._layout(X.shape[1])
        if not span:
            return values
        if X.shape[1] < 2:
            return np.concatenate([values, np.zeros_like(values)], axis=2)
        t = np.arange(span, dtype=np.float64)
        weights = (t - t.mean()) / ((t - t.mean()) ** 2).sum() * (span - 1)  # fitted change over the span
        tail = X[:, X.shape[1] - (steps + span - 1) :, :].astype(np.float64)
        slopes = np.lib.stride_tricks.sliding_window_view(tail, span, axis=1) @ weights  # (n, steps, S)
        return np.concatenate([values, slopes], axis=2)

    def _standardised(self, X: Array) -> npt.NDArray[np.float64]:
        assert self.mean_ is not None and self.scale_ is not None
        steps, _ = self._layout(X.shape[1])
        return (self._samples(X, steps) - self.mean_) / self.scale_

    def _fold(self, parts: npt.NDArray[np.float64], n_sensors: int) -> npt.NDArray[np.float64]:
        """Per-coordinate parts ``(..., F)`` summed back to sensors ``(..., S)``."""
        if parts.shape[-1] == n_sensors:
            return parts
        return np.asarray(parts[..., :n_sensors] + parts[..., n_sensors:], dtype=np.float64)

    # -- hooks -------------------------------------------------------------------------------------------
    def _fit(self, X: Array, X_val: Array | None) -> None:
        del X_val  # nothing to tune early; the limits come from the training distribution
        _, span = self._layout(X.shape[1])
        # Every step that has a full slope span behind it is a training sample.
        all_steps = X.shape[1] - span + 1 if span else X.shape[1]
        sampled = self._samples(X, all_steps)
        samples = sampled.reshape(-1, sampled.shape[2])
        mean = samples.mean(axis=0)
        scale = samples.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)  # a constant sensor carries no correlation to model
        Z = (samples - mean) / scale
        cov = (Z.T @ Z) / max(len(Z) - 1, 1)
        eigenvalues, vectors = np.linalg.eigh(cov)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, vectors = np.clip(eigenvalues[order], 0.0, None), vectors[:, order]
        n_sensors = samples.shape[1]  # coordinates: sensors, plus their slopes
        k = self.n_components or select_components(eigenvalues, self.variance, n_sensors)
        k = max(1, min(k, n_sensors - 1)) if n_sensors > 1 else 1
        # Deterministic sign: the largest-magnitude loading of each component is positive.
        signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(n_sensors)])
        vectors = vectors * np.where(signs == 0, 1.0, signs)
        components = np.ascontiguousarray(vectors[:, :k])
        kept = np.maximum(eigenvalues[:k], _EPS * max(float(eigenvalues[0]), 1.0))
        t2_parts, q_parts, _ = t2_q_parts(Z, components, kept)
        self.mean_, self.scale_, self.components_, self.eigenvalues_ = mean, scale, components, kept
        self.t2_limit_ = max(float(np.quantile(t2_parts.sum(axis=1), self.limit_quantile)), _EPS)
        self.q_limit_ = max(float(np.quantile(q_parts.sum(axis=1), self.limit_quantile)), 1e-6)
        phi = t2_parts.sum(axis=1) / self.t2_limit_ + q_parts.sum(axis=1) / self.q_limit_
        self.phi_limit_ = max(float(np.quantile(phi, self.limit_quantile)), _EPS)
        fault, _ = self._isolation_parts(X)
        self.fault_scale_ = np.maximum(fault.std(axis=0), 1e-6)

    def _parts(self, X: Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per-sensor contributions to the combined index for the scored steps, and the full reconstruction."""
        if self.mean_ is None or self.scale_ is None or self.components_ is None or self.eigenvalues_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        assert self.t2_limit_ is not None and self.q_limit_ is not None
        Z = self._standardised(X)
        t2_parts, q_parts, recon = t2_q_parts(Z, self.components_, self.eigenvalues_)
        contrib = self._fold(t2_parts / self.t2_limit_ + q_parts / self.q_limit_, X.shape[2])
        return contrib, (recon * self.scale_ + self.mean_)[..., : X.shape[2]]

    def _score(self, X: Array) -> npt.NDArray[Any]:
        contrib, _ = self._parts(X)
        return np.asarray(contrib.sum(axis=2).mean(axis=1), dtype=np.float64)

    def _contrib(self, X: Array) -> npt.NDArray[Any]:
        if self.attribution == "deviation":
            if self.mean_ is None:
                raise NotFittedError(f"{type(self).__name__} is not fitted")
            squared = self._fold(self._standardised(X) ** 2, X.shape[2])
            return np.asarray(squared.mean(axis=1), dtype=np.float64)
        contrib, _ = self._parts(X)
        return np.asarray(contrib.mean(axis=1), dtype=np.float64)

    def _expected(self, X: Array) -> npt.NDArray[Any]:
        _, recon = self._parts(X)
        return recon[:, -1, :]

    def _isolation_metric(self) -> tuple[npt.NDArray[np.float64], float]:
        """The quadratic form whose per-step value the isolation reconstructs, and its limit.

        ``Φ = D / T²_lim + C / Q_lim`` (the combined index, so ``zᵀΦz`` is the per-step score) with the limit
        ``phi_limit_``; a bundle saved before the combined isolation existed has no such limit and keeps the
        residual-only form ``C`` with ``Q_lim``, matching the fault spreads it was saved with.
        """
        assert self.components_ is not None and self.eigenvalues_ is not None and self.q_limit_ is not None
        P = self.components_
        C = np.eye(P.shape[0]) - P @ P.T
        if self.phi_limit_ is None:
            return C, self.q_limit_
        assert self.t2_limit_ is not None
        D = (P / self.eigenvalues_) @ P.T
        return D / self.t2_limit_ + C / self.q_limit_, self.phi_limit_

    def _isolation_parts(self, X: Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Window-mean single-sensor fault sizes ``f_j`` (n, S) and the index left after removing each (n, S)."""
        assert self.mean_ is not None and self.scale_ is not None and self.components_ is not None
        Phi, limit = self._isolation_metric()
        Z = self._standardised(X)
        g = Z @ Phi  # Φ z (Φ symmetric)
        index = (Z * g).sum(axis=2, keepdims=True)
        n_sensors = X.shape[2]
        if Z.shape[2] == n_sensors:
            diag = np.maximum(np.diag(Phi), _EPS)
            remaining = np.maximum(index - g**2 / diag, 0.0) / limit
            return (g / diag).mean(axis=1), remaining.mean(axis=1)
        # Two-dimensional fault direction per sensor: its level and slope coordinates.
        idx = np.stack([np.arange(n_sensors), np.arange(n_sensors) + n_sensors], axis=1)  # (S, 2)
        blocks = np.linalg.pinv(Phi[idx[:, :, None], idx[:, None, :]])  # (S, 2, 2) pseudo-inverses of Φ_II
        g_pairs = g[..., idx]  # (n, steps, S, 2)
        f = np.einsum("sab,ntsb->ntsa", blocks, g_pairs)
        remaining = np.maximum(index - (g_pairs * f).sum(axis=3), 0.0) / limit
        return f[..., 0].mean(axis=1), remaining.mean(axis=1)

    def _isolation(self, X: Array) -> Isolation | None:
        if self.mean_ is None or self.components_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        if self.fault_scale_ is None:  # a bundle saved before isolation existed
            return None
        fault, remaining = self._isolation_parts(X)
        return Isolation(fault_z=np.abs(fault) / self.fault_scale_, remaining=remaining)

    def _get_state(self) -> tuple[Tensors, dict[str, Any]]:
        if self.mean_ is None or self.scale_ is None or self.components_ is None or self.eigenvalues_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        tensors: Tensors = {
            "mean": self.mean_,
            "scale": self.scale_,
            "components": self.components_,
            "eigenvalues": self.eigenvalues_,
            "limits": np.array([self.t2_limit_, self.q_limit_], dtype=np.float64),
        }
        if self.fault_scale_ is not None:
            tensors["fault_scale"] = self.fault_scale_
        if self.phi_limit_ is not None:
            tensors["phi_limit"] = np.array([self.phi_limit_], dtype=np.float64)
        return tensors, {"n_components": int(self.components_.shape[1])}

    def _set_state(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        components = np.asarray(tensors["components"], dtype=np.float64)
        n_sensors = int(meta["n_sensors"])
        if self.slope_steps and components.shape[0] == n_sensors:
            self.slope_steps = 0  # a bundle saved before slope coordinates existed
        coordinates = n_sensors * (2 if self.slope_steps else 1)
        if components.shape != (coordinates, int(meta["n_components"])):
            raise ValueError(f"PCA components shaped {components.shape} do not match the saved metadata")
        self.mean_ = np.asarray(tensors["mean"], dtype=np.float64)
        self.scale_ = np.asarray(tensors["scale"], dtype=np.float64)
        self.components_ = components
        self.eigenvalues_ = np.asarray(tensors["eigenvalues"], dtype=np.float64)
        limits = np.asarray(tensors["limits"], dtype=np.float64)
        self.t2_limit_, self.q_limit_ = float(limits[0]), float(limits[1])
        fault_scale = tensors.get("fault_scale")
        self.fault_scale_ = None if fault_scale is None else np.asarray(fault_scale, dtype=np.float64)
        phi_limit = tensors.get("phi_limit")  # absent from bundles saved with residual-only isolation
        self.phi_limit_ = None if phi_limit is None else float(np.asarray(phi_limit, dtype=np.float64)[0])
