"""Which trained model a new machine or site starts from: ``linewatch train --adapt-from SOURCE``.

A plant adds a pump like the ones it has, or installs linewatch at a second site with the same machine types.
Waiting days for enough normal history before anything is watched is the usual answer, and the wrong one: the
model of a sibling group already knows how the sensors of that machine type move together. What differs from
one machine to the next is mostly where each sensor sits and how much it moves (size, duty, transmitter
calibration); :func:`linewatch.models.train.train_group` relearns those from a few hours of the new group's data
and keeps the detector and its threshold (raised only when the new data asks for a higher one).

Measured (README, "Adapting a model to a new machine"; ``tests/bench/test_bench_adapt.py``): on the simulated
plant a bigger pump adapted from a sibling with 6 h of its data raised 0.5 false machine alerts per week (mean of
5 seeds; 17 before the level was set for the whole day) against 133 for a model trained fresh on those hours; on
SMD, with a day of a machine's data, VUS-PR 0.485 against 0.333 fresh (0.456 with the machine's full history).
Hours are still not days: its false *sensor* alerts (0.5 per week; 8.7 before spreads were read off the
relations) stay above a fully trained model's (0.11).

``SOURCE`` is an asset group of this installation's registry (its champion), ``GROUP@VERSION`` for a given
version, or the path of a bundle directory copied from another site. Bundles are read with the same checks as
serving uses (per-file sha256, no pickle).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Detector
from linewatch.models.bundle import read_bundle
from linewatch.models.calibration import Calibrator
from linewatch.models.model import Model
from linewatch.models.registry import Registry, RegistryError
from linewatch.models.windows import F64, Preprocessor, Windows

#: Bounds on the size ratio between the new machine and the source: a level far outside them says more about a
#: different sensor range or unit than about size, so the spread is not scaled further than this.
SIZE_RATIO_BOUNDS = (0.25, 4.0)


class AdaptSourceError(ValueError):
    """The model to adapt cannot be found or read; the message says which and why."""


def load_source(registry: Registry, source: str) -> Model:
    """The model ``source`` names: a bundle directory, ``GROUP@VERSION``, or ``GROUP`` (its champion)."""
    path = Path(source)
    group, _, version = source.partition("@")
    try:
        if group not in registry.groups() and path.is_dir():  # a group of this registry wins over a directory
            manifest, tensors = read_bundle(path)
            return Model.from_bundle(manifest, tensors, path.name)
        if version:
            if version not in registry.versions(group):
                known = ", ".join(registry.versions(group)) or "none"
                raise AdaptSourceError(f"asset group {group!r} has no model version {version!r} (versions: {known})")
            manifest, tensors = read_bundle(registry.group_dir(group) / version)
            return Model.from_bundle(manifest, tensors, version)
        manifest, tensors, champion = registry.load_champion(group)
        return Model.from_bundle(manifest, tensors, champion)
    except AdaptSourceError:
        raise
    except (RegistryError, ValueError, OSError, KeyError) as exc:  # BundleError is a ValueError
        raise AdaptSourceError(f"cannot adapt from {source!r}: {exc}") from exc


def covered_hours(pre: Preprocessor) -> npt.NDArray[np.bool_] | None:
    """The clock hours ``pre`` was fitted on (24 bools, on its spec's clock); None without a daily profile."""
    if pre.daily_median_ is None:
        return None
    return np.asarray(~np.isnan(pre.daily_median_).all(axis=1), dtype=np.bool_)


#: Fewest clock hours with a median for a profile to be smoothed; with fewer it is taken as it is.
SMOOTH_MIN_HOURS = 12
#: Harmonics of the day kept in a smoothed profile: the first two follow a day's warmth and a two-shift day.
DAILY_HARMONICS = 2


def daily_swing(profile: F64) -> F64:
    """Hourly medians ``(24, S)`` smoothed to the first :data:`DAILY_HARMONICS` harmonics of the day (least squares
    over the hours that have a median, evaluated at those hours).

    Why: a source trained on two days of random loads has hourly medians that differ by the loads that happened to
    fall in each hour. Carried onto a new machine as if the day had that shape, they move its level away from the
    truth (simulated flow: 157 carried, 160 from the new hours, 168 true). A daily swing (a bearing's warmth, the
    shifts) is smooth over the day and survives the smoothing; hour-to-hour load noise mostly does not (18 hours
    fitted with five coefficients keep about a quarter of its variance). The mean over those hours is unchanged.
    """
    hours = np.arange(24, dtype=np.float64)
    angle = 2 * np.pi * hours / 24
    basis = np.column_stack(
        [np.ones(24), *(f(k * angle) for k in range(1, DAILY_HARMONICS + 1) for f in (np.cos, np.sin))]
    )
    out = profile.copy()
    for j in range(profile.shape[1]):
        seen = ~np.isnan(profile[:, j])
        if seen.sum() < SMOOTH_MIN_HOURS:
            continue
        coef, *_ = np.linalg.lstsq(basis[seen], profile[seen, j], rcond=None)
        out[:, j] = np.where(seen, basis @ coef, np.nan)
    return out


def hours_level(pre: Preprocessor, hours: npt.NDArray[np.bool_] | None) -> tuple[F64, F64]:
    """Each sensor's level over the clock ``hours`` (24 bools) and over the whole day, from ``pre``'s profile.

    Both are means of hourly medians (smoothed to the day's swing, :func:`daily_swing`), so the two compare like
    with like. Without a profile the training median stands for both (no time-of-day correction); where the
    profile has none of those hours, its daily level stands for the hours.
    """
    median = pre.stats.median
    if pre.daily_median_ is None or hours is None:
        return median, median
    profile = daily_swing(pre.daily_median_)
    seen = ~np.isnan(profile)
    filled = np.where(seen, profile, 0.0)
    day = np.where(seen.any(axis=0), filled.sum(axis=0) / np.maximum(seen.sum(axis=0), 1), median)
    chosen = seen & hours[:, None]
    at_hours = np.where(chosen.any(axis=0), (filled * chosen).sum(axis=0) / np.maximum(chosen.sum(axis=0), 1), day)
    return np.asarray(at_hours, dtype=np.float64), np.asarray(day, dtype=np.float64)


def adapted_scaling(new: Preprocessor, source: Preprocessor, spread: F64 | None = None) -> Preprocessor:
    """``new`` (fitted on the new group's few hours) with each sensor's level set for the whole day, its spread no
    narrower than the source's spread times the ratio of the two machines' levels (or ``spread``, as
    :func:`related_spreads` read it off the relations), and its training range no narrower than the source's
    carried over.

    Why the spread: hours of data cover only some of the loads a machine sees, so their spread underestimates
    the real one and every later load change would look anomalous (simulated bigger pump, 6 h of data: 15-30 %
    of a normal day's windows over the threshold). Machines of one type differ mainly in size, and a bigger
    machine's readings move proportionally more, so the source's spread times the size ratio is the better
    estimate; the wider of the two is kept, so a new machine that really is noisier is not squeezed.

    Why the level: a sensor that follows the day (a bearing's warmth, the shifts' loads) read over a few hours
    sits where it sits at those hours. Where both bundles carry a time-of-day profile, the size ratio compares
    the new hours with the source *at the same clock hours*, and the new level is the source's daily level
    carried over (simulated bigger pump learnt from 00:00-06:00: the night's bearing level made the day's warmth
    a fault). Each profile is on its own site's clock (``WindowSpec.timezone``), so a source from a site in
    another time zone lines up by local hour: the morning shift with the morning shift.
    """
    if new.sensors_ != source.sensors_:
        raise ValueError(f"sensors differ: {new.sensors_} vs {source.sensors_}")
    ours, theirs = new.stats, source.stats
    hours = covered_hours(new)
    anchor, theirs_day = hours_level(source, hours)
    level, _ = hours_level(new, hours)  # the hours' level measured the same way as the source's at those hours
    lo, hi = SIZE_RATIO_BOUNDS
    # A level within one spread of zero (a signed or near-zero reading) says nothing about size: ratio 1 there.
    sized = (np.abs(anchor) > theirs.scale) & (np.abs(level) > ours.scale)
    ratio = np.where(sized, np.clip(np.abs(level) / np.maximum(np.abs(anchor), 1e-12), lo, hi), 1.0)
    scale = np.maximum(ours.scale, theirs.scale * ratio) if spread is None else spread

    # The source's values carried onto the new machine: from its level at the new hours to the new hours' level,
    # its deviations scaled by the adapted spread. Gives the daily level and widens the hours' own training
    # range, which the health checks' out-of-range test would otherwise flag at every load the hours missed.
    def carried(x: F64) -> F64:
        return np.asarray(level + (x - anchor) * (scale / theirs.scale), dtype=np.float64)

    median = carried(theirs_day)
    profile = None if source.daily_median_ is None else carried(source.daily_median_)
    return replace(
        new,
        stats_=replace(
            ours,
            median=median,
            scale=scale,
            p001=np.minimum(ours.p001, carried(theirs.p001)),
            p999=np.maximum(ours.p999, carried(theirs.p999)),
            min=np.minimum(ours.min, carried(theirs.min)),
            max=np.maximum(ours.max, carried(theirs.max)),
            max_repeat=np.maximum(ours.max_repeat, theirs.max_repeat),
            normal_spike=None
            if ours.normal_spike is None or theirs.normal_spike is None
            else np.maximum(ours.normal_spike, theirs.normal_spike),
            normal_flat=None
            if ours.normal_flat is None or theirs.normal_flat is None
            else np.minimum(ours.normal_flat, theirs.normal_flat),
        ),
        daily_median_=profile,
    )


#: Least correlation, over the new hours, between a sensor and what its partners expect of it for the relation to
#: set its spread: below it the partners' noise or a lag (a bearing's warmth) would dominate the estimate.
RELATION_MIN_CORRELATION = 0.9
#: Least share of a sensor's standardised value the source model draws from its partners (1 - its own weight in
#: its expectation): a sensor that is a principal direction by itself has no partners to be measured against.
RELATION_MIN_EXPLAINED = 0.5
#: Least spread of the partners' expectation over the hours, in the source's spreads: hours at one load do not
#: show how far a sensor moves per unit of load.
RELATION_MIN_MOVE = 0.3
#: The relations may move a spread by at most this factor either way from the size ratio's.
RELATION_MAX_FACTOR = 2.0
#: Windows the relations are read on, evenly spread over the hours: a slope needs a few thousand, and the model
#: runs twice per sensor and round on each.
RELATION_MAX_WINDOWS = 5000


def related_spreads(adapted: Preprocessor, source: Model, new_windows: Windows, rounds: int = 3) -> F64:
    """Each sensor's spread read off the source model's relations on the new hours: how far, in engineering units,
    the sensor moves per spread that its partners say it should move.

    Why: the size ratio (:func:`adapted_scaling`) is read from levels, and a sensor with an offset (a stiffer base
    adds vibration at every load, a warmer room a bearing's degrees) gets a ratio that is not its size. Its
    spread is then off by a fraction, and at loads far from its median the sensor reads off its partners by that
    fraction of the load's swing: the drift check reports it (simulated bigger pump, seed 1: vibration's spread
    10 % too wide against its partners, false sensor alerts at high load). Each sensor's expectation from its
    partners alone (its own reading left out) is regressed on its reading; the slope is its spread. The partners'
    spreads are themselves estimates, so a few rounds let them settle together. Relations cannot tell the
    machine's size (every spread doubled relates as well), so the spreads read are scaled to keep the size ratio's
    median. Only where the partners explain the sensor, move over the hours and track it closely, and at least
    two sensors qualify; elsewhere, and for detectors without an expectation, ``adapted``'s spread stands. A
    spread read off the relations may be narrower than the hours' own: a sensor that tracks its partners that
    closely moved with the load, not with noise, and hours that swept a wider load range than the source's
    training widen the hours' spread without the sensor being any bigger (simulated bigger pump at a second site,
    seed 3: flow 11 % and vibration 9 % too wide against their partners, held there by the hours' spread, and
    drift alerts on current and pressure at full load).
    """
    scale = adapted.stats.scale.copy()
    detector = source.detector
    if type(detector)._expected is Detector._expected or not len(new_windows):
        return scale
    n_sensors = len(adapted.sensors_)
    seen = np.flatnonzero(np.isfinite(new_windows.raw).all(axis=(1, 2)))
    if seen.size < 20:
        return scale
    seen = seen[np.linspace(0, seen.size - 1, min(seen.size, RELATION_MAX_WINDOWS)).round().astype(int)]
    raw_windows = new_windows.raw[seen]
    deviation = raw_windows[:, -1, :] - adapted.stats.median
    X = np.array(new_windows.X[seen], dtype=np.float64)
    lo, hi = 1.0 / RELATION_MAX_FACTOR, RELATION_MAX_FACTOR
    start = scale.copy()
    for _ in range(rounds):
        X[:, :, :n_sensors] = (raw_windows - adapted.stats.median) / scale
        updated, read = scale.copy(), np.zeros(n_sensors, dtype=bool)
        for j in range(n_sensors):
            # The expectation is affine in the sensor's own value for a linear model: two evaluations give its
            # own weight and the partners' part, and so the expectation with the sensor left out.
            X[:, :, j] = 0.0
            at_zero = detector.expected(X)[:, j]
            X[:, :, j] = 1.0
            own = float(np.median(detector.expected(X)[:, j] - at_zero))
            X[:, :, j] = (raw_windows[:, :, j] - adapted.stats.median[j]) / scale[j]
            if not 1.0 - own >= RELATION_MIN_EXPLAINED:
                continue
            partners = at_zero / (1.0 - own)
            if partners.std() < RELATION_MIN_MOVE or deviation[:, j].std() <= 0:
                continue
            if np.corrcoef(partners, deviation[:, j])[0, 1] < RELATION_MIN_CORRELATION:
                continue
            slope = float(np.cov(partners, deviation[:, j])[0, 1] / partners.var())
            updated[j] = np.clip(slope, start[j] * lo, start[j] * hi)
            read[j] = True
        if read.sum() >= 2:
            # Relations fix spreads relative to one another, not the machine's size: that stays the size
            # ratio's, taken from the sensors it got right (the median), so one offset sensor cannot pull the
            # others' spreads towards its own error.
            updated[read] /= np.median(updated[read] / start[read])
        scale = np.where(read, updated, start)
    return np.asarray(scale, dtype=np.float64)


def related_levels(
    adapted: Preprocessor, source: Model, hours: npt.NDArray[np.bool_] | None, new_windows: Windows, rounds: int = 2
) -> Preprocessor:
    """``adapted`` with each level moved so that, on the new hours, the source model's learned relations between
    sensors hold as well as they held on the source at those clock hours.

    Why: a level set from hours (or carried from the source's day) still carries whatever the hours' load mix
    put in it, and a sensor whose level is off by a fraction of its spread, with every partner right, is exactly
    what the drift check looks for (simulated bigger pump, 6 h at night: vibration read 2.5 fault spreads off its
    partners all week). The model's expectation (its reconstruction from the partners) says where each sensor
    "should" sit given the others; the part of the hours' mean that the relations do not explain is moved into
    the level, less what the source itself shows at those hours (the day's warmth that no partner carries). For
    a linear model (PCA) one round is exact; an autoencoder's expectation is not linear, hence ``rounds``.
    Detectors without an expectation of their own (it would be the training level) are left as they are.
    """
    detector = source.detector
    if type(detector)._expected is Detector._expected or not len(new_windows):
        return adapted
    n_sensors = len(adapted.sensors_)
    anchor, _ = hours_level(source.preprocessor, hours)
    src = source.preprocessor.stats
    offset = (anchor - src.median) / src.scale  # the source's own mean at those hours, in its scaled units
    steady = np.zeros((1, *new_windows.X.shape[1:]))
    steady[..., :n_sensors] = offset
    if steady.shape[2] >= 2 * n_sensors:  # lag inputs: a steady reading's lag is the reading
        steady[..., n_sensors : 2 * n_sensors] = offset
    own = offset - detector.expected(steady)[0, :n_sensors]
    raw = new_windows.raw[:, -1, :]  # engineering units: rescaled below with each round's levels
    seen = np.isfinite(raw).all(axis=1)
    if not seen.any():
        return adapted
    X = np.array(new_windows.X[seen], dtype=np.float64)
    for _ in range(rounds):
        stats = adapted.stats
        X[:, :, :n_sensors] = (new_windows.raw[seen] - stats.median) / stats.scale
        X[:, :, :n_sensors] = np.where(np.isfinite(X[:, :, :n_sensors]), X[:, :, :n_sensors], 0.0)
        unexplained = (X[:, -1, :n_sensors] - detector.expected(X)[:, :n_sensors]).mean(axis=0) - own
        shift = unexplained * stats.scale
        profile = None if adapted.daily_median_ is None else adapted.daily_median_ + shift  # moves with the level
        adapted = replace(adapted, stats_=replace(stats, median=stats.median + shift), daily_median_=profile)
    return adapted


def adapted_calibration(new: Calibrator, source: Calibrator) -> Calibrator:
    """The source's threshold unless the new group's held-out data already calls for a higher one.

    Why: a threshold is an extreme quantile of normal scores, and hours of held-out data do not show that tail
    (simulated bigger pump, 1.5 h held out: threshold 1.29 against the source's 4.85, 13 % of a normal day's
    windows over it). Raising is safe; lowering on thin evidence is what floods a new machine with alarms.
    """
    return new if new.threshold > source.threshold else source
