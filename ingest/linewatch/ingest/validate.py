"""Validation policy and the timestamp-window check, as pure functions of a clock value passed in.

Decoders check shape, names and values; this stage checks what depends on *now*: a reading stamped far in
the future (a device clock set wrong, or milliseconds read as microseconds) or far in the past (a gateway
replaying a week-old buffer) would land in the wrong date partition and poison a training window, so it is
quarantined with ``ts_future`` or ``ts_too_old`` instead. The clock is an argument so that tests and replay
decide what "now" is.
"""

from __future__ import annotations

from dataclasses import dataclass

from linewatch.ingest.records import Reading, Reject

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Limits applied to every message; one instance per daemon, built from the ingest config."""

    #: How far a reading may lie ahead of the receive time (device clocks drift), seconds.
    max_future_skew_s: float = 300.0
    #: How old a reading may be at receipt (store-and-forward gateways resend after outages), seconds.
    max_age_s: float = 604_800.0
    #: Larger payloads are quarantined as ``too_large`` without being decoded (bounds CPU and memory).
    max_payload_bytes: int = 256 * 1024
    #: How much of a refused payload is kept in quarantine: enough to diagnose, bounded in size.
    quarantine_payload_bytes: int = 4096
    #: Give readings without a timestamp the receive time instead of refusing them (``missing_ts``).
    accept_missing_ts: bool = False

    def __post_init__(self) -> None:
        if self.max_future_skew_s < 0 or self.max_age_s <= 0:
            raise ValueError("max_future_skew_s must be >= 0 and max_age_s > 0")
        if self.max_payload_bytes <= 0 or self.quarantine_payload_bytes < 0:
            raise ValueError("max_payload_bytes must be > 0 and quarantine_payload_bytes >= 0")

    def window_us(self, now_us: int) -> tuple[int, int]:
        """The accepted ``[oldest, newest]`` timestamps, in µs, for a message received at ``now_us``."""
        return now_us - round(self.max_age_s * _US), now_us + round(self.max_future_skew_s * _US)


def check_reading(reading: Reading, oldest_us: int, newest_us: int) -> Reject | None:
    """The reject for a reading outside ``[oldest_us, newest_us]``, else ``None``."""
    ts = reading.ts_us
    if ts > newest_us:
        ahead = (ts - newest_us) / _US
        return Reject("ts_future", f"{reading.asset}/{reading.sensor}: timestamp {ahead:.0f} s beyond the allowed skew")
    if ts < oldest_us:
        behind = (oldest_us - ts) / _US
        return Reject("ts_too_old", f"{reading.asset}/{reading.sensor}: timestamp {behind:.0f} s beyond max age")
    return None


def validate_readings(
    readings: list[Reading], now_us: int, policy: ValidationPolicy, rejects: list[Reject]
) -> list[Reading]:
    """The readings inside the policy's time window; a reject is appended for each one outside it.

    Returns ``readings`` itself when all pass (the common case), so nothing is copied on the hot path.
    """
    oldest, newest = policy.window_us(now_us)
    return filter_window(readings, oldest, newest, rejects)


def filter_window(readings: list[Reading], oldest_us: int, newest_us: int, rejects: list[Reject]) -> list[Reading]:
    """:func:`validate_readings` with the window already computed (callers that precompute the offsets)."""
    oldest, newest = oldest_us, newest_us
    for reading in readings:
        if not oldest <= reading.ts_us <= newest:
            break
    else:
        return readings
    kept = []
    for reading in readings:
        reject = check_reading(reading, oldest, newest)
        if reject is None:
            kept.append(reading)
        else:
            rejects.append(reject)
    return kept
