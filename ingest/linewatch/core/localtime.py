"""The plant's local clock: what "time of day" means to machines that run on shifts.

Readings are stored in UTC, but a plant starts its shifts, its air conditioning and its night cleaning by the
local clock, which moves an hour against UTC twice a year where daylight saving time applies. A model whose
time-of-day inputs and daily profile were learnt in UTC expects the morning shift an hour early for half the
year, and a model carried to a site in another time zone expects it hours off. So every time of day a model
learns or uses is read on the local clock of the time zone its window spec names (IANA names, e.g.
``Europe/Berlin``; ``UTC`` keeps the stored clock).

Polars converts whole arrays at once with the time-zone database built into it (chrono-tz), so the answer does
not depend on whether the host has tzdata installed; the standard library's ``zoneinfo`` does.
"""

from __future__ import annotations

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
    if name == UTC_NAME:
        return name
    try:
        pl.Series([0], dtype=pl.Int64).cast(pl.Datetime("us", UTC_NAME)).dt.convert_time_zone(name)
    except pl.exceptions.PolarsError as exc:
        hint = str(exc).split("Hint:", 1)[1].strip().splitlines()[0] if "Hint:" in str(exc) else ""
        raise TimeZoneError(f"unknown time zone {name!r}{f' ({hint})' if hint else ''}") from exc
    return name


def local_us(ts_us: npt.ArrayLike, time_zone: str) -> npt.NDArray[np.int64]:
    """Epoch-µs UTC timestamps as wall-clock µs of ``time_zone`` (the same shape; ``UTC``: unchanged).

    The local clock's time of day is ``local_us % 86_400_000_000``; across the autumn change an hour of wall
    clock repeats, as it does on the plant floor.
    """
    ts = np.asarray(ts_us, dtype=np.int64)
    if time_zone == UTC_NAME:
        return ts
    flat = pl.Series(ts.reshape(-1)).cast(pl.Datetime("us", UTC_NAME))
    try:
        wall = flat.dt.convert_time_zone(time_zone).dt.replace_time_zone(None).dt.epoch("us")
    except pl.exceptions.PolarsError as exc:
        raise TimeZoneError(f"unknown time zone {time_zone!r}") from exc
    return np.asarray(wall.to_numpy(), dtype=np.int64).reshape(ts.shape)
