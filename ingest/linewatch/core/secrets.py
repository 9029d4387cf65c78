"""Secrets (broker password, and later others) from the environment or a credentials directory.

Secrets never belong in the YAML file that gets copied into tickets and chat; systemd's ``LoadCredential=``
puts them in ``$CREDENTIALS_DIRECTORY``, containers mount them as files. Values are never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


class SecretError(ValueError):
    """A configured secret source that cannot be read (the message never contains the secret)."""


def _first_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}") from exc
    return text.splitlines()[0].strip() if text.strip() else ""


def read_secret(
    name: str,
    *,
    inline: SecretStr | None = None,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """Resolve a secret: an inline value (config or its env override), then ``file``, then the systemd
    credentials directory entry ``name``. Returns None when no source has it."""
    if inline is not None and inline.get_secret_value():
        return inline.get_secret_value()
    if file is not None:
        return _first_line(file)
    env = os.environ if env is None else env
    cred_dir = env.get(CREDENTIALS_ENV, "").strip()
    if cred_dir:
        candidate = Path(cred_dir) / name
        if candidate.is_file():
            return _first_line(candidate)
    return None
