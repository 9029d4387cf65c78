"""The plant's local clock: what "time of day" means to machines that run on shifts.

Readings are stored in UTC, but a plant starts its shifts, its air conditioning and its night cleaning by the
local clock, which moves an hour against UTC twice a year where daylight saving time applies. A model whose
time-of-day inputs and daily profile were learnt in UTC expects the morning shift an hour early for half the
year, and a model carried to a site in another time zone expects it hours off. So every time of day a model
learns or uses is read on the local clock of the time zone its window spec names (IANA names, e.g.
``Europe/Berlin``; ``UTC`` keeps the stored clock).

Polars converts whole arrays at once with the time-zone database built into it (chrono-tz), so the answer does
not depend on whether the host has tzdata installed; the standard library's ``zoneinfo`` does (the simulator
uses it, one reading at a time; ``tzdata`` comes with pandas where the host has none).
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

UTC_NAME: Final = "UTC"


class TimeZoneError(ValueError):
    """A time-zone name the database does not know; the message says which and what it may have meant."""


def check_time_zone(name: str) -> str:
    """``name`` if the time-zone database knows it; raises :class:`TimeZoneError` otherwise.

    Why a check of its own: an unknown name must fail when the configuration or a bundle is read, not on the
    first tick of a serving daemon.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise TimeZoneError(f"time zone must be an IANA name such as 'Europe/Berlin' or 'UTC', got {name!r}")
    if name != UTC_NAME:
        _check_known(name)
    return name


@functools.lru_cache(maxsize=64)
def _check_known(name: str) -> None:
    """Raises for a name the database lacks; a known one is remembered (window specs are rebuilt every tick)."""
    try:
        pl.Series([0], dtype=pl.Int64).cast(pl.Datetime("us", UTC_NAME)).dt.convert_time_zone(name)
    except pl.exceptions.PolarsError as exc:
        hint = str(exc).split("Hint:", 1)[1].strip().splitlines()[0] if "Hint:" in str(exc) else ""
        raise TimeZoneError(f"unknown time zone {name!r}{f' ({hint})' if hint else ''}") from exc


def local_us(ts_us: npt.ArrayLike, time_zone: str) -> npt.NDArray[np.int64]:
    """Epoch-µs UTC timestamps as wall-clock µs of ``time_zone`` (the same shape; ``UTC``: unchanged).

    The local clock's time of day is ``local_us % 86_400_000_000``; across the autumn change an hour of wall
    clock repeats, as it does on the plant floor.
    """
    ts = np.asarray(ts_us, dtype=np.int64)
    if time_zone == UTC_NAME or ts.size == 0:
        return ts
    lo, hi = int(ts.min()), int(ts.max())
    if hi - lo <= SHORT_SPAN_US:  # serving's windows: one offset for all, unless a change falls between the ends
        ends = np.array([lo, hi], dtype=np.int64)
        start_offset, end_offset = (int(v) for v in _wall(ends, time_zone) - ends)
        if start_offset == end_offset:
            return ts + np.int64(start_offset)
    return _wall(ts.reshape(-1), time_zone).reshape(ts.shape)


#: Spans up to this long are converted by their two ends when those share an offset: no zone changes its offset
#: twice within hours, and a tick's windows (minutes to hours) then cost two conversions instead of one per step.
SHORT_SPAN_US: Final = 6 * 3_600_000_000


def _wall(flat: npt.NDArray[np.int64], time_zone: str) -> npt.NDArray[np.int64]:
    series = pl.Series(flat).cast(pl.Datetime("us", UTC_NAME))
    try:
        wall = series.dt.convert_time_zone(time_zone).dt.replace_time_zone(None).dt.epoch("us")
    except pl.exceptions.PolarsError as exc:
        raise TimeZoneError(f"unknown time zone {time_zone!r}") from exc
    return np.asarray(wall.to_numpy(), dtype=np.int64)
