"""Calibration numerics on literal arrays: exponential grids with known quantiles, constants, tiny samples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from linewatch.models.calibration import MIN_SCORES, Calibrator


def exponential_grid(n: int) -> np.ndarray:
    """Exact quantiles of Exp(1) at mid-point levels: a literal 'perfect' sample with known tail -log(p)."""
    return -np.log1p(-(np.arange(n) + 0.5) / n)


EXP = exponential_grid(2000)
WEEK_AT_10S = 7 * 86400 / 10


def test_budget_threshold_close_to_the_analytic_exponential_quantile() -> None:
    cal = Calibrator.fit(EXP, false_alarms_per_week=1.0, windows_per_week=WEEK_AT_10S)
    p = 1.0 / WEEK_AT_10S
    assert cal.exceedance == pytest.approx(p, rel=1e-15)
    assert p < 1 / EXP.size  # the point of the GPD tail: beyond the sample
    assert cal.tail_model == "gpd"
    # Analytic Exp(1) quantile -log(p) = 11.01; a 2,000-score sample extrapolated 30x past its end: within 5 %.
    assert cal.threshold == pytest.approx(-math.log(p), rel=0.05)


@pytest.mark.parametrize("q", [0.95, 0.99, 0.999])
def test_quantile_threshold_close_to_analytic(q: float) -> None:
    cal = Calibrator.fit(EXP, quantile=q)
    assert cal.threshold == pytest.approx(-math.log(1 - q), rel=0.02)


def test_quantile_inside_the_body_is_the_empirical_quantile() -> None:
    cal = Calibrator.fit(EXP, quantile=0.5)
    assert cal.threshold == pytest.approx(float(np.quantile(EXP, 0.5)), rel=1e-3)
    assert cal.failure_risk(cal.threshold) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("kwargs", [{"quantile": 0.999}, {"false_alarms_per_week": 2.0, "windows_per_week": 60480.0}])
def test_risk_at_threshold_is_the_target_quantile(kwargs: dict[str, float]) -> None:
    cal = Calibrator.fit(EXP, **kwargs)
    assert float(cal.failure_risk(cal.threshold)) == pytest.approx(1 - cal.exceedance, abs=1e-12)
    assert float(cal.anomaly_score(cal.threshold)) == pytest.approx(1.0, rel=1e-15)


def test_risk_is_monotone_bounded_continuous_and_tends_to_one() -> None:
    cal = Calibrator.fit(EXP, quantile=0.999)
    s = np.linspace(-1.0, 60.0, 20001)
    r = cal.failure_risk(s)
    assert np.all(np.diff(r) >= 0)
    assert r.min() == 0.0 and r.max() <= 1.0
    assert np.max(np.abs(np.diff(r))) < 1e-2  # no jumps, u included
    assert cal.failure_risk(cal.u) == pytest.approx(1 - cal.zeta, abs=1e-12)
    assert cal.failure_risk(np.nextafter(cal.u, np.inf)) == pytest.approx(1 - cal.zeta, abs=1e-9)
    assert float(cal.failure_risk(1e6)) == pytest.approx(1.0, abs=1e-12)


def test_nan_in_nan_out() -> None:
    cal = Calibrator.fit(EXP)
    out = cal.failure_risk(np.array([np.nan, 1.0]))
    assert math.isnan(out[0]) and 0 < out[1] < 1
    assert math.isnan(cal.anomaly_score(np.array([np.nan]))[0])


def test_round_trip_is_exact_through_json() -> None:
    cal = Calibrator.fit(EXP, false_alarms_per_week=1.0, windows_per_week=WEEK_AT_10S)
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal
    s = np.linspace(0, 20, 101)
    assert np.array_equal(back.failure_risk(s), cal.failure_risk(s))
    assert len(cal.body) == 1000


def test_body_is_compressed_to_at_most_n_quantiles() -> None:
    assert len(Calibrator.fit(EXP[::20]).body) == 100
    assert len(Calibrator.fit(EXP, n_quantiles=50).body) == 50


def test_constant_scores_fall_back_to_a_margin_above_the_constant() -> None:
    cal = Calibrator.fit(np.full(100, 2.0), quantile=0.999)
    assert cal.tail_model == "constant"
    assert cal.threshold > 2.0
    assert cal.threshold == pytest.approx(2.0 + 0.1 * 2.0 * -math.log(0.001 / 0.1), rel=1e-12)
    assert float(cal.failure_risk(2.0)) == pytest.approx(0.9)
    assert float(cal.failure_risk(cal.threshold)) == pytest.approx(0.999, abs=1e-12)


def test_few_exceedances_use_the_exponential_tail() -> None:
    scores = exponential_grid(100)  # 10 exceedances over the 0.9 quantile < MIN_GPD_EXCEEDANCES
    cal = Calibrator.fit(scores, quantile=0.9999)
    assert cal.tail_model == "exponential" and cal.shape == 0.0
    assert cal.scale == pytest.approx(float(np.mean(scores[scores > cal.u] - cal.u)))
    assert cal.threshold == pytest.approx(-math.log(1e-4), rel=0.1)


def test_tied_exceedances_use_the_exponential_tail() -> None:
    scores = np.concatenate([np.linspace(0.0, 1.0, 180), np.full(20, 5.0)])  # 20 equal exceedances over u = 1.4
    cal = Calibrator.fit(scores, quantile=0.999)
    assert cal.u == pytest.approx(1.4)
    assert cal.tail_model == "exponential"
    assert cal.scale == pytest.approx(3.6)
    assert cal.threshold > 5.0


def test_heavy_tail_beyond_max_shape_falls_back() -> None:
    levels = (np.arange(1000) + 0.5) / 1000
    pareto = (1 - levels) ** -2.0  # GPD shape 2: infinite mean
    cal = Calibrator.fit(pareto, quantile=0.9999)
    assert cal.tail_model == "exponential"
    assert math.isfinite(cal.threshold) and cal.threshold > np.quantile(pareto, 0.99)


def test_too_few_scores_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_SCORES}"):
        Calibrator.fit(EXP[: MIN_SCORES - 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quantile": 0.99, "false_alarms_per_week": 1.0, "windows_per_week": 100.0}, "not both"),
        ({"false_alarms_per_week": 1.0}, "windows_per_week"),
        ({"windows_per_week": 100.0}, "only used"),
        ({"quantile": 1.0}, r"\(0, 1\)"),
        ({"false_alarms_per_week": 200.0, "windows_per_week": 100.0}, r"\(0, 1\)"),
        ({"tail_fraction": 0.0}, "tail_fraction"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Calibrator.fit(EXP, **kwargs)


def test_non_finite_and_non_positive_thresholds_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN or inf"):
        Calibrator.fit(np.append(EXP, np.nan))
    with pytest.raises(ValueError, match="positive threshold"):
        Calibrator.fit(-EXP - 1.0)


def test_bad_schema_version() -> None:
    data = Calibrator.fit(EXP).to_dict()
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version"):
        Calibrator.from_dict(data)
