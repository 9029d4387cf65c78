"""Which trained model a new machine or site starts from: ``linewatch train --adapt-from SOURCE``.

A plant adds a pump like the ones it has, or installs linewatch at a second site with the same machine types.
Waiting days for enough normal history before anything is watched is the usual answer, and the wrong one: the
model of a sibling group already knows how the sensors of that machine type move together. What differs from
one machine to the next is mostly where each sensor sits and how much it moves (size, duty, transmitter
calibration); :func:`linewatch.models.train.train_group` relearns those from a few hours of the new group's data
and keeps the detector and its threshold (raised only when the new data asks for a higher one).

Measured (README, "Adapting a model to a new machine"; ``tests/bench/test_bench_adapt.py``): on the simulated
plant a bigger pump adapted from a sibling with 6 h of its data raised 17 false machine alerts per week (mean of 5
seeds) against 133 for a model trained fresh on those hours; on SMD, with a day of a machine's data, VUS-PR 0.457
against 0.333 fresh (0.456 with the machine's full history). Hours are still not days: it is a start.

``SOURCE`` is an asset group of this installation's registry (its champion), ``GROUP@VERSION`` for a given
version, or the path of a bundle directory copied from another site. Bundles are read with the same checks as
serving uses (per-file sha256, no pickle).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from linewatch.models.bundle import read_bundle
from linewatch.models.calibration import Calibrator
from linewatch.models.model import Model
from linewatch.models.registry import Registry, RegistryError
from linewatch.models.windows import Preprocessor

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


def adapted_scaling(new: Preprocessor, source: Preprocessor) -> Preprocessor:
    """``new`` (fitted on the new group's few hours) with each sensor's spread no narrower than the source's
    spread times the ratio of the two levels, and its training range no narrower than the source's carried over.

    Why: hours of data cover only some of the loads a machine sees, so their spread underestimates the real one
    and every later load change would look anomalous (simulated bigger pump, 6 h of data: 15-30 % of a normal
    day's windows over the threshold). Machines of one type differ mainly in size, and a bigger machine's
    readings move proportionally more, so the source's spread times the size ratio is the better estimate; the
    wider of the two is kept, so a new machine that really is noisier is not squeezed.
    """
    if new.sensors_ != source.sensors_:
        raise ValueError(f"sensors differ: {new.sensors_} vs {source.sensors_}")
    ours, theirs = new.stats, source.stats
    lo, hi = SIZE_RATIO_BOUNDS
    # A level within one spread of zero (a signed or near-zero reading) says nothing about size: ratio 1 there.
    sized = (np.abs(theirs.median) > theirs.scale) & (np.abs(ours.median) > ours.scale)
    ratio = np.where(sized, np.clip(np.abs(ours.median) / np.maximum(np.abs(theirs.median), 1e-12), lo, hi), 1.0)
    scale = np.maximum(ours.scale, theirs.scale * ratio)

    # The source's training range, carried onto the new machine (its level, the adapted spread), widens the
    # hours' own range: the health checks' out-of-range test would otherwise flag every load the hours missed.
    def carried(x: np.ndarray) -> np.ndarray:
        return np.asarray(ours.median + (x - theirs.median) * (scale / theirs.scale), dtype=np.float64)

    return replace(
        new,
        stats_=replace(
            ours,
            scale=scale,
            p001=np.minimum(ours.p001, carried(theirs.p001)),
            p999=np.maximum(ours.p999, carried(theirs.p999)),
            min=np.minimum(ours.min, carried(theirs.min)),
            max=np.maximum(ours.max, carried(theirs.max)),
            max_repeat=np.maximum(ours.max_repeat, theirs.max_repeat),
        ),
    )


def adapted_calibration(new: Calibrator, source: Calibrator) -> Calibrator:
    """The source's threshold unless the new group's held-out data already calls for a higher one.

    Why: a threshold is an extreme quantile of normal scores, and hours of held-out data do not show that tail
    (simulated bigger pump, 1.5 h held out: threshold 1.29 against the source's 4.85, 13 % of a normal day's
    windows over it). Raising is safe; lowering on thin evidence is what floods a new machine with alarms.
    """
    return new if new.threshold > source.threshold else source
