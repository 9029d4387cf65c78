"""Autoencoders on raw windows: a dense one and a 1-D convolutional one (the LSTM one lives in ``lstm.py``).

An autoencoder trained on normal windows learns to reproduce normal behaviour through a bottleneck, so it
cannot reproduce what it never saw: the reconstruction error is the anomaly score, its split over sensors is
the attribution, and the reconstruction of the last step is the value the model expected.

Score: the mean squared reconstruction error over the whole window, every step weighted equally. Weighting
recent steps more would react faster but make the score noisier, and serving already slides the window
every interval, so a fault enters the score as soon as it enters the window.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from linewatch.models.base import Array, Detector, NotFittedError, Tensors, register_detector
from linewatch.models.detectors.torch_train import (
    TrainConfig,
    TrainResult,
    check_device_name,
    resolve_device,
    split_validation,
    train_model,
)

_INFERENCE_BATCH = 1024


def positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _sizes(name: str, values: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(positive_int(name, v) for v in values)
    if not sizes:
        raise ValueError(f"{name} must name at least one layer")
    return sizes


def _mse(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return torch.mean((model(xb).float() - xb) ** 2)


class TorchAutoencoder(Detector):
    """Shared behaviour of the reconstruction detectors: hyper-parameters, training, scoring and state.

    Subclasses only say how to build their network for a window length and sensor count.
    """

    def __init__(
        self,
        *,
        epochs: int = 15,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        patience: int = 4,
        val_fraction: float = 0.1,
        device: str = "auto",
        checkpoint_dir: str | None = None,
        progress: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.epochs = positive_int("epochs", epochs)
        self.batch_size = positive_int("batch_size", batch_size)
        self.patience = positive_int("patience", patience)
        if not (lr > 0 and np.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not (weight_decay >= 0 and np.isfinite(weight_decay)):
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.val_fraction = float(val_fraction)
        self.device = check_device_name(device)
        self.checkpoint_dir = checkpoint_dir
        self.progress = bool(progress)
        self.model_: nn.Module | None = None
        self.train_result_: TrainResult | None = None

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "patience": self.patience,
            "val_fraction": self.val_fraction,
            "device": self.device,
            "checkpoint_dir": self.checkpoint_dir,
            "progress": self.progress,
        }

    @abstractmethod
    def _build(self, window_length: int, n_sensors: int) -> nn.Module:
        """The network mapping windows ``(B, L, S)`` to reconstructions of the same shape."""

    # -- hooks -------------------------------------------------------------------------------------------
    def _fit(self, X: Array, X_val: Array | None) -> None:
        train, val = split_validation(X, X_val, self.val_fraction)
        cfg = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            patience=self.patience,
            seed=self.seed,
            weight_decay=self.weight_decay,
            device=self.device,
            checkpoint_dir=Path(self.checkpoint_dir) if self.checkpoint_dir else None,
            progress=self.progress,
        )
        length, sensors = int(X.shape[1]), int(X.shape[2])
        self.model_, self.train_result_ = train_model(lambda: self._build(length, sensors), train, val, cfg, _mse)

    def _reconstruct(self, X: Array) -> npt.NDArray[np.float32]:
        """Reconstruct in float32 (no autocast), batch by batch, without touching the model's state."""
        if self.model_ is None:
            raise NotFittedError(f"{type(self).__name__} has no network")
        dev = next(self.model_.parameters()).device
        out = np.empty_like(X)
        with torch.inference_mode():
            for start in range(0, len(X), _INFERENCE_BATCH):
                xb = torch.from_numpy(np.array(X[start : start + _INFERENCE_BATCH], dtype=np.float32)).to(dev)
                out[start : start + _INFERENCE_BATCH] = self.model_(xb).float().cpu().numpy()
        return out

    def _errors(self, X: Array) -> npt.NDArray[np.float64]:
        diff = self._reconstruct(X).astype(np.float64) - X.astype(np.float64)
        return diff**2

    def _score(self, X: Array) -> npt.NDArray[Any]:
        return np.asarray(self._errors(X).mean(axis=(1, 2)), dtype=np.float64)

    def _contrib(self, X: Array) -> npt.NDArray[Any]:
        return np.asarray(self._errors(X).mean(axis=1), dtype=np.float64)

    def _expected(self, X: Array) -> npt.NDArray[Any]:
        return self._reconstruct(X)[:, -1, :].astype(np.float64)

    def _get_state(self) -> tuple[Tensors, dict[str, Any]]:
        if self.model_ is None:
            raise NotFittedError(f"{type(self).__name__} has no network")
        tensors = {k: v.detach().cpu().contiguous().numpy() for k, v in self.model_.state_dict().items()}
        meta = {"training": self.train_result_.to_json() if self.train_result_ else None}
        return tensors, meta

    def _set_state(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        dev = resolve_device(self.device)
        model = self._build(int(meta["window_length"]), int(meta["n_sensors"]))
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, strict=True)
        self.model_ = model.to(dev).eval()
        training = meta.get("training")
        self.train_result_ = TrainResult(**training) if training else None


class _DenseNet(nn.Module):
    def __init__(self, length: int, sensors: int, hidden: tuple[int, ...], latent: int) -> None:
        super().__init__()
        self.shape = (length, sensors)
        layers: list[nn.Module] = []
        width = length * sensors
        for size in (*hidden, latent):
            layers += [nn.Linear(width, size), nn.GELU()]
            width = size
        layers.pop()  # linear bottleneck
        for size in reversed(hidden):
            layers += [nn.Linear(width, size), nn.GELU()]
            width = size
        layers.append(nn.Linear(width, length * sensors))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.flatten(1))
        return out.view(x.shape[0], *self.shape)


@register_detector
class DenseAutoencoder(TorchAutoencoder):
    """Flattened window -> MLP bottleneck -> window; cheap and strong when windows are short."""

    name = "dense_ae"

    def __init__(self, *, hidden: Sequence[int] = (128, 32), latent: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden = _sizes("hidden", hidden)
        self.latent = positive_int("latent", latent)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "hidden": list(self.hidden), "latent": self.latent}

    def _build(self, window_length: int, n_sensors: int) -> nn.Module:
        return _DenseNet(window_length, n_sensors, self.hidden, self.latent)


class _ConvNet(nn.Module):
    """Strided Conv1d encoder (sensors are channels) and transposed-conv decoder cropped to the window length."""

    def __init__(self, length: int, sensors: int, channels: tuple[int, ...], latent: int, kernel: int) -> None:
        super().__init__()
        self.length = length
        enc: list[nn.Module] = []
        width = sensors
        for ch in channels:
            enc += [nn.Conv1d(width, ch, kernel, stride=2, padding=kernel // 2), nn.GELU()]
            width = ch
        enc.append(nn.Conv1d(width, latent, 1))
        dec: list[nn.Module] = [nn.Conv1d(latent, width, 1), nn.GELU()]
        for ch in reversed((sensors, *channels[:-1])):
            dec += [nn.ConvTranspose1d(width, ch, 4, stride=2, padding=1), nn.GELU()]
            width = ch
        dec.pop()  # linear output
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.decoder(self.encoder(x.transpose(1, 2)))
        return h[:, :, : self.length].transpose(1, 2)


@register_detector
class ConvAutoencoder(TorchAutoencoder):
    """Conv1d over time with sensors as channels: learns local shapes shared across the window."""

    name = "conv_ae"

    def __init__(
        self, *, channels: Sequence[int] = (32, 32), latent: int = 4, kernel_size: int = 5, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.channels = _sizes("channels", channels)
        self.latent = positive_int("latent", latent)
        self.kernel_size = positive_int("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size!r}")

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "channels": list(self.channels),
            "latent": self.latent,
            "kernel_size": self.kernel_size,
        }

    def _build(self, window_length: int, n_sensors: int) -> nn.Module:
        return _ConvNet(window_length, n_sensors, self.channels, self.latent, self.kernel_size)
