"""One training loop for every PyTorch detector: device, seeding, early stopping, progress, checkpoints.

Why one loop: the autoencoders differ only in their network, so device choice, mixed precision, the
time-ordered validation split, early stopping and resumable checkpoints are written (and tested) once.

Reproducibility is **per device**: the same seed, data and configuration give bit-identical weights on one
CPU build (deterministic algorithms are switched on while training), and repeatable but possibly different
weights on a GPU. Seeding happens inside :func:`torch.random.fork_rng`, so library code never disturbs the
caller's global random state. Batches are shuffled with a generator derived from ``(seed, epoch)``; together
with the saved optimizer state this makes a resumed run continue exactly as an uninterrupted one would.

Checkpoints never use pickle for weights: model weights are safetensors, the optimizer state is a
``state_dict`` loaded back with ``weights_only=True``, and the bookkeeping is JSON. A checkpoint is written
into a fresh ``epoch-NNNN`` directory and committed by atomically replacing ``checkpoint.json``, so a crash
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import nn

DEVICE_CHOICES = ("auto", "cpu", "cuda")
POINTER = "checkpoint.json"

#: ``loss_fn(model, batch) -> scalar loss``; the batch is a float32 tensor of windows ``(B, L, S)``.
LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def check_device_name(device: str) -> str:
    """Validate a device setting (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) without touching the hardware."""
    if device in DEVICE_CHOICES:
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)} or cuda:N, got {device!r}")


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; an explicit CUDA request without a GPU is an error."""
    check_device_name(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); full float32 on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch for the duration of the block and restore the caller's RNG and determinism settings after."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        else:
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def split_validation(
    X: npt.NDArray[np.float32], X_val: npt.NDArray[np.float32] | None, val_fraction: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """Use ``X_val`` when given, else hold out the *last* ``val_fraction`` of ``X`` (time order, no shuffle).

    Windows overlap in time, so a random split would leak near-copies of validation windows into training
    and make early stopping stop too late.
    """
    if X_val is not None:
        return X, X_val
    n_val = round(len(X) * val_fraction)
    if n_val < 1 or len(X) - n_val < 1:
        return X, None
    return X[:-n_val], X[-n_val:]


@dataclass(frozen=True)
class TrainConfig:
    """Everything the loop needs besides the network and data; ``epochs`` may grow when resuming."""

    epochs: int
    batch_size: int
    lr: float
    patience: int
    seed: int
    weight_decay: float = 0.0
    min_delta: float = 0.0
    device: str = "auto"
    checkpoint_dir: Path | None = None
    progress: bool = False


@dataclass(frozen=True)
class EpochReport:
    """Passed to the ``on_epoch`` callback after every epoch."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    seconds: float


@dataclass
class TrainResult:
    """Outcome of training; JSON-able so it can go into a bundle manifest."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    device: str
    history: list[list[float | None]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "stopped_early": self.stopped_early,
            "device": self.device,
            "history": self.history,
        }


@dataclass
class _LoopState:
    epoch: int = 0
    best_val: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    history: list[list[float | None]] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))


def _fingerprint(model: nn.Module, cfg: TrainConfig, X: npt.NDArray[Any], X_val: npt.NDArray[Any] | None) -> str:
    """What must match for a checkpoint to be resumed (everything but the epoch count and the progress flag)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X).tobytes())
    if X_val is not None:
        digest.update(b"|val|" + np.ascontiguousarray(X_val).tobytes())
    desc = {
        "model": type(model).__name__,
        "params": {k: list(v.shape) for k, v in model.state_dict().items()},
        "hyper": [cfg.batch_size, cfg.lr, cfg.patience, cfg.seed, cfg.weight_decay, cfg.min_delta],
        "data": digest.hexdigest(),
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def _save_checkpoint(
    root: Path, fp: str, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, st: _LoopState
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{st.epoch:04d}"
    target = root / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    weights = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if st.best_weights is not None:
        weights.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in st.best_weights.items()})
    save_file(weights, str(target / "weights.safetensors"))
    torch.save(opt.state_dict(), target / "optimizer.pt")
    meta = {
        "fingerprint": fp,
        "dir": name,
        "epoch": st.epoch,
        "best_val": st.best_val,
        "best_epoch": st.best_epoch,
        "bad_epochs": st.bad_epochs,
        "stopped": st.stopped,
        "history": st.history,
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
    }
    tmp = root / (POINTER + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(root / POINTER)
    for old in root.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    root: Path, fp: str, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, dev: torch.device
) -> _LoopState | None:
    pointer = root / POINTER
    if not pointer.is_file():
        return None
    meta = json.loads(pointer.read_text())
    if meta.get("fingerprint") != fp:
        raise ValueError(f"checkpoint in {root} belongs to a different model, data or configuration; remove it")
    target = root / str(meta["dir"])
    weights = load_file(str(target / "weights.safetensors"), device=str(dev))
    model.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("model.")}, strict=True)
    opt.load_state_dict(torch.load(target / "optimizer.pt", map_location=dev, weights_only=True))
    if meta.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    best = {k[5:]: v for k, v in weights.items() if k.startswith("best.")}
    return _LoopState(
        epoch=int(meta["epoch"]),
        best_val=meta["best_val"],
        best_epoch=int(meta["best_epoch"]),
        bad_epochs=int(meta["bad_epochs"]),
        stopped=bool(meta["stopped"]),
        history=meta["history"],
        best_weights=best or None,
    )


def _batches(X: torch.Tensor, batch_size: int, order: torch.Tensor | None) -> Iterator[torch.Tensor]:
    n = X.shape[0]
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size] if order is not None else slice(start, start + batch_size)
        yield X[idx]


#: Training windows up to this size are copied to the GPU once, instead of one host-to-device copy per batch
#: (a GPU is otherwise mostly waiting for small copies: the autoencoders here are tiny).
STAGE_ON_DEVICE_BYTES = 2 << 30


def _staged(X: npt.NDArray[np.float32], dev: torch.device) -> torch.Tensor:
    """The windows as a tensor: on the GPU when they fit :data:`STAGE_ON_DEVICE_BYTES`, else on the host."""
    tensor = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    if dev.type == "cuda" and tensor.numel() * tensor.element_size() <= STAGE_ON_DEVICE_BYTES:
        return tensor.to(dev)
    return tensor


def _evaluate(model: nn.Module, X: torch.Tensor, cfg: TrainConfig, dev: torch.device, loss_fn: LossFn) -> float:
    model.eval()
    dtype = amp_dtype(dev)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    with torch.no_grad():
        for xb in _batches(X, cfg.batch_size, None):
            xb = xb.to(dev, non_blocking=True)
            with torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model, xb)
            total += loss.detach().double() * xb.shape[0]
            count += xb.shape[0]
    return float(total) / max(count, 1)


def train_model(
    build: Callable[[], nn.Module],
    X: npt.NDArray[np.float32],
    X_val: npt.NDArray[np.float32] | None,
    cfg: TrainConfig,
    loss_fn: LossFn,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Build the network under the seed and train it; returns it in eval mode with the best weights loaded.

    ``X_val`` is already split off (see :func:`split_validation`); without it every epoch is trained and
    the last weights are kept.
    """
    dev = resolve_device(cfg.device)
    with seeded(cfg.seed, dev):
        model = build().to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        dtype = amp_dtype(dev)
        scaler = torch.amp.GradScaler(dev.type, enabled=dtype is torch.float16)
        fp = _fingerprint(model, cfg, X, X_val)
        state = _load_checkpoint(cfg.checkpoint_dir, fp, model, opt, scaler, dev) if cfg.checkpoint_dir else None
        state = state or _LoopState()
        x_train = _staged(X, dev)
        x_val = _staged(X_val, dev) if X_val is not None else None
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=not cfg.progress) as bar:
            task = bar.add_task("training", total=cfg.epochs, completed=state.epoch, loss="")
            while state.epoch < cfg.epochs and not state.stopped:
                started = time.perf_counter()
                model.train()
                order = torch.randperm(x_train.shape[0], generator=_epoch_generator(cfg.seed, state.epoch))
                order = order.to(x_train.device)
                total = torch.zeros((), dtype=torch.float64, device=dev)
                for xb in _batches(x_train, cfg.batch_size, order):
                    xb = xb.to(dev, non_blocking=True)
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype is not None):
                        loss = loss_fn(model, xb)
                    scaled: torch.Tensor = scaler.scale(loss)
                    scaled.backward()  # type: ignore[no-untyped-call]
                    scaler.step(opt)
                    scaler.update()
                    total += loss.detach().double() * xb.shape[0]  # summed on the device: no sync per batch
                train_loss = float(total) / x_train.shape[0]
                val_loss = _evaluate(model, x_val, cfg, dev, loss_fn) if x_val is not None else None
                state.epoch += 1
                state.history.append([train_loss, val_loss])
                if val_loss is not None:
                    if state.best_val is None or val_loss < state.best_val - cfg.min_delta:
                        state.best_val, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
                        state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        state.bad_epochs += 1
                        state.stopped = state.bad_epochs >= cfg.patience
                else:
                    state.best_epoch = state.epoch
                if cfg.checkpoint_dir is not None:
                    _save_checkpoint(cfg.checkpoint_dir, fp, model, opt, scaler, state)
                loss_text = f"loss {train_loss:.4g}" + (f" val {val_loss:.4g}" if val_loss is not None else "")
                bar.update(task, advance=1, loss=loss_text)
                if on_epoch is not None:
                    seconds = time.perf_counter() - started
                    on_epoch(EpochReport(state.epoch, cfg.epochs, train_loss, val_loss, seconds))
        if state.best_weights is not None:
            model.load_state_dict(state.best_weights, strict=True)
        model.eval()
    result = TrainResult(
        epochs_run=state.epoch,
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val,
        stopped_early=state.stopped,
        device=str(dev),
        history=state.history,
    )
    return model, result
