"""FastFeatures equals tsfresh, feature by feature, on random, degenerate and real (SKAB) windows.

Tolerances, per calculator (``rtol``, ``atol``; NaN must match NaN exactly):

=============================  ==========  ==========  ==================================================
calculator                     rtol        atol        why
=============================  ==========  ==========  ==================================================
mean, median, standard_dev.,   1e-12       0           same numpy reductions on contiguous rows (observed
variance, root_mean_square,                            bit-identical); margin only for platform SIMD
sum_values, minimum, maximum,
absolute_maximum, quantile,
mean_abs_change, mean_change,
absolute_sum_of_changes,
autocorrelation, c3
counts, crossings, locations,  0           0           integer-valued / index arithmetic: exact
ratio_beyond_r_sigma
abs_energy, cid_ce             1e-12       1e-12       tsfresh uses BLAS ``np.dot``; we use ``einsum``
linear_trend (slope,           1e-9        1e-12*max|x|  scipy's ``np.cov`` (BLAS) vs ``matmul``; near-zero
intercept)                                             slopes are differences of large sums
skewness, kurtosis             1e-9        1e-9        pandas' compiled one-pass moments vs the same
                                                       recurrence in numpy: last-bit differences
=============================  ==========  ==========  ==================================================

NaN conventions kept from tsfresh (tested on constant windows): autocorrelation, skewness and kurtosis are NaN;
cid_ce(normalize=True) is 0; everything else is finite.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from linewatch.models.fast_features import KERNELS, FastFeatures
from linewatch.models.features import FeatureSpec, TsfreshFeatures

pytest.importorskip("tsfresh")

EXACT = (1e-12, 0.0)
INTEGER = (0.0, 0.0)
TOLERANCE: dict[str, tuple[float, float]] = {
    **{
        fc: EXACT
        for fc in [
            "mean",
            "median",
            "standard_deviation",
            "variance",
            "root_mean_square",
            "sum_values",
            "minimum",
            "maximum",
            "absolute_maximum",
            "quantile",
            "mean_abs_change",
            "mean_change",
            "absolute_sum_of_changes",
            "autocorrelation",
            "c3",
        ]
    },
    **{
        fc: INTEGER
        for fc in [
            "count_above_mean",
            "count_below_mean",
            "number_crossing_m",
            "ratio_beyond_r_sigma",
            "first_location_of_maximum",
            "last_location_of_maximum",
            "first_location_of_minimum",
            "last_location_of_minimum",
        ]
    },
    "abs_energy": (1e-12, 1e-12),
    "cid_ce": (1e-12, 1e-12),
    "linear_trend": (1e-9, 1e-12),  # atol scaled by max|x| below
    "skewness": (1e-9, 1e-9),
    "kurtosis": (1e-9, 1e-9),
}

#: Every calculator FastFeatures supports, with the parameters tested.
ALL_FC: dict[str, list[dict[str, object]] | None] = {
    "mean": None,
    "median": None,
    "standard_deviation": None,
    "variance": None,
    "root_mean_square": None,
    "abs_energy": None,
    "sum_values": None,
    "minimum": None,
    "maximum": None,
    "absolute_maximum": None,
    "quantile": [{"q": 0.1}, {"q": 0.5}, {"q": 0.9}],
    "linear_trend": [{"attr": "slope"}, {"attr": "intercept"}],
    "mean_abs_change": None,
    "absolute_sum_of_changes": None,
    "mean_change": None,
    "autocorrelation": [{"lag": 1}, {"lag": 3}],
    "skewness": None,
    "kurtosis": None,
    "cid_ce": [{"normalize": True}, {"normalize": False}],
    "c3": [{"lag": 1}, {"lag": 2}],
    "number_crossing_m": [{"m": 0}],
    "count_above_mean": None,
    "count_below_mean": None,
    "ratio_beyond_r_sigma": [{"r": 1.5}],
    "first_location_of_maximum": None,
    "last_location_of_maximum": None,
    "first_location_of_minimum": None,
    "last_location_of_minimum": None,
}


def test_tolerance_table_covers_every_kernel() -> None:
    assert set(TOLERANCE) == set(KERNELS) == set(ALL_FC)


def random_windows() -> np.ndarray:
    """20 windows x 3 sensors x 60 steps per seed: noise, offsets, spikes, constants, ramps, quantised levels."""
    batches = []
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(20, 60, 3)) * rng.uniform(0.01, 10, size=(20, 1, 3)) + rng.normal(0, 50, (20, 1, 3))
        x[0] = 3.25  # constant window
        x[1, :, 0] = 0.0  # all-zero sensor
        x[2, rng.integers(0, 60, 3), 1] += 40.0  # spikes
        x[3, :, 2] = np.linspace(-2, 5, 60)  # pure ramp
        x[4] = np.round(x[4])  # quantised: ties for median/quantiles/locations
        x[5, :, 0] = 79.3366 + rng.integers(0, 3, 60) * 1e-4  # near-constant real-looking level (float32 grid)
        x[6, :, 1] = np.sin(np.arange(60) / 3.0)  # oscillation: zero crossings
        batches.append(x)
    return np.concatenate(batches).astype(np.float32)


def assert_parity(spec: FeatureSpec, x: np.ndarray) -> None:
    ref = TsfreshFeatures(spec).transform(x)
    fast = FastFeatures(spec).transform(x)
    assert ref.shape == fast.shape == (x.shape[0], len(spec.feature_names))
    scale = float(np.max(np.abs(x))) or 1.0
    failures = []
    for col, (_, name, fc, _) in enumerate(spec.columns()):
        rtol, atol = TOLERANCE[fc]
        if fc == "linear_trend":
            atol *= scale
        r, f = ref[:, col], fast[:, col]
        if not np.array_equal(np.isnan(r), np.isnan(f)):
            failures.append(f"{name}: NaN pattern differs (tsfresh {np.isnan(r).sum()}, fast {np.isnan(f).sum()})")
        elif not np.allclose(f, r, rtol=rtol, atol=atol, equal_nan=True):
            worst = int(np.nanargmax(np.abs(f - r)))
            failures.append(f"{name}: window {worst} tsfresh {r[worst]!r} fast {f[worst]!r}")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return random_windows()


def test_every_fast_feature_equals_tsfresh_on_random_windows(windows: np.ndarray) -> None:
    assert_parity(FeatureSpec.default(["a", "b", "c"], ALL_FC), windows)


def test_tsfresh_nan_conventions_on_constant_windows(windows: np.ndarray) -> None:
    spec = FeatureSpec.default(["a", "b", "c"], ALL_FC)
    fast = FastFeatures(spec).transform(windows[:1])  # the constant window
    names = spec.feature_names
    nan_names = {n.split("__", 1)[1] for n, v in zip(names, fast[0], strict=True) if np.isnan(v)}
    assert nan_names == {"autocorrelation__lag_1", "autocorrelation__lag_3", "skewness", "kurtosis"}
    assert fast[0, names.index("a__cid_ce__normalize_True")] == 0.0


def test_mixed_spec_per_sensor_and_a_sensor_without_features(windows: np.ndarray) -> None:
    spec = FeatureSpec(
        sensors=("temp", "unused", "vib"),
        kind_to_fc_parameters={
            "temp": {"linear_trend": [{"attr": "slope"}], "mean": None},
            "unused": {},
            "vib": {"kurtosis": None, "quantile": [{"q": 0.9}], "mean": None},
        },
    )
    assert spec.feature_names == [
        'temp__linear_trend__attr_"slope"',
        "temp__mean",
        "vib__kurtosis",
        "vib__quantile__q_0.9",
        "vib__mean",
    ]
    assert FastFeatures(spec).feature_sensors.tolist() == [0, 0, 2, 2, 2]
    assert_parity(spec, windows[:20])


def skab_windows() -> tuple[list[str], np.ndarray]:
    root = Path(os.environ.get("LINEWATCH_BENCH_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"))
    path = root / "skab" / "valve1" / "0.csv"
    if not path.exists():
        pytest.skip(f"SKAB data not found at {path} (set LINEWATCH_BENCH_DATA to the shared data directory)")
    with path.open() as fh:
        header = fh.readline().strip().split(";")
    sensors = header[1:9]  # the 8 sensor columns (datetime first, labels last)
    values = np.loadtxt(path, delimiter=";", skiprows=1, usecols=range(1, 9), dtype=np.float64)
    starts = np.linspace(0, values.shape[0] - 60, 20).astype(int)
    return sensors, np.stack([values[s : s + 60] for s in starts]).astype(np.float32)


def test_default_features_equal_tsfresh_on_real_skab_windows() -> None:
    sensors, x = skab_windows()
    assert x.shape == (20, 60, 8)
    assert_parity(FeatureSpec.default(sensors), x)
