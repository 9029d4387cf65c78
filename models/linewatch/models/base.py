"""The one detector contract every model follows (PyOD's, minus its contamination thresholds and pickling).

Every detector takes **windows**: float32 arrays shaped ``(n_windows, window_length, n_sensors)`` that the
bundled preprocessing produced (scaled per sensor, gaps filled). Feature-based detectors compute their
features inside, so serving never needs to know which kind of model it runs. Higher scores are more
anomalous; thresholds and risk live in calibration, not here.

State is saved as named numpy arrays (stored with safetensors) plus a JSON-able dict, never pickle, so a
bundle can be loaded from an untrusted disk without executing code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]
Tensors = dict[str, npt.NDArray[Any]]


class NotFittedError(RuntimeError):
    """A detector used before ``fit`` (or loaded from an incomplete state)."""


def check_windows(X: npt.NDArray[Any], n_sensors: int | None = None) -> Array:
    """Validate a window batch: 3-D, finite, float32; optionally the fitted sensor count."""
    arr = np.asarray(X)
    if arr.ndim != 3:
        raise ValueError(f"expected windows shaped (n, length, sensors), got shape {arr.shape}")
    if n_sensors is not None and arr.shape[2] != n_sensors:
        raise ValueError(f"detector was fitted on {n_sensors} sensors, got {arr.shape[2]}")
    if not np.isfinite(arr).all():
        raise ValueError("windows contain NaN or inf; fill gaps in preprocessing first")
    return arr.astype(np.float32, copy=False)


def normalise_shares(raw: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Turn non-negative per-sensor contributions into shares that sum to 1 (uniform when all are zero)."""
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    totals = raw.sum(axis=1, keepdims=True)
    n = raw.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, raw / np.where(totals > 0, totals, 1.0), 1.0 / n)
    return shares


class FeatureExtractor(Protocol):
    """What feature-based detectors need from the feature module."""

    def transform(self, X: Array) -> npt.NDArray[np.float64]:
        """Windows ``(n, L, S)`` -> features ``(n, F)``."""
        ...

    @property
    def feature_sensors(self) -> npt.NDArray[np.int64]:
        """For each of the F features, the index of the sensor it was computed from (to group attributions)."""
        ...


@dataclass(frozen=True, slots=True)
class Isolation:
    """Reconstruction-based isolation of a fault on one sensor, per window ``(n, S)``.

    ``fault_z``: the persistent (window-averaged) fault size along sensor ``j`` that best explains the window's
    residual, in units of its spread on normal training windows. ``remaining``: how anomalous the window
    still is after that sensor's fault is removed (1 = the detector's per-step residual limit). A sensor with a
    large ``fault_z`` whose removal leaves a normal residual explains the anomaly on its own.
    """

    fault_z: npt.NDArray[np.float64]
    remaining: npt.NDArray[np.float64]


class Detector(ABC):
    """Base class: subclasses implement the ``_fit``/``_score``/``_contrib`` hooks and state round-trip."""

    #: Registry key, e.g. ``"pca_t2q"``; also stored in the bundle manifest.
    name: ClassVar[str]
    #: Takes the derived inputs (lag, time of day) that follow the sensors in a window, via ``lag_inputs`` and
    #: ``daily_inputs`` constructor arguments; other detectors are trained on the sensors alone.
    takes_inputs: ClassVar[bool] = False
    #: Accepts ``wandering`` (indices of sensors whose level wanders over the training data; set by training).
    takes_wandering: ClassVar[bool] = False

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = int(seed)
        self.n_sensors_: int | None = None
        self.window_length_: int | None = None

    # -- public contract ---------------------------------------------------------------------------------
    def fit(self, X: npt.NDArray[Any], X_val: npt.NDArray[Any] | None = None) -> Self:
        """Learn normal behaviour from windows of normal operation; ``X_val`` (optional) for early stopping."""
        arr = check_windows(X)
        val = check_windows(X_val, arr.shape[2]) if X_val is not None else None
        self._fit(arr, val)
        self.n_sensors_ = int(arr.shape[2])
        self.window_length_ = int(arr.shape[1])
        return self

    def fit_inputs(self, X: npt.NDArray[Any]) -> Self:
        """Refit what reads the derived inputs (lag, time of day) on ``X``, windows whose inputs' look-back holds
        no labelled fault; detectors that take no inputs have nothing to refit."""
        check_windows(X, self._fitted_sensors())
        return self

    def decision_function(self, X: npt.NDArray[Any]) -> Scores:
        """One anomaly score per window; higher is more anomalous. Leaves the detector and ``X`` unchanged."""
        arr = check_windows(X, self._fitted_sensors())
        return np.asarray(self._score(arr), dtype=np.float64)

    def contributions(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Per-window, per-sensor shares of the anomaly score, ``(n, S)``, each row summing to 1."""
        arr = check_windows(X, self._fitted_sensors())
        return normalise_shares(self._contrib(arr))

    def expected(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """What the model expected each sensor to read at the last step of each window (scaled units)."""
        arr = check_windows(X, self._fitted_sensors())
        return np.asarray(self._expected(arr), dtype=np.float64)

    def isolation(self, X: npt.NDArray[Any]) -> Isolation | None:
        """Single-sensor fault isolation per window, or None where the detector cannot tell (the default).

        Lets the health checks call a sensor *drifting* only when that sensor alone explains the anomaly.
        """
        arr = check_windows(X, self._fitted_sensors())
        return self._isolation(arr)

    def config(self) -> dict[str, Any]:
        """Hyper-parameters as a JSON-able dict (the constructor's keyword arguments)."""
        return {"seed": self.seed}

    def get_state(self) -> tuple[Tensors, dict[str, Any]]:
        """Fitted arrays and JSON-able metadata; together with :meth:`config` they rebuild the detector."""
        self._fitted_sensors()
        tensors, meta = self._get_state()
        meta = {**meta, "n_sensors": self.n_sensors_, "window_length": self.window_length_}
        return tensors, meta

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: Tensors, meta: dict[str, Any]) -> Self:
        detector = cls(**config)
        detector._set_state(tensors, meta)
        detector.n_sensors_ = int(meta["n_sensors"])
        detector.window_length_ = int(meta["window_length"])
        return detector

    # -- hooks -----------------------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, X: Array, X_val: Array | None) -> None: ...

    @abstractmethod
    def _score(self, X: Array) -> npt.NDArray[Any]: ...

    @abstractmethod
    def _contrib(self, X: Array) -> npt.NDArray[Any]: ...

    def _expected(self, X: Array) -> npt.NDArray[Any]:
        """Default: the training median of each sensor is 0 after robust scaling."""
        return np.zeros((X.shape[0], X.shape[2]))

    def _isolation(self, X: Array) -> Isolation | None:
        del X
        return None

    @abstractmethod
    def _get_state(self) -> tuple[Tensors, dict[str, Any]]: ...

    @abstractmethod
    def _set_state(self, tensors: Tensors, meta: dict[str, Any]) -> None: ...

    def _fitted_sensors(self) -> int:
        if self.n_sensors_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return self.n_sensors_


D = TypeVar("D", bound=type[Detector])

#: Every detector by registry key; a typo in a config's ``detector:`` is a start-up error listing these.
DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: D) -> D:
    """Class decorator: make a detector available by its ``name``."""
    if cls.name in DETECTORS and DETECTORS[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} registered twice")
    DETECTORS[cls.name] = cls
    return cls


def make_detector(name: str, **config: Any) -> Detector:
    """Build a registered detector by name with its hyper-parameters."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}") from None
    return cls(**config)
