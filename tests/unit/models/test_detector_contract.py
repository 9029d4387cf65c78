"""One check suite over every registered detector (detector x check), in the spirit of river's ``checks``.

The data: six sensors driven by one shared load signal (three sines and an AR(1) wander) with sensor-specific
gains, signs, small lags and noise, robust-scaled per sensor like the real preprocessing. The fault: one sensor
jumps by ``OFFSET`` scaled units for the second half of the window, breaking its relation to the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from safetensors.numpy import load_file, save_file
from sklearn.metrics import roc_auc_score

from linewatch.models.base import Detector, NotFittedError
from linewatch.models.detectors import DETECTORS

LENGTH, SENSORS, FAULT_SENSOR, OFFSET = 30, 6, 2, 3.0
N_TRAIN, N_TEST = 400, 150

#: Small but sufficient settings so the whole suite stays fast on two CPU cores.
FAST: dict[str, dict[str, Any]] = {
    "dense_ae": {"epochs": 12, "device": "cpu"},
    "conv_ae": {"epochs": 10, "device": "cpu"},
    "lstm_ae": {"epochs": 8, "hidden": 24, "device": "cpu"},
    "iforest": {"n_estimators": 100},
}
#: Detectors that only look at marginal feature distributions. On this data the level features of all
#: sensors follow the shared load, so a normal window at an extreme load is as unusual to them as a one-sensor
#: fault; they must still rank every faulty window above its clean twin and separate the sets (AUC), but we
#: do not demand that the median fault clears the 95th percentile of clean windows.
MARGINAL = {"ecod", "iforest"}

NAMES = sorted(DETECTORS)


def make_series(n_steps: int, seed: int = 0) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    load = sum(np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi)) for p in (23.0, 61.0, 149.0))
    wander = np.zeros(n_steps)
    shocks = rng.normal(0, 0.1, n_steps)
    for i in range(1, n_steps):
        wander[i] = 0.9 * wander[i - 1] + shocks[i]
    load = load + wander
    gains = np.linspace(0.6, 1.4, SENSORS) * np.where(np.arange(SENSORS) % 2 == 0, 1.0, -1.0)
    cols = [gains[s] * np.roll(load, s % 3) + rng.normal(0, 0.15, n_steps) for s in range(SENSORS)]
    return np.stack(cols, axis=1)


def to_windows(series: npt.NDArray[np.float64], stride: int = 2) -> npt.NDArray[np.float32]:
    starts = range(0, len(series) - LENGTH + 1, stride)
    return np.stack([series[i : i + LENGTH] for i in starts]).astype(np.float32)


def make_data(seed: int = 0) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    series = make_series(2 * (N_TRAIN + N_TEST) + 4 * LENGTH, seed)
    head = series[: 2 * N_TRAIN]
    q25, q50, q75 = np.percentile(head, [25, 50, 75], axis=0)
    series = (series - q50) / (q75 - q25)
    train = to_windows(series[: 2 * N_TRAIN + LENGTH])[:N_TRAIN]
    test = to_windows(series[2 * N_TRAIN + 2 * LENGTH :])[:N_TEST]
    faulty = test.copy()
    faulty[:, LENGTH // 2 :, FAULT_SENSOR] += OFFSET
    return train, test, faulty


DATA = make_data()


def build(name: str, **extra: Any) -> Detector:
    return DETECTORS[name](**{**FAST.get(name, {}), **extra})


_FITTED: dict[str, Detector] = {}


@pytest.fixture(params=NAMES)
def fitted(request: pytest.FixtureRequest) -> Detector:
    """Each detector fitted once per session on the shared training windows."""
    name: str = request.param
    if name not in _FITTED:
        _FITTED[name] = build(name).fit(DATA[0])
    return _FITTED[name]


def _roundtrip(det: Detector, tmp_path: Path) -> Detector:
    """Save and load the way a bundle does: safetensors for arrays, JSON for metadata and config."""
    tensors, meta = det.get_state()
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp_path / "state.safetensors"))
    (tmp_path / "meta.json").write_text(json.dumps({"config": det.config(), "meta": meta}))
    stored = json.loads((tmp_path / "meta.json").read_text())
    return type(det).from_state(stored["config"], load_file(str(tmp_path / "state.safetensors")), stored["meta"])


def test_every_family_is_registered() -> None:
    assert {"pca_t2q", "ecod", "iforest", "pyod_pca", "dense_ae", "conv_ae", "lstm_ae"} <= set(DETECTORS)


def test_shapes_and_no_nan(fitted: Detector) -> None:
    _, test, _ = DATA
    scores = fitted.decision_function(test)
    shares = fitted.contributions(test)
    expected = fitted.expected(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    assert shares.shape == expected.shape == (len(test), SENSORS)
    assert np.isfinite(scores).all() and np.isfinite(shares).all() and np.isfinite(expected).all()
    assert (shares >= 0).all()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)


def test_injected_fault_scores_higher(fitted: Detector) -> None:
    _, test, faulty = DATA
    clean, bad = fitted.decision_function(test), fitted.decision_function(faulty)
    assert (bad > clean).mean() >= 0.95, "a fault should raise the score of (nearly) every window it enters"
    auc = roc_auc_score(np.r_[np.zeros(len(clean)), np.ones(len(bad))], np.r_[clean, bad])
    if fitted.name in MARGINAL:
        assert auc > 0.7
    else:
        assert auc > 0.97
        assert np.median(bad) > np.percentile(clean, 95)


def test_faulty_sensor_gets_the_largest_share(fitted: Detector) -> None:
    _, _, faulty = DATA
    mean_shares = fitted.contributions(faulty).mean(axis=0)
    assert int(np.argmax(mean_shares)) == FAULT_SENSOR, mean_shares


def test_expected_is_near_normal_value(fitted: Detector) -> None:
    """Where the model reconstructs, it should expect roughly the clean value, not the faulty reading."""
    _, test, faulty = DATA
    expected = fitted.expected(faulty)[:, FAULT_SENSOR]
    clean_last, faulty_last = test[:, -1, FAULT_SENSOR], faulty[:, -1, FAULT_SENSOR]
    assert np.mean(np.abs(expected - clean_last)) < np.mean(np.abs(faulty_last - clean_last))


def test_scoring_mutates_neither_detector_nor_input(fitted: Detector) -> None:
    _, test, faulty = DATA
    X = faulty[:20].copy()
    before_tensors, before_meta = fitted.get_state()
    before_tensors = {k: np.array(v, copy=True) for k, v in before_tensors.items()}
    first = fitted.decision_function(X)
    fitted.contributions(X)
    fitted.expected(X)
    fitted.decision_function(test)  # a different batch in between must not change later scores
    after_tensors, after_meta = fitted.get_state()
    np.testing.assert_array_equal(X, faulty[:20])
    assert before_tensors.keys() == after_tensors.keys() and before_meta == after_meta
    for key, value in before_tensors.items():
        np.testing.assert_array_equal(value, after_tensors[key], err_msg=key)
    np.testing.assert_array_equal(fitted.decision_function(X), first)


def test_batch_independent_scores(fitted: Detector) -> None:
    """Serving scores one window at a time, evaluation thousands: a window's score must not depend on its batch."""
    _, test, faulty = DATA
    batch = np.concatenate([test[:5], faulty[:5]])
    together = fitted.decision_function(batch)
    alone = np.array([fitted.decision_function(batch[i : i + 1])[0] for i in range(len(batch))])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-9)


def test_save_load_gives_identical_scores(fitted: Detector, tmp_path: Path) -> None:
    _, test, faulty = DATA
    loaded = _roundtrip(fitted, tmp_path)
    X = np.concatenate([test[:40], faulty[:40]])
    np.testing.assert_allclose(loaded.decision_function(X), fitted.decision_function(X), rtol=1e-6)
    np.testing.assert_allclose(loaded.contributions(X), fitted.contributions(X), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(loaded.expected(X), fitted.expected(X), rtol=1e-6, atol=1e-9)
    assert loaded.config() == fitted.config()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores(name: str) -> None:
    train, test, _ = DATA
    small = {"epochs": 2} if name in FAST and "epochs" in FAST[name] else {}
    a = build(name, seed=7, **small).fit(train[:160]).decision_function(test[:30])
    b = build(name, seed=7, **small).fit(train[:160]).decision_function(test[:30])
    np.testing.assert_array_equal(a, b)


def test_wrong_sensor_count_raises(fitted: Detector) -> None:
    _, test, _ = DATA
    for method in (fitted.decision_function, fitted.contributions, fitted.expected):
        with pytest.raises(ValueError, match="sensors"):
            method(test[:, :, :-1])


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_use_raises(name: str) -> None:
    det = build(name)
    _, test, _ = DATA
    for call in (det.decision_function, det.contributions, det.expected):
        with pytest.raises(NotFittedError):
            call(test[:2])
    with pytest.raises(NotFittedError):
        det.get_state()


@pytest.mark.parametrize("name", NAMES)
def test_config_is_json_and_rebuilds(name: str) -> None:
    det = build(name)
    config = json.loads(json.dumps(det.config()))
    assert DETECTORS[name](**config).config() == det.config()
