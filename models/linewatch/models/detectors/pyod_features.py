"""PyOD detectors on per-window features: ECOD, Isolation Forest and PyOD's PCA.

Windows are turned into features by a :class:`~linewatch.models.base.FeatureExtractor`; by default the small
:class:`SummaryFeatures` below, so these detectors work without the tsfresh stack. Another extractor (the
bundle's tsfresh feature spec) can be passed as ``extractor=``; it is part of the bundle's feature spec, not
of :meth:`config`, so whoever rebuilds the detector passes it again (``from_state({**config, "extractor": e},
...)``). Features are standardised with the training mean and standard deviation before the PyOD model sees
them. PyOD's ``contamination`` and its ``threshold_`` are never used: only ``decision_function``.

Saving without pickle: PyOD models hold trees and sklearn objects that safetensors cannot store. The state is
therefore the **training feature matrix** (float32, as fitted) plus the hyper-parameters; loading refits the
PyOD model on exactly that matrix. ECOD and PCA (full SVD) are deterministic, and IForest is deterministic
for a fixed ``random_state`` (our ``seed``), so a loaded detector scores exactly like the saved one. Very long
training sets are thinned to ``max_train`` evenly spaced windows (neighbouring windows overlap almost fully,
so little is lost) to bound bundle size and refit time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Array, Detector, FeatureExtractor, NotFittedError, Tensors, register_detector

SUMMARY_STATS = ("mean", "std", "min", "max", "last", "slope")
#: Recorded in IForest bundles: their score is the path-length anomaly score (absent: PyOD's decision_function).
_IFOREST_SCORE = "path_length"


class SummaryFeatures:
    """Six numpy statistics per sensor (mean, std, min, max, last value, least-squares slope), sensor-major."""

    def __init__(self, n_sensors: int) -> None:
        self.n_sensors = int(n_sensors)

    @property
    def feature_sensors(self) -> npt.NDArray[np.int64]:
        return np.repeat(np.arange(self.n_sensors, dtype=np.int64), len(SUMMARY_STATS))

    def transform(self, X: Array) -> npt.NDArray[np.float64]:
        x = np.asarray(X, dtype=np.float64)
        n, length, sensors = x.shape
        t = np.arange(length, dtype=np.float64) - (length - 1) / 2.0
        denom = float((t**2).sum()) or 1.0
        mean = x.mean(axis=1)
        slope = np.einsum("l,nls->ns", t, x - mean[:, None, :]) / denom
        stats = (mean, x.std(axis=1), x.min(axis=1), x.max(axis=1), x[:, -1, :], slope)
        return np.stack(stats, axis=2).reshape(n, sensors * len(SUMMARY_STATS))


class FeatureDetector(Detector):
    """Shared behaviour: features, standardisation, stored training matrix, refit on load, attribution.

    Subclasses build the PyOD model (:meth:`_make_model`) and may override per-feature attribution.
    """

    def __init__(self, *, extractor: FeatureExtractor | None = None, max_train: int = 20_000, seed: int = 0) -> None:
        super().__init__(seed=seed)
        if isinstance(max_train, bool) or max_train < 2:
            raise ValueError(f"max_train must be an integer >= 2, got {max_train!r}")
        self.extractor = extractor
        self.max_train = int(max_train)
        self.train_features_: npt.NDArray[np.float32] | None = None
        self.feature_mean_: npt.NDArray[np.float64] | None = None
        self.feature_scale_: npt.NDArray[np.float64] | None = None
        self.model_: Any = None
        self._extractor: FeatureExtractor | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "max_train": self.max_train}

    def _make_model(self) -> Any:
        """A fresh, unfitted PyOD detector built from the hyper-parameters."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------------
    def _features(self, X: Array) -> npt.NDArray[np.float64]:
        if self._extractor is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        feats = np.asarray(self._extractor.transform(X), dtype=np.float64)
        if self.train_features_ is not None and feats.shape[1] != self.train_features_.shape[1]:
            raise ValueError(f"extractor gave {feats.shape[1]} features, trained on {self.train_features_.shape[1]}")
        return feats

    def _standardise(self, feats: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.feature_mean_ is None or self.feature_scale_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return (feats - self.feature_mean_) / self.feature_scale_

    def _refit(self, train_features: npt.NDArray[np.float32]) -> None:
        """Fit standardisation and the PyOD model on a stored float32 matrix (the same on fit and on load)."""
        feats = train_features.astype(np.float64)
        self.train_features_ = train_features
        self.feature_mean_ = feats.mean(axis=0)
        scale = feats.std(axis=0)
        self.feature_scale_ = np.where(scale > 1e-9, scale, 1.0)
        model = self._make_model()
        model.fit(self._standardise(feats))
        self.model_ = model

    def _feature_contrib(self, Z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Per-feature deviation; by default |z| against the training mean and standard deviation."""
        return np.abs(Z)

    # -- hooks -------------------------------------------------------------------------------------------
    def _fit(self, X: Array, X_val: Array | None) -> None:
        del X_val
        self._extractor = self.extractor or SummaryFeatures(X.shape[2])
        feats = self._features(X)
        if len(feats) > self.max_train:
            feats = feats[np.linspace(0, len(feats) - 1, self.max_train).round().astype(np.int64)]
        self.train_features_ = None
        self._refit(feats.astype(np.float32))

    def _score(self, X: Array) -> npt.NDArray[Any]:
        if self.model_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return np.asarray(self._model_score(self._standardise(self._features(X))), dtype=np.float64)

    def _model_score(self, Z: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        """The PyOD model's outlier score of standardised features (higher = more anomalous)."""
        return np.asarray(self.model_.decision_function(Z))

    def _contrib(self, X: Array) -> npt.NDArray[Any]:
        if self._extractor is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        per_feature = self._feature_contrib(self._standardise(self._features(X)))
        groups = np.asarray(self._extractor.feature_sensors, dtype=np.int64)
        out = np.zeros((X.shape[0], X.shape[2]))
        np.add.at(out.T, groups, per_feature.T)
        return out

    def _get_state(self) -> tuple[Tensors, dict[str, Any]]:
        if self.train_features_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return {"train_features": self.train_features_}, {"n_features": int(self.train_features_.shape[1])}

    def _set_state(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        feats = np.ascontiguousarray(tensors["train_features"], dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != int(meta["n_features"]):
            raise ValueError(f"stored training features shaped {feats.shape} do not match the saved metadata")
        self._extractor = self.extractor or SummaryFeatures(int(meta["n_sensors"]))
        self._refit(feats)


class _BatchIndependentEcod:
    """ECOD scored against the training ECDF only, so a window's score never depends on its batch.

    PyOD's ``ECOD.decision_function`` recomputes the ECDFs over training *plus the whole scored batch* (and
    stores them on the estimator), so the same window scores differently in a batch of one (serving) and in a
    batch of thousands (evaluation). Scoring one window ``x`` against ``N`` training rows, PyOD computes the
    left tail as ``(#train <= x + 1) / (N + 1)``; this class evaluates exactly that with ``searchsorted`` for
    every window independently. The skewness sign that picks the tail is taken from the training data
    (PyOD's includes the one scored window, which only matters when that window flips a feature's skew).
    """

    def __init__(self) -> None:
        self.sorted_: npt.NDArray[np.float64] | None = None
        self.skew_sign_: npt.NDArray[np.float64] | None = None

    def fit(self, Z: npt.NDArray[np.float64]) -> _BatchIndependentEcod:
        from scipy.stats import skew

        self.sorted_ = np.sort(Z, axis=0)
        self.skew_sign_ = np.sign(np.nan_to_num(skew(Z, axis=0)))
        return self

    def tails(self, Z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """ECOD's per-feature outlyingness ``O`` (negative log tail probability), shaped like ``Z``."""
        if self.sorted_ is None or self.skew_sign_ is None:
            raise NotFittedError("ECOD is not fitted")
        n = self.sorted_.shape[0]
        left = np.empty_like(Z)
        right = np.empty_like(Z)
        for j in range(Z.shape[1]):
            col = self.sorted_[:, j]
            left[:, j] = np.searchsorted(col, Z[:, j], side="right")
            right[:, j] = n - np.searchsorted(col, Z[:, j], side="left")
        u_l = -np.log((left + 1.0) / (n + 1.0))
        u_r = -np.log((right + 1.0) / (n + 1.0))
        u_skew = u_l * -np.sign(self.skew_sign_ - 1) + u_r * np.sign(self.skew_sign_ + 1)
        return np.asarray(np.maximum(np.maximum(u_l, u_r), u_skew), dtype=np.float64)

    def decision_function(self, Z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(self.tails(Z).sum(axis=1), dtype=np.float64)


@register_detector
class EcodDetector(FeatureDetector):
    """ECOD (empirical-CDF outlier detection): parameter-free, fast, attribution from per-feature tails."""

    name = "ecod"

    def _make_model(self) -> Any:
        return _BatchIndependentEcod()

    def _feature_contrib(self, Z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        model: _BatchIndependentEcod = self.model_
        return model.tails(Z)


@register_detector
class IForestDetector(FeatureDetector):
    """PyOD's Isolation Forest; ``seed`` is its ``random_state`` so a refit on load grows the same trees."""

    name = "iforest"

    def __init__(self, *, n_estimators: int = 200, max_samples: int | float | str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(n_estimators, bool) or n_estimators < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {n_estimators!r}")
        self.n_estimators = int(n_estimators)
        self.max_samples = max_samples
        self._legacy_score = False  # True only for a bundle saved with PyOD's decision_function as the score

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_estimators": self.n_estimators, "max_samples": self.max_samples}

    def _make_model(self) -> Any:
        from pyod.models.iforest import IForest

        return IForest(n_estimators=self.n_estimators, max_samples=self.max_samples, n_jobs=1, random_state=self.seed)

    def _model_score(self, Z: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        # Liu et al.'s anomaly score 2^(-E[h(x)] / c(n)) in (0, 1], not PyOD's decision_function: that one is this
        # minus a training percentile set by ``contamination``, negative for most normal windows, so a threshold
        # calibrated on held-out normal windows could be negative and ``score / threshold`` meaningless (SKAB's
        # valve1/3.csv stopped the evaluation that way). Bundles saved before keep the score they were calibrated on.
        if self._legacy_score:
            return super()._model_score(Z)
        return np.asarray(-self.model_.detector_.score_samples(Z))

    def _get_state(self) -> tuple[Tensors, dict[str, Any]]:
        tensors, meta = super()._get_state()
        return tensors, {**meta, "score": _IFOREST_SCORE}

    def _set_state(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        super()._set_state(tensors, meta)
        self._legacy_score = meta.get("score") != _IFOREST_SCORE


@register_detector
class PyodPcaDetector(FeatureDetector):
    """PyOD's PCA outlier score (weighted distances to the minor components) on standardised features."""

    name = "pyod_pca"

    def __init__(self, *, n_components: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_components is not None and (isinstance(n_components, bool) or n_components < 1):
            raise ValueError(f"n_components must be a positive integer or None, got {n_components!r}")
        self.n_components = n_components

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_components": self.n_components}

    def _make_model(self) -> Any:
        from pyod.models.pca import PCA

        assert self.train_features_ is not None
        n_rows, n_features = self.train_features_.shape
        k = min(self.n_components or n_features, n_rows, n_features)
        return PCA(n_components=k, svd_solver="full", standardization=False, random_state=self.seed)
