"""The model registry: versions per asset group and an atomically switched champion.

Layout below ``<data_root>/models/<group>/``: one bundle directory per version and ``champion.json``
(``{"version", "digest", "history": [...]}``), replaced atomically (write temp, fsync, rename), so a reader
(serving's hot reload) sees either the old or the new champion, never a half-written pointer. The digest pins the
exact bundle content: a champion whose files changed after promotion is refused at load.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from linewatch.core.localtime import UTC_NAME, TimeZoneError, check_time_zone
from linewatch.core.paths import safe_child
from linewatch.core.schema import is_valid_name
from linewatch.models.bundle import BundleError, bundle_digest, read_bundle, verify_bundle

log = logging.getLogger(__name__)

CHAMPION: Final = "champion.json"
_VERSION_RE: Final = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown group or version, nothing to roll back to)."""


@dataclass(frozen=True)
class VersionInfo:
    group: str
    version: str
    path: Path
    created_at: str
    metrics: dict[str, Any]
    is_champion: bool
    adapted_from: str | None = None  # "GROUP@VERSION" of the model this one was adapted from
    clock: str = "UTC"  # the time zone its time of day is read in (``WindowSpec.timezone``)


def _adapted_from(manifest: dict[str, Any]) -> str | None:
    """``GROUP@VERSION`` from a bundle's ``training.adapted_from``; None for a model trained from scratch."""
    training = manifest.get("training")
    source = training.get("adapted_from") if isinstance(training, dict) else None
    if not isinstance(source, dict):
        return None
    return f"{source.get('asset_group', '?')}@{source.get('version', '?')}"


def _clock(manifest: dict[str, Any]) -> str:
    """The bundle's ``window.timezone``: UTC for a bundle saved before it existed, ``?`` for one the zone database
    does not know (such a bundle is refused when loaded)."""
    pre = manifest.get("preprocessing")
    spec = pre.get("spec") if isinstance(pre, dict) else None
    zone = spec.get("timezone", UTC_NAME) if isinstance(spec, dict) else UTC_NAME
    try:
        return check_time_zone(zone)
    except TimeZoneError:
        return "?"


def new_version_name(now: datetime, digest: str) -> str:
    """Sortable by time, unique by content: ``20261123T071500Z-1a2b3c4d``."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}"


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def group_dir(self, group: str) -> Path:
        if not is_valid_name(group):
            raise RegistryError(f"invalid asset group name {group!r}")
        return safe_child(self.root, group)

    # -- queries -----------------------------------------------------------------------------------------
    def versions(self, group: str) -> list[str]:
        directory = self.group_dir(group)
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.is_dir() and _VERSION_RE.match(p.name))

    def groups(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_valid_name(p.name))

    def _pointer(self, group: str) -> dict[str, Any] | None:
        path = self.group_dir(group) / CHAMPION
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path}: unreadable champion pointer") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
            raise RegistryError(f"{path}: malformed champion pointer")
        return doc

    def champion(self, group: str) -> str | None:
        pointer = self._pointer(group)
        return None if pointer is None else str(pointer["version"])

    def champion_path(self, group: str) -> tuple[Path, str] | None:
        """The champion's bundle directory and the digest it was promoted with."""
        pointer = self._pointer(group)
        if pointer is None:
            return None
        return self.group_dir(group) / str(pointer["version"]), str(pointer.get("digest", ""))

    def load_champion(self, group: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """Manifest, tensors and version of the champion; :class:`BundleError` if it was tampered with."""
        found = self.champion_path(group)
        if found is None:
            raise RegistryError(f"asset group {group!r} has no champion model yet (run `linewatch train`)")
        path, digest = found
        manifest, tensors = read_bundle(path)
        if digest and bundle_digest(path) != digest:
            raise BundleError(f"{path}: content differs from what was promoted; refusing it")
        return manifest, tensors, path.name

    def info(self, group: str) -> list[VersionInfo]:
        champion = self.champion(group)
        out = []
        for version in self.versions(group):
            path = self.group_dir(group) / version
            try:
                manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = {}
            out.append(
                VersionInfo(
                    group=group,
                    version=version,
                    path=path,
                    created_at=str(manifest.get("created_at", "?")),
                    metrics=dict(manifest.get("metrics", {})),
                    is_champion=version == champion,
                    adapted_from=_adapted_from(manifest),
                    clock=_clock(manifest),
                )
            )
        return out

    # -- changes -----------------------------------------------------------------------------------------
    def add(self, group: str, staged_bundle: Path, *, now: datetime | None = None) -> str:
        """Move a complete, verified bundle into the registry as a new version; returns the version name."""
        verify_bundle(staged_bundle)
        version = new_version_name(now or datetime.now(UTC), bundle_digest(staged_bundle))
        target = self.group_dir(group) / version
        target.parent.mkdir(parents=True, exist_ok=True)
        staged_bundle.rename(target)
        return version

    def promote(self, group: str, version: str, *, reason: str = "promoted") -> None:
        """Make ``version`` the champion (verifies it first); the old champion is kept for rollback."""
        path = self.group_dir(group) / version
        if version not in self.versions(group):
            raise RegistryError(f"asset group {group!r} has no version {version!r}")
        verify_bundle(path)
        pointer = self._pointer(group) or {"history": []}
        history = list(pointer.get("history", []))
        if pointer.get("version"):
            history.append(pointer["version"])
        self._write_pointer(
            group,
            {
                "version": version,
                "digest": bundle_digest(path),
                "promoted_at": datetime.now(UTC).isoformat(),
                "reason": reason,
                "history": history[-50:],
            },
        )
        log.info("asset group %s: champion is now %s (%s)", group, version, reason)

    def rollback(self, group: str) -> str:
        """Return to the previous champion; returns the version now in service."""
        pointer = self._pointer(group)
        if pointer is None or not pointer.get("history"):
            raise RegistryError(f"asset group {group!r} has no earlier champion to roll back to")
        history = list(pointer["history"])
        previous = str(history.pop())
        path = self.group_dir(group) / previous
        verify_bundle(path)
        self._write_pointer(
            group,
            {
                "version": previous,
                "digest": bundle_digest(path),
                "promoted_at": datetime.now(UTC).isoformat(),
                "reason": f"rollback from {pointer['version']}",
                "history": history,
            },
        )
        log.info("asset group %s: rolled back to %s", group, previous)
        return previous

    def prune(self, group: str, keep: int) -> list[str]:
        """Delete the oldest versions beyond ``keep``, never the champion or its rollback history."""
        pointer = self._pointer(group) or {}
        protected = {pointer.get("version"), *pointer.get("history", [])[-keep:]}
        versions = self.versions(group)
        removable = [v for v in versions[: max(0, len(versions) - keep)] if v not in protected]
        for version in removable:
            shutil.rmtree(self.group_dir(group) / version)
        return removable

    def _write_pointer(self, group: str, doc: dict[str, Any]) -> None:
        directory = self.group_dir(group)
        temp = directory / f".{CHAMPION}.tmp"
        with temp.open("w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(directory / CHAMPION)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
