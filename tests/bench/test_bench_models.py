"""Benchmark: detector training and scoring throughput on raw windows (``make bench``; .bench/models.json).

Issue 4 asks for autoencoder training and scoring throughput on the CPU, and the CUDA figures where a GPU is
present. Every detector sees the same seeded windows (:data:`N_WINDOWS` x :data:`LENGTH` x :data:`N_SENSORS`,
smooth correlated signals plus noise, like the scaled output of the preprocessing) with its default
hyper-parameters, so the training time is what ``linewatch train`` would spend on that many windows; pca_t2q
is there for reference. Throughput is windows per second: training = windows seen per epoch x epochs run
/ training time (early stopping may end a run early), scoring = windows / ``decision_function`` time.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linewatch.models.base import make_detector  # noqa: E402  (after the torch check)
from linewatch.models.detectors.autoencoder import TorchAutoencoder  # noqa: E402

pytestmark = pytest.mark.timeout(1800)

N_WINDOWS, LENGTH, N_SENSORS = 5_000, 60, 8
SCORE_REPEATS = 3
DETECTORS = ("pca_t2q", "dense_ae", "conv_ae", "lstm_ae")
OUT = Path(__file__).resolve().parents[2] / ".bench" / "models.json"


def synthetic_windows(n: int, length: int, sensors: int, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Correlated, slowly varying signals with noise: ``sensors`` mixtures of three random-walk drivers."""
    rng = np.random.default_rng(seed)
    steps = n + length
    drivers = np.cumsum(rng.normal(scale=0.05, size=(steps, 3)), axis=0)
    drivers -= drivers.mean(axis=0)
    drivers /= drivers.std(axis=0)
    series = drivers @ rng.normal(size=(3, sensors)) + rng.normal(scale=0.2, size=(steps, sensors))
    view = np.lib.stride_tricks.sliding_window_view(series, length, axis=0)[:n].transpose(0, 2, 1)
    return np.ascontiguousarray(view, dtype=np.float32)


def _measure(name: str, X: np.ndarray[Any, np.dtype[np.float32]], device: str) -> dict[str, Any]:
    params: dict[str, Any] = {"device": device} if name != "pca_t2q" else {}
    detector = make_detector(name, seed=0, **params)
    start = time.perf_counter()
    detector.fit(X)
    train_s = time.perf_counter() - start
    epochs = 1
    train_windows = len(X)
    if isinstance(detector, TorchAutoencoder) and detector.train_result_ is not None:
        epochs = detector.train_result_.epochs_run
        train_windows = len(X) - round(len(X) * detector.val_fraction)
    detector.decision_function(X[:64])  # warm-up outside the timing
    start = time.perf_counter()
    for _ in range(SCORE_REPEATS):
        scores = detector.decision_function(X)
    score_s = (time.perf_counter() - start) / SCORE_REPEATS
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    return {
        "device": device,
        "train_seconds": train_s,
        "epochs": epochs,
        "train_windows_per_second": train_windows * epochs / train_s,
        "score_seconds": score_s,
        "score_windows_per_second": len(X) / score_s,
        "config": detector.config(),
    }


def test_bench_models() -> None:
    X = synthetic_windows(N_WINDOWS, LENGTH, N_SENSORS)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    results: dict[str, dict[str, Any]] = {}
    for device in devices:
        for name in DETECTORS:
            if device == "cuda" and name == "pca_t2q":
                continue  # numpy only: its figure does not depend on the device
            results[f"{name}@{device}"] = _measure(name, X, device)
    result = {
        "benchmark": "models",
        "windows": N_WINDOWS,
        "window_length": LENGTH,
        "sensors": N_SENSORS,
        "score_repeats": SCORE_REPEATS,
        "results": results,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for key, r in results.items():
        print(
            f"\n{key}: train {r['train_seconds']:.1f} s ({r['epochs']} epochs, {r['train_windows_per_second']:,.0f} "
            f"windows/s), score {r['score_windows_per_second']:,.0f} windows/s",
            end="",
        )
    print()
