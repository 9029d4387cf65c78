"""LSTM autoencoder on raw windows: encoder LSTM -> latent vector -> decoder LSTM -> reconstructed window.

Why an LSTM as well as the convolutional model: it summarises the whole window's dynamics in one state, so
it catches faults that show as a change of temporal pattern (a lag, a slower response) rather than a level.
Scoring, attribution and state handling are shared with the other autoencoders (see ``autoencoder.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from linewatch.models.base import register_detector
from linewatch.models.detectors.autoencoder import TorchAutoencoder, positive_int


class _LstmNet(nn.Module):
    def __init__(self, length: int, sensors: int, hidden: int, latent: int, layers: int) -> None:
        super().__init__()
        self.length = length
        self.encoder = nn.LSTM(sensors, hidden, num_layers=layers, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.from_latent = nn.Linear(latent, hidden)
        self.decoder = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.output = nn.Linear(hidden, sensors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x)
        z = self.to_latent(h[-1])
        # The decoder sees only the latent vector at every step, so all it knows about the window is z.
        seed = torch.tanh(self.from_latent(z)).unsqueeze(1).expand(-1, self.length, -1)
        out, _ = self.decoder(seed)
        result: torch.Tensor = self.output(out)
        return result


@register_detector
class LstmAutoencoder(TorchAutoencoder):
    """Sequence-to-sequence autoencoder; slower to train than the convolutional one, so fewer epochs by default."""

    name = "lstm_ae"

    def __init__(
        self, *, hidden: int = 32, latent: int = 8, num_layers: int = 1, epochs: int = 12, **kwargs: Any
    ) -> None:
        super().__init__(epochs=epochs, **kwargs)
        self.hidden = positive_int("hidden", hidden)
        self.latent = positive_int("latent", latent)
        self.num_layers = positive_int("num_layers", num_layers)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "hidden": self.hidden, "latent": self.latent, "num_layers": self.num_layers}

    def _build(self, window_length: int, n_sensors: int) -> nn.Module:
        return _LstmNet(window_length, n_sensors, self.hidden, self.latent, self.num_layers)
