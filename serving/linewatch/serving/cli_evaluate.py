"""``linewatch evaluate {skab,smd,tep,cmapss} --data DIR --out RESULT.json [--report DIR]`` (DESIGN §8)."""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from linewatch.serving.cli_common import ConfigOption, describe_error, fail, load_or_exit, make_console

if TYPE_CHECKING:
    from linewatch.models.evaluation.config import EvalConfig

console = make_console(stderr=True)
#: Where benchmark data lives when ``--data`` is not given: ``$LINEWATCH_BENCH_DATA/<dataset>``, else this.
DEFAULT_BENCH_DATA = Path("../shared/data")


class Dataset(StrEnum):
    skab = "skab"
    smd = "smd"
    tep = "tep"
    cmapss = "cmapss"


def default_data(dataset: str) -> Path:
    root = os.environ.get("LINEWATCH_BENCH_DATA")
    return (Path(root) if root else DEFAULT_BENCH_DATA) / dataset


def load_checked_eval_config(path: Path | None, dataset: Dataset) -> EvalConfig:
    """The evaluation configuration with the dataset's detector built once, so that a bad YAML file, an
    unknown key, a misspelt detector or a bad hyper-parameter is one line before minutes of evaluation."""
    import yaml
    from pydantic import ValidationError

    from linewatch.core.config import describe_yaml_error, format_validation_error
    from linewatch.models import detectors  # noqa: F401  (registers every detector)
    from linewatch.models.base import make_detector
    from linewatch.models.evaluation import load_eval_config

    try:
        cfg = load_eval_config(path)
        setup = getattr(cfg, dataset.value)
        make_detector(setup.detector, seed=setup.seed, **setup.params)
    except OSError as exc:
        fail(f"evaluation config {path}: {describe_error(exc)}")
    except yaml.YAMLError as exc:
        fail(f"evaluation config {path}: {describe_yaml_error(exc)}")
    except ValidationError as exc:
        fail(f"evaluation config {path}: " + "; ".join(format_validation_error(exc, env={})))
    except (ValueError, TypeError) as exc:  # unknown detector, or hyper-parameters its constructor rejects
        fail(f"evaluation config {path}: {dataset.value}: {exc}")
    return cfg


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        dataset: Annotated[Dataset, typer.Argument(help="Benchmark format: skab, smd, tep or cmapss.")],
        out: Annotated[Path, typer.Option("--out", help="Write the JSON result here.", dir_okay=False)],
        data: Annotated[
            Path | None,
            typer.Option(
                "--data",
                help="Folder with the benchmark's layout (default: $LINEWATCH_BENCH_DATA/<dataset>, "
                "else ../shared/data/<dataset>).",
                file_okay=False,
            ),
        ] = None,
        report: Annotated[
            Path | None,
            typer.Option("--report", help="Also write a Markdown report with plots into this folder.", file_okay=False),
        ] = None,
        eval_config: Annotated[
            Path | None,
            typer.Option(
                "--eval-config",
                help="Evaluation YAML (detector, window, calibration per benchmark; default: the committed "
                "configuration, deploy/config/evaluate.yaml).",
                dir_okay=False,
            ),
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Measure the shipped pipeline on a public benchmark with its published protocol."""
        load_or_exit(config)  # every command validates its --config; evaluation itself needs nothing from it
        from linewatch.models.evaluation import EvaluationError, run_dataset
        from linewatch.models.evaluation.reference import comparison_rows
        from linewatch.models.evaluation.report import write_json, write_report

        cfg = load_checked_eval_config(eval_config, dataset)
        folder = data or default_data(dataset.value)
        started = time.monotonic()
        try:
            with console.status(f"evaluating {dataset.value} from {folder}..."):
                result = run_dataset(dataset.value, folder, cfg, say=console.print)
        except EvaluationError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from exc
        write_json(result, out)
        if report is not None:
            path = write_report(result, report, plots=cfg.plots)
            console.print(f"report: {path}")
        shown = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in result.summary.items()
            if not isinstance(v, dict)
        )
        console.print(f"[bold]{dataset.value}[/bold] in {time.monotonic() - started:.1f} s: {shown}")
        for metric, value, published, goal, met in comparison_rows(dataset.value, result.summary):
            figure = f"{value:.4g}" if isinstance(value, float) else str(value)
            console.print(f"  {metric} {figure}: goal {goal}, met: {met} (published: {published})", highlight=False)
        console.print(f"result: {out}")
