"""Every detector implementation; importing this package registers them all in ``DETECTORS``.

Why a package import rather than entry points: the set of detectors ships with linewatch, and one import
makes a typo in a config's ``detector:`` a start-up error that lists the valid names.
"""

from __future__ import annotations

from linewatch.models.base import DETECTORS
from linewatch.models.detectors import autoencoder, lstm, pca, pyod_features

__all__ = ["DETECTORS", "autoencoder", "lstm", "pca", "pyod_features"]
