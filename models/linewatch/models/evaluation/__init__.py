"""``linewatch evaluate``: the shipped pipeline measured on public benchmarks (SKAB, SMD, TEP, C-MAPSS).

Each protocol module loads its format, trains and scores through :mod:`linewatch.models.evaluation.pipeline`
(the same preprocessing, detectors, calibration and :meth:`Model.score` that serving uses) and computes the
metrics of :mod:`~linewatch.models.evaluation.metrics` / :mod:`~linewatch.models.evaluation.rangeauc`.
Configuration: :mod:`~linewatch.models.evaluation.config` (committed, fixed before evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from linewatch.models.evaluation.config import EvalConfig, load_eval_config
from linewatch.models.evaluation.pipeline import EvaluationError
from linewatch.models.evaluation.result import EvalResult

DATASETS = ("skab", "smd", "tep", "cmapss")


def run_dataset(dataset: str, data: Path, cfg: EvalConfig, say: Callable[[str], None] | None = None) -> EvalResult:
    """Evaluate one benchmark folder (the layout of the matching folder of ``../shared/data``)."""
    if not data.is_dir():
        raise EvaluationError(f"data folder {data} does not exist")
    if dataset == "skab":
        from linewatch.models.evaluation.skab import evaluate_skab

        return evaluate_skab(data, cfg, say)
    if dataset == "smd":
        from linewatch.models.evaluation.smd import evaluate_smd

        return evaluate_smd(data, cfg, say)
    if dataset == "tep":
        from linewatch.models.evaluation.tep import evaluate_tep

        return evaluate_tep(data, cfg, say)
    if dataset == "cmapss":
        from linewatch.models.evaluation.cmapss import evaluate_cmapss

        return evaluate_cmapss(data, cfg, say)
    raise EvaluationError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "EvalConfig", "EvalResult", "EvaluationError", "load_eval_config", "run_dataset"]
