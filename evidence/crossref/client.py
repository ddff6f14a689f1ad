"""The Crossref client: habanero behind typed calls, throttled, retried, and failing per DOI.

``CrossrefClient`` is built from ``Settings`` and fetches works one by one (``fetch_work``), in batches of
up to 50 DOIs per request (``fetch_works``) and by free-text citation (``search_bibliographic``). Every
request goes through one loop (``_call``): the pool's rate limiter and concurrency cap, then retries of
429, 5xx and timeouts with backoff honouring ``Retry-After`` (``evidence.crossref.throttle``); what fails
for good is translated by ``evidence.crossref.failures``.

What habanero 2.9.2 really does is described in ``shared/reference/crossref.md``; the comments below cite
it where it forced the code. habanero is imported inside ``CrossrefClient.__init__`` so that
``import evidence.crossref`` stays cheap.
"""

from __future__ import annotations

import importlib.metadata
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from evidence.config import Settings
from evidence.crossref.failures import Failure, RequestFailed, Route, classify
from evidence.crossref.parse import CrossrefWork, collapse_spaces, parse_work
from evidence.crossref.throttle import (
    POLITE_POOL,
    PUBLIC_POOL,
    PoolLimits,
    RateLimiter,
    RetryPolicy,
    parse_rate_limit,
)
from evidence.errors import BadResponse, CrossrefError, InvalidValue
from evidence.ids import normalize_doi
from evidence.sequences import chunks

logger = logging.getLogger(__name__)

#: Crossref answers ``filter=doi:A,doi:B,...`` with one work-list; 50 keeps URLs short and answers small.
MAX_BATCH = 50
#: After a refused batch (HTTP 400...), how many single requests may be refused the same way before we
#: conclude that Crossref refuses everything we send (not one odd DOI) and stop.
MAX_REFUSED_SINGLES = 3

_NOT_IN_BATCH = Failure("not-found", "absent from the batch answer")
T = TypeVar("T")


def _evidence_version() -> str:
    try:
        return importlib.metadata.version("evidence")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "dev"


OnResult = Callable[[str, "CrossrefWork | CrossrefError"], None]


@dataclass(frozen=True)
class WorkPage:
    """One page of a deep-paged search: its works, the cursor of the next page, Crossref's total."""

    works: list[CrossrefWork]
    next_cursor: str | None
    total: int | None
    skipped: int = 0  # items Crossref sent malformed


class CursorRejected(CrossrefError):
    """Crossref refused a deep-paging cursor (expired, or unknown): start the walk again from ``*``."""


class CrossrefClient:
    """Typed access to Crossref through habanero, throttled and retried, errors translated per DOI.

    One client per command: its limiter and counters describe that run. ``sleep``, ``clock`` (monotonic),
    ``wall_clock`` (epoch seconds, for ``Retry-After`` dates) and ``rng`` are injectable for tests.

    ``requests_sent`` and ``responses_429`` count what this client did (for reports and benchmarks).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        limits: PoolLimits | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = MAX_BATCH,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        # Imported here, not at module level: habanero pulls in httpx2, tqdm and urllib3.
        import habanero

        if not 1 <= batch_size <= MAX_BATCH:
            raise InvalidValue(f"a Crossref batch holds 1 to {MAX_BATCH} DOIs, not {batch_size}")
        self.settings = settings
        self.pool: Literal["public", "polite"] = "polite" if settings.mailto else "public"
        self.limits = limits or (POLITE_POOL if settings.mailto else PUBLIC_POOL)
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.requests_sent = 0
        self.responses_429 = 0
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._cr: Any = habanero.Crossref(
            base_url=settings.crossref_url.rstrip("/"),  # habanero appends "/works/"
            mailto=settings.mailto,
            ua_string=f"evidence/{_evidence_version()}",
            timeout=settings.crossref_timeout,
        )
        # habanero sends one request per call, sequentially; the semaphore keeps a multi-threaded caller
        # within the pool's concurrency too.
        self._concurrency = threading.BoundedSemaphore(self.limits.concurrency)
        single = RateLimiter(self.limits.single_per_second, clock=clock, sleep=sleep)
        listing = (
            single
            if self.limits.shared_budget
            else RateLimiter(self.limits.list_per_second, clock=clock, sleep=sleep)
        )
        self.limiters: dict[Route, RateLimiter] = {"single": single, "list": listing}
        self._counter_lock = threading.Lock()

    # --- public API ------------------------------------------------------------------------------

    def fetch_work(self, doi: str) -> CrossrefWork:
        """One work by DOI (``GET /works/{doi}``); raises a ``CrossrefError`` subclass naming the DOI.

        The work's ``doi`` is Crossref's primary DOI: it differs from the one asked for when that is an alias.
        """
        result, _failed = self._fetch_single(normalize_doi(doi))
        if isinstance(result, CrossrefError):
            raise result
        return result

    def fetch_works(
        self,
        dois: Iterable[str],
        *,
        on_result: OnResult | None = None,
        confirm_missing: bool = False,
    ) -> dict[str, CrossrefWork | CrossrefError]:
        """Many works, ``batch_size`` DOIs per request; every DOI gets a work or its own error.

        Keys are normalised DOIs (lower case), in input order, duplicates once. ``on_result(doi, result)``
        is called as each result is known (for progress bars). A DOI absent from its batch answer is
        ``DoiNotFound`` without a further request: the ``doi:`` filter and ``/works/{doi}`` read the same
        index, so a confirming request would almost always cost one request to learn the same thing. The
        exception is a DOI *alias* (the filter matches only the primary DOI); pass
        ``confirm_missing=True`` to ask ``/works/{doi}`` once for each missing DOI.

        Once any request (a batch or a single DOI) fails for good with a network error, a timeout, a 5xx,
        a 429 or a 404 on the list route (a wrong address), no further requests are sent: the remaining
        DOIs get the same kind of error, worded "not attempted" (no network on a train should fail fast).
        A refused batch (e.g. HTTP 400 for one odd DOI) is retried one DOI at a time, but if the first
        ``MAX_REFUSED_SINGLES`` single requests are refused with the same status too, Crossref refuses
        everything we send and the rest is not attempted.
        Raises ``InvalidIdentifier`` (before any request) if a value is not a DOI.
        """
        wanted = list(dict.fromkeys(normalize_doi(doi) for doi in dois))
        results: dict[str, CrossrefWork | CrossrefError] = {}
        stopped: RequestFailed | None = None

        def record(doi: str, result: CrossrefWork | CrossrefError) -> None:
            results[doi] = result
            if on_result is not None:
                on_result(doi, result)

        def skip(doi: str) -> None:
            assert stopped is not None
            record(doi, self._error(stopped, f"DOI {doi}", doi, attempted=False))

        def single(doi: str) -> RequestFailed | None:
            """One ``/works/{doi}`` request, unless the run has stopped; the failure, if any."""
            nonlocal stopped
            if stopped is not None:
                skip(doi)
                return None
            result, failed = self._fetch_single(doi)
            if failed is not None and failed.failure.stops_the_run:
                stopped = failed
            record(doi, result)
            return failed

        def one_by_one(chunk: Sequence[str], refused: RequestFailed) -> None:
            """After a refused batch: each DOI alone, unless the first few are refused the same way."""
            nonlocal stopped
            refusals = 0
            for position, doi in enumerate(chunk):
                failed = single(doi)
                same = (
                    failed is not None
                    and failed.failure.kind == "rejected"
                    and failed.failure.status == refused.failure.status
                )
                refusals += int(same)
                if refusals == MAX_REFUSED_SINGLES and refusals == position + 1 and stopped is None:
                    logger.info("Crossref refuses every DOI alone too (%s); stopping", failed)
                    stopped = refused
                    for rest in chunk[position + 1 :]:
                        skip(rest)
                    return

        # A comma would split the filter value (filter=doi:A,doi:B); such DOIs go one by one.
        batchable = [doi for doi in wanted if "," not in doi]
        singles = [doi for doi in wanted if "," in doi]

        for chunk in chunks(batchable, self.batch_size):
            if stopped is not None:
                for doi in chunk:
                    skip(doi)
                continue
            try:
                items = self._fetch_batch(chunk)
            except RequestFailed as failed:
                if failed.failure.kind == "rejected" and len(chunk) > 1:
                    # e.g. a 400 for one odd DOI in the filter: find which one, one request each.
                    logger.info("Crossref refused a batch (%s); fetching its DOIs one by one", failed)
                    one_by_one(chunk, failed)
                    continue
                if failed.failure.stops_the_run:
                    stopped = failed
                for doi in chunk:
                    record(doi, self._error(failed, f"DOI {doi}", doi))
                continue
            for doi in chunk:
                item = items.get(doi)
                if item is not None:
                    record(doi, _parse_result(item, doi))
                elif confirm_missing:
                    single(doi)
                else:
                    record(doi, _NOT_IN_BATCH.error(f"DOI {doi}", doi, 1, self.settings.crossref_timeout))

        for doi in singles:
            single(doi)
        return {doi: results[doi] for doi in wanted}

    def search_bibliographic(self, text: str, rows: int = 5) -> list[CrossrefWork]:
        """Candidates for a free-text citation (``query.bibliographic``), best first, each with ``score``.

        The score is Crossref's unnormalised relevance: the caller must still check title, first author,
        year and the gap to the runner-up. A candidate Crossref sent malformed is logged and skipped; if
        every candidate is malformed, ``BadResponse`` is raised. No candidate at all is an empty list.
        """
        query = collapse_spaces(text)
        if not query:
            raise InvalidValue("a citation search needs some text")
        if not 1 <= rows <= 100:
            raise InvalidValue(f"a citation search returns 1 to 100 candidates, not {rows}")
        try:
            items = self._ask(
                "list", lambda: self._cr.works(query_bibliographic=query, limit=rows), _work_list_items
            )
        except RequestFailed as failed:
            raise self._error(failed, "the citation search", None) from None
        works: list[CrossrefWork] = []
        problems: list[BadResponse] = []
        for item in items:
            try:
                works.append(parse_work(item))
            except BadResponse as exc:
                logger.warning("skipping a malformed Crossref candidate: %s", exc)
                problems.append(exc)
        if problems and not works:
            raise problems[0]
        return works

    def search_page(
        self,
        query: str,
        *,
        cursor: str = "*",
        rows: int = 100,
        filters: Mapping[str, str] | None = None,
    ) -> WorkPage:
        """One page of a deep-paged search: ``GET /works?query=...&filter=...&cursor=C&rows=N``.

        Start with ``cursor="*"`` and send each page's ``next_cursor`` back for the next; an empty page
        ends the walk. habanero's own cursor loop is bypassed (``cursor_max=0``): it would fetch the
        following pages itself, outside this client's throttle and retries, and it never stops when a
        page comes back empty while ``total-results`` is above zero, which is how Crossref ends a walk.
        A cursor Crossref refuses (it expires after a few idle minutes) raises ``CursorRejected``; a
        malformed item is logged and counted in ``skipped``.
        """
        if not 1 <= rows <= 1000:
            raise InvalidValue(f"a Crossref page holds 1 to 1000 works, not {rows}")
        wanted = {k: v for k, v in (filters or {}).items() if v}
        try:
            message = self._ask(
                "list",
                lambda: self._cr.works(
                    query=query, filter=dict(wanted) or None, cursor=cursor, cursor_max=0, limit=rows
                ),
                _work_list_page,
            )
        except RequestFailed as failed:
            error = self._error(failed, f"the search {query!r}", None)
            if failed.failure.kind == "rejected" and cursor != "*":
                raise CursorRejected(str(error), reason=error.reason) from None
            raise error from None
        works: list[CrossrefWork] = []
        skipped = 0
        for item in message["items"]:
            try:
                works.append(parse_work(item))
            except BadResponse as exc:
                logger.warning("skipping a malformed work in the search answer: %s", exc)
                skipped += 1
        next_cursor = message.get("next-cursor")
        total = message.get("total-results")
        return WorkPage(
            works=works,
            next_cursor=next_cursor if isinstance(next_cursor, str) and next_cursor else None,
            total=total if isinstance(total, int) else None,
            skipped=skipped,
        )

    # --- internals -------------------------------------------------------------------------------

    def _error(
        self, failed: RequestFailed, subject: str, doi: str | None, *, attempted: bool = True
    ) -> CrossrefError:
        return failed.failure.error(
            subject, doi, failed.attempts, self.settings.crossref_timeout, attempted=attempted
        )

    def _fetch_single(self, key: str) -> tuple[CrossrefWork | CrossrefError, RequestFailed | None]:
        """``GET /works/{key}`` (``key`` normalised): the work or its error, and the failed request if any."""
        try:
            # habanero concatenates the id into the path: quote "?", "#", "%"... (but keep "/").
            message = self._ask("single", lambda: self._cr.works(ids=quote(key, safe="/")), _work_message)
        except RequestFailed as failed:
            return self._error(failed, f"DOI {key}", key), failed
        return _parse_result(message, key), None

    def _fetch_batch(self, chunk: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """``GET /works?filter=doi:A,doi:B&rows=N``; the answer's items by lower-case DOI."""
        items = self._ask(
            "list", lambda: self._cr.works(filter={"doi": list(chunk)}, limit=len(chunk)), _work_list_items
        )
        by_doi: dict[str, Mapping[str, Any]] = {}
        for item in items:
            doi = item.get("DOI")
            if isinstance(doi, str):
                by_doi[doi.strip().lower()] = item
            else:
                logger.warning("Crossref sent a batch item without a DOI; ignored")
        return by_doi

    def _ask(self, route: Route, request: Callable[[], Any], read: Callable[[object], T | Failure]) -> T:
        """``_call``, then ``read`` the answer's envelope; a request failed or an unreadable answer raises."""
        answer = read(self._call(route, request))
        if isinstance(answer, Failure):
            raise RequestFailed(answer, 1)
        return answer

    @contextmanager
    def _slot(self, route: Route) -> Iterator[None]:
        with self._concurrency:
            self.limiters[route].wait()
            yield

    def _call(self, route: Route, request: Callable[[], Any]) -> Any:
        """Run one habanero call under the limiter, retrying what is worth retrying."""
        slept = 0.0
        attempt = 0
        while True:
            attempt += 1
            with self._slot(route):
                with self._counter_lock:
                    self.requests_sent += 1
                try:
                    return request()
                except Exception as exc:  # habanero raises bare RuntimeError/TypeError: see classify
                    failure = classify(
                        exc, route, url=self.settings.crossref_url, wall_clock=self._wall_clock
                    )
            self._observe(route, failure)
            if not failure.retryable or attempt >= self.retry.max_attempts:
                raise RequestFailed(failure, attempt)
            delay = (
                failure.retry_after
                if failure.retry_after is not None
                else self.retry.backoff(attempt, self._rng)
            )
            if slept + delay > self.retry.max_total_sleep:
                logger.info("giving up after %d attempts: waiting %.1f s more is too long", attempt, delay)
                raise RequestFailed(failure, attempt)
            logger.info("Crossref %s (attempt %d); retrying in %.1f s", failure.detail, attempt, delay)
            self._sleep(delay)
            slept += delay

    def _observe(self, route: Route, failure: Failure) -> None:
        """Follow the rate the server advertises on an error answer; slow down on a bare 429.

        habanero 2.9.2 does not expose the headers of successful answers (crossref.md), so until
        Crossref answers with an error we stay at the documented pool limits.
        """
        if failure.kind == "rate-limited":
            with self._counter_lock:
                self.responses_429 += 1
        advertised = parse_rate_limit(failure.headers)
        limiter = self.limiters[route]
        if advertised is not None:
            limiter.set_rate(advertised)
            logger.info("Crossref advertises %.2f requests/s; following it", advertised)
        if failure.kind == "rate-limited":
            # A 429 means we were too fast even at the advertised rate (another process on this IP?).
            limiter.slow_down()


def _envelope_message(envelope: object, message_type: str) -> Mapping[str, Any] | Failure:
    if not isinstance(envelope, Mapping):
        return Failure("bad-response", f"expected an object, got {type(envelope).__name__}")
    got_type = envelope.get("message-type")
    if got_type is not None and got_type != message_type:
        return Failure("bad-response", f"expected a {message_type}, got a {got_type}")
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        return Failure("bad-response", "no message in the answer")
    return message


def _work_message(envelope: object) -> Mapping[str, Any] | Failure:
    return _envelope_message(envelope, "work")


def _work_list_items(envelope: object) -> list[Mapping[str, Any]] | Failure:
    message = _envelope_message(envelope, "work-list")
    if isinstance(message, Failure):
        return message
    items = message.get("items")
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        return Failure("bad-response", "the work list has no items")
    return items


def _work_list_page(envelope: object) -> Mapping[str, Any] | Failure:
    """A search answer's message, its items checked (``next-cursor`` and ``total-results`` are read by the
    caller)."""
    items = _work_list_items(envelope)
    if isinstance(items, Failure):
        return items
    message = _envelope_message(envelope, "work-list")
    assert not isinstance(message, Failure)
    return message


def _parse_for(message: Mapping[str, Any], doi: str) -> CrossrefWork:
    """``parse_work`` with the error naming the DOI that was asked for (it may be an alias)."""
    try:
        return parse_work(message)
    except BadResponse as exc:
        text = str(exc) if doi in str(exc) else f"{exc} (asked for DOI {doi})"
        raise BadResponse(text, doi=doi) from exc


def _parse_result(message: Mapping[str, Any], doi: str) -> CrossrefWork | CrossrefError:
    try:
        return _parse_for(message, doi)
    except BadResponse as exc:
        return exc
