"""C-MAPSS protocol: warning, lead and false warnings on literal scores; the real FD001 file through the harness."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from linewatch.models.evaluation import EvalConfig, EvaluationError, run_dataset
from linewatch.models.evaluation.cmapss import FILE, HEALTHY_CYCLES, TEST_UNITS, engine_figures, first_sustained
from linewatch.models.evaluation.report import write_report

REPO = Path(__file__).resolve().parents[3]
CMAPSS = Path(os.environ.get("LINEWATCH_BENCH_DATA", REPO.parent / "shared" / "data")) / "cmapss"
needs_cmapss = pytest.mark.skipif(not (CMAPSS / FILE).is_file(), reason=f"C-MAPSS data not found below {CMAPSS}")


def test_first_sustained_alarm() -> None:
    alarm = np.array([1, 1, 0, 1, 1, 1, 0], dtype=bool)
    assert first_sustained(alarm, 0, 2) == 0
    assert first_sustained(alarm, 0, 3) == 3
    assert first_sustained(alarm, 4, 3) is None  # from index 4 only two alarms in a row remain
    assert first_sustained(np.zeros(5, dtype=bool), 0, 1) is None


def test_engine_figures_on_literal_scores() -> None:
    # 12 cycles, 4 healthy: no window for the first 2; a one-off alarm at 3 (healthy, not sustained); the
    # warning holds from cycle 8 to the failure at cycle 11 (4 cycles of lead); the risk rises with the cycles.
    score = np.array([np.nan, np.nan, 0.2, 1.5, 0.3, 0.4, 1.2, 0.5, 1.1, 1.3, 2.0, 3.0])
    risk = np.array([np.nan, np.nan, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    figures = engine_figures(score, risk, healthy=4, sustain=3)
    assert figures == {
        "cycles": 12,
        "warned": True,
        "lead_cycles": 4,
        "false_warning": False,
        "healthy_alarms": 1,
        "healthy_scored": 2,
        "risk_trend": pytest.approx(1.0),
    }
    quiet = engine_figures(np.full(12, 0.5), np.full(12, 0.3), healthy=4, sustain=3)
    assert not quiet["warned"] and quiet["lead_cycles"] is None and np.isnan(quiet["risk_trend"])
    early = engine_figures(np.array([2.0, 2.0, 2.0, 0.1, 0.1, 0.1]), np.zeros(6), healthy=4, sustain=3)
    assert early["false_warning"] and not early["warned"] and early["healthy_alarms"] == 3


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=f"needs {FILE}"):
        run_dataset("cmapss", tmp_path, EvalConfig())
    (tmp_path / FILE).write_text("1 1 0 0 100 1 2 3\n")
    with pytest.raises(EvaluationError, match="expected 26 columns, got 8"):
        run_dataset("cmapss", tmp_path, EvalConfig())
    (tmp_path / FILE).write_text(" ".join(["1"] * 26) + "\n")
    with pytest.raises(EvaluationError, match="missing"):
        run_dataset("cmapss", tmp_path, EvalConfig())


@needs_cmapss
def test_fd001_through_the_harness(tmp_path: Path) -> None:
    result = run_dataset("cmapss", CMAPSS, EvalConfig())
    summary = result.summary
    assert summary["engines"] == len(TEST_UNITS) == len(result.per_file) == len(result.series)
    engines = result.per_file.values()
    assert all(e["healthy_scored"] == HEALTHY_CYCLES - (EvalConfig().cmapss.window_length - 1) for e in engines)
    leads = [e["lead_cycles"] for e in engines if e["warned"]]
    assert summary["warned_share"] == len(leads) / len(TEST_UNITS)
    assert summary["median_lead_cycles"] == float(np.median(leads))
    assert all(0 < e["lead_cycles"] <= e["cycles"] - HEALTHY_CYCLES for e in engines if e["warned"])
    # The constant sensors of FD001 are left out by the training quality filter, as `linewatch train` would.
    assert {"s1", "s5", "s10", "s16", "s18", "s19"} <= set(summary["excluded_sensors"])
    # Degradation is what the data set is: the risk must rise towards the failure on most engines.
    assert summary["median_risk_trend"] > 0.5
    assert not any(series.label.any() for series in result.series)  # no labels: the report shades nothing
    report = write_report(result, tmp_path / "report", plots=False).read_text()
    assert "| median_lead_cycles |" in report and "| engine 71 |" in report
