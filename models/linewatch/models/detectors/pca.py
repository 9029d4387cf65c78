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

Attribution (``attribution``): ``"deviation"`` (the default: the sensors furthest from their training normal, at
the steps that made the window anomalous), ``"decomposition"`` (the exact split of the combined index: the sensors
that break the learned relations) or ``"movement"`` (the sensors moving most within the window). What each means,
why deviation is the default and what each misses: :mod:`linewatch.models.detectors.mspc`; measured in the README.

Time awareness (``slope_steps``): one step's sensor vector cannot tell a bearing that is hot because the load
was high ten minutes ago from one that is hot for no reason: temperature follows load through a first-order
lag (``dT/dt = (T_eq(load) - T) / tau``), so at a single step it looks decoupled from load. The recent
*slope* of each sensor carries exactly the missing term (``T - T_eq = -tau dT/dt``, linear again), so each
sample is the step's values plus every sensor's least-squares change over the trailing ``slope_steps`` steps.
PCA then models "level and trend together", a lagging sensor after a load change fits the relation, and a
sensor that departs alone still breaks it. The slope is fitted over many steps because a two-point
difference of a noisy sensor is mostly noise. Attribution and isolation fold each sensor's two coordinates
(level, slope) back into one.

Isolation (:meth:`PcaT2Q.isolation`, the drift check) is reconstruction-based: which single sensor's fault best
explains the combined index, and what is left after removing it
(:func:`~linewatch.models.detectors.mspc.isolation_parts`, where the algebra and the reasons are). A drifting sensor
has a persistent fault size far beyond its spread on normal training windows and little index left; a machine fault
moves several sensors in a pattern no single sensor's fault reproduces.

Per-sensor limits (``sensor_limits``, off by default): Q sums every sensor's squared residual, so one sensor
leaving relations that explain it almost exactly is diluted by the ordinary residual noise of all the others
(on TEP's 52 variables, a compensated cooling-water step moves one valve alone and Q sees 4 windows in 10).
With the option, each sensor's squared residual averaged over the scored steps also gets a limit of its own
(the ``limit_quantile`` of training windows, never below its equal share ``Q_lim / S``, so a sensor explained
exactly in training does not alarm on the first change of noise), and the window score is the larger of the
combined index and the largest per-sensor ratio, that ratio scaled so that it passes the combined index's
training quantile on as many training windows as the index itself does: the worst of S sensors passes its own
limits far more often than any one sensor, and calibration would otherwise raise the threshold for the index
too (on C-MAPSS that cut the median warning lead from 65 to 26 cycles; scaled, 39.5). It is still a union of
tests, so on data whose normal residuals wander more than training showed (SMD's servers, SKAB's short
training) it adds false alarms; measured in the README, which is why it is an option and not the default.

Wandering levels (``wandering``: sensor indices, set by training from the data-quality report when the opt-in
``wandering_level_p`` is on): a sensor whose
level wanders like a random walk over the training data and that no other sensor explains (the ADF and
Engle-Granger tests of :mod:`linewatch.models.quality`) cannot have its normal level learned from that data: after
training it goes on wandering (SKAB's thermocouples after 400 s; the simulated bearing temperature on a few
hours, following the day's warmth). Trusting its training spread turns the wander into false alarms; leaving it
out (the opt-in rule ``max_unit_root_p``) loses the sensor. Instead its level gets the uncertainty a random walk
implies: the variance it would show one more training span on, :data:`WANDERING_LEVEL_VARIANCE` more training
variances added to its own direction of the covariance before the components are chosen. Its level may then
move about sqrt(8) = 2.8 of its training spreads as normal operation, while its relations to partners, its fast
changes and a larger excursion still score. The horizon (one training span) is fixed a priori, not fitted. The
room is for the score only: isolation (the drift check) asks a second model of the same data without it
(:meth:`PcaT2Q._isolation_model`, saved with the bundle), because a level free to move no longer vouches for its
partners, and a worn bearing (temperature and vibration rising together) read as the vibration sensor drifting
(the first version raised sensor alerts for the demo's worn bearings). An option, not the default (README).

Slow context (``lag_inputs``, ``daily_inputs``; set by training from the window spec, see
:mod:`linewatch.models.derived`): windows then carry, after the sensors, a first-order lag of each sensor and
the time of day. The detector's score, attribution and expectation still come from the per-step sensor model
above; a second PCA over sensors *and* inputs (the context model) serves isolation only, each sensor's fault
direction spanning its level and its own lag input (a faulty reading corrupts both). Why: a bearing
temperature follows load through a lag of ten minutes and more plus the day's warmth, so the per-step model
must allow it a spread larger than a drift of 10-20 % of its level; the context model explains both, and such
drifts stand out. Scoring with the inputs as well gave a heavier score tail than the held-out extrapolation
allowed (more false machine alerts on the simulated plant), so alerts keep the per-step score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from linewatch.models.base import (
    Array,
    Detector,
    Isolation,
    NotFittedError,
    Tensors,
    check_windows,
    register_detector,
)
from linewatch.models.detectors.mspc import (
    control_limits,
    deviation_contributions,
    isolation_metric,
    isolation_parts,
    movement_contributions,
    principal_components,
    select_components,
    sensor_limits,
    t2_q_parts,
)

__all__ = ["ATTRIBUTIONS", "PcaT2Q", "select_components", "t2_q_parts"]

_EPS = 1e-12
#: Variance added to a wandering level's own direction, in units of its training variance (see the module
#: docstring): a random walk's expected squared distance from its training mean, one training span later, is 8 times
#: its variance over the training span (``s² = σ²T/6`` within it; ``σ²(T + T/3)`` at ``2T``), so 7 more.
WANDERING_LEVEL_VARIANCE = 7.0
_CONTEXT = "context."  # prefix of the context model's tensors
ATTRIBUTIONS = ("deviation", "decomposition", "movement")


@register_detector
class PcaT2Q(Detector):
    """PCA on per-step sensor vectors (and slopes); score = mean of T²/T²_lim + Q/Q_lim over the last steps."""

    name = "pca_t2q"
    takes_inputs = True
    takes_wandering = True

    def __init__(
        self,
        *,
        variance: float = 0.95,
        n_components: int | None = None,
        score_steps: int = 10,
        limit_quantile: float = 0.99,
        slope_steps: int = 0,
        attribution: str = "deviation",
        lag_inputs: bool = False,
        daily_inputs: bool = False,
        sensor_limits: bool = False,
        wandering: Sequence[int] = (),
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        if any(isinstance(j, bool) or not isinstance(j, int) or j < 0 for j in wandering):
            raise ValueError(f"wandering must list sensor indices (non-negative integers), got {list(wandering)!r}")
        self.wandering = tuple(sorted(set(int(j) for j in wandering)))
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
        if slope_steps and (lag_inputs or daily_inputs):
            raise ValueError("slope_steps and lag/daily inputs are two answers to one question: choose one")
        self.lag_inputs = bool(lag_inputs)
        self.daily_inputs = bool(daily_inputs)
        self.sensor_limits = bool(sensor_limits)
        # The inputs this instance's own PCA models: none for the detector (it scores the sensors), the declared
        # ones for its context model (see :meth:`_context_model`).
        self._modelled: tuple[bool, bool] = (False, False)
        self.context_: PcaT2Q | None = None
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
        self.sensor_limit_: npt.NDArray[np.float64] | None = None  # (S,) limit of each sensor's window residual
        self.sensor_union_ = 1.0  # scale of the worst sensor ratio against the combined index (1: older bundles)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "variance": self.variance,
            "n_components": self.n_components,
            "score_steps": self.score_steps,
            "limit_quantile": self.limit_quantile,
            "slope_steps": self.slope_steps,
            "attribution": self.attribution,
            "lag_inputs": self.lag_inputs,
            "daily_inputs": self.daily_inputs,
            "sensor_limits": self.sensor_limits,
            "wandering": list(self.wandering),
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

    def _input_sensors(self, channels: int, inputs: tuple[bool, bool] | None = None) -> int:
        """Sensors among a window's channels: they come first, then a lag input each, then the time of day."""
        lag, daily = (self.lag_inputs, self.daily_inputs) if inputs is None else inputs
        sensors, rest = divmod(channels - (2 if daily else 0), 2 if lag else 1)
        if sensors < 1 or rest:
            raise ValueError(f"{channels} window channels do not fit lag_inputs={lag}, daily_inputs={daily}")
        return sensors

    def _sensor_count(self, channels: int) -> int:
        """Sensors among the channels this instance's PCA models."""
        return self._input_sensors(channels, self._modelled)

    def _sensors_only(self, X: Array) -> Array:
        """The sensor channels of a window batch: what the detector itself scores."""
        return X if self._modelled != (False, False) else X[:, :, : self._input_sensors(X.shape[2])]

    def _blocks(self, coordinates: int, n_sensors: int) -> npt.NDArray[np.intp]:
        """``(S, B)``: the coordinates that belong to each sensor (its level, then its slope or lag input)."""
        per_sensor = 1 if coordinates - (2 if self._modelled[1] else 0) == n_sensors else 2
        return np.arange(n_sensors)[:, None] + n_sensors * np.arange(per_sensor)[None, :]

    def _context_model(self) -> PcaT2Q:
        """The PCA over sensors *and* derived inputs, used for isolation only.

        Why not score with it: on the simulated plant (seed 0, 3 days of training) scoring with lag and
        time-of-day inputs raised false machine alerts from 0 to 1.5 per asset-week (a heavier score tail than
        the hold-out extrapolation allows), while isolating with them finds bearing-temperature drifts that the
        per-step model cannot tell from load changes and the day's warmth. So alerts keep the per-step model's
        calibrated score, and the drift check asks the model that knows the slow context.
        """
        context = PcaT2Q(
            variance=self.variance,
            score_steps=self.score_steps,
            limit_quantile=self.limit_quantile,
            seed=self.seed,
        )
        context._modelled = (self.lag_inputs, self.daily_inputs)
        return context

    def _isolation_model(self) -> PcaT2Q:
        """This detector without room for wandering levels: the model a detector with ``wandering`` isolates with.

        The room lets a wandering level move without scoring, which is right for the alarm but wrong for telling
        a sensor fault from a machine fault: a level free to move no longer vouches for its partners, so a worn
        bearing (temperature and vibration rising together) read as the vibration sensor drifting alone (the
        demo's worn bearings raised sensor alerts). Isolation asks the relations training showed, as without
        the option. With slow context inputs the context model already does (it keeps training's own levels).
        """
        return PcaT2Q(
            variance=self.variance,
            n_components=self.n_components,
            score_steps=self.score_steps,
            limit_quantile=self.limit_quantile,
            slope_steps=self.slope_steps,
            seed=self.seed,
        )

    def _fold(self, parts: npt.NDArray[np.float64], n_sensors: int) -> npt.NDArray[np.float64]:
        """Per-coordinate parts ``(..., F)`` summed back to sensors ``(..., S)``; time-of-day parts are no sensor's."""
        blocks = self._blocks(parts.shape[-1], n_sensors)
        return np.asarray(parts[..., blocks].sum(axis=-1), dtype=np.float64)

    # -- hooks -------------------------------------------------------------------------------------------
    def _fit(self, X: Array, X_val: Array | None) -> None:
        del X_val  # nothing to tune early; the limits come from the training distribution
        if self._modelled == (False, False) and (X.shape[2] > self._input_sensors(X.shape[2]) or self.wandering):
            self._fit_context(X)
        X = self._sensors_only(X)
        self._sensor_count(X.shape[2])  # the channels must fit the modelled inputs
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
        if self._modelled == (False, False):  # the sensor model: the context model keeps training's own levels
            for j in self.wandering:
                if j >= self._sensor_count(X.shape[2]):
                    raise ValueError(f"wandering sensor index {j} out of range for {X.shape[2]} sensors")
                cov[j, j] += WANDERING_LEVEL_VARIANCE
        components, kept = principal_components(cov, self.variance, self.n_components)
        t2_parts, q_parts, _ = t2_q_parts(Z, components, kept)
        self.mean_, self.scale_, self.components_, self.eigenvalues_ = mean, scale, components, kept
        self.t2_limit_, self.q_limit_, self.phi_limit_ = control_limits(
            t2_parts.sum(axis=1), q_parts.sum(axis=1), self.limit_quantile
        )
        fault, _ = self._isolation_parts(X)
        self.fault_scale_ = np.maximum(fault.std(axis=0), 1e-6)
        if self.sensor_limits:
            index = self._parts(X)[0].sum(axis=2).mean(axis=1)
            self.sensor_limit_, self.sensor_union_ = sensor_limits(
                self._sensor_residuals(X), self.q_limit_, index, self.limit_quantile
            )

    def _parts(self, X: Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per-sensor contributions to the combined index for the scored steps, and the full reconstruction."""
        if self.mean_ is None or self.scale_ is None or self.components_ is None or self.eigenvalues_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        assert self.t2_limit_ is not None and self.q_limit_ is not None
        Z = self._standardised(X)
        t2_parts, q_parts, recon = t2_q_parts(Z, self.components_, self.eigenvalues_)
        n_sensors = self._sensor_count(X.shape[2])
        contrib = self._fold(t2_parts / self.t2_limit_ + q_parts / self.q_limit_, n_sensors)
        return contrib, (recon * self.scale_ + self.mean_)[..., :n_sensors]

    def _sensor_residuals(self, X: Array) -> npt.NDArray[np.float64]:
        """Each sensor's squared residual (its share of Q, standardised), averaged over the scored steps: (n, S)."""
        assert self.components_ is not None and self.eigenvalues_ is not None
        _, q_parts, _ = t2_q_parts(self._standardised(X), self.components_, self.eigenvalues_)
        return np.asarray(self._fold(q_parts, self._sensor_count(X.shape[2])).mean(axis=1), dtype=np.float64)

    def fit_inputs(self, X: npt.NDArray[Any]) -> PcaT2Q:
        """Refit the context model (isolation with lag and time-of-day inputs) on ``X``."""
        arr = check_windows(X, self._fitted_sensors())
        if self.context_ is not None:
            self._fit_context(arr)
        return self

    def _fit_context(self, X: Array) -> None:
        context = self._context_model() if self.lag_inputs or self.daily_inputs else self._isolation_model()
        context._fit(X, None)
        self.context_ = context

    def _score(self, X: Array) -> npt.NDArray[Any]:
        X = self._sensors_only(X)
        contrib, _ = self._parts(X)
        score = contrib.sum(axis=2).mean(axis=1)
        if self.sensor_limit_ is not None:
            worst = (self._sensor_residuals(X) / self.sensor_limit_).max(axis=1)
            score = np.maximum(score, worst * self.sensor_union_)
        return np.asarray(score, dtype=np.float64)

    def _contrib(self, X: Array) -> npt.NDArray[Any]:
        X = self._sensors_only(X)
        if self.attribution == "deviation":
            if self.mean_ is None:
                raise NotFittedError(f"{type(self).__name__} is not fitted")
            squared = self._fold(self._standardised(X) ** 2, self._sensor_count(X.shape[2]))
            return deviation_contributions(squared, self._parts(X)[0].sum(axis=2))
        if self.attribution == "movement":
            if self.scale_ is None:
                raise NotFittedError(f"{type(self).__name__} is not fitted")
            n_sensors = self._sensor_count(X.shape[2])  # the level coordinates come first, then any slopes
            return movement_contributions(X[:, :, :n_sensors].astype(np.float64), self.scale_[:n_sensors])
        contrib, _ = self._parts(X)
        return np.asarray(contrib.mean(axis=1), dtype=np.float64)

    def _expected(self, X: Array) -> npt.NDArray[Any]:
        _, recon = self._parts(self._sensors_only(X))
        return recon[:, -1, :]

    def _isolation_parts(self, X: Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Window-mean single-sensor fault sizes ``f_j`` (n, S) and the index left after removing each (n, S)."""
        assert self.components_ is not None and self.eigenvalues_ is not None
        assert self.t2_limit_ is not None and self.q_limit_ is not None
        Phi, limit = isolation_metric(
            self.components_, self.eigenvalues_, self.t2_limit_, self.q_limit_, self.phi_limit_
        )
        Z = self._standardised(X)
        return isolation_parts(Z, Phi, limit, self._blocks(Z.shape[2], self._sensor_count(X.shape[2])))

    def _isolation(self, X: Array) -> Isolation | None:
        if self.mean_ is None or self.components_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        if self.context_ is not None:
            return self.context_._isolation(X)
        if self.fault_scale_ is None:  # a bundle saved before isolation existed
            return None
        fault, remaining = self._isolation_parts(self._sensors_only(X))
        return Isolation(fault_z=np.abs(fault) / self.fault_scale_, remaining=remaining)

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: Tensors, meta: dict[str, Any]) -> PcaT2Q:
        # Bundles saved before the attribution option named root causes by the decomposition (then the only way).
        return super().from_state({"attribution": "decomposition", **config}, tensors, meta)

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
        if self.sensor_limit_ is not None:
            tensors["sensor_limit"] = self.sensor_limit_
            tensors["sensor_union"] = np.array([self.sensor_union_], dtype=np.float64)
        meta: dict[str, Any] = {"n_components": int(self.components_.shape[1])}
        if self.context_ is not None:
            context, context_meta = self.context_._get_state()
            tensors.update({_CONTEXT + k: v for k, v in context.items()})
            meta["context_components"] = context_meta["n_components"]
        return tensors, meta

    def _set_state(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        inputs = self.lag_inputs or self.daily_inputs
        # A detector with wandering levels saves the model it isolates with (absent from bundles saved before).
        unwidened = bool(self.wandering) and any(k.startswith(_CONTEXT) for k in tensors)
        if self._modelled == (False, False) and (inputs or unwidened):
            context = self._context_model() if inputs else self._isolation_model()
            context._set_state(
                {k.removeprefix(_CONTEXT): v for k, v in tensors.items() if k.startswith(_CONTEXT)},
                {**meta, "n_components": meta["context_components"]},
            )
            self.context_ = context
            meta = {**meta, "n_sensors": self._input_sensors(int(meta["n_sensors"]))}
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
        sensor_limit = tensors.get("sensor_limit")  # absent from bundles saved before per-sensor limits
        self.sensor_limit_ = None if sensor_limit is None else np.asarray(sensor_limit, dtype=np.float64)
        self.sensor_limits = self.sensor_limit_ is not None
        union = tensors.get("sensor_union")  # absent from bundles saved before the union was scaled
        self.sensor_union_ = 1.0 if union is None else float(np.asarray(union, dtype=np.float64)[0])
