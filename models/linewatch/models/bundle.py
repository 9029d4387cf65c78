"""Model bundles on disk: a directory with ``manifest.json``, ``weights.safetensors`` and ``SHA256SUMS``.

A bundle carries everything needed to score exactly as in training (preprocessing, feature spec, detector
config and weights, calibration, health limits), so serving never re-derives any of it. Integrity: every file
is listed with its SHA-256 in ``SHA256SUMS``; one changed byte anywhere makes :func:`read_bundle` refuse the
bundle. Weights are safetensors (plain arrays; loading executes no code), metadata is JSON: no pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

SCHEMA_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
WEIGHTS: Final = "weights.safetensors"
SUMS: Final = "SHA256SUMS"

Tensors = dict[str, npt.NDArray[Any]]


class BundleError(ValueError):
    """A bundle that must not be used; the message says which file and why."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bundle(directory: Path, manifest: dict[str, Any], tensors: Tensors) -> Path:
    """Write a complete bundle at ``directory`` atomically (built in a sibling temp dir, then renamed)."""
    if directory.exists():
        raise BundleError(f"bundle directory already exists: {directory}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".staging-{directory.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        contiguous = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
        save_file(contiguous, str(staging / WEIGHTS))
        doc = {**manifest, "schema_version": SCHEMA_VERSION}
        (staging / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n")
        sums = "".join(f"{sha256_file(staging / name)}  {name}\n" for name in (MANIFEST, WEIGHTS))
        (staging / SUMS).write_text(sums)
        for name in (MANIFEST, WEIGHTS, SUMS):
            fd = os.open(staging / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(staging)
        staging.rename(directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def bundle_digest(directory: Path) -> str:
    """A short identity of a bundle's exact content (the hash of its checksum list)."""
    return sha256_file(directory / SUMS)


def verify_bundle(directory: Path) -> dict[str, str]:
    """Check every listed file against ``SHA256SUMS``; return the listing or raise :class:`BundleError`."""
    if not directory.is_dir():
        raise BundleError(f"no bundle at {directory}")
    sums_path = directory / SUMS
    try:
        lines = sums_path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{sums_path}: unreadable checksum list ({type(exc).__name__})") from exc
    listed: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or "/" in name:
            raise BundleError(f"{sums_path}:{number}: malformed line")
        listed[name] = digest
    missing = {MANIFEST, WEIGHTS} - listed.keys()
    if missing:
        raise BundleError(f"{sums_path}: does not list {', '.join(sorted(missing))}")
    for name, digest in listed.items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{directory}: listed file {name} is missing")
        actual = sha256_file(path)
        if actual != digest:
            raise BundleError(f"{path}: checksum mismatch (file changed or corrupt); refusing this bundle")
    return listed


def read_bundle(directory: Path) -> tuple[dict[str, Any], Tensors]:
    """Verify and load a bundle: its manifest and weight arrays."""
    verify_bundle(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{directory / MANIFEST}: not valid JSON") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{directory / MANIFEST}: expected a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{directory}: bundle schema version {version!r}, this linewatch reads {SCHEMA_VERSION}")
    try:
        tensors = load_file(str(directory / WEIGHTS))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise BundleError(f"{directory / WEIGHTS}: unreadable weights ({type(exc).__name__})") from exc
    return manifest, tensors
