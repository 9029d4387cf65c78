"""Shared fixtures. Integration fixtures (brokers, processes) live in tests/integration/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _clean_linewatch_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests must not see the developer's LINEWATCH_* overrides or systemd credentials."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("LINEWATCH_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key, raising=False)
    yield
