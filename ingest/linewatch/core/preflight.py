"""File checks on a validated configuration: the paths it names must be usable.

Validation only knows types; a missing CA file or password file, or a storage root that is a regular file,
would otherwise surface as a traceback deep in start-up. These checks only look (no file is created or
written), so ``linewatch config check`` can run them on a production host, and each problem names its key.

Only files that will be read are checked: a CA file left in place while TLS is off, or a password file while no
user name is set, must not stop a daemon that never opens them. Such settings are reported instead as notes
(:func:`unused_settings`): they usually mean the admin expects TLS or a login that is not happening.
"""

from __future__ import annotations

import os
from pathlib import Path

from linewatch.core.config import LinewatchConfig


def file_problem(key: str, path: Path) -> str | None:
    """Why ``path`` (configured as ``key``) is not a readable regular file, or None if it is."""
    if not path.exists():
        return f"{key}: {path} does not exist"
    if not path.is_file():
        return f"{key}: {path} is not a regular file"
    if not os.access(path, os.R_OK):
        return f"{key}: {path} is not readable"
    return None


def directory_problem(key: str, path: Path) -> str | None:
    """Why ``path`` cannot be (or become, via ``mkdir -p``) a directory, or None if it can."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if candidate.is_dir():
                return None
            inside = "" if candidate == path else f" ({candidate} is a regular file)"
            return f"{key}: {path} is not a directory{inside}"
    return None


def path_problems(cfg: LinewatchConfig, *, storage: bool = True, mqtt: bool = True, training: bool = True) -> list[str]:
    """One ``key.path: reason`` line per configured path that cannot be used. The flags select the sections a
    command uses: a daemon must not refuse to start over a file it never reads."""
    found: list[str | None] = []
    if storage:
        root_key = "storage.root" if cfg.storage.root is not None else "home"
        found.append(directory_problem(root_key, cfg.data_root))
    if mqtt:
        if cfg.mqtt.password_file is not None and _reads_password_file(cfg):
            found.append(file_problem("mqtt.password_file", cfg.mqtt.password_file))
        if cfg.mqtt.tls.enabled:
            found.extend(file_problem(f"mqtt.tls.{name}", path) for name, path in _tls_files(cfg))
    if training:
        for i, group in enumerate(cfg.models.asset_groups):
            if group.training.labels_file is not None:
                key = f"models.asset_groups.{i}.training.labels_file"
                found.append(file_problem(key, group.training.labels_file))
    return [p for p in found if p is not None]


def unused_settings(cfg: LinewatchConfig) -> list[str]:
    """One ``key: why`` line per MQTT setting that has no effect as configured (not an error: nothing reads it)."""
    mqtt = cfg.mqtt
    notes = []
    if mqtt.username is None:
        for key, value in (("mqtt.password", mqtt.password), ("mqtt.password_file", mqtt.password_file)):
            if value is not None:
                notes.append(f"{key}: unused, because mqtt.username is not set (the broker gets no login)")
    elif mqtt.password_file is not None and not _reads_password_file(cfg):
        notes.append("mqtt.password_file: unused, because mqtt.password (or its environment override) is set")
    if not mqtt.tls.enabled:
        notes.extend(
            f"mqtt.tls.{name}: unused, because mqtt.tls.enabled is false (the connection is not encrypted)"
            for name, _ in _tls_files(cfg)
        )
    return notes


def _reads_password_file(cfg: LinewatchConfig) -> bool:
    """The client sends a password only with a user name, and an inline password comes before the file."""
    password = cfg.mqtt.password
    return cfg.mqtt.username is not None and (password is None or not password.get_secret_value())


def _tls_files(cfg: LinewatchConfig) -> list[tuple[str, Path]]:
    tls = cfg.mqtt.tls
    named = (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file))
    return [(name, path) for name, path in named if path is not None]
