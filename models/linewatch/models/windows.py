"""Windows: the preprocessing saved in every model bundle and replayed exactly in serving.

A wide frame (one row per cadence step, a column per sensor and ``<sensor>:observed`` masks, see
:func:`linewatch.ingest.reader.wide_frame`) becomes sliding windows ``(n, L, S)``: gaps are filled forward from
the last *observed* value for at most ``max_gap_steps`` steps (longer gaps stay gaps, so a silent sensor is not
disguised as a flat line), values are robust-scaled with statistics learned on training data only, and what is
still missing becomes 0, the training median. Detectors see only ``X``; health checks see ``raw`` (engineering
units, NaN wherever the sensor did not report) because a filled value would look like a stuck sensor.

Windows are numpy views over one scaled copy of the series (``sliding_window_view``), read-only, so a training
set of long windows with stride 1 costs the memory of the series, not ``L`` times it.

Derived inputs (``WindowSpec.lag_s``, ``WindowSpec.daily``) follow the sensors in ``X``: per sensor a first-order
lag of its scaled values (:func:`lag_filter`, time constant ``lag_s``, over the ``history_steps`` before each
step), and the time of day on the plant's clock (``WindowSpec.timezone``). Why: a window is a minute, but a bearing
temperature follows load through a thermal lag of ten minutes and more, and the day's ambient swing on top; without
the slow context a per-step model cannot tell a temperature that lags a load change from one that drifts, so the
spread it must allow the temperature is larger than the drift. With them, measured on the simulated plant, every
injected bearing temperature drift stood out (see the issue notes). A window therefore needs ``history_steps`` rows
before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt
import polars as pl

from linewatch.core.localtime import UTC_NAME, check_time_zone, local_us
from linewatch.ingest.reader import observed_column, wide_frame
from linewatch.models.derived import LAG_HISTORY, derived_inputs
from linewatch.models.sensor_stats import SensorStats

F64 = npt.NDArray[np.float64]
_US: Final = timedelta(microseconds=1)


class MissingSensorsError(ValueError):
    """The frame lacks sensors the preprocessing was fitted on; ``missing`` names them."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(f"sensors missing from the data: {', '.join(self.missing)}")


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How series are cut into windows. Stored in the bundle; serving must use the same one."""

    cadence_s: float
    length: int
    stride: int = 1
    max_gap_steps: int = 0
    min_observed_fraction: float = 0.8
    lag_s: float = 0.0  # time constant of the lag inputs (0: none), see the module docstring
    daily: bool = False  # time-of-day inputs
    #: The plant's clock for the time-of-day inputs and the daily profile (:mod:`linewatch.core.localtime`);
    #: bundles saved before it existed read as UTC, the clock they were trained on.
    timezone: str = UTC_NAME

    def __post_init__(self) -> None:
        check_time_zone(self.timezone)
        if self.cadence_s <= 0 or timedelta(seconds=self.cadence_s) // _US <= 0:
            raise ValueError(f"cadence_s must be positive, got {self.cadence_s}")
        if self.length < 1 or self.stride < 1 or self.max_gap_steps < 0:
            raise ValueError("length and stride must be >= 1 and max_gap_steps >= 0")
        if not 0.0 <= self.min_observed_fraction <= 1.0:
            raise ValueError("min_observed_fraction must be in [0, 1]")
        if not (self.lag_s == 0.0 or self.lag_s >= self.cadence_s):
            raise ValueError(f"lag_s must be 0 (off) or at least one cadence step, got {self.lag_s}")

    @property
    def lag_steps(self) -> float:
        """The lag time constant in steps (0: no lag inputs)."""
        return self.lag_s / self.cadence_s

    @property
    def history_steps(self) -> int:
        """Steps before a window's first step that its lag inputs read (:data:`LAG_HISTORY` time constants)."""
        return math.ceil(LAG_HISTORY * self.lag_steps) if self.lag_s else 0

    def n_inputs(self, n_sensors: int) -> int:
        """Channels of ``Windows.X``: the sensors, a lag input per sensor, and two time-of-day inputs."""
        return n_sensors * (2 if self.lag_s else 1) + (2 if self.daily else 0)

    @property
    def cadence(self) -> timedelta:
        return timedelta(seconds=self.cadence_s)

    @property
    def cadence_us(self) -> int:
        return self.cadence // _US

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True, slots=True)
class Windows:
    """A batch of windows. ``X`` feeds detectors; ``raw``/``mask``/``last_raw`` feed health checks and alerts.

    ``coverage`` is, per window, the smallest share over sensors of steps that hold a value (observed or filled
    within the bound); ``valid`` compares it with the spec (training drops invalid windows, serving flags them).
    """

    X: npt.NDArray[np.float32]  # (n, L, F) scaled sensors, gaps 0, then the spec's derived inputs (F >= S)
    mask: npt.NDArray[np.bool_]  # (n, L, S) True where observed
    raw: F64  # (n, L, S) engineering units, NaN where not observed
    last_raw: F64  # (n, S) last step in engineering units, filled within the bound, else NaN
    end_ts: npt.NDArray[np.datetime64]  # (n,) datetime64[us] (UTC) of each window's last step
    coverage: F64  # (n,)
    sensors: tuple[str, ...]
    spec: WindowSpec

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        return self.coverage >= self.spec.min_observed_fraction

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Windows:
        """Windows at ``keep`` (boolean mask or indices); copies, as numpy fancy indexing must."""
        arrays: dict[str, Any] = {
            n: getattr(self, n)[keep] for n in ("X", "mask", "raw", "last_raw", "end_ts", "coverage")
        }
        return replace(self, **arrays)


def concat_windows(parts: Sequence[Windows]) -> Windows:
    """Several window batches (e.g. one per asset) as one, for a single detector call."""
    first = parts[0]
    return Windows(
        X=np.concatenate([p.X for p in parts]),
        mask=np.concatenate([p.mask for p in parts]),
        raw=np.concatenate([p.raw for p in parts]),
        last_raw=np.concatenate([p.last_raw for p in parts]),
        end_ts=np.concatenate([p.end_ts for p in parts]),
        coverage=np.concatenate([p.coverage for p in parts]),
        sensors=first.sensors,
        spec=first.spec,
    )


def to_us(ts: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Timestamps (datetime64 or integer microseconds) as integer microseconds since the epoch."""
    arr = np.asarray(ts)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[us]").astype(np.int64)
    return arr.astype(np.int64)


def bounded_fill(values: npt.ArrayLike, observed: npt.ArrayLike, max_gap: int) -> F64:
    """Fill missing cells (NaN) from the last *observed* value at most ``max_gap`` steps back.

    Cells already holding a value are kept, so filling a frame the reader already filled with the same bound
    changes nothing (idempotent), and a frame's first rows keep values the reader filled from before it.
    """
    vals = np.array(values, dtype=np.float64)
    obs = np.asarray(observed, dtype=bool)
    if vals.ndim != 2 or obs.shape != vals.shape:
        raise ValueError(f"values and observed must be (T, S) of equal shape, got {vals.shape} and {obs.shape}")
    if max_gap == 0 or vals.shape[0] == 0:
        return vals
    t = np.arange(vals.shape[0])[:, None]
    last = np.maximum.accumulate(np.where(obs, t, -1), axis=0)
    cols = np.broadcast_to(np.arange(vals.shape[1]), vals.shape)
    source = vals[np.maximum(last, 0), cols]
    fill = np.isnan(vals) & (last >= 0) & (t - last <= max_gap)
    vals[fill] = source[fill]
    return vals


def make_windows(
    values: npt.ArrayLike,
    observed: npt.ArrayLike,
    ts: npt.ArrayLike,
    spec: WindowSpec,
    *,
    center: npt.ArrayLike | None = None,
    scale: npt.ArrayLike | None = None,
    sensors: Sequence[str] | None = None,
) -> Windows:
    """Cut a ``(T, S)`` series into sliding windows (pure numpy; views, not copies).

    Windows are anchored at the **end**: the last window ends at the last row, so serving's newest window
    always holds the newest data; earlier ones step back by ``stride``. A window needs ``length`` rows plus the
    spec's ``history_steps`` before them (for its lag inputs); fewer rows give zero windows. Without
    ``center``/``scale`` the values are not scaled. ``X`` holds the scaled sensors, then
    :func:`derived_inputs`.
    """
    obs = np.asarray(observed, dtype=bool)
    filled = bounded_fill(values, obs, spec.max_gap_steps)
    n_steps, n_sensors = filled.shape
    ts_us = to_us(ts)
    if ts_us.shape != (n_steps,):
        raise ValueError(f"ts must be shaped ({n_steps},), got {ts_us.shape}")
    c = np.zeros(n_sensors) if center is None else np.asarray(center, dtype=np.float64)
    s = np.ones(n_sensors) if scale is None else np.asarray(scale, dtype=np.float64)
    scaled = np.nan_to_num((filled - c) / s, nan=0.0)
    derived = derived_inputs(
        scaled, ts_us, spec.lag_steps, spec.history_steps, daily=spec.daily, timezone=spec.timezone
    )
    inputs = np.hstack([scaled, derived]).astype(np.float32)
    raw = np.where(obs, filled, np.nan)
    have = (~np.isnan(filled)).astype(np.float64)
    names = tuple(sensors) if sensors is not None else tuple(f"s{i}" for i in range(n_sensors))
    length, history = spec.length, spec.history_steps
    enough = n_steps >= length + history
    first = history + (n_steps - length - history) % spec.stride if enough else 0

    def view(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if not enough:
            return np.zeros((0, length, arr.shape[1]), dtype=arr.dtype)
        return np.lib.stride_tricks.sliding_window_view(arr, length, axis=0)[first :: spec.stride].transpose(0, 2, 1)

    ends = np.arange(first + length - 1, n_steps, spec.stride) if enough else np.zeros(0, dtype=np.int64)
    # Coverage by cumulative sums: O(T*S) instead of summing every (L, S) window.
    cum = np.vstack([np.zeros((1, n_sensors)), np.cumsum(have, axis=0)])
    coverage = ((cum[ends + 1] - cum[ends + 1 - length]) / length).min(axis=1) if n_sensors else np.ones(len(ends))
    return Windows(
        X=view(inputs),
        mask=view(obs),
        raw=view(raw),
        last_raw=filled[ends],
        end_ts=ts_us[ends].astype("datetime64[us]"),
        coverage=coverage,
        sensors=names,
        spec=spec,
    )


@dataclass(slots=True)
class Preprocessor:
    """Robust per-sensor scaling plus the window spec: ``fit`` on training data, ``transform`` anywhere."""

    spec: WindowSpec
    sensors_: tuple[str, ...] = ()
    stats_: SensorStats | None = field(default=None)
    #: ``(24, S)``: each sensor's median reading per clock hour of training, on the clock of ``spec.timezone``
    #: (NaN: no reading in that hour).
    #: Why: a model adapted from a sibling learns the new machine's level from a few hours, and a level that
    #: follows the day (a bearing's warmth, the shifts' loads) is then the level of those hours, not of the day;
    #: the source's profile says how far those hours sit from its daily level (:mod:`linewatch.models.adapt`).
    #: None in bundles saved before it existed.
    daily_median_: F64 | None = field(default=None)

    def fit(self, wide: pl.DataFrame, sensors: Sequence[str], *, exclude: npt.ArrayLike | None = None) -> Self:
        """Learn scaling and training ranges from observed values only (filled ones would fake flat lines).

        ``exclude`` (bool per row) leaves rows out, e.g. :func:`in_labels` of maintenance and fault windows.
        """
        values, observed, ts = _columns(wide, sensors)
        if exclude is not None:
            observed = observed & ~np.asarray(exclude, dtype=bool)[:, None]
        self.sensors_ = tuple(sensors)
        self.stats_ = SensorStats.from_series(values, observed, self.sensors_)
        self.daily_median_ = hourly_medians(values, observed, ts, self.spec.timezone)
        return self

    @property
    def stats(self) -> SensorStats:
        if self.stats_ is None:
            raise RuntimeError("Preprocessor is not fitted")
        return self.stats_

    def transform(self, wide: pl.DataFrame) -> Windows:
        """Windows of ``wide`` (extra columns ignored); raises :class:`MissingSensorsError` naming the gaps."""
        stats = self.stats
        values, observed, ts = _columns(wide, self.sensors_)
        return make_windows(
            values, observed, ts, self.spec, center=stats.median, scale=stats.scale, sensors=self.sensors_
        )

    def inverse(self, values_scaled: npt.ArrayLike, sensor_idx: int | npt.ArrayLike | None = None) -> F64:
        """Scaled values (last axis = sensors, or ``sensor_idx`` selecting them) back to engineering units."""
        stats = self.stats
        idx: Any = slice(None) if sensor_idx is None else sensor_idx
        return np.asarray(np.asarray(values_scaled, dtype=np.float64) * stats.scale[idx] + stats.median[idx])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": 1,
            "spec": self.spec.to_dict(),
            "sensors": list(self.sensors_),
            "stats": self.stats.to_dict(),
        }
        if self.daily_median_ is not None:  # JSON has no NaN: an hour without readings is null
            out["daily_median"] = [[None if math.isnan(v) else float(v) for v in row] for row in self.daily_median_]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        if data.get("version") != 1:
            raise ValueError(f"unsupported preprocessor version {data.get('version')!r}")
        sensors = tuple(data["sensors"])
        daily = data.get("daily_median")
        profile = None
        if daily is not None:
            try:
                profile = np.array([[np.nan if v is None else v for v in row] for row in daily], dtype=np.float64)
            except (TypeError, ValueError) as exc:  # a hand-edited or damaged manifest: say so, do not crash
                raise ValueError(f"daily_median is not a table of numbers: {exc}") from exc
            if profile.shape != (HOURS_PER_DAY, len(sensors)):
                raise ValueError(f"daily_median shaped {profile.shape}, expected ({HOURS_PER_DAY}, {len(sensors)})")
        return cls(WindowSpec.from_dict(data["spec"]), sensors, SensorStats.from_dict(data["stats"]), profile)


HOURS_PER_DAY: Final = 24
_US_PER_HOUR: Final = 3_600_000_000


def hourly_medians(
    values: F64, observed: npt.NDArray[np.bool_], ts_us: npt.NDArray[np.int64], timezone: str = UTC_NAME
) -> F64:
    """``(24, S)``: the median observed value of each sensor per clock hour of ``timezone``; NaN for an hour
    without one.

    Rows are sorted by hour once, so each value is copied once however many hours and sensors there are.
    """
    hour = (local_us(ts_us, timezone) // _US_PER_HOUR) % HOURS_PER_DAY
    order = np.argsort(hour, kind="stable")
    bounds = np.searchsorted(hour[order], np.arange(HOURS_PER_DAY + 1))
    out = np.full((HOURS_PER_DAY, values.shape[1]), np.nan)
    for h in range(HOURS_PER_DAY):
        rows = order[bounds[h] : bounds[h + 1]]
        seen = observed[rows]
        has = seen.any(axis=0)
        if has.any():
            block = np.where(seen[:, has], values[rows][:, has], np.nan)
            out[h, has] = np.nanmedian(block, axis=0)
    return out


def _columns(wide: pl.DataFrame, sensors: Sequence[str]) -> tuple[F64, npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Values ``(T, S)``, observed ``(T, S)`` and ts in µs. Without mask columns, non-null counts as observed."""
    missing = [s for s in sensors if s not in wide.columns]
    if missing:
        raise MissingSensorsError(missing)
    if not sensors:
        raise ValueError("no sensors given")
    values = wide.select(pl.col(s).cast(pl.Float64) for s in sensors).to_numpy().astype(np.float64)
    masks = (
        pl.col(observed_column(s)) if observed_column(s) in wide.columns else pl.col(s).is_not_null() for s in sensors
    )
    observed = wide.select(m.fill_null(False) for m in masks).to_numpy().astype(bool) & ~np.isnan(values)
    ts = wide.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    return values, observed, ts


def windows_from_store(
    root: Path, asset: str, start: datetime, end: datetime, preprocessor: Preprocessor, spec: WindowSpec | None = None
) -> Windows:
    """Windows of ``asset`` over ``[start, end)`` read from the raw store with the bundle's preprocessing."""
    spec = spec or preprocessor.spec
    if spec != preprocessor.spec:
        preprocessor = Preprocessor(spec, preprocessor.sensors_, preprocessor.stats, preprocessor.daily_median_)
    wide = wide_frame(
        root, asset, start, end, spec.cadence, sensors=list(preprocessor.sensors_), max_gap=spec.max_gap_steps
    )
    return preprocessor.transform(wide)
