"""Pure numerics behind the detectors, checked with literal arrays and against reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.models.detectors.autoencoder import ConvAutoencoder, DenseAutoencoder
from linewatch.models.detectors.lstm import LstmAutoencoder
from linewatch.models.detectors.mspc import (
    control_limits,
    deviation_contributions,
    isolation_metric,
    isolation_parts,
    movement_contributions,
    principal_components,
    sensor_limits,
)
from linewatch.models.detectors.pca import PcaT2Q, select_components, t2_q_parts
from linewatch.models.detectors.pyod_features import (
    EcodDetector,
    IForestDetector,
    SummaryFeatures,
    _BatchIndependentEcod,
)


def test_select_components_by_variance() -> None:
    eig = np.array([3.0, 0.9, 0.1])
    assert select_components(eig, 0.95, 3) == 2
    assert select_components(eig, 0.70, 3) == 1
    assert select_components(eig, 1.0, 3) == 2  # always leave one residual direction for Q
    assert select_components(np.array([1.0]), 0.95, 1) == 1


def test_t2_and_q_parts_sum_to_the_classic_statistics() -> None:
    components = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    eigenvalues = np.array([4.0, 1.0])
    z = np.array([[2.0, 1.0, 3.0]])
    t2, q, recon = t2_q_parts(z, components, eigenvalues)
    np.testing.assert_allclose(t2, [[1.0, 1.0, 0.0]])  # 2²/4 + 1²/1, split per sensor
    np.testing.assert_allclose(q, [[0.0, 0.0, 9.0]])
    np.testing.assert_allclose(recon, [[2.0, 1.0, 0.0]])
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    comps, lam = basis[:, :3], np.array([5.0, 2.0, 0.5])
    x = rng.normal(size=(4, 5))
    t2, q, _ = t2_q_parts(x, comps, lam)
    scores = x @ comps
    np.testing.assert_allclose(t2.sum(axis=1), (scores**2 / lam).sum(axis=1))
    np.testing.assert_allclose(q.sum(axis=1), ((x - scores @ comps.T) ** 2).sum(axis=1))
    assert (t2 >= 0).all()


def test_principal_components_are_ordered_signed_and_floored() -> None:
    cov = np.diag([1.0, 4.0, 0.0])  # largest variance on sensor 1, none on sensor 2
    components, eigenvalues = principal_components(cov, 0.99, None)
    np.testing.assert_allclose(components, [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(eigenvalues, [4.0, 1.0])
    flipped, _ = principal_components(np.array([[2.0, -1.0], [-1.0, 2.0]]), 0.5, None)
    np.testing.assert_allclose(flipped, [[2**-0.5], [-(2**-0.5)]])  # the largest loading positive (the first)
    _, floored = principal_components(np.diag([1.0, 0.0, 0.0]), 0.95, 2)  # n_components overrides the share
    assert floored[0] == 1.0 and 0.0 < floored[1] <= 1e-12  # T² divides by it


def test_control_limits_are_training_quantiles_of_each_statistic() -> None:
    t2 = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    q = np.array([0.0, 0.0, 0.0, 0.0, 0.0])  # a perfect fit: floored, not 0
    t2_limit, q_limit, phi_limit = control_limits(t2, q, 0.5)
    assert (t2_limit, q_limit) == (3.0, 1e-6)
    assert phi_limit == pytest.approx(1.0)  # median of t2 / 3


def test_sensor_limits_floor_at_an_equal_share_and_scale_the_worst_ratio_to_the_index() -> None:
    residual = np.array([[0.0, 1.0], [0.0, 3.0]])  # sensor 0 explained exactly in training
    limits, union = sensor_limits(residual, q_limit=2.0, index=np.array([2.0, 2.0]), quantile=0.5)
    np.testing.assert_allclose(limits, [1.0, 2.0])  # sensor 0 at its share q_limit / S, sensor 1 at its median
    # worst ratios (0.5, 1.5): median 1.0; the index's median 2.0 -> the ratio counts double
    assert union == pytest.approx(2.0)


def test_deviation_shares_each_steps_index_by_squared_distance() -> None:
    squared = np.array([[[1.0, 3.0], [0.0, 0.0]]])  # step 1: shares 1/4, 3/4; step 2: nobody deviates
    index = np.array([[2.0, 0.0]])
    np.testing.assert_allclose(deviation_contributions(squared, index), [[0.25, 0.75]])


def test_movement_is_variance_in_training_spreads() -> None:
    values = np.array([[[0.0, 5.0], [4.0, 5.0]]])  # sensor 0 moves by 4 = 2 spreads; sensor 1 is still
    np.testing.assert_allclose(movement_contributions(values, np.array([2.0, 1.0])), [[1.0, 0.0]])


def test_isolation_removes_the_best_single_sensor_fault() -> None:
    Z = np.array([[[3.0, 4.0]]])
    f, remaining = isolation_parts(Z, np.eye(2), 1.0, np.array([[0], [1]]))
    np.testing.assert_allclose(f, [[3.0, 4.0]])  # Φ = I: the fault along a sensor is its own value
    np.testing.assert_allclose(remaining, [[16.0, 9.0]])  # 25 - 3², 25 - 4²
    P = np.array([[1.0], [0.0]])
    Phi, limit = isolation_metric(P, np.array([4.0]), 2.0, 3.0, None)
    np.testing.assert_allclose(Phi, [[0.0, 0.0], [0.0, 1.0]])  # older bundles: residual-only C with Q's limit
    assert limit == 3.0
    Phi, limit = isolation_metric(P, np.array([4.0]), 2.0, 3.0, 5.0)
    np.testing.assert_allclose(Phi, [[1 / 8, 0.0], [0.0, 1 / 3]])  # D / T²_lim + C / Q_lim
    assert limit == 5.0


def test_pca_contributions_add_up_to_the_score() -> None:
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(50, 12, 1)) * [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=(50, 12, 3))).astype(np.float32)
    det = PcaT2Q(score_steps=4, attribution="decomposition").fit(X)
    np.testing.assert_allclose(det._contrib(X).sum(axis=1), det.decision_function(X))


def test_summary_features_literal() -> None:
    X = np.array([[[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [5.0, 5.0]]], dtype=np.float32)
    ext = SummaryFeatures(2)
    feats = ext.transform(X)
    np.testing.assert_array_equal(ext.feature_sensors, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    std0 = np.std([0.0, 1.0, 2.0, 5.0])
    np.testing.assert_allclose(feats[0, :6], [2.0, std0, 0.0, 5.0, 5.0, 1.6])
    np.testing.assert_allclose(feats[0, 6:], [5.0, 0.0, 5.0, 5.0, 5.0, 0.0], atol=1e-12)


def test_ecod_matches_pyod_for_a_single_window() -> None:
    """Our batch-independent ECOD equals PyOD's ECOD scoring one window against the training rows."""
    from pyod.models.ecod import ECOD

    rng = np.random.default_rng(2)
    train = rng.gamma(2.0, size=(300, 4)) * [1.0, -1.0, 1.0, 2.0]
    ours = _BatchIndependentEcod().fit(train)
    reference = ECOD().fit(train)
    for row in [train[0] * 0.9, np.array([0.1, -9.0, 30.0, 4.0]), np.median(train, axis=0)]:
        x = row[None, :]
        np.testing.assert_allclose(ours.decision_function(x), reference.decision_function(x), rtol=1e-12)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (PcaT2Q, {"variance": 0.0}),
        (PcaT2Q, {"score_steps": 0}),
        (PcaT2Q, {"attribution": "shapley"}),
        (EcodDetector, {"max_train": 1}),
        (IForestDetector, {"n_estimators": 0}),
        (DenseAutoencoder, {"latent": 0}),
        (DenseAutoencoder, {"val_fraction": 1.0}),
        (ConvAutoencoder, {"kernel_size": 4}),
        (LstmAutoencoder, {"device": "tpu"}),
        (LstmAutoencoder, {"lr": -1.0}),
    ],
)
def test_bad_hyper_parameters_fail_at_construction(cls: type, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


def test_pca_with_slopes_adds_up_and_round_trips() -> None:
    """Slope coordinates fold back onto their sensors: contributions still sum to the score, and state reloads."""
    rng = np.random.default_rng(3)
    load = np.cumsum(rng.normal(scale=0.1, size=(60, 30, 1)), axis=1)
    X = (load * [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=(60, 30, 3))).astype(np.float32)
    det = PcaT2Q(score_steps=4, slope_steps=10, attribution="decomposition").fit(X)
    np.testing.assert_allclose(det._contrib(X).sum(axis=1), det.decision_function(X))
    assert det.expected(X).shape == (60, 3) and det.components_ is not None and det.components_.shape[0] == 6
    iso = det.isolation(X)
    assert iso is not None and iso.fault_z.shape == (60, 3)
    tensors, meta = det.get_state()
    again = PcaT2Q.from_state(det.config(), tensors, meta)
    np.testing.assert_array_equal(again.decision_function(X), det.decision_function(X))


def test_pca_deviation_attribution_names_the_sensor_that_moved_and_round_trips() -> None:
    """Three sensors driven by one load; sensor 2 alone jumps far out of its range in the scored steps. The
    deviation attribution ranks it first with most of the share; scores do not depend on the attribution."""
    rng = np.random.default_rng(4)
    load = rng.normal(size=(80, 12, 1))
    X = (load * [1.0, 0.9, 0.8] + 0.05 * rng.normal(size=(80, 12, 3))).astype(np.float32)
    faulty = X[:5].copy()
    faulty[:, -4:, 2] += 6.0
    decomposition = PcaT2Q(score_steps=4, attribution="decomposition").fit(X)
    deviation = PcaT2Q(score_steps=4).fit(X)
    assert deviation.attribution == "deviation"  # the default
    np.testing.assert_array_equal(deviation.decision_function(faulty), decomposition.decision_function(faulty))
    shares = deviation.contributions(faulty)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (shares.argmax(axis=1) == 2).all() and (shares[:, 2] > 0.8).all()
    tensors, meta = deviation.get_state()
    again = PcaT2Q.from_state(deviation.config(), tensors, meta)
    assert again.attribution == "deviation"
    np.testing.assert_array_equal(again.contributions(faulty), shares)
    # A bundle saved before the option existed keeps the decomposition it named root causes by.
    legacy = {k: v for k, v in deviation.config().items() if k != "attribution"}
    older = PcaT2Q.from_state(legacy, tensors, meta)
    assert older.attribution == "decomposition"
    np.testing.assert_allclose(older.contributions(faulty), decomposition.contributions(faulty))


def test_pca_deviation_is_weighted_by_the_steps_that_carry_the_score() -> None:
    """Sensor 2 sits inside its normal range but near its edge for the whole window (a level following the day's
    warmth); sensor 1 leaves its range for two early scored steps, then the window is normal again (the tail of
    a short fault). Each step's share of the score goes to the sensors by their deviation at that step, so the
    two steps that made the window anomalous name sensor 1, where averaging deviations over the steps named
    sensor 2 (the live serve test named bearing_temp for a leak that way); the contributions add up to the score."""
    rng = np.random.default_rng(7)
    n, length = 120, 12
    load = rng.normal(size=(n, length, 1))
    level = rng.uniform(-1.0, 1.0, size=(n, 1, 1)) + 0.02 * rng.normal(size=(n, length, 1))
    X = np.concatenate([load * [1.0, 0.9] + 0.05 * rng.normal(size=(n, length, 2)), level], axis=2)
    X = X.astype(np.float32)
    faulty = X[:5].copy()
    faulty[:, :, 2] = 0.85
    faulty[:, -10:-8, 1] -= 2.0
    det = PcaT2Q(score_steps=10).fit(X)
    assert (det.contributions(faulty).argmax(axis=1) == 1).all()
    np.testing.assert_allclose(det._contrib(faulty).sum(axis=1), det.decision_function(faulty))
    unweighted = det._fold(det._standardised(faulty) ** 2, 3).mean(axis=1)
    assert (unweighted.argmax(axis=1) == 2).sum() >= 4  # what the step average named


def test_pca_movement_attribution_names_the_sensor_that_jumps_not_the_one_offset() -> None:
    """Three sensors driven by one slow load. In the scored windows sensor 0 sits at a steady offset far outside
    its range and sensor 2 jumps within the window. Movement names sensor 2 (decomposition names the offset
    sensor 0); a window where nothing moves gets uniform shares however far off it is; state round-trips."""
    rng = np.random.default_rng(6)
    # A slow load: each window at its own level, drifting a little within it (a machine between load changes).
    load = rng.normal(size=(80, 1, 1)) + np.cumsum(rng.normal(scale=0.05, size=(80, 12, 1)), axis=1)
    X = (load * [1.0, 0.9, 0.8] + 0.05 * rng.normal(size=(80, 12, 3))).astype(np.float32)
    faulty = X[:5].copy()
    faulty[:, :, 0] += 8.0
    faulty[:, -4:, 2] += 2.0
    decomposition = PcaT2Q(score_steps=4, attribution="decomposition").fit(X)
    movement = PcaT2Q(score_steps=4, attribution="movement").fit(X)
    np.testing.assert_array_equal(movement.decision_function(faulty), decomposition.decision_function(faulty))
    assert (decomposition.contributions(faulty).argmax(axis=1) == 0).all()
    shares = movement.contributions(faulty)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (shares.argmax(axis=1) == 2).all() and (shares[:, 2] > 0.8).all()
    steady = np.repeat(X[:5, -1:, :], 12, axis=1) + np.float32(5.0)  # far off, but not moving: nothing to name
    np.testing.assert_allclose(movement.contributions(steady), 1.0 / 3)
    tensors, meta = movement.get_state()
    again = PcaT2Q.from_state(movement.config(), tensors, meta)
    assert again.attribution == "movement"
    np.testing.assert_array_equal(again.contributions(faulty), shares)


def test_pca_sensor_limits_find_a_break_that_q_dilutes_and_round_trip() -> None:
    """Forty sensors, five of them tight copies of one load and the rest independent noise (many residual
    directions): one tight sensor leaving its partners by a small step is lost in Q, which sums every sensor's
    residual, but stands far beyond its own residual limit. Without the option nothing changes; old bundles
    (no saved limits) load with the option off."""
    rng = np.random.default_rng(5)
    n, steps, noisy = 300, 10, 35
    load = rng.normal(size=(n, steps, 1))
    tight = load * np.linspace(0.8, 1.2, 5) + 0.02 * rng.normal(size=(n, steps, 5))
    X = np.concatenate([tight, rng.normal(size=(n, steps, noisy))], axis=2).astype(np.float32)
    faulty = X[:100].copy()
    faulty[:, :, 0] += 1.5  # 75 times the tight sensor's noise, under 2 units of the noisy sensors'
    plain = PcaT2Q(variance=0.5).fit(X)
    limited = PcaT2Q(variance=0.5, sensor_limits=True).fit(X)
    assert plain.sensor_limit_ is None and limited.sensor_limit_ is not None
    # Same training scores' 99 % line for both: the share of faulty windows beyond it.
    found = {
        name: float((det.decision_function(faulty) > np.quantile(det.decision_function(X), 0.99)).mean())
        for name, det in (("plain", plain), ("limited", limited))
    }
    assert found["plain"] < 0.5 and found["limited"] > 0.95, found
    # The per-sensor statistic only adds: a window is never scored lower than by the combined index alone.
    assert (limited.decision_function(X) >= plain.decision_function(X) - 1e-9).all()
    tensors, meta = limited.get_state()
    again = PcaT2Q.from_state(limited.config(), tensors, meta)
    np.testing.assert_array_equal(again.decision_function(faulty), limited.decision_function(faulty))
    old = {k: v for k, v in tensors.items() if k not in ("sensor_limit", "sensor_union")}
    before = PcaT2Q.from_state(limited.config(), old, meta)
    assert not before.sensor_limits
    np.testing.assert_array_equal(before.decision_function(faulty), plain.decision_function(faulty))
    # A bundle saved before the union was scaled keeps its unscaled worst-sensor ratio.
    unscaled = PcaT2Q.from_state(limited.config(), {k: v for k, v in tensors.items() if k != "sensor_union"}, meta)
    assert unscaled.sensor_union_ == 1.0 and limited.sensor_union_ != 1.0


def test_pca_sensor_limits_add_no_more_false_alarms_than_the_index_allows() -> None:
    """Sixty independent sensors: each one passes its own 99 % limit on 1 % of training windows, so the worst of
    them passes on far more. Scaled, the worst sensor passes the combined index's 99 % training line on about
    1 % of windows, as the index itself does, and the union on at most the sum of the two."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 10, 60)).astype(np.float32)
    plain = PcaT2Q(variance=0.5).fit(X)
    limited = PcaT2Q(variance=0.5, sensor_limits=True).fit(X)
    line = np.quantile(plain.decision_function(X), 0.99)
    worst = (limited._sensor_residuals(X) / limited.sensor_limit_).max(axis=1)
    assert (worst > 1).mean() > 0.2  # unscaled: many sensors, many chances
    assert (worst * limited.sensor_union_ > line).mean() <= 0.011
    assert (limited.decision_function(X) > line).mean() <= 0.021


def test_iforest_scores_are_positive_and_old_bundles_keep_their_score() -> None:
    """The path-length anomaly score lies in (0, 1], so a threshold calibrated on normal windows is positive (PyOD's
    decision_function is negative for most normal windows). A bundle saved without the score marker keeps
    PyOD's score, which its calibrator was fitted on."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 8, 3)).astype(np.float32)
    det = IForestDetector(n_estimators=50).fit(X)
    scores = det.decision_function(X)
    assert (scores > 0).all() and (scores <= 1).all()
    assert np.quantile(scores, 0.5) > 0.3  # no training-percentile offset: normal windows are not near zero
    tensors, meta = det.get_state()
    assert meta["score"] == "path_length"
    np.testing.assert_array_equal(IForestDetector.from_state(det.config(), tensors, meta).decision_function(X), scores)
    legacy = IForestDetector.from_state(det.config(), tensors, {k: v for k, v in meta.items() if k != "score"})
    old = legacy.decision_function(X)
    assert (old < 0).mean() > 0.5  # PyOD's score, as such a bundle was calibrated on
    np.testing.assert_allclose(old - old.mean(), scores - scores.mean(), atol=1e-9)  # the same ranking, shifted


def test_a_wandering_level_may_wander_on_while_relations_and_large_excursions_still_score() -> None:
    """Sensor 0 random-walks over training (a thermocouple on a short span); 1 and 2 follow a shared load. Declared
    wandering, sensor 0 may sit 4 training spreads from its mean without an alarm, where the plain model alarms; a
    broken relation between 1 and 2 and a large excursion of 0 score as before."""
    rng = np.random.default_rng(5)
    n, length = 3000, 5
    walk = np.cumsum(rng.normal(scale=0.05, size=n))
    load = rng.normal(size=n)
    series = np.stack([walk, load + 0.1 * rng.normal(size=n), 2 * load + 0.1 * rng.normal(size=n)], axis=1)
    X = np.lib.stride_tricks.sliding_window_view(series, length, axis=0).transpose(0, 2, 1)
    spread = series[:, 0].std()

    def shifted(j: int, by: float) -> np.ndarray:
        """The last windows with sensor ``j`` moved to ``by`` from its training mean."""
        out = X[-200:].copy()
        out[:, :, j] += series[:, j].mean() + by - out[:, :, j].mean()
        return out

    plain, wandering = PcaT2Q(score_steps=length).fit(X), PcaT2Q(score_steps=length, wandering=[0]).fit(X)
    assert wandering.config()["wandering"] == [0] and plain.config()["wandering"] == []
    for model in (plain, wandering):
        limit = np.quantile(model.decision_function(X), 0.99)
        broken = X[-200:].copy()
        broken[:, :, 1] -= 1.5  # sensor 1 leaves its relation to sensor 2
        assert np.median(model.decision_function(broken)) > 3 * limit
        assert np.median(model.decision_function(shifted(0, 12 * spread))) > 3 * limit
        ratio = np.median(model.decision_function(shifted(0, 4 * spread))) / limit
        if model is plain:
            assert ratio > 2.0  # its training level trusted: 4 spreads from its mean alarms
        else:
            assert ratio < 1.0  # within the wander one more training span allows (sqrt(8) = 2.8 spreads, 1 sigma)
    with pytest.raises(ValueError, match="wandering"):
        PcaT2Q(wandering=[-1])
    with pytest.raises(ValueError, match="out of range"):
        PcaT2Q(wandering=[3]).fit(X)


def test_a_wandering_level_isolates_as_without_its_room() -> None:
    """The room is for the alarm only: a worn bearing (temperature and vibration rising together) must not read as
    the vibration sensor drifting because the temperature was free to move (the demo's worn bearings did). So a
    detector with wandering levels isolates with the relations training showed, bit for bit the plain detector's,
    also after a save and load; a bundle saved before that isolates with its own model as it always did."""
    rng = np.random.default_rng(8)
    n, length = 3000, 10
    load = rng.normal(size=n)
    temp = np.cumsum(rng.normal(scale=0.05, size=n)) + 0.5 * load
    series = np.stack([temp, load + 0.2 * rng.normal(size=n), 2 * load + 0.2 * rng.normal(size=n)], axis=1)
    X = np.lib.stride_tricks.sliding_window_view(series, length, axis=0).transpose(0, 2, 1)
    worn = X[-200:].copy()
    worn[:, :, 0] += 3 * series[:, 0].std()  # temperature and vibration up together
    worn[:, :, 1] += 3 * series[:, 1].std()
    plain, wandering = PcaT2Q(score_steps=length).fit(X), PcaT2Q(score_steps=length, wandering=[0]).fit(X)
    expected = plain.isolation(worn)
    assert expected is not None
    tensors, meta = wandering.get_state()
    again = PcaT2Q.from_state(wandering.config(), tensors, meta)
    for model in (wandering, again):
        got = model.isolation(worn)
        assert got is not None
        np.testing.assert_array_equal(got.fault_z, expected.fault_z)
        np.testing.assert_array_equal(got.remaining, expected.remaining)
        np.testing.assert_array_equal(model.decision_function(worn), wandering.decision_function(worn))
    # Isolating with the widened model itself (what bundles saved before this do) differs: the room shows in it.
    legacy = PcaT2Q.from_state(wandering.config(), {k: v for k, v in tensors.items() if "." not in k}, meta)
    assert legacy.context_ is None
    old = legacy.isolation(worn)
    assert old is not None and not np.allclose(old.remaining, expected.remaining)
