"""Pacing requests to Crossref: how fast to send them, and how long to wait before trying one again.

``PoolLimits`` are where a client starts (the public or the polite pool); ``RateLimiter`` spaces request
starts; ``RetryPolicy`` says which attempt waits how long; ``parse_retry_after`` and ``parse_rate_limit``
read the headers with which Crossref tells us to slow down. No I/O: clock and sleep are injectable.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC


@dataclass(frozen=True)
class PoolLimits:
    """Where the limiter starts (crossref.md, limits since 1 Dec 2025); the server's headers then win."""

    single_per_second: float
    list_per_second: float
    concurrency: int
    shared_budget: bool  # one rate for every route (the public pool) or one per route (polite)


PUBLIC_POOL = PoolLimits(single_per_second=5.0, list_per_second=5.0, concurrency=1, shared_budget=True)
POLITE_POOL = PoolLimits(single_per_second=10.0, list_per_second=3.0, concurrency=3, shared_budget=False)


class RateLimiter:
    """Spaces request starts at least ``1/per_second`` apart. Thread-safe; clock and sleep injectable."""

    #: A 429 without rate headers halves the rate, but never below this.
    MIN_PER_SECOND = 0.2

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._next_start = -math.inf
        self._interval = 0.0
        self.set_rate(per_second)

    @property
    def per_second(self) -> float:
        return 1.0 / self._interval

    def set_rate(self, per_second: float) -> None:
        if not per_second > 0 or not math.isfinite(per_second):
            raise ValueError(f"a rate must be positive, not {per_second!r}")
        with self._lock:
            self._interval = 1.0 / max(per_second, self.MIN_PER_SECOND)

    def slow_down(self) -> None:
        """Halve the rate (after a 429 that did not say what the limit is)."""
        self.set_rate(self.per_second / 2)

    def wait(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429, 5xx and timeouts: exponential backoff with jitter, ``Retry-After`` honoured."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_sleep: float = 90.0  # give up rather than wait longer than this per request, in total

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt ``attempt`` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); ``None`` if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_INTERVAL_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate_limit(headers: Mapping[str, str]) -> float | None:
    """Requests per second from ``x-rate-limit-limit`` / ``x-rate-limit-interval`` (e.g. ``5``, ``1s``)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    limit_text = lowered.get("x-rate-limit-limit")
    interval_text = lowered.get("x-rate-limit-interval", "1s")
    if limit_text is None:
        return None
    match = _INTERVAL_RE.match(interval_text)
    try:
        limit = float(limit_text)
    except ValueError:
        return None
    if match is None or not limit > 0 or not math.isfinite(limit):
        return None
    seconds = float(match.group(1)) * _INTERVAL_UNITS[(match.group(2) or "s").lower()]
    return limit / seconds if seconds > 0 else None
