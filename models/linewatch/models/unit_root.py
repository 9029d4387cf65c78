"""Does a sensor's level wander like a random walk, and does anything else explain it: the two tests behind the
data-quality report's wandering-level figures (``unit_root_p``, ``unexplained_p``).

Pure functions of arrays (statsmodels does the regressions and tables), kept apart from the report that applies
them per sensor and asset (:mod:`linewatch.models.quality`, which says why the question matters).
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


#: ADF settings: lag order by AIC up to 20 steps; longer series are thinned (every k-th point) to this many
#: points, which bounds the test at about 0.5 s per sensor and asset (2-core machine) and looks at the slow
#: dynamics the rule is about.
ADF_MAX_LAG = 20
ADF_MAX_POINTS = 5000
ADF_MIN_POINTS = 50


def _thinning(n: int) -> int:
    """Step that thins ``n`` points to at most :data:`ADF_MAX_POINTS` (1: keep all)."""
    return max(1, int(np.ceil(n / ADF_MAX_POINTS)))


def _moves(values: F64) -> npt.NDArray[np.bool_]:
    """Whether a series (or each column) moves beyond rounding: a constant one has nothing to test."""
    return np.asarray(np.ptp(values, axis=0) > 1e-12 * np.maximum(1.0, np.abs(values).max(axis=0, initial=0.0)))


def unit_root_p(values: npt.ArrayLike) -> float | None:
    """Augmented Dickey-Fuller p-value of one series (None when too short or constant to test)."""
    from statsmodels.tsa.stattools import adfuller  # heavy import, only when quality is summarised

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    x = x[:: _thinning(x.size)]
    if x.size < ADF_MIN_POINTS or not _moves(x):
        return None
    try:
        with warnings.catch_warnings():  # statsmodels 0.15 announces a result-object change; index 1 stays the p
            warnings.simplefilter("ignore", FutureWarning)
            return float(adfuller(x, maxlag=ADF_MAX_LAG, autolag="AIC")[1])
    except (ValueError, np.linalg.LinAlgError):  # degenerate regressions (e.g. almost all values equal)
        return None


#: A level counts as wandering, and as a partner that may explain another sensor's wander, above this ADF p-value
#: (the usual 5 % level; :func:`summarise` takes the rule's own level when it differs).
WANDER_P = 0.05
#: MacKinnon's cointegration p-values are tabulated for up to 6 series (the target and 5 partners).
EG_MAX_SERIES = 6


def unexplained_p(target: npt.ArrayLike, partners: npt.ArrayLike) -> float | None:
    """Engle-Granger p-value that ``target``'s wander is *not* explained by ``partners`` (columns, same rows).

    Why: on a short training span every load-driven sensor wanders with the load, yet the others explain it, and a
    multivariate model learns that relation well; a level that wanders on its own (a thermocouple's slow drift)
    is what the model cannot learn. The target is regressed on its partners and the residual gets the ADF test
    with MacKinnon's cointegration p-values, which allow for the fitted regression (as statsmodels' ``coint``;
    written out because its tables stop at 6 series: with more partners the 6-series p-value is used, which
    leans towards "explained", i.e. towards keeping the sensor as before the rule existed).
    """
    from statsmodels.tsa.adfvalues import mackinnonp  # heavy imports, only when quality is summarised
    from statsmodels.tsa.stattools import adfuller

    y = np.asarray(target, dtype=np.float64)
    X = np.asarray(partners, dtype=np.float64).reshape(y.size, -1)
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    y, X = y[ok], X[ok]
    X = X[:, _moves(X)] if X.size else X
    if X.shape[1] == 0:
        return unit_root_p(y)  # nothing else wanders: nothing explains it
    step = _thinning(y.size)
    y, X = y[::step], X[::step]
    if y.size < ADF_MIN_POINTS or not _moves(y):
        return None
    design = np.column_stack([np.ones(y.size), X])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    if float(residual.std()) <= 1e-9 * float(y.std()):
        return 0.0  # explained exactly
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            stat = float(adfuller(residual, maxlag=ADF_MAX_LAG, autolag="AIC", regression="n")[0])
    except (ValueError, np.linalg.LinAlgError):
        return None
    return float(mackinnonp(stat, regression="c", N=min(X.shape[1] + 1, EG_MAX_SERIES)))
