"""A trained model as serving and evaluation use it: preprocessing + detector + calibration + health checks.

Both the serving daemon and ``linewatch evaluate`` score through :meth:`Model.score`, so what is measured is
exactly what runs in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from linewatch.models import detectors as _detectors  # noqa: F401  (registers every detector)
from linewatch.models.base import DETECTORS, Detector
from linewatch.models.calibration import Calibrator
from linewatch.models.health import SensorHealth, Status, check_health
from linewatch.models.windows import MissingSensorsError, Preprocessor, Windows

F64 = npt.NDArray[np.float64]
_DETECTOR_PREFIX = "detector."


class ModelMismatchError(ValueError):
    """The data offered for scoring does not fit what the model was trained on (sensors, schema)."""


@dataclass(frozen=True)
class ScoredWindows:
    """Everything a scored window reports; arrays are aligned on the window axis."""

    end_ts: npt.NDArray[np.datetime64]
    raw_score: F64  # detector score
    anomaly_score: F64  # raw / threshold, >= 1 is anomalous
    failure_risk: F64  # calibrated probability in [0, 1]
    contributions: F64  # (n, S) shares summing to 1
    expected: F64  # (n, S) engineering units: what the model expected at the last step
    actual: F64  # (n, S) engineering units: the last step's values (NaN where not observed)
    health: npt.NDArray[np.int8]  # (n, S) Status codes
    valid: npt.NDArray[np.bool_]  # enough observed data to trust the score
    sensors: tuple[str, ...]

    @property
    def sensor_fault(self) -> npt.NDArray[np.bool_]:
        return np.asarray((self.health != Status.OK).any(axis=1))

    def top_sensor(self) -> list[str]:
        return [self.sensors[int(i)] for i in np.argmax(self.contributions, axis=1)]


@dataclass
class Model:
    group: str
    version: str
    preprocessor: Preprocessor
    detector: Detector
    calibrator: Calibrator
    health: SensorHealth = field(default_factory=SensorHealth)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def sensors(self) -> tuple[str, ...]:
        return self.preprocessor.sensors_

    def check_sensors(self, available: set[str] | list[str] | tuple[str, ...]) -> None:
        missing = [s for s in self.sensors if s not in set(available)]
        if missing:
            raise ModelMismatchError(
                f"model {self.group}/{self.version} needs sensors the data lacks: {', '.join(missing)}"
            )

    def score(self, windows: Windows) -> ScoredWindows:
        if tuple(windows.sensors) != self.sensors:
            raise ModelMismatchError(f"windows have sensors {windows.sensors}, model expects {self.sensors}")
        raw = self.detector.decision_function(windows.X)
        contrib = self.detector.contributions(windows.X)
        expected_scaled = self.detector.expected(windows.X)
        expected = self.preprocessor.inverse(expected_scaled)
        health = check_health(
            windows.raw,
            self.preprocessor.stats,
            self.health,
            expected=expected,
            sensors=self.sensors,
            isolation=self.detector.isolation(windows.X),
        )
        return ScoredWindows(
            end_ts=windows.end_ts,
            raw_score=raw,
            anomaly_score=np.asarray(self.calibrator.anomaly_score(raw), dtype=np.float64),
            failure_risk=np.asarray(self.calibrator.failure_risk(raw), dtype=np.float64),
            contributions=contrib,
            expected=expected,
            actual=windows.last_raw,
            health=health.status,
            valid=windows.valid,
            sensors=self.sensors,
        )

    # -- bundle round trip ---------------------------------------------------------------------------------
    def to_bundle(self, extra: dict[str, Any]) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        tensors, meta = self.detector.get_state()
        manifest = {
            **extra,
            "kind": "linewatch-model",
            "asset_group": self.group,
            "sensors": list(self.sensors),
            "created_at": extra.get("created_at", datetime.now(UTC).isoformat()),
            "preprocessing": self.preprocessor.to_dict(),
            "detector": {"name": self.detector.name, "config": self.detector.config(), "meta": meta},
            "calibration": self.calibrator.to_dict(),
            "health": _dataclass_dict(self.health),
        }
        return manifest, {_DETECTOR_PREFIX + k: v for k, v in tensors.items()}

    @classmethod
    def from_bundle(cls, manifest: dict[str, Any], tensors: dict[str, npt.NDArray[Any]], version: str) -> Model:
        try:
            det = manifest["detector"]
            detector_cls = DETECTORS[det["name"]]
            detector = detector_cls.from_state(
                dict(det["config"]),
                {k.removeprefix(_DETECTOR_PREFIX): v for k, v in tensors.items() if k.startswith(_DETECTOR_PREFIX)},
                dict(det["meta"]),
            )
            model = cls(
                group=str(manifest["asset_group"]),
                version=version,
                preprocessor=Preprocessor.from_dict(manifest["preprocessing"]),
                detector=detector,
                calibrator=Calibrator.from_dict(manifest["calibration"]),
                health=SensorHealth(**manifest.get("health", {})),
                manifest=manifest,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelMismatchError(f"bundle manifest is incomplete or from another version: {exc}") from exc
        if list(model.sensors) != list(manifest.get("sensors", [])):
            raise ModelMismatchError("bundle manifest sensors disagree with its preprocessing")
        return model


def _dataclass_dict(obj: object) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(obj) and not isinstance(obj, type)
    return asdict(obj)


__all__ = ["MissingSensorsError", "Model", "ModelMismatchError", "ScoredWindows"]
