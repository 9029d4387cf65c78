"""Feature specs chosen offline and replayed exactly online, plus the tsfresh reference extractor.

A :class:`FeatureSpec` is tsfresh's ``kind_to_fc_parameters`` (sensor -> {feature calculator: parameter list or
None}) together with the sensor order of the windows it applies to. It is stored as JSON in the model bundle, so
the features a detector was trained on are exactly the features it scores on.

Column order is defined here, once, and used by both extractors: **sensor-major** (the spec's sensor order),
then the calculators in the spec's order, then each calculator's parameter list in its order. Column names are
tsfresh's: ``<kind>__<calculator>`` or ``<kind>__<calculator>__<param>_<value>`` (parameters sorted by name,
string values in double quotes).

:class:`TsfreshFeatures` runs tsfresh itself. It is the reference the fast numpy implementation
(:mod:`linewatch.models.fast_features`) is tested against, and the offline path for calculators that have no
fast implementation. It costs tens of milliseconds per 8-sensor window (about 150x the numpy path, see
``make bench``), so it never belongs in a scoring loop; tsfresh (and pandas) are imported lazily because
importing tsfresh alone takes seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from linewatch.models.base import Array, check_windows

#: ``{calculator name: list of parameter dicts, or None for a calculator without parameters}``.
FcParameters = dict[str, list[dict[str, Any]] | None]

#: The default per-sensor feature set: level, spread, tails, trend, roughness, memory and shape — the things
#: that move when a bearing starts to vibrate, a valve sticks, a heater drifts or a pressure line spikes.
#: Every entry has an exact fast implementation.
DEFAULT_FC_PARAMETERS: FcParameters = {
    "mean": None,  # level shift (drift, offset)
    "median": None,  # robust level
    "standard_deviation": None,  # spread (vibration amplitude)
    "root_mean_square": None,  # energy around zero after robust scaling
    "minimum": None,  # downward spikes, dropouts
    "maximum": None,  # upward spikes
    "quantile": [{"q": 0.1}, {"q": 0.9}],  # robust tails
    "linear_trend": [{"attr": "slope"}],  # ramps within the window (heating, leaks)
    "mean_abs_change": None,  # roughness, chatter
    "autocorrelation": [{"lag": 1}],  # smoothness / memory; noise makes it fall
    "skewness": None,  # asymmetric excursions
    "kurtosis": None,  # impulsiveness (bearing faults, spikes)
}


def _format_param_value(value: Any) -> str:
    """tsfresh's ``convert_to_output_format`` for one value: strings in double quotes, the rest via ``str``."""
    return f'"{value}"' if isinstance(value, str) else str(value)


def column_suffix(fc_name: str, params: Mapping[str, Any] | None) -> str:
    """``<calculator>`` or ``<calculator>__<k>_<v>__...`` exactly as tsfresh names its columns."""
    if not params:
        return fc_name
    return fc_name + "__" + "__".join(f"{k}_{_format_param_value(params[k])}" for k in sorted(params))


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to compute for which sensor, in a fixed order; JSON-able via :meth:`to_dict`.

    ``sensors`` is the order of the windows' sensor axis; every sensor needs an entry in
    ``kind_to_fc_parameters`` (an empty dict means "no features from this sensor").
    """

    sensors: tuple[str, ...]
    kind_to_fc_parameters: dict[str, FcParameters] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sensors:
            raise ValueError("a feature spec needs at least one sensor")
        if len(set(self.sensors)) != len(self.sensors):
            raise ValueError(f"duplicate sensor names in {self.sensors}")
        for s in self.sensors:
            if not isinstance(s, str) or not s or "__" in s:
                raise ValueError(f"sensor name {s!r} must be a non-empty string without '__' (tsfresh's separator)")
        missing = [s for s in self.sensors if s not in self.kind_to_fc_parameters]
        extra = [k for k in self.kind_to_fc_parameters if k not in self.sensors]
        if missing or extra:
            raise ValueError(f"spec sensors and kind_to_fc_parameters differ: missing {missing}, unknown {extra}")
        for sensor, fcs in self.kind_to_fc_parameters.items():
            for fc, params in fcs.items():
                if params is not None and (
                    not isinstance(params, list) or not params or not all(isinstance(p, dict) for p in params)
                ):
                    raise ValueError(f"{sensor}: parameters of {fc!r} must be None or a non-empty list of dicts")

    @classmethod
    def default(cls, sensors: Sequence[str], fc_parameters: FcParameters | None = None) -> FeatureSpec:
        """The same calculator set (default: :data:`DEFAULT_FC_PARAMETERS`) for every sensor."""
        fcs = DEFAULT_FC_PARAMETERS if fc_parameters is None else fc_parameters
        return cls(
            sensors=tuple(sensors),
            kind_to_fc_parameters={s: _copy_fc_parameters(fcs) for s in sensors},
        )

    def columns(self) -> Iterator[tuple[int, str, str, dict[str, Any] | None]]:
        """``(sensor index, column name, calculator, parameters)`` in the canonical column order."""
        for index, sensor in enumerate(self.sensors):
            for fc, param_list in self.kind_to_fc_parameters[sensor].items():
                for params in param_list if param_list is not None else [None]:
                    yield index, f"{sensor}__{column_suffix(fc, params)}", fc, params

    @property
    def feature_names(self) -> list[str]:
        return [name for _, name, _, _ in self.columns()]

    @property
    def feature_sensors(self) -> npt.NDArray[np.int64]:
        return np.array([index for index, _, _, _ in self.columns()], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the bundle manifest (dict order is the column order, so keep it)."""
        return {
            "sensors": list(self.sensors),
            "kind_to_fc_parameters": {s: _copy_fc_parameters(self.kind_to_fc_parameters[s]) for s in self.sensors},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        sensors = tuple(str(s) for s in data["sensors"])
        kinds = data["kind_to_fc_parameters"]
        return cls(sensors=sensors, kind_to_fc_parameters={str(k): _copy_fc_parameters(v) for k, v in kinds.items()})


def _copy_fc_parameters(fcs: Mapping[str, Any]) -> FcParameters:
    return {str(fc): None if p is None else [dict(d) for d in p] for fc, p in fcs.items()}


class SpecFeatures:
    """What every extractor of a :class:`FeatureSpec` shares: the column names and their sensors."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._names = spec.feature_names
        self._sensors = spec.feature_sensors

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    @property
    def feature_sensors(self) -> npt.NDArray[np.int64]:
        return self._sensors.copy()


class TsfreshFeatures(SpecFeatures):
    """Features computed by ``tsfresh.extract_features`` (the reference; offline only, never in a scoring loop)."""

    def transform(self, X: Array) -> npt.NDArray[np.float64]:
        """Windows ``(n, L, S)`` -> features ``(n, F)`` in the spec's column order (values as float64)."""
        import pandas as pd  # type: ignore[import-untyped]
        from tsfresh import extract_features

        arr = check_windows(X, len(self.spec.sensors)).astype(np.float64)
        n, length, _ = arr.shape
        if n == 0 or not self._names:
            return np.empty((n, len(self._names)), dtype=np.float64)
        # Long format: one row per (window, sensor, step). Sensors without features are left out, as tsfresh
        # would otherwise compute its full default set for a kind missing from kind_to_fc_parameters.
        used = [i for i, s in enumerate(self.spec.sensors) if self.spec.kind_to_fc_parameters[s]]
        values = arr[:, :, used].transpose(0, 2, 1)  # (n, S_used, L)
        long = pd.DataFrame(
            {
                "id": np.repeat(np.arange(n), len(used) * length),
                "kind": np.tile(np.repeat(np.array([self.spec.sensors[i] for i in used]), length), n),
                "time": np.tile(np.arange(length), n * len(used)),
                "value": values.reshape(-1),
            }
        )
        kinds = {self.spec.sensors[i]: self.spec.kind_to_fc_parameters[self.spec.sensors[i]] for i in used}
        out = extract_features(
            long,
            column_id="id",
            column_sort="time",
            column_kind="kind",
            column_value="value",
            default_fc_parameters=None,
            kind_to_fc_parameters=kinds,
            n_jobs=0,
            disable_progressbar=True,
        )
        missing = [c for c in self._names if c not in out.columns]
        if missing:
            raise RuntimeError(f"tsfresh did not produce columns {missing[:5]} (a calculator name or parameter typo?)")
        out = out.reindex(index=np.arange(n))
        return np.asarray(out[self._names].to_numpy(dtype=np.float64), dtype=np.float64)
