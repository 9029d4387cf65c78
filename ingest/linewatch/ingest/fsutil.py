"""Crash-safe file operations for the Parquet store.

The ingest daemon acknowledges an MQTT message only after the readings it carries are on disk, so "written"
must mean "survives a power cut", and readers (serving, training, compaction, Spark/DuckDB) must never see a
half-written file. The recipe is the classic one: write under a temporary name that readers ignore, fsync the
file, rename it over the final name (atomic on POSIX), then fsync the directory so the rename itself is
durable. A directory created on the way (a new ``asset=`` or ``date=`` partition) is only durable once its
parent directory is fsynced too, so :func:`ensure_dir` does that for every level it had to create.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Every temporary file starts with this prefix and ends with :data:`TEMP_SUFFIX`. Readers skip names
#: starting with ``.`` (polars, Spark, Hive and DuckDB all treat them as hidden) and names not ending in
#: ``.parquet``, so both properties hold on their own.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"

#: zstd gives markedly smaller files than snappy on slowly changing sensor values at a modest CPU cost.
PARQUET_COMPRESSION = "zstd"


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's data and metadata to stable storage.

    fsync acts on the inode, so a read-only descriptor is enough on Linux and the BSDs; this lets pyarrow write
    the file by path with its fast native writer instead of going through a Python file object.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, fsyncing the parent of every level that was missing.

    The check is made before ``mkdir`` rather than by noting who created it: when two writers race to create
    the same partition, the loser must still not return before the new directory entry is durable.
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)


def temp_name_for(final_path: Path) -> Path:
    """A unique temporary sibling of ``final_path`` that no reader will pick up."""
    return final_path.with_name(f"{TEMP_PREFIX}{final_path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def is_temp_name(name: str) -> bool:
    """True for names made by :func:`temp_name_for` (leftovers of a crash mid-write)."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def atomic_write_parquet(table: pa.Table, final_path: Path) -> None:
    """Write ``table`` to ``final_path`` so that it appears complete and durable, or not at all.

    If the process dies part-way, what is left is at most a temporary file that readers ignore and that
    compaction may later remove; the final name never refers to a partial file. ``final_path`` must not
    exist yet (names are unique per writer), which keeps a bug from silently replacing stored data.
    """
    directory = final_path.parent
    ensure_dir(directory)
    if final_path.exists():
        raise FileExistsError(f"refusing to overwrite stored file {final_path}")
    tmp = temp_name_for(final_path)
    try:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
        fsync_file(tmp)
        tmp.replace(final_path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)


def durable_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` (same filesystem) and make both directory changes durable.

    Used to set corrupt files aside: the file must leave the partition (so readers and later compactions stop
    tripping over it) without ever being deleted, since it may be the only copy of acknowledged data.
    """
    ensure_dir(dst.parent)
    src.replace(dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)
