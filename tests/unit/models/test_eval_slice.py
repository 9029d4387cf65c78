"""A small slice of the real benchmarks through the whole harness, so it cannot rot inside ``make test``.

Data: ``$LINEWATCH_BENCH_DATA`` (default ``../shared/data`` beside the repository); skipped when absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from linewatch.models.evaluation import EvalConfig, run_dataset
from linewatch.models.evaluation.report import write_json, write_report
from linewatch.models.evaluation.smd import evaluate_smd

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("LINEWATCH_BENCH_DATA", REPO.parent / "shared" / "data"))
SKAB_FILE = DATA / "skab" / "valve1" / "0.csv"
SMD = DATA / "smd"
SMD_MACHINE = "machine-1-2"

needs_skab = pytest.mark.skipif(not SKAB_FILE.is_file(), reason=f"SKAB data not found at {SKAB_FILE}")
TEP = DATA / "tep"
needs_tep = pytest.mark.skipif(not (TEP / "d01.dat").is_file(), reason=f"TEP data not found below {TEP}")
needs_smd = pytest.mark.skipif(
    not (SMD / "npy" / f"{SMD_MACHINE}_train.npy").is_file(), reason=f"SMD data not found below {SMD}"
)


@needs_skab
def test_skab_one_file_through_cli(tmp_path: Path) -> None:
    from linewatch.serving.cli import app

    data = tmp_path / "skab"
    (data / "valve1").mkdir(parents=True)
    shutil.copy(SKAB_FILE, data / "valve1" / "0.csv")
    out = tmp_path / "result.json"
    if not any(c.name == "evaluate" for c in app.registered_commands):  # until cli.py registers it
        from linewatch.serving.cli_evaluate import register

        register(app)
    res = CliRunner().invoke(
        app, ["evaluate", "skab", "--data", str(data), "--out", str(out), "--report", str(tmp_path / "rep")]
    )
    assert res.exit_code == 0, res.output
    assert "goal ≥ 0.88, met:" in res.output and "(published: leaderboard best" in res.output
    result = json.loads(out.read_text())
    assert set(result) == {"dataset", "config", "summary", "per_file"}
    assert {"f1", "far", "mar", "nab_standard"} <= set(result["summary"])
    assert list(result["per_file"]) == ["valve1/0.csv"]
    s = result["summary"]
    assert s["tp"] + s["fp"] + s["fn"] + s["tn"] == result["per_file"]["valve1/0.csv"]["test_rows"]
    assert 0.0 <= s["f1"] <= 1.0 and 0.0 <= s["far"] <= 100.0
    sensors = {"Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
        "Voltage", "Volume Flow RateRMS"}  # fmt: skip
    # Every false alarm is blamed on exactly one of the file's sensors.
    assert sum(s["false_alarms_named"].values()) == s["fp"] and set(s["false_alarms_named"]) <= sensors
    # The labelled anomaly's attribution: the sensors blamed for it, and its row in the attribution plot.
    named = result["per_file"]["valve1/0.csv"]["anomaly_named"]
    assert 1 <= len(named) <= 3 and len(set(named)) == len(named) and set(named) <= sensors
    # Training's held-out check: the thermocouple already wanders between the fit and the calibration rows.
    row = result["per_file"]["valve1/0.csv"]
    assert row["holdout_shift_warned"] is True and s["holdout_shift_warned"] == 1
    assert row["holdout_over_training_line"] > 0.1 and row["holdout_shift_led_by"][0] == "Thermocouple"
    assert (tmp_path / "rep" / "report.md").is_file()
    assert (tmp_path / "rep" / "plots" / "attribution_skab.png").is_file()


@needs_skab
def test_skab_normal_runs_give_a_false_alarm_rate_without_labels(tmp_path: Path) -> None:
    """An unlabelled run is cut into experiment-long pieces, each under the file protocol; all its alarms are false."""
    free = DATA / "skab" / "anomaly-free" / "anomaly-free.csv"
    if not free.is_file():
        pytest.skip(f"SKAB anomaly-free run not found at {free}")
    data = tmp_path / "skab"
    (data / "valve1").mkdir(parents=True)
    (data / "anomaly-free").mkdir()
    shutil.copy(SKAB_FILE, data / "valve1" / "0.csv")
    lines = free.read_text(encoding="utf-8").splitlines(keepends=True)
    (data / "anomaly-free" / "run.csv").write_text("".join(lines[:2501]), encoding="utf-8")  # header + 2,500 rows
    result = run_dataset("skab", data, EvalConfig())
    s = result.summary
    length = result.per_file["valve1/0.csv"]["test_rows"] + EvalConfig().skab_train_rows  # the piece length
    assert s["normal_pieces"] == 2500 // length == 2
    assert s["normal_rows"] == 2 * (length - EvalConfig().skab_train_rows)
    assert s["normal_far"] == pytest.approx(100.0 * s["normal_alarms"] / s["normal_rows"])
    assert sum(s["normal_false_alarms_named"].values()) == s["normal_alarms"]
    assert list(result.per_file) == ["valve1/0.csv"]  # per_file keeps the protocol's labelled files
    pieces = list(s["normal_runs"])
    assert pieces == [f"anomaly-free/run.csv rows 0-{length}", f"anomaly-free/run.csv rows {length}-{2 * length}"]
    # The labelled file's figures are the protocol's alone: the normal runs add no TP/FP/FN/TN.
    assert s["tp"] + s["fp"] + s["fn"] + s["tn"] == result.per_file["valve1/0.csv"]["test_rows"]
    report = write_report(result, tmp_path / "report", plots=False).read_text()
    assert "## normal_runs" in report and f"| anomaly-free/run.csv rows 0-{length} |" in report

    # A normal run that cannot be trained on (every sensor flat) is reported as skipped, not an aborted benchmark.
    header, first = lines[0], lines[1].split(";")
    flat = ";".join([first[0], *("1.0" for _ in first[1:])]) + "\n"
    (data / "anomaly-free" / "run.csv").write_text(header + flat * 2500, encoding="utf-8")
    again = run_dataset("skab", data, EvalConfig())
    assert again.summary["f1"] == s["f1"] and again.summary["normal_far"] is None
    assert all("no usable sensor" in row["skipped"] for row in again.summary["normal_runs"].values())


@needs_smd
def test_smd_one_machine_truncated(tmp_path: Path) -> None:
    result = evaluate_smd(SMD, EvalConfig(), machines=[SMD_MACHINE], max_rows=6000)
    summary = result.summary
    for key in ("vus_pr", "auc_pr", "f1", "hitrate_100", "hitrate_150", "hitrate_100_random", "hitrate_150_random"):
        assert summary[key] is not None and 0.0 <= summary[key] <= 1.0, key
    assert summary["segments"] >= 2
    # Better than chance at attribution on the labelled segments of this slice, and the random baseline is the
    # exact expectation (k / 38 per segment).
    assert summary["hitrate_150"] >= summary["hitrate_150_random"]
    series = result.series[0]
    assert series.score.shape == series.label.shape == (6000,) and np.isfinite(series.score).all()
    write_json(result, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["dataset"] == "smd"
    report = write_report(result, tmp_path / "report", plots=False).read_text()
    # The report places the figures beside the published baselines and the goals.
    assert "| vus_pr | " in report and "per-sensor z-score about 0.42 | ≥ 0.5 |" in report


@needs_smd
def test_smd_reads_the_authors_text_layout_as_well(tmp_path: Path) -> None:
    """Machines delivered as the original release's text files load to the same arrays as the npy copies."""
    from linewatch.models.evaluation.smd import find_machines, load_machine

    data = tmp_path / "smd"
    for sub in ("train", "test", "test_label", "interpretation_label"):
        (data / sub).mkdir(parents=True)
    shutil.copy(SMD / "interpretation_label" / f"{SMD_MACHINE}.txt", data / "interpretation_label" / "machine-9-9.txt")
    npy = {part: np.load(SMD / "npy" / f"{SMD_MACHINE}_{part}.npy") for part in ("train", "test", "test_label")}
    np.savetxt(data / "train" / "machine-9-9.txt", npy["train"], delimiter=",", fmt="%.9g")
    np.savetxt(data / "test" / "machine-9-9.txt", npy["test"], delimiter=",", fmt="%.9g")
    np.savetxt(data / "test_label" / "machine-9-9.txt", npy["test_label"], fmt="%d")
    assert find_machines(data) == ["machine-9-9"]
    text, reference = load_machine(data, "machine-9-9"), load_machine(SMD, SMD_MACHINE)
    for key in ("train", "test"):
        np.testing.assert_allclose(text[key], reference[key], rtol=1e-7, atol=0)
    np.testing.assert_array_equal(text["label"], reference["label"])
    assert text["segments"] == reference["segments"]

    (data / "test" / "machine-9-9.txt").write_text("0.1,oops\n")
    from linewatch.models.evaluation import EvaluationError

    with pytest.raises(EvaluationError, match="machine-9-9: unreadable text data"):
        load_machine(data, "machine-9-9")


@needs_tep
def test_tep_testing_runs_count_detection_from_the_onset_and_false_alarms_before_it(tmp_path: Path) -> None:
    """A Braatz testing run (``dNN_te.dat``, fault from row 160) is scored as one run and split at the onset.

    This copy of the data has no fault testing runs, so one is built from real rows: 160 normal rows of
    ``d00.dat`` then the 480 rows of fault 1, the easiest fault (every method detects it).
    """
    from linewatch.models.evaluation.tep import TE_FAULT_ONSET, load_dat

    data = tmp_path / "tep"
    data.mkdir()
    for name in ("d00.dat", "d00_te.dat", "d01.dat"):
        shutil.copy(TEP / name, data / name)
    fault = load_dat(TEP / "d01.dat")
    np.savetxt(data / "d01_te.dat", np.vstack([load_dat(TEP / "d00.dat")[:TE_FAULT_ONSET], fault]))
    result = run_dataset("tep", data, EvalConfig())
    assert "d01_te.dat" not in result.per_file  # per_file keeps the protocol's files
    run = result.summary["testing_runs"]["d01_te.dat"]
    first_window = EvalConfig().tep.window_length - 1  # rows before the first full window have no score
    assert run["scored_rows"] == fault.shape[0] and run["normal_rows"] == TE_FAULT_ONSET - first_window
    assert run["detection_rate"] >= 0.95
    assert run["false_alarm_rate_before_onset"] <= 0.05
    assert result.summary["mean_detection_rate_te"] == run["detection_rate"]
    assert result.summary["false_alarm_rate_te"] == run["false_alarm_rate_before_onset"]
    # Fault 1's documented root cause (the A feed loop, or stream 4's) is named in both runs of it.
    assert result.per_file["d01.dat"]["root_cause_top3"] is True and run["root_cause_top3"] is True
    assert result.summary["root_cause_faults"] == 1 and result.summary["root_cause_top3_te"] == 1.0
    # The protocol's own figures do not change: fault files and the calibration run.
    assert result.summary["mean_detection_rate"] == result.per_file["d01.dat"]["detection_rate"]
    report = write_report(result, tmp_path / "report", plots=False).read_text()
    assert "## testing_runs" in report and "| d01_te.dat |" in report
    label = next(s.label for s in result.series if s.name == "d01_te.dat")
    assert label.sum() == fault.shape[0] and not label[:TE_FAULT_ONSET].any()

    # Testing runs are extras beside the protocol: a bad one is reported as skipped, the rest still count.
    np.savetxt(data / "d02_te.dat", fault[:TE_FAULT_ONSET])  # ends before its fault could start
    (data / "d04_te.dat").write_text("1.0 oops\n")
    again = run_dataset("tep", data, EvalConfig())
    runs = again.summary["testing_runs"]
    assert runs["d02_te.dat"]["skipped"].startswith("d02_te.dat: 160 rows")
    assert "skipped" in runs["d04_te.dat"] and runs["d01_te.dat"] == run
    assert again.summary["mean_detection_rate_te"] == run["detection_rate"]


@needs_tep
def test_tep_a_valve_held_in_place_reaches_the_operator_as_a_stuck_sensor(tmp_path: Path) -> None:
    """Fault 21 holds stream 4's valve at its steady-state position: the score misses most of it (the process
    stays near normal), the stuck check sees the valve signal repeat for longer than training ever did. Reported
    as an extra figure; the protocol's detection rate stays the score's."""
    data = tmp_path / "tep"
    data.mkdir()
    for name in ("d00.dat", "d00_te.dat", "d21.dat"):
        shutil.copy(TEP / name, data / name)
    result = run_dataset("tep", data, EvalConfig())
    row = result.per_file["d21.dat"]
    assert row["detection_rate"] < 0.5 and row["detection_rate_with_sensor_alerts"] >= 0.9
    assert result.summary["mean_detection_rate_with_sensor_alerts"] == row["detection_rate_with_sensor_alerts"]
    # No sensor status on the normal run: the false-alarm rate is the score's.
    assert result.summary["false_alarm_rate_with_sensor_alerts"] == pytest.approx(result.summary["false_alarm_rate"])


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    from linewatch.models.evaluation import EvaluationError

    with pytest.raises(EvaluationError, match="does not exist"):
        run_dataset("tep", tmp_path / "nope", EvalConfig())


def test_a_detector_that_cannot_be_calibrated_is_a_clear_evaluation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Normal scores below zero give no usable threshold: the benchmark says which detector and data, no traceback."""
    from linewatch.models.detectors.pca import PcaT2Q
    from linewatch.models.evaluation import EvaluationError, pipeline

    class Negative(PcaT2Q):
        def _score(self, X: np.ndarray) -> np.ndarray:
            return -super()._score(X) - 100.0

    monkeypatch.setattr(pipeline, "make_detector", lambda name, **kw: Negative(**kw))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(400, 3))
    with pytest.raises(EvaluationError, match="demo: cannot calibrate pca_t2q: calibrated threshold is -"):
        pipeline.fit_model([values[:300]], [values[300:]], ["a", "b", "c"], EvalConfig().skab, 1.0, name="demo")
