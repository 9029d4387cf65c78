"""The evaluation configuration: detector, window and calibration rule per benchmark, fixed before evaluation.

The defaults here *are* the committed configuration (``deploy/config/evaluate.yaml`` is the same text for
operators to copy and edit; a test keeps the two equal). They were chosen once from general reasoning, never
from results on the benchmark files:

* ``pca_t2q`` everywhere: the detector linewatch ships as default (classic multivariate SPC, T² + Q), cheap on
  two CPU cores, naming root causes by each sensor's distance from its training normal (its default).
* 10-step windows (the detector's default ``score_steps``): 10 s on SKAB (1 Hz), 10 min on SMD (1 min),
  30 min on TEP (3 min), 10 flight cycles on C-MAPSS. Long enough to average single-sample noise, short enough
  that detection delay stays a few steps.
* Thresholds at the 0.99 quantile of held-out normal scores: the 99 % control limit of the SPC literature that
  the published TEP baselines use; no per-file or per-dataset tuning.
* A quarter of the training data is held out for calibration where the protocol allows a split (SKAB's 400
  rows: fit on 300, calibrate on 100; SMD's train: interleaved cycles as ``linewatch train`` does); TEP's
  protocol names its calibration file; C-MAPSS's protocol names its calibration engines.
* The training data-quality filter (flat-lined, constant, sparse sensors left out) runs as in ``linewatch
  train``; a left-out sensor scores zero contribution in attribution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class DatasetEval(BaseModel):
    """How one benchmark is modelled."""

    model_config = ConfigDict(extra="forbid")

    detector: str = Field("pca_t2q", description="Registered detector name (as in an asset group's detector).")
    params: dict[str, Any] = Field(default_factory=dict, description="Detector hyper-parameters.")
    window_length: int = Field(10, ge=1, description="Steps per window.")
    quantile: float = Field(0.99, gt=0.0, lt=1.0, description="Threshold quantile of held-out normal scores.")
    holdout_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="Share of training data for calibration.")
    quality_filter: bool = Field(True, description="Leave out sensors the training quality checks reject.")
    max_unit_root_p: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Opt-in quality rule: leave out sensors whose training level wanders (ADF p above this).",
    )
    wandering_level_p: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Opt-in: keep a level that wanders over training and nothing explains, with room to wander on.",
    )
    seed: int = Field(0, description="Detector seed.")


class EvalConfig(BaseModel):
    """Every benchmark's setup plus metric parameters."""

    model_config = ConfigDict(extra="forbid")

    skab: DatasetEval = Field(default_factory=DatasetEval)
    smd: DatasetEval = Field(default_factory=DatasetEval)
    tep: DatasetEval = Field(default_factory=DatasetEval)
    cmapss: DatasetEval = Field(default_factory=DatasetEval)
    skab_train_rows: int = Field(400, ge=20, description="SKAB protocol: rows per file for fit and threshold.")
    nab_window_s: float = Field(60.0, gt=0, description="NAB window to the right of each true changepoint.")
    vus_window: int = Field(100, ge=0, description="VUS-PR buffer width (TSB-AD's default slidingWindow).")
    plots: bool = Field(True, description="Draw PNG plots in the report (needs matplotlib).")


def load_eval_config(path: Path | None) -> EvalConfig:
    """The committed defaults, or a YAML file validated against them (unknown keys are errors)."""
    if path is None:
        return EvalConfig()
    data = yaml.safe_load(path.read_text()) or {}
    return EvalConfig.model_validate(data)
