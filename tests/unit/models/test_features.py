"""FeatureSpec and FastFeatures API: ordering, naming, validation, serialisation (no tsfresh needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linewatch.models.base import FeatureExtractor
from linewatch.models.fast_features import FastFeatures
from linewatch.models.features import DEFAULT_FC_PARAMETERS, FeatureSpec, TsfreshFeatures, column_suffix


def test_default_spec_is_sensor_major_in_spec_order() -> None:
    spec = FeatureSpec.default(["temp", "vib"])
    names = spec.feature_names
    per_sensor = len(names) // 2
    assert per_sensor == 13
    assert names[:3] == ["temp__mean", "temp__median", "temp__standard_deviation"]
    assert names[per_sensor] == "vib__mean"
    assert 'vib__linear_trend__attr_"slope"' in names and "vib__quantile__q_0.1" in names
    assert spec.feature_sensors.tolist() == [0] * per_sensor + [1] * per_sensor
    assert spec.feature_sensors.dtype == np.int64


def test_column_suffix_matches_tsfresh_naming() -> None:
    assert column_suffix("mean", None) == "mean"
    assert column_suffix("autocorrelation", {"lag": 1}) == "autocorrelation__lag_1"
    assert column_suffix("linear_trend", {"attr": "slope"}) == 'linear_trend__attr_"slope"'
    assert column_suffix("x", {"b": 2, "a": "s"}) == 'x__a_"s"__b_2'


def test_spec_round_trips_through_json() -> None:
    spec = FeatureSpec.default(["Volume Flow RateRMS", "Pressure"])
    back = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.feature_names == spec.feature_names


@pytest.mark.parametrize(
    ("sensors", "kinds", "match"),
    [
        ((), {}, "at least one"),
        (("a", "a"), {"a": {}}, "duplicate"),
        (("a__b",), {"a__b": {}}, "'__'"),
        (("a",), {}, "missing"),
        (("a",), {"a": {}, "b": {}}, "unknown"),
        (("a",), {"a": {"quantile": []}}, "non-empty list"),
    ],
)
def test_spec_validation(sensors: tuple[str, ...], kinds: dict[str, dict[str, object]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FeatureSpec(sensors=sensors, kind_to_fc_parameters=kinds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fcs", "match"),
    [
        ({"fft_coefficient": [{"coeff": 0, "attr": "real"}]}, "no fast implementation"),
        ({"quantile": None}, "takes parameters"),
        ({"mean": [{"q": 1}]}, "takes parameters"),
        ({"linear_trend": [{"attr": "pvalue"}]}, "attr must be"),
        ({"autocorrelation": [{"lag": -1}]}, "lag must be"),
    ],
)
def test_unsupported_calculators_fail_at_construction(fcs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FastFeatures(FeatureSpec.default(["a"], fcs))  # type: ignore[arg-type]


def test_fast_features_shape_dtype_and_protocol() -> None:
    spec = FeatureSpec.default(["a", "b", "c"])
    extractor: FeatureExtractor = FastFeatures(spec)
    x = np.random.default_rng(0).normal(size=(5, 60, 3)).astype(np.float32)
    feats = extractor.transform(x)
    assert feats.shape == (5, 39) and feats.dtype == np.float64 and np.isfinite(feats).all()
    assert extractor.feature_sensors.tolist() == spec.feature_sensors.tolist()
    assert FastFeatures(spec).transform(x[:0]).shape == (0, 39)
    # one window at a time gives the same values as the batch (serving scores window by window)
    assert np.array_equal(np.vstack([extractor.transform(x[i : i + 1]) for i in range(5)]), feats)


def test_fast_features_rejects_wrong_sensor_count_and_nan() -> None:
    ff = FastFeatures(FeatureSpec.default(["a", "b"]))
    with pytest.raises(ValueError, match="sensors"):
        ff.transform(np.zeros((1, 10, 3), dtype=np.float32))
    bad = np.zeros((1, 10, 2), dtype=np.float32)
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ff.transform(bad)


def test_default_set_is_all_fast_and_tsfresh_names_agree() -> None:
    spec = FeatureSpec.default(["s"], DEFAULT_FC_PARAMETERS)
    assert FastFeatures(spec).feature_names == TsfreshFeatures(spec).feature_names == spec.feature_names
