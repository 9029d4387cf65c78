"""tsfresh feature calculators re-implemented in numpy over all windows at once (the online path).

:class:`FastFeatures` replays a :class:`~linewatch.models.features.FeatureSpec` on windows ``(n, L, S)`` and
returns ``(n, F)`` float64 in the spec's canonical column order, the same columns and (up to a tolerance stated
per calculator in ``tests/unit/models/test_features_parity.py``) the same values as tsfresh. Each kernel mirrors
tsfresh's own formula operation by operation, on rows that are contiguous in memory, so that numpy's pairwise
summation sees the same numbers in the same order and most features agree bit for bit. tsfresh's edge cases are
kept on purpose, so a model trained on tsfresh output scores identically online:

* ``autocorrelation`` is NaN when ``np.isclose(var, 0)`` (variance <= 1e-8, e.g. a constant window);
* ``skewness``/``kurtosis`` follow pandas' one-pass (Welford) moments: NaN when the second moment is exactly 0
  (constant window) or the window is shorter than 3/4 steps;
* ``cid_ce`` with ``normalize=True`` is 0.0 for a constant window; ``c3`` is 0.0 when ``2*lag >= L``.

A calculator name or parameter without a fast implementation is a construction-time ``ValueError``, never a
silently missing column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Array, check_windows
from linewatch.models.features import FeatureSpec, SpecFeatures

F64 = npt.NDArray[np.float64]
#: A kernel maps rows ``x`` (m, L) float64, C-contiguous, plus the calculator's parameters, to (m,) float64.
Kernel = Callable[[F64, Mapping[str, Any]], F64]


def _mean(x: F64) -> F64:
    return np.asarray(np.mean(x, axis=-1), dtype=np.float64)


def _std(x: F64) -> F64:
    return np.asarray(np.std(x, axis=-1), dtype=np.float64)


def _var(x: F64) -> F64:
    return np.asarray(np.var(x, axis=-1), dtype=np.float64)


def _quantile(x: F64, p: Mapping[str, Any]) -> F64:
    return np.asarray(np.quantile(x, float(p["q"]), axis=-1), dtype=np.float64)


def _linear_trend(x: F64, p: Mapping[str, Any]) -> F64:
    """``scipy.stats.linregress(range(L), x)`` slope/intercept via ``np.cov(bias=1)``, as scipy computes them."""
    length = x.shape[-1]
    t = np.arange(length, dtype=np.float64)
    t_mean = np.mean(t)
    tc = t - t_mean
    y_mean = _mean(x)
    yc = x - y_mean[:, None]
    scale = np.true_divide(1, length)
    ssxm = np.dot(tc, tc) * scale
    ssxym = np.sum(yc * tc, axis=-1) * scale  # not matmul: BLAS would make rows depend on the batch size
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = ssxym / ssxm
    if p["attr"] == "slope":
        return np.asarray(slope, dtype=np.float64)
    return np.asarray(y_mean - slope * t_mean, dtype=np.float64)


def _autocorrelation(x: F64, p: Mapping[str, Any]) -> F64:
    lag = int(p["lag"])
    length = x.shape[-1]
    if length < lag:
        return np.full(x.shape[0], np.nan)
    x_mean = _mean(x)[:, None]
    sum_product = np.sum((x[:, : length - lag] - x_mean) * (x[:, lag:] - x_mean), axis=-1)
    v = _var(x)
    degenerate = np.isclose(v, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sum_product / ((length - lag) * v)
    return np.asarray(np.where(degenerate, np.nan, out), dtype=np.float64)


def _moments(x: F64, max_moment: int) -> tuple[F64, F64, F64]:
    """pandas' one-pass central moments (``moments_add_value`` in ``pandas/_libs/algos.pxd``), vectorised.

    The loop runs over the L steps with every window at once, repeating pandas' operations in pandas' order,
    so skewness/kurtosis match ``pd.Series.skew``/``kurtosis`` to the last bit, near-constant windows included.
    """
    m = x.shape[0]
    mean = np.zeros(m)
    m2 = np.zeros(m)
    m3 = np.zeros(m)
    m4 = np.zeros(m)
    cols = np.ascontiguousarray(x.T)
    for i in range(x.shape[1]):
        n = float(i + 1)
        delta = cols[i] - mean
        delta_n = delta / n
        term1 = delta * delta_n * (n - 1.0)
        if max_moment >= 4:
            m4 += delta_n * (-4.0 * m3 + delta_n * (6.0 * m2 + term1 * (n * n - 3.0 * n + 3.0)))
        m3 += delta_n * (term1 * (n - 2.0) - 3.0 * m2)
        m2 += term1
        mean += delta_n
    return m2, m3, m4


def _skewness(x: F64, p: Mapping[str, Any]) -> F64:
    n = float(x.shape[1])
    if n < 3:
        return np.full(x.shape[0], np.nan)
    m2, m3, _ = _moments(x, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = m3 / (m2 * np.sqrt(m2))
    return np.asarray(ratio * ((n * np.sqrt(n - 1.0)) / (n - 2.0)), dtype=np.float64)


def _kurtosis(x: F64, p: Mapping[str, Any]) -> F64:
    n = float(x.shape[1])
    if n < 4:
        return np.full(x.shape[0], np.nan)
    m2, _, m4 = _moments(x, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = m4 / (m2 * m2)
    inner = n * (n + 1.0) * ratio - 3.0 * (n - 1.0)
    return np.asarray(((n - 1.0) / ((n - 2.0) * (n - 3.0))) * inner, dtype=np.float64)


def _cid_ce(x: F64, p: Mapping[str, Any]) -> F64:
    if p["normalize"]:
        s = _std(x)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (x - _mean(x)[:, None]) / s
        d = np.diff(z, axis=-1)
        return np.asarray(np.where(s[:, 0] != 0, np.sqrt(np.einsum("ij,ij->i", d, d)), 0.0), dtype=np.float64)
    d = np.diff(x, axis=-1)
    return np.asarray(np.sqrt(np.einsum("ij,ij->i", d, d)), dtype=np.float64)


def _c3(x: F64, p: Mapping[str, Any]) -> F64:
    lag = int(p["lag"])
    length = x.shape[-1]
    if 2 * lag >= length:
        return np.zeros(x.shape[0])
    k = length - 2 * lag
    return _mean(x[:, 2 * lag :] * x[:, lag : lag + k] * x[:, :k])


def _location(x: F64, *, arg: Callable[..., Any], last: bool) -> F64:
    length = x.shape[-1]
    if last:
        return np.asarray(1.0 - arg(x[:, ::-1], axis=-1) / length, dtype=np.float64)
    return np.asarray(arg(x, axis=-1) / length, dtype=np.float64)


def _count(mask: npt.NDArray[np.bool_]) -> F64:
    return np.asarray(np.count_nonzero(mask, axis=-1), dtype=np.float64)


#: calculator name -> (kernel, required parameter keys, or None for a calculator without parameters).
KERNELS: dict[str, tuple[Kernel, frozenset[str] | None]] = {
    "mean": (lambda x, p: _mean(x), None),
    "median": (lambda x, p: np.asarray(np.median(x, axis=-1), dtype=np.float64), None),
    "standard_deviation": (lambda x, p: _std(x), None),
    "variance": (lambda x, p: _var(x), None),
    "root_mean_square": (lambda x, p: np.sqrt(_mean(np.square(x))), None),
    "abs_energy": (lambda x, p: np.asarray(np.einsum("ij,ij->i", x, x), dtype=np.float64), None),
    "sum_values": (lambda x, p: np.asarray(np.sum(x, axis=-1), dtype=np.float64), None),
    "minimum": (lambda x, p: np.asarray(np.min(x, axis=-1), dtype=np.float64), None),
    "maximum": (lambda x, p: np.asarray(np.max(x, axis=-1), dtype=np.float64), None),
    "absolute_maximum": (lambda x, p: np.asarray(np.max(np.abs(x), axis=-1), dtype=np.float64), None),
    "quantile": (_quantile, frozenset({"q"})),
    "linear_trend": (_linear_trend, frozenset({"attr"})),
    "mean_abs_change": (lambda x, p: _mean(np.abs(np.diff(x, axis=-1))), None),
    "absolute_sum_of_changes": (
        lambda x, p: np.asarray(np.sum(np.abs(np.diff(x, axis=-1)), axis=-1), dtype=np.float64),
        None,
    ),
    "mean_change": (
        lambda x, p: (x[:, -1] - x[:, 0]) / (x.shape[1] - 1) if x.shape[1] > 1 else np.full(x.shape[0], np.nan),
        None,
    ),
    "autocorrelation": (_autocorrelation, frozenset({"lag"})),
    "skewness": (_skewness, None),
    "kurtosis": (_kurtosis, None),
    "cid_ce": (_cid_ce, frozenset({"normalize"})),
    "c3": (_c3, frozenset({"lag"})),
    "number_crossing_m": (lambda x, p: _count(np.diff(x > float(p["m"]), axis=-1)), frozenset({"m"})),
    "count_above_mean": (lambda x, p: _count(x > _mean(x)[:, None]), None),
    "count_below_mean": (lambda x, p: _count(x < _mean(x)[:, None]), None),
    "ratio_beyond_r_sigma": (
        lambda x, p: _count(np.abs(x - _mean(x)[:, None]) > float(p["r"]) * _std(x)[:, None]) / x.shape[1],
        frozenset({"r"}),
    ),
    "first_location_of_maximum": (lambda x, p: _location(x, arg=np.argmax, last=False), None),
    "last_location_of_maximum": (lambda x, p: _location(x, arg=np.argmax, last=True), None),
    "first_location_of_minimum": (lambda x, p: _location(x, arg=np.argmin, last=False), None),
    "last_location_of_minimum": (lambda x, p: _location(x, arg=np.argmin, last=True), None),
}

_LINEAR_TREND_ATTRS = frozenset({"slope", "intercept"})


def _validate(sensor: str, fc: str, params: Mapping[str, Any] | None) -> None:
    if fc not in KERNELS:
        raise ValueError(
            f"{sensor}: feature calculator {fc!r} has no fast implementation; supported: {', '.join(sorted(KERNELS))}"
            " (use TsfreshFeatures offline, or add a kernel with a parity test)"
        )
    required = KERNELS[fc][1]
    keys = frozenset(params) if params else None
    if keys != required:
        raise ValueError(f"{sensor}: {fc!r} takes parameters {sorted(required or [])}, got {sorted(keys or [])}")
    if fc == "linear_trend" and params is not None and params["attr"] not in _LINEAR_TREND_ATTRS:
        raise ValueError(f"{sensor}: linear_trend attr must be one of {sorted(_LINEAR_TREND_ATTRS)}")
    if fc in {"autocorrelation", "c3"} and params is not None and int(params["lag"]) < 0:
        raise ValueError(f"{sensor}: {fc} lag must be >= 0")


class FastFeatures(SpecFeatures):
    """Vectorised numpy replay of a :class:`FeatureSpec`; implements the ``FeatureExtractor`` protocol."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__(spec)
        columns = list(spec.columns())
        for sensor_index, _, fc, params in columns:
            _validate(spec.sensors[sensor_index], fc, params)
        # Plan: each distinct (calculator, parameters) runs once over every sensor that asks for it.
        plan: dict[str, tuple[str, dict[str, Any] | None, list[int], list[int]]] = {}
        for col, (sensor_index, _, fc, params) in enumerate(columns):
            key = f"{fc}|{sorted((params or {}).items())!r}"
            entry = plan.setdefault(key, (fc, params, [], []))
            entry[2].append(sensor_index)
            entry[3].append(col)
        self._plan = [
            (fc, params or {}, np.array(sensors, dtype=np.intp), np.array(cols, dtype=np.intp))
            for fc, params, sensors, cols in plan.values()
        ]

    def transform(self, X: Array) -> npt.NDArray[np.float64]:
        """Windows ``(n, L, S)`` -> features ``(n, F)``, computed in float64 on the float32 input values."""
        arr = check_windows(X, len(self.spec.sensors))
        n = arr.shape[0]
        out = np.empty((n, len(self._names)), dtype=np.float64)
        if n == 0:
            return out
        rows = np.ascontiguousarray(arr.transpose(0, 2, 1), dtype=np.float64)  # (n, S, L): rows contiguous
        for fc, params, sensors, cols in self._plan:
            sub = np.ascontiguousarray(rows[:, sensors, :]).reshape(n * len(sensors), -1)
            values = KERNELS[fc][0](sub, params)
            out[:, cols] = values.reshape(n, len(sensors))
        return out
