"""What each sensor did in training, learnt once and saved with the preprocessing: its level and spreads, the
range it kept to, and what it normally does that a health check would otherwise call a fault.

The health checks (:mod:`linewatch.models.health`) compare every scored window with these statistics, in engineering
units. Kept apart from the windowing (:mod:`linewatch.models.windows`) because they answer another question: not
"what does the detector see" but "what is normal for this instrument" (how long it repeats a value, how far it
jumps out and back, how still it sits), each learnt from the training data as the stuck check always was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
#: Gaussian-consistency constants: IQR / 1.349 and MAD * 1.4826 estimate the standard deviation of normal data.
IQR_TO_SIGMA: Final = 1.349
MAD_TO_SIGMA: Final = 1.4826
#: Scale floor relative to |median| and absolute: a near-constant sensor must not turn noise into huge values.
REL_SCALE_FLOOR: Final = 1e-3
ABS_SCALE_FLOOR: Final = 1e-6


def robust_scale(values: F64, median: float) -> float:
    """IQR/1.349, else MAD*1.4826, else the std (for mostly-constant data), floored.

    The floor ``max(1e-3 * |median|, 1e-6)`` keeps a constant or quantised sensor from turning its last digit
    of noise into scaled values of thousands, which would dominate every detector.
    """
    q1, q3 = np.percentile(values, [25.0, 75.0])
    scale = float(q3 - q1) / IQR_TO_SIGMA
    if scale <= 0:
        scale = float(np.median(np.abs(values - median))) * MAD_TO_SIGMA
    if scale <= 0:
        scale = float(np.std(values))
    return max(scale, REL_SCALE_FLOOR * abs(median), ABS_SCALE_FLOOR)


def _longest_repeat(values: F64) -> int:
    """Longest run of exactly equal consecutive values (1 when nothing repeats)."""
    if values.size == 0:
        return 0
    breaks = np.flatnonzero(np.diff(values) != 0)
    bounds = np.concatenate([[-1], breaks, [values.size - 1]])
    return int(np.diff(bounds).max())


#: What training showed this many times is a sensor's normal (the third largest out-and-back move, the third
#: flattest block of readings): one or two glitches in the training history do not blind a health check.
NORMAL_RANK: Final = 3
#: Readings per block that normal flatness is read on: the health check's least readings for a flat line.
FLAT_BLOCK: Final = 10


def normal_spike(values: F64, observed: npt.NDArray[np.bool_], diff_scale: float) -> float:
    """The :data:`NORMAL_RANK`-th largest out-and-back move of one sensor, in units of ``diff_scale``.

    Why: the spike check flags a jump answered at once by a jump back, larger than a fixed number of the sensor's
    step-to-step spreads. Some instruments do that in normal operation (a flow meter in turbulent flow: on the
    SKAB pump testbed the flow sensor's normal readings were flagged as spiking in 29 % of windows), and a
    spike-shaped move that training showed again and again is the sensor's normal, as a repeat training showed
    is not "stuck". An out-and-back move is two consecutive observed differences of opposite sign; its size is
    the smaller of the two. 0 when training shows fewer such moves.
    """
    pair = observed[1:] & observed[:-1]
    d = np.diff(values)
    a, b = d[:-1], d[1:]
    both = pair[:-1] & pair[1:] & (a * b < 0)
    moves = np.sort(np.minimum(np.abs(a[both]), np.abs(b[both])))
    if moves.size < NORMAL_RANK:
        return 0.0
    return float(moves[-NORMAL_RANK] / diff_scale)


def normal_flatness(values: F64, observed: npt.NDArray[np.bool_], diff_scale: float) -> float:
    """The :data:`NORMAL_RANK`-th smallest spread of consecutive blocks of :data:`FLAT_BLOCK` observed readings of
    one sensor, in units of ``diff_scale``; 1.0 (one step-to-step spread) when training has fewer blocks.

    Why: the flat-line check flags a window whose readings vary far less than the sensor's step-to-step noise.
    A sensor that sits still in normal operation (a flow at zero while its pump idles, a position at its end
    stop, a server metric at rest) does that in training too, and a flatness training showed again and again is
    the sensor's normal, as a repeat training showed is not "stuck".
    """
    v = values[observed]
    blocks = v.size // FLAT_BLOCK
    if blocks < NORMAL_RANK:
        return 1.0
    spreads = np.sort(v[: blocks * FLAT_BLOCK].reshape(blocks, FLAT_BLOCK).std(axis=1))
    return float(spreads[NORMAL_RANK - 1] / diff_scale)


#: The statistics of what a sensor normally does that bundles saved before them lack (None there).
_LEARNT: Final = ("normal_spike", "normal_flat")


def _optional(data: dict[str, list[float]], key: str) -> F64 | None:
    return None if data.get(key) is None else np.asarray(data[key], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SensorStats:
    """Per-sensor training statistics, each an array ``(S,)`` in sensor order (engineering units)."""

    median: F64
    scale: F64
    p001: F64  # 0.1th percentile of observed training values
    p999: F64  # 99.9th percentile
    min: F64
    max: F64
    std: F64
    diff_scale: F64  # robust scale of first differences between consecutive observed steps
    change_fraction: F64  # share of consecutive observed steps whose value changed
    max_repeat: F64  # longest run of an exactly repeated value in training
    observed_rate: F64  # share of training steps with a reading (a slow sensor reports every few steps)
    #: :func:`normal_spike` in ``diff_scale`` units; None in bundles saved before it existed (no spike is normal).
    normal_spike: F64 | None = None
    #: :func:`normal_flatness` in ``diff_scale`` units; None in bundles saved before it existed.
    normal_flat: F64 | None = None

    @classmethod
    def from_series(cls, values: F64, observed: npt.NDArray[np.bool_], sensors: Sequence[str]) -> SensorStats:
        rows: list[tuple[Any, ...]] = []
        for j, name in enumerate(sensors):
            column, seen = values[:, j], observed[:, j]
            v = column[seen]
            if v.size == 0:
                raise ValueError(f"sensor {name!r} has no observed training data")
            med = float(np.median(v))
            scale = robust_scale(v, med)
            pair = seen[1:] & seen[:-1]
            d = np.diff(column)[pair]
            dscale = max(robust_scale(d, float(np.median(d))), 1e-3 * scale) if d.size else scale
            p001, p999 = np.percentile(v, [0.1, 99.9])
            changed = float(np.mean(d != 0)) if d.size else 0.0
            extremes, rate = (v.min(), v.max(), v.std()), seen.mean()
            normal = (normal_spike(column, seen, dscale), normal_flatness(column, seen, dscale))
            rows.append((med, scale, p001, p999, *extremes, dscale, changed, _longest_repeat(v), rate, *normal))
        return cls(*np.asarray(rows, dtype=np.float64).reshape(-1, len(fields(cls))).T)

    def to_dict(self) -> dict[str, list[float]]:
        return {
            f.name: [float(x) for x in getattr(self, f.name)] for f in fields(self) if getattr(self, f.name) is not None
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> SensorStats:
        return cls(
            **{f.name: np.asarray(data[f.name], dtype=np.float64) for f in fields(cls) if f.name not in _LEARNT},
            normal_spike=_optional(data, "normal_spike"),
            normal_flat=_optional(data, "normal_flat"),
        )
