"""The shared PyTorch loop: validation split, device choice, seeding hygiene, early stopping, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from linewatch.models.detectors.torch_train import (
    EpochReport,
    TrainConfig,
    check_device_name,
    resolve_device,
    seeded,
    split_validation,
    train_model,
)


def _data(n: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = np.sin(np.linspace(0, 12, 8 + n))[:, None]
    return np.stack([base[i : i + 8] + 0.05 * rng.normal(size=(8, 3)) for i in range(n)]).astype(np.float32)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(24, 4), nn.Tanh(), nn.Linear(4, 24))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out.view(x.shape)


def _mse(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return torch.mean((model(xb) - xb) ** 2)


def _cfg(epochs: int, checkpoint: Path | None = None, patience: int = 100) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=16, lr=1e-2, patience=patience, seed=3, device="cpu", checkpoint_dir=checkpoint
    )


def _weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_split_validation_keeps_time_order() -> None:
    X = np.arange(10, dtype=np.float32).reshape(10, 1, 1)
    train, val = split_validation(X, None, 0.2)
    assert val is not None
    np.testing.assert_array_equal(train.ravel(), np.arange(8))
    np.testing.assert_array_equal(val.ravel(), [8, 9])
    assert split_validation(X, None, 0.0)[1] is None
    given = X[:2]
    assert split_validation(X, given, 0.2) == (X, given)


def test_device_names() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert check_device_name("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="device"):
        check_device_name("gpu")


def test_seeded_leaves_callers_rng_and_flags_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    flag = torch.are_deterministic_algorithms_enabled()
    with seeded(5, torch.device("cpu")):
        torch.rand(10)
    assert torch.are_deterministic_algorithms_enabled() == flag
    torch.testing.assert_close(torch.rand(3), expected)


def test_training_is_reproducible_and_reports_epochs() -> None:
    X = _data()
    reports: list[EpochReport] = []
    a, result = train_model(_Tiny, X[:80], X[80:], _cfg(3), _mse, on_epoch=reports.append)
    b, _ = train_model(_Tiny, X[:80], X[80:], _cfg(3), _mse)
    for key, value in _weights(a).items():
        np.testing.assert_array_equal(value, _weights(b)[key])
    assert [r.epoch for r in reports] == [1, 2, 3] and result.epochs_run == 3
    assert len(result.history) == 3 and result.best_val_loss == min(h[1] for h in result.history)  # type: ignore[type-var]
    assert not a.training


def test_early_stopping_restores_best_weights() -> None:
    X = _data()
    # A learning rate this large makes validation loss rise quickly, so patience 1 must stop early.
    cfg = TrainConfig(epochs=30, batch_size=16, lr=5.0, patience=1, seed=3, device="cpu")
    model, result = train_model(_Tiny, X[:80], X[80:], cfg, _mse)
    assert result.stopped_early and result.epochs_run < 30
    with torch.no_grad():
        val_loss = float(_mse(model, torch.from_numpy(X[80:])))
    assert val_loss == pytest.approx(result.best_val_loss, rel=1e-5)


def test_resume_from_checkpoint_equals_uninterrupted_training(tmp_path: Path) -> None:
    X = _data()
    straight, straight_result = train_model(_Tiny, X[:80], X[80:], _cfg(4), _mse)
    _, first = train_model(_Tiny, X[:80], X[80:], _cfg(2, tmp_path), _mse)
    assert first.epochs_run == 2 and (tmp_path / "checkpoint.json").is_file()
    epochs_seen: list[int] = []
    resumed, result = train_model(
        _Tiny, X[:80], X[80:], _cfg(4, tmp_path), _mse, on_epoch=lambda r: epochs_seen.append(r.epoch)
    )
    assert epochs_seen == [3, 4], "resume must continue after the checkpointed epoch"
    assert result.history == straight_result.history
    for key, value in _weights(straight).items():
        np.testing.assert_array_equal(value, _weights(resumed)[key], err_msg=key)
    assert len(list(tmp_path.glob("epoch-*"))) == 1


def test_checkpoint_from_other_data_is_refused(tmp_path: Path) -> None:
    X = _data()
    train_model(_Tiny, X[:80], X[80:], _cfg(1, tmp_path), _mse)
    with pytest.raises(ValueError, match="different"):
        train_model(_Tiny, X[:70], X[80:], _cfg(2, tmp_path), _mse)
