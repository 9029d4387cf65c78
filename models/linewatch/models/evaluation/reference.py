"""Published figures and the project's goals per benchmark metric, so every report says where it stands.

Sources: the benchmark data's README (``../shared/data/README.md``: SKAB's public leaderboard over all 34 labelled
files, of which 20 are evaluated here; SMD's per-sensor z-score and random rankings; TEP's PCA T² + SPE) and the
goals of the evaluation issue. They are constants, not inputs: a report compares against what was published,
never against a number chosen after seeing results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reference:
    """One metric of a summary: what was published (or a simple baseline) and the goal, in the summary's units."""

    metric: str
    published: str  # what the figure is, in words, with its value
    goal: float | None
    higher_is_better: bool = True

    def met(self, value: Any) -> bool | None:
        """Whether ``value`` reaches the goal; None without a goal or a finite value."""
        if self.goal is None or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return value >= self.goal if self.higher_is_better else value <= self.goal


REFERENCES: dict[str, tuple[Reference, ...]] = {
    "skab": (
        Reference("f1", "leaderboard best (Conv-AE, all 34 files) 0.78", 0.88),
        Reference("far", "Conv-AE 13.55 %", 8.0, higher_is_better=False),
        Reference("mar", "Conv-AE 28.02 %", 15.0, higher_is_better=False),
        Reference("nab_standard", "best published (MSCRED) 32.42", None),
    ),
    "smd": (
        Reference("vus_pr", "per-sensor z-score about 0.42", 0.50),
        Reference(
            "hitrate_100",
            "z-score 0.78 as quoted (max over the segment comes close; summed: hitrate_100_zscore), random 0.17",
            0.85,
        ),
        Reference(
            "hitrate_150",
            "z-score 0.88 as quoted (max over the segment comes close; summed: hitrate_150_zscore), random 0.25",
            0.93,
        ),
    ),
    "tep": (
        Reference("mean_detection_rate", "PCA T² + SPE 0.77", 0.90),
        Reference("false_alarm_rate", "PCA T² + SPE 0.031", 0.01, higher_is_better=False),
    ),
}


def comparison_rows(dataset: str, summary: dict[str, Any]) -> list[tuple[str, Any, str, str, str]]:
    """``(metric, value, published, goal, met)`` per referenced metric of ``summary`` (as text, for a table)."""
    rows = []
    for ref in REFERENCES.get(dataset, ()):
        value = summary.get(ref.metric)
        goal = "-" if ref.goal is None else f"{'≥' if ref.higher_is_better else '≤'} {ref.goal:g}"
        met = {True: "yes", False: "no", None: "-"}[ref.met(value)]
        rows.append((ref.metric, value, ref.published, goal, met))
    return rows
