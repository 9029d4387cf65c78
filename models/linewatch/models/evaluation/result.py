"""What a protocol run returns: the JSON result (DESIGN §8) plus the series the report plots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SeriesPlot:
    """Anomaly score over time of one evaluated series, with its labels (True = anomalous) and the alarm line."""

    name: str
    score: npt.NDArray[np.float64]
    label: npt.NDArray[np.bool_]
    threshold: float


@dataclass(frozen=True)
class AttributionPlot:
    """Attributed contribution per sensor (summed over a labelled segment) and the true root-cause sensors."""

    name: str
    sensors: tuple[str, ...]
    contribution: npt.NDArray[np.float64]
    true_dims: tuple[int, ...]


def top_sensors(contribution: npt.ArrayLike, sensors: tuple[str, ...] | list[str], k: int = 3) -> list[str]:
    """The ``k`` sensors with the largest contribution, largest first (zero contributions are not named)."""
    c = np.asarray(contribution, dtype=np.float64)
    return [sensors[int(i)] for i in np.argsort(-c, kind="stable")[:k] if c[i] > 0]


@dataclass
class EvalResult:
    dataset: str
    config: dict[str, Any]
    summary: dict[str, Any]
    per_file: dict[str, Any]
    series: list[SeriesPlot] = field(default_factory=list)
    attributions: list[AttributionPlot] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"dataset", "config", "summary", "per_file"}`` with NaN/inf as null (strict JSON)."""
        return {
            "dataset": self.dataset,
            "config": self.config,
            "summary": _clean(self.summary),
            "per_file": _clean(self.per_file),
        }


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
