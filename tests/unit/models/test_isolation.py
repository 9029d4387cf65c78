"""Reconstruction-based isolation (PCA) and the drift check it drives; the interleaved hold-out split."""

from __future__ import annotations

import numpy as np

from linewatch.models.base import Isolation
from linewatch.models.detectors.pca import PcaT2Q
from linewatch.models.health import Status, check_health
from linewatch.models.holdout import holdout_cycles
from linewatch.models.sensor_stats import SensorStats


def correlated(n: int, seed: int = 0) -> np.ndarray:
    """Windows (n, 30, 4): one latent load drives four sensors, plus small independent noise."""
    rng = np.random.default_rng(seed)
    load = rng.normal(size=(n, 1, 1)) + 0.1 * rng.normal(size=(n, 30, 1))
    return (load * np.array([1.0, 0.8, -0.6, 0.5]) + 0.05 * rng.normal(size=(n, 30, 4))).astype(np.float32)


def test_pca_isolates_a_single_sensor_offset_but_not_a_pattern() -> None:
    det = PcaT2Q(n_components=1).fit(correlated(400))
    drift = correlated(20, seed=1)
    drift[:, :, 2] += 1.0  # sensor 2 alone moves off the relation
    iso = det.isolation(drift)
    assert iso is not None
    assert (iso.fault_z.argmax(axis=1) == 2).all() and (iso.fault_z[:, 2] > 6).all()
    assert (iso.remaining[:, 2] < 1.0).all()  # removing sensor 2's fault leaves a normal residual
    pattern = correlated(20, seed=2)
    pattern[:, :, 0] += 1.0
    pattern[:, :, 2] += 1.0  # two sensors off: no single sensor explains it
    iso2 = det.isolation(pattern)
    assert iso2 is not None and (iso2.remaining.min(axis=1) > 1.0).all()


def test_drift_needs_one_sensor_that_explains_the_residual() -> None:
    st = SensorStats(*(np.full(2, v) for v in (50.0, 1.0, 46.0, 54.0, 45.0, 55.0, 1.0, 1.4, 1.0, 1.0, 1.0)))
    raw = 50.0 + np.random.default_rng(0).normal(0, 1.0, (2, 20, 2))
    iso = Isolation(fault_z=np.array([[9.0, 2.0], [9.0, 2.0]]), remaining=np.array([[0.3, 5.0], [4.0, 5.0]]))
    result = check_health(raw, st, isolation=iso)
    assert Status(int(result.status[0, 0])) == Status.DRIFTING and result.status[0, 1] == Status.OK
    assert (result.status[1] == Status.OK).all()  # sensor 0 is large but does not explain the residual alone


def test_holdout_cycles_interleave_and_keep_the_newest_data() -> None:
    hour = 3600 * 10**6
    cycles = holdout_cycles(0, 24 * hour, 0.25, 10**6)
    assert len(cycles) == 6 and cycles[-1][2] == 24 * hour
    assert all(cut - lo == 3 * hour and hi - cut == hour for lo, cut, hi in cycles)
    assert holdout_cycles(0, 2 * hour, 0.25, 10**6) == [(0, 5400 * 10**6, 2 * hour)]  # short span: one block


def with_independent_sensor(n: int, seed: int = 0) -> np.ndarray:
    """Windows (n, 30, 4): three sensors follow one load; the fourth is noise of its own (like a press's
    vibration, which barely depends on load), so PCA keeps it inside the principal subspace."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 30, 4), dtype=np.float32)
    X[:, :, :3] = correlated(n, seed)[:, :, :3]
    X[:, :, 3] = rng.normal(size=(n, 30))
    return X


def test_combined_isolation_finds_a_drift_on_a_sensor_the_residual_cannot_see() -> None:
    train = with_independent_sensor(400)
    det = PcaT2Q().fit(train)
    assert det.components_ is not None
    assert 1.0 - (det.components_[3] ** 2).sum() < 0.05  # sensor 3 lies in the principal subspace: Q is blind to it
    drift = with_independent_sensor(20, seed=1)
    drift[:, :, 3] += 4.0
    iso = det.isolation(drift)
    assert iso is not None
    assert (iso.fault_z.argmax(axis=1) == 3).all() and (iso.fault_z[:, 3] > 6).all()
    assert (iso.remaining[:, 3] < 1.0).all()
    # The residual-only isolation (bundles saved before the combined index) cannot separate this drift from noise.
    det.phi_limit_ = None
    det.fault_scale_ = det._isolation_parts(train)[0].std(axis=0)  # the spreads such a bundle was saved with
    legacy = det.isolation(drift)
    assert legacy is not None and (legacy.fault_z[:, 3] < 6).all()


def test_bundles_without_a_combined_limit_keep_residual_isolation() -> None:
    det = PcaT2Q(n_components=1).fit(correlated(400))
    tensors, meta = det.get_state()
    del tensors["phi_limit"]
    old = PcaT2Q.from_state(det.config(), tensors, meta)
    assert old.phi_limit_ is None
    drift = correlated(20, seed=1)
    drift[:, :, 2] += 1.0
    iso = old.isolation(drift)
    assert iso is not None and (iso.fault_z.argmax(axis=1) == 2).all()


def test_a_sensor_seen_failing_outranks_a_drift_inferred_elsewhere() -> None:
    st = SensorStats(*(np.full(2, v) for v in (50.0, 1.0, 46.0, 54.0, 45.0, 55.0, 1.0, 1.4, 1.0, 1.0, 1.0)))
    raw = 50.0 + np.random.default_rng(0).normal(0, 1.0, (2, 20, 2))
    raw[0, 10:, 0] = np.nan  # sensor 0 went silent in window 0 (the model then sees its median)
    iso = Isolation(fault_z=np.array([[2.0, 9.0], [2.0, 9.0]]), remaining=np.array([[5.0, 0.3], [5.0, 0.3]]))
    result = check_health(raw, st, isolation=iso)
    assert [Status(int(c)) for c in result.status[0]] == [Status.SILENT, Status.OK]
    assert [Status(int(c)) for c in result.status[1]] == [Status.OK, Status.DRIFTING]  # nothing seen: drift stands
