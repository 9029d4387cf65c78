"""Benchmark: the acceptance on the simulated plant over several seeds (``make bench``; .bench/sim_quality.json).

Per seed: simulate 3 days + 1 week, store the first 3 days, train every group with the default configuration,
score the week with the shared alert policy, and compute the four acceptance metrics. Three days because that
is the training history ``linewatch train`` advises (:data:`linewatch.models.train_input.ADVISED_TRAINING_S`); with
one day the worst seed gave 1.62 false alerts per asset-week (mean 0.54), with three 0.81 (mean 0.22).
Seeds are fixed in advance (0-4) and nothing is tuned per seed; the JSON holds every seed plus the mean and the
worst value.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import pytest

from linewatch.models.train_input import ADVISED_TRAINING_S
from tests.unit.models.test_sim_quality import run_plant

SEEDS = (0, 1, 2, 3, 4)

# Five simulated weeks of four assets take several minutes per seed on 2 cores.
pytestmark = pytest.mark.timeout(5400)
TRAIN_H, TEST_H = ADVISED_TRAINING_S / 3600, 7 * 24.0
OUT = Path(__file__).resolve().parents[2] / ".bench" / "sim_quality.json"
#: metric -> (goal, True when higher is better)
GOALS = {
    "machine_fault_recall": (0.9, True),
    "false_alerts_per_asset_week": (1.0, False),
    "single_sensor_top1": (0.8, True),
    "stuck_drift_as_sensor_fault": (0.8, True),
}
#: Reported beside the goals (mean and worst), without a goal of their own: what the operator also pays.
WATCHED = {"false_sensor_alerts_per_asset_week": False, "machine_faults_with_machine_alert": True}


def test_bench_sim_quality(tmp_path: Path) -> None:
    per_seed = []
    for seed in SEEDS:
        start = time.perf_counter()
        result, summary = run_plant(tmp_path / f"seed-{seed}", seed, TRAIN_H, TEST_H)
        machine = [f for f in result.per_fault if f["kind"] == "machine_fault"]
        # Also report how often a machine fault raised a *machine* alert (not only a sensor alert): simeval's
        # recall counts either, and an operator sent to check a sensor for a worn bearing is partly misled.
        as_machine = sum(f["machine_alert"] for f in machine) / len(machine) if machine else math.nan
        per_seed.append(
            {
                "seed": seed,
                **summary,
                "machine_faults_with_machine_alert": as_machine,
                "seconds": time.perf_counter() - start,
                "faults": result.per_fault,
            }
        )
    aggregate: dict[str, dict[str, float | bool]] = {}
    for metric, (goal, higher) in GOALS.items():
        mean, worst = _mean_worst(per_seed, metric, higher)
        aggregate[metric] = {
            "mean": mean,
            "worst": worst,
            "goal": goal,
            "meets_goal_worst": worst >= goal if higher else worst <= goal,
        }
    for metric, higher in WATCHED.items():
        mean, worst = _mean_worst(per_seed, metric, higher)
        aggregate[metric] = {"mean": mean, "worst": worst}
    result_json = {
        "benchmark": "sim_quality",
        "seeds": list(SEEDS),
        "train_hours": TRAIN_H,
        "test_hours": TEST_H,
        "detector": "pca_t2q (default configuration)",
        "aggregate": aggregate,
        "per_seed": per_seed,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result_json, indent=2, default=str) + "\n")
    for metric, agg in aggregate.items():
        goal = f" (goal {agg['goal']})" if "goal" in agg else ""
        print(f"\n{metric}: mean {agg['mean']:.3f} worst {agg['worst']:.3f}{goal}", end="")
    print()


def _mean_worst(per_seed: list[dict[str, Any]], metric: str, higher: bool) -> tuple[float, float]:
    """Mean and worst over the seeds that could measure ``metric`` (NaN, NaN when none could)."""
    values = [float(s[metric]) for s in per_seed if not math.isnan(float(s[metric]))]
    if not values:  # no seed had such a fault to find
        return math.nan, math.nan
    return sum(values) / len(values), min(values) if higher else max(values)
