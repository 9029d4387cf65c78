"""Following the raw store: each poll returns the readings that reached it since the last poll, once.

Serving reads the same Parquet files training reads (one decoder, no train/serve skew), but only the new ones:
per asset a :class:`~linewatch.ingest.reader.Watermark` remembers which files were seen, and
:func:`~linewatch.ingest.reader.new_files_since` lists only recent ``date=`` partitions (``lookback_days``).

**Duplicates.** Compaction rewrites files into a merged file that the listing reports as new, and ingest's
at-least-once delivery can store a reading twice. The follower therefore keeps, per (asset, sensor), the newest
``ts`` it has delivered (its high-water mark) and delivers only rows beyond it. The price: a reading that
arrives *after* a newer reading of the same sensor was delivered (a gateway replaying its backlog out of order)
is not delivered to serving; it is still in the store for training, and is counted in
``FollowResult.behind_mark``. A late reading would mostly miss the scoring window anyway.

**Failures.** Corrupt files are skipped and reported (``files_skipped``, once: they count as seen); a file that
vanished between listing and reading was merged by compaction and its rows come with the merged file.

**Cost.** Discovering assets lists the ``raw/`` directory; with many assets and a one-second poll, pass
``discover_every`` to do it every N polls (new assets are rare). Each poll lists the files of every followed
asset's recent partitions (and stats the names it has not met), so it grows with the number of small files
compaction has not merged yet; reading the new ones is most of a poll (one file per asset per ingest flush).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from linewatch.core.clock import Clock, SystemClock
from linewatch.ingest.reader import (
    READING_DTYPES,
    AssetFiles,
    SkippedFile,
    Watermark,
    list_assets,
    new_files_since,
    read_files,
    scan_readings,
)

log = logging.getLogger(__name__)

_KEY: Final = ["asset", "sensor"]
_MARK: Final = "_mark"


@dataclass(frozen=True, slots=True)
class FollowResult:
    """What one :meth:`StoreFollower.poll` found."""

    frame: pl.DataFrame  # new readings (ts, asset, sensor, value, received_at) sorted by asset, sensor, ts
    files_read: int
    files_skipped: list[SkippedFile] = field(default_factory=list)
    new_assets: list[str] = field(default_factory=list)
    behind_mark: int = 0  # rows read but not delivered: at or before the newest ts delivered for their sensor


def _empty_marks() -> pl.DataFrame:
    return pl.DataFrame(schema={"asset": pl.String(), "sensor": pl.String(), _MARK: READING_DTYPES["ts"]})


class StoreFollower:
    """Incremental reader of the raw store below ``root`` for the assets ``assets_filter`` accepts (default all)."""

    def __init__(
        self,
        root: Path,
        assets_filter: Callable[[str], bool] | None = None,
        *,
        clock: Clock | None = None,
        lookback_days: int = 1,
        discover_every: int = 1,
        slack_s: float = 10.0,
    ) -> None:
        if lookback_days < 0 or discover_every < 1:
            raise ValueError("lookback_days must be >= 0 and discover_every >= 1")
        self.root = Path(root)
        self._accept = assets_filter
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lookback = timedelta(days=lookback_days)
        self._discover_every = discover_every
        self._slack_s = slack_s
        self._watermarks: dict[str, Watermark] = {}
        self._where: dict[str, AssetFiles] = {}  # each asset's directory, resolved once (see AssetFiles)
        self._marks = _empty_marks()
        self._polls = 0

    def assets(self) -> list[str]:
        """Assets being followed, sorted."""
        return sorted(self._watermarks)

    def _first_day(self) -> date:
        return (self._clock.now() - self._lookback).date()

    def discover(self) -> list[str]:
        """Start following assets that appeared in the store (and pass the filter); returns them, sorted."""
        fresh = [
            name
            for name in list_assets(self.root)
            if name not in self._watermarks and (self._accept is None or self._accept(name))
        ]
        for name in fresh:
            self._watermarks[name] = Watermark()
        if fresh:
            log.info("following %s new assets: %s", len(fresh), ", ".join(fresh[:20]))
        return fresh

    def poll(self) -> FollowResult:
        """Read the files that appeared since the last poll (or backfill) and return their new rows."""
        new_assets = self.discover() if self._polls % self._discover_every == 0 else []
        self._polls += 1
        first_day = self._first_day()
        files: list[Path] = []
        for asset, watermark in self._watermarks.items():
            where = self._where.get(asset)
            if where is None:
                where = self._where[asset] = AssetFiles.of(self.root, asset)
            fresh, self._watermarks[asset] = new_files_since(
                self.root, asset, watermark, first_day=first_day, slack_s=self._slack_s, where=where
            )
            files.extend(fresh)
        skipped: list[SkippedFile] = []
        frame = read_files(files, skipped=skipped) if files else pl.DataFrame(schema=READING_DTYPES)
        for bad in skipped:
            log.warning("skipping unreadable data file %s: %s", bad.path, bad.reason)
        new = self._beyond_marks(frame)
        return FollowResult(new, len(files) - len(skipped), skipped, new_assets, frame.height - new.height)

    def backfill(self, seconds: float, *, skipped: list[SkippedFile] | None = None) -> pl.DataFrame:
        """The last ``seconds`` of readings of every followed asset, so scores are available at start-up.

        Watermarks are taken *before* the read: a file that appears during it is listed again by the next poll,
        and the high-water marks set from the returned rows keep its rows from being delivered twice.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.discover()
        now = self._clock.now()
        first_day = (now - max(self._lookback, timedelta(seconds=seconds))).date()
        for asset, watermark in self._watermarks.items():
            _, self._watermarks[asset] = new_files_since(
                self.root, asset, watermark, first_day=first_day, slack_s=self._slack_s
            )
        assets = sorted(self._watermarks)
        if not assets:
            return pl.DataFrame(schema=READING_DTYPES)
        frame = scan_readings(self.root, assets, now - timedelta(seconds=seconds), skipped=skipped).collect()
        return self._beyond_marks(frame)

    def recent(
        self, seconds: float, assets: Sequence[str] | None = None, *, skipped: list[SkippedFile] | None = None
    ) -> pl.DataFrame:
        """Re-read what was already delivered in the last ``seconds`` for ``assets`` (default: all followed).

        For fresh buffers (a swapped model) while polling goes on: only rows at or before their (asset, sensor)
        high-water mark are returned, since the rows beyond it come with the next :meth:`poll`; watermarks and
        marks are left alone.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        names = sorted(self._watermarks) if assets is None else [a for a in assets if a in self._watermarks]
        if not names or self._marks.height == 0:
            return pl.DataFrame(schema=READING_DTYPES)
        start = self._clock.now() - timedelta(seconds=seconds)
        frame = scan_readings(self.root, names, start, skipped=skipped).collect()
        return frame.join(self._marks, on=_KEY, how="inner").filter(pl.col("ts") <= pl.col(_MARK)).drop(_MARK)

    def sensors(self, assets: Sequence[str]) -> set[str]:
        """Sensors delivered so far for any of ``assets`` (to check a model against the data it will score)."""
        if self._marks.height == 0:
            return set()
        rows = self._marks.filter(pl.col("asset").is_in(list(assets)))
        return set(rows["sensor"].to_list())

    def _beyond_marks(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Rows past their (asset, sensor) high-water mark; the marks move to the newest ts returned."""
        if frame.height == 0:
            return frame
        joined = frame.join(self._marks, on=_KEY, how="left")
        beyond = pl.col(_MARK).is_null() | (pl.col("ts") > pl.col(_MARK))
        new = joined.filter(beyond).drop(_MARK).sort([*_KEY, "ts"])
        if new.height:
            newest = new.group_by(_KEY).agg(pl.col("ts").max().alias(_MARK))
            self._marks = pl.concat([self._marks, newest], how="vertical").group_by(_KEY).agg(pl.col(_MARK).max())
        return new
