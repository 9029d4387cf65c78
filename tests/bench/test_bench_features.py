"""Benchmark: tsfresh vs FastFeatures on the default spec (run by ``make bench``; writes .bench/features.json)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import pytest

from linewatch.models.fast_features import FastFeatures
from linewatch.models.features import FeatureSpec, TsfreshFeatures

pytest.importorskip("tsfresh")

N_WINDOWS, LENGTH, N_SENSORS = 200, 60, 8
FAST_REPEATS = 20
GOAL_RATIO = 20.0
OUT = Path(__file__).resolve().parents[2] / ".bench" / "features.json"


def test_bench_features() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_WINDOWS, LENGTH, N_SENSORS)).astype(np.float32)
    spec = FeatureSpec.default([f"s{i}" for i in range(N_SENSORS)])
    reference, fast = TsfreshFeatures(spec), FastFeatures(spec)
    reference.transform(x[:2])  # import tsfresh/pandas outside the timing
    fast.transform(x[:2])

    start = time.perf_counter()
    ref_values = reference.transform(x)
    tsfresh_s = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(FAST_REPEATS):
        fast_values = fast.transform(x)
    fast_s = (time.perf_counter() - start) / FAST_REPEATS

    assert np.allclose(fast_values, ref_values, rtol=1e-9, atol=1e-9, equal_nan=True)
    ratio = tsfresh_s / fast_s
    result = {
        "benchmark": "features",
        "windows": N_WINDOWS,
        "window_length": LENGTH,
        "sensors": N_SENSORS,
        "features": len(spec.feature_names),
        "tsfresh_seconds": tsfresh_s,
        "fast_seconds": fast_s,
        "fast_repeats": FAST_REPEATS,
        "speedup": ratio,
        "goal_speedup": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
        "tsfresh_n_jobs": 0,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nfeatures: {N_WINDOWS}x{LENGTH}x{N_SENSORS} windows, {len(spec.feature_names)} features: "
        f"tsfresh {tsfresh_s:.3f} s, fast {fast_s * 1e3:.2f} ms, speedup {ratio:.0f}x (goal >= {GOAL_RATIO:.0f}x)"
    )
