"""Timestamps as they appear in JSON payloads, turned into integer microseconds since the epoch (UTC).

Accepted forms:

* **ISO 8601 strings** (``datetime.fromisoformat``: ``2024-05-01T12:00:00Z``, ``...+02:00``, fractional
  seconds, a space instead of ``T``). A string **without an offset is taken as UTC**: gateways that omit the
  offset almost always mean UTC, and guessing the server's local zone would make data depend on where
  linewatch runs. Digits beyond microseconds are truncated.
* **Numbers** (JSON int or float) and **numeric strings** (``"1714564800"``), as an epoch count whose unit
  is chosen by magnitude, because devices send seconds, milliseconds, microseconds or nanoseconds
  without saying which:

  ======================  ============  =============================================
  absolute value          unit          why the cut-off holds
  ======================  ============  =============================================
  < 1e11                  seconds       1e11 s is the year 5138
  1e11 .. < 1e14          milliseconds  1e11 ms is 1973-03-03; 1e14 ms is the year 5138
  1e14 .. < 1e17          microseconds  1e14 µs is 1973-03-03
  >= 1e17                 nanoseconds   1e17 ns is 1973-03-03
  ======================  ============  =============================================

  So any reading after March 1973 is read correctly whatever its unit; earlier millisecond values would be
  misread as seconds, which is acceptable for a plant monitor.

Refused, with :class:`TimestampError`: booleans (``true`` is not a time, even though Python's ``bool`` is an
``int``), NaN and infinities, ``null``, objects, unparseable strings, and results before 1970 or after
:data:`MAX_TS_US` (2262-04-11, the end of nanosecond int64 time, so every downstream tool can hold it).
Whether a timestamp is too old or in the future is a policy question for :mod:`linewatch.ingest.validate`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Final

from linewatch.core.logs import excerpt

#: Latest accepted timestamp: 2262-04-11T23:47:16.854775Z, the largest nanosecond count in an int64.
MAX_TS_US: Final[int] = (2**63 - 1) // 1000
#: Earliest accepted timestamp: the epoch. Sensor readings from before 1970 are always a device error.
MIN_TS_US: Final[int] = 0

_SECONDS_BELOW: Final = 1e11
_MILLIS_BELOW: Final = 1e14
_MICROS_BELOW: Final = 1e17
#: Longest string worth handing to the ISO parser; real timestamps are about 35 characters.
_MAX_TS_CHARS: Final = 64

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_NUMERIC_RE: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class TimestampError(ValueError):
    """A timestamp that cannot be used; the message says why (it may quote an excerpt of the input)."""


def _checked(ts_us: int, raw: object) -> int:
    if ts_us < MIN_TS_US or ts_us > MAX_TS_US:
        raise TimestampError(f"timestamp out of range (1970..2262): {excerpt(repr(raw), 80)}")
    return ts_us


def epoch_int_to_us(value: int) -> int:
    """An integer epoch count in seconds, ms, µs or ns (by magnitude, see the module doc) as µs, exactly."""
    magnitude = -value if value < 0 else value
    if magnitude < _SECONDS_BELOW:
        ts = value * 1_000_000
    elif magnitude < _MILLIS_BELOW:
        ts = value * 1_000
    elif magnitude < _MICROS_BELOW:
        ts = value
    else:
        ts = value // 1_000
    return _checked(ts, value)


def epoch_float_to_us(value: float) -> int:
    """A float epoch count (unit by magnitude) as µs, rounded to the nearest microsecond."""
    if not math.isfinite(value):
        raise TimestampError(f"timestamp is not finite: {value!r}")
    magnitude = abs(value)
    if magnitude < _SECONDS_BELOW:
        ts = round(value * 1e6)
    elif magnitude < _MILLIS_BELOW:
        ts = round(value * 1e3)
    elif magnitude < _MICROS_BELOW:
        ts = round(value)
    else:
        ts = round(value / 1e3)
    return _checked(ts, value)


def iso_to_us(text: str) -> int:
    """An ISO 8601 string as µs; naive strings are UTC (see the module doc)."""
    if len(text) > _MAX_TS_CHARS:
        raise TimestampError(f"timestamp string too long ({len(text)} chars)")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampError(f"not an ISO 8601 timestamp: {excerpt(text, 80)!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _checked((parsed - _EPOCH) // _ONE_US, text)


def to_us(value: object) -> int:
    """Any accepted JSON timestamp form as integer µs since the epoch, UTC; :class:`TimestampError` if not.

    Ints are checked first with an exact type test because they are the common case on the hot path.
    """
    if type(value) is int:
        return epoch_int_to_us(value)
    if type(value) is float:
        return epoch_float_to_us(value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC_RE.fullmatch(text) is not None and len(text) <= _MAX_TS_CHARS:
            if "." in text or "e" in text or "E" in text:
                return epoch_float_to_us(float(text))
            return epoch_int_to_us(int(text))
        return iso_to_us(text)
    if isinstance(value, bool):
        raise TimestampError(f"timestamp is a boolean: {value!r}")
    if isinstance(value, int):  # an int subclass other than bool
        return epoch_int_to_us(int(value))
    if isinstance(value, float):
        return epoch_float_to_us(float(value))
    raise TimestampError(f"timestamp has unsupported type {type(value).__name__}")
