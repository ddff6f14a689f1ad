"""Crossref's failures in the project's words: habanero / httpx2 errors become ``evidence.errors``.

A failed request is first classified (``classify``) into a ``Failure``: its kind (not found, rate limited,
timeout, network, server error, refused, unreadable answer, wrong address), whether it is worth retrying,
and whether it stops a run. ``Failure.error`` then words it for one DOI (or the citation search), and
``unreachable`` words a run-stopping error once more for the command that has to give up. This is the one
place that decides what a Crossref failure is called and what it means for a run.

habanero and httpx2 are imported inside ``classify`` (only a failing request needs their classes), so that
importing this module stays cheap. What habanero 2.9.2 raises is tabled in ``shared/reference/crossref.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from evidence.crossref.parse import one_line
from evidence.crossref.throttle import parse_retry_after
from evidence.errors import (
    BadEndpoint,
    BadResponse,
    CrossrefError,
    CrossrefUnavailable,
    DoiNotFound,
    RateLimited,
)

Route = Literal["single", "list"]
FailureKind = Literal[
    "not-found", "rate-limited", "timeout", "network", "server", "bad-response", "rejected", "bad-endpoint"
]
_RETRYABLE: frozenset[FailureKind] = frozenset({"rate-limited", "timeout", "server"})


def stops_the_run(exc: CrossrefError) -> bool:
    """Whether ``exc`` says Crossref itself is unusable right now, not something about one DOI.

    No network, a timeout, a 5xx, a 429, a wrong address, or no request sent because an earlier one failed
    for good: once one happens, a run sends nothing more.
    """
    return isinstance(exc, CrossrefUnavailable | RateLimited) or not exc.attempted


def unreachable(exc: CrossrefError) -> CrossrefError:
    """The one-line error a command reports when Crossref cannot be used at all (no network, 5xx, 429)."""
    if isinstance(exc, RateLimited):
        return exc
    if isinstance(exc, BadEndpoint):
        return BadEndpoint(
            f"Crossref could not be used ({exc.reason}): is EVIDENCE_CROSSREF_URL right? "
            "Everything else works offline.",
            doi=exc.doi,
            reason=exc.reason,
        )
    if isinstance(exc, CrossrefUnavailable):
        reason = exc.reason or str(exc)
        hint = "try again later." if reason.startswith("server error") else "no network?"
        return CrossrefUnavailable(
            f"Crossref could not be reached ({reason}): {hint} Everything else works offline.",
            doi=exc.doi,
            reason=exc.reason,
        )
    if not exc.attempted:  # e.g. Crossref refused every request (HTTP 400), so the client stopped
        return CrossrefError(
            f"Crossref refused our requests ({exc.reason or exc}); nothing more was sent",
            doi=exc.doi,
            reason=exc.reason,
        )
    return exc


@dataclass(frozen=True)
class Failure:
    """What went wrong with one request, before it is turned into per-DOI errors (internal to the package)."""

    kind: FailureKind
    detail: str
    status: int | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    @property
    def stops_the_run(self) -> bool:
        # Decided by the error it becomes, so that the client and its callers apply the same rule.
        return stops_the_run(self._error("a request", None, 1, 0.0))

    def error(
        self, subject: str, doi: str | None, attempts: int, timeout: float, *, attempted: bool = True
    ) -> CrossrefError:
        """The project's error for ``subject`` (``DOI 10.x/y`` or ``the citation search``).

        ``attempted=False``: no request was sent for ``subject`` because an earlier one failed this way.
        """
        error = self._error(subject, doi, attempts, timeout)
        if attempted:
            return error
        # The same class (so callers still see "unavailable" or "rate limited"), said honestly.
        message = f"not attempted: an earlier request failed ({error})"
        skipped: CrossrefError
        if isinstance(error, RateLimited):
            skipped = RateLimited(message, doi=doi, retry_after=error.retry_after, reason=error.reason)
        else:
            skipped = type(error)(message, doi=doi, reason=error.reason)
        skipped.attempted = False
        return skipped

    def _error(self, subject: str, doi: str | None, attempts: int, timeout: float) -> CrossrefError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if self.kind == "bad-endpoint":
            # A list route (/works?filter=..., /works?query...) never answers 404 for a missing DOI: the
            # URL itself is wrong (EVIDENCE_CROSSREF_URL, a proxy...). Nothing was checked.
            return BadEndpoint(
                f"Crossref's address answered HTTP {self.status} (not found) for {subject} at {self.detail}: "
                "is EVIDENCE_CROSSREF_URL right?",
                doi=doi,
                reason=f"HTTP {self.status} from {self.detail}",
            )
        if self.kind == "not-found":
            return DoiNotFound(
                f"Crossref has no record of {subject} (check it for typos; it may be registered elsewhere, "
                "e.g. DataCite)",
                doi=doi,
            )
        if self.kind == "rate-limited":
            wait = f"; try again in {math.ceil(self.retry_after)} s" if self.retry_after else "; try later"
            return RateLimited(
                f"Crossref is limiting our requests and refused {subject}{tries}{wait}",
                doi=doi,
                retry_after=self.retry_after,
                reason=f"HTTP 429{tries}",
            )
        if self.kind == "timeout":
            return CrossrefUnavailable(
                f"Crossref did not answer in time for {subject} (timed out after {timeout:g} s{tries}; "
                "slow or no network?)",
                doi=doi,
                reason=f"timed out after {timeout:g} s{tries}",
            )
        if self.kind == "network":
            return CrossrefUnavailable(
                f"Crossref could not be reached for {subject} (no network?)", doi=doi, reason=self.detail
            )
        if self.kind == "server":
            return CrossrefUnavailable(
                f"Crossref had a server error (HTTP {self.status}) for {subject}{tries}; try again later",
                doi=doi,
                reason=f"server error HTTP {self.status}{tries}",
            )
        if self.kind == "rejected":
            return CrossrefError(
                f"Crossref refused the request for {subject} (HTTP {self.status}: {self.detail})",
                doi=doi,
                reason=f"HTTP {self.status}: {self.detail}",
            )
        return BadResponse(
            f"Crossref sent an answer for {subject} that evidence cannot read ({self.detail})", doi=doi
        )


class RequestFailed(Exception):
    """Internal to the package: a request failed for good (after retries, if it was worth retrying)."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(failure.detail)
        self.failure = failure
        self.attempts = attempts


# ==================================================================================================
# Classifying what habanero raised
# ==================================================================================================


def classify(exc: Exception, route: Route, *, url: str, wall_clock: Callable[[], float]) -> Failure:
    """What went wrong, from whatever habanero raised (table in crossref.md); re-raises anything else.

    ``url`` is the configured address, named when an answer does not say where it came from;
    ``wall_clock`` (epoch seconds) dates a ``Retry-After`` given as an HTTP date.
    """
    import habanero.exceptions
    import httpx2

    request_error: type[Exception] = habanero.exceptions.RequestError
    response = _response_in_chain(exc, httpx2)
    if response is not None:
        return _failure_from_response(response, exc, route, request_error, url, wall_clock)
    if isinstance(exc, request_error):
        # check_json(): a 2xx answer that is not JSON, or a JSON error body without a response at hand.
        status = _int_or_none(exc.args[0] if exc.args else None)
        if status is None or status < 400:
            return Failure("bad-response", "not JSON", status=status)
        detail = str(exc.args[1] if len(exc.args) > 1 else exc)
        return _failure_from_status(status, detail, {}, route, url, wall_clock)
    cause = exc if isinstance(exc, httpx2.HTTPError) else exc.__cause__
    if isinstance(cause, httpx2.TimeoutException):
        return Failure("timeout", "timed out")
    if isinstance(cause, httpx2.TransportError):
        return Failure("network", one_line(str(cause) or type(cause).__name__))
    if isinstance(exc, RuntimeError):
        message = str(exc)
        # query paths wrap httpx2 errors: RuntimeError("timed out"), RuntimeError("HTTP Exception ...")
        if "timed out" in message.lower():
            return Failure("timeout", "timed out")
        if message.startswith("HTTP Exception") or isinstance(cause, httpx2.HTTPError):
            return Failure("network", one_line(message))
        return Failure("bad-response", one_line(message))
    if isinstance(exc, ValueError):  # json.JSONDecodeError is a ValueError
        return Failure("bad-response", "malformed JSON")
    if isinstance(exc, TypeError | KeyError | IndexError | AttributeError):
        # habanero indexes into the answer (js["message"]["total-results"], f["message"][0]) and
        # trips over shapes it did not expect, e.g. a JSON error whose "message" is a string.
        return Failure("bad-response", f"unexpected shape: {one_line(str(exc), 60)}")
    raise exc


def _failure_from_response(
    response: Any,
    exc: Exception,
    route: Route,
    request_error: type[Exception],
    configured_url: str,
    wall_clock: Callable[[], float],
) -> Failure:
    headers = {str(key).lower(): str(value) for key, value in response.headers.items()}
    detail = str(exc.args[1]) if isinstance(exc, request_error) and len(exc.args) > 1 else ""
    if not detail:
        try:
            detail = response.text
        except Exception:  # a body that cannot be decoded is no reason to lose the status
            detail = ""
    try:
        url = unquote(str(response.request.url))
    except Exception:  # a response without its request: name the configured address instead
        url = configured_url
    status = int(response.status_code)
    return _failure_from_status(status, one_line(detail or ""), headers, route, url, wall_clock)


def _failure_from_status(
    status: int,
    detail: str,
    headers: Mapping[str, str],
    route: Route,
    url: str,
    wall_clock: Callable[[], float],
) -> Failure:
    if status == 404 and route == "list":
        return Failure("bad-endpoint", one_line(url, 100), status=status, headers=headers)
    if status == 404:
        return Failure("not-found", detail or "not found", status=status, headers=headers)
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"), now=wall_clock())
        return Failure("rate-limited", "rate limited (HTTP 429)", status, retry_after, headers)
    if status >= 500:
        return Failure("server", f"server error (HTTP {status})", status=status, headers=headers)
    return Failure("rejected", detail or f"HTTP {status}", status=status, headers=headers)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _response_in_chain(exc: BaseException, httpx2: Any) -> Any:
    """The ``httpx2.Response`` of an ``HTTPStatusError`` in ``exc`` or its causes, if any.

    habanero raises ``RequestError`` (and, on a string error message, ``TypeError``) *inside* its
    ``except HTTPStatusError`` block, so the original error and its response are in ``__context__``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx2.HTTPStatusError):
            return current.response
        current = current.__cause__ or current.__context__
    return None
