"""CrossrefClient against a real HTTP server on 127.0.0.1 (pytest-httpserver); habanero is never mocked.

Sleep, clocks and randomness are injected so retries and throttling cost no real time, except in the one
test that measures the spacing the server actually saw.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from evidence.config import Settings
from evidence.crossref import (
    MAX_REFUSED_SINGLES,
    POLITE_POOL,
    PUBLIC_POOL,
    CrossrefClient,
    CrossrefWork,
    PoolLimits,
    RateLimiter,
    RetryPolicy,
    parse_rate_limit,
    parse_retry_after,
)
from evidence.errors import (
    BadEndpoint,
    BadResponse,
    CrossrefError,
    CrossrefUnavailable,
    DoiNotFound,
    InvalidIdentifier,
    RateLimited,
)

FIXTURES = Path(__file__).parent / "fixtures" / "crossref"
ARTICLE_DOI = "10.5555/iastm.2019.001"
PARTIAL_DOI = "10.5555/iastm.2015.partial"
FAST = PoolLimits(single_per_second=1000.0, list_per_second=1000.0, concurrency=1, shared_budget=True)


def envelope(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return result


def base_url(server: HTTPServer) -> str:
    return server.url_for("").rstrip("/")  # habanero appends "/works/"


class Sleeps(list[float]):
    """Records sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(tmp_path: Path, sleeps: Sleeps) -> Callable[..., CrossrefClient]:
    def make(
        server_url: str,
        *,
        timeout: float = 5.0,
        mailto: str | None = None,
        limits: PoolLimits | None = FAST,
        **kwargs: Any,
    ) -> CrossrefClient:
        settings = Settings(
            home=tmp_path,
            db_url="sqlite://",
            crossref_url=server_url,
            mailto=mailto,
            crossref_timeout=timeout,
        )
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("rng", random.Random(7))
        return CrossrefClient(settings, limits=limits, **kwargs)

    return make


@pytest.fixture
def client(httpserver: HTTPServer, make_client: Callable[..., CrossrefClient]) -> CrossrefClient:
    return make_client(base_url(httpserver))


def work_path(doi: str) -> str:
    return f"/works/{doi}"


# --- one DOI ----------------------------------------------------------------------------------------


def test_fetch_work_parses_and_identifies_us(
    httpserver: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(envelope("journal_article"))
    client = make_client(base_url(httpserver), mailto="clinic@example.org")

    work = client.fetch_work("https://doi.org/10.5555/IASTM.2019.001")

    assert isinstance(work, CrossrefWork)
    assert work.doi == ARTICLE_DOI
    assert work.raw == envelope("journal_article")["message"]
    assert len(httpserver.log) == 1
    agent = httpserver.log[0][0].headers["User-Agent"]
    assert "evidence/" in agent
    assert "mailto:clinic@example.org" in agent
    assert client.pool == "polite"
    assert client.requests_sent == 1


def test_doi_with_reserved_characters_is_quoted(httpserver: HTTPServer, client: CrossrefClient) -> None:
    doi = "10.5555/abc?def#1"
    body = {"status": "ok", "message-type": "work", "message": {"DOI": doi, "title": ["Odd DOI"]}}
    httpserver.expect_request(work_path(doi)).respond_with_json(body)

    assert client.fetch_work(doi).title == "Odd DOI"
    assert "%3F" in httpserver.log[0][0].url or "%3f" in httpserver.log[0][0].url


def test_404_is_doi_not_found_without_retry(
    httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps
) -> None:
    httpserver.expect_request(work_path("10.5555/nope")).respond_with_data(
        "Resource not found.", status=404, content_type="text/plain"
    )

    with pytest.raises(DoiNotFound) as caught:
        client.fetch_work("10.5555/nope")

    assert caught.value.doi == "10.5555/nope"
    assert "Crossref has no record of DOI 10.5555/nope" in str(caught.value)
    assert len(httpserver.log) == 1
    assert sleeps == []


def test_429_with_retry_after_seconds_then_success(
    httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps
) -> None:
    httpserver.expect_oneshot_request(work_path(ARTICLE_DOI)).respond_with_data(
        "Too many requests", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(envelope("journal_article"))

    assert client.fetch_work(ARTICLE_DOI).doi == ARTICLE_DOI
    assert len(httpserver.log) == 2
    assert sleeps == [7.0]  # the server's word, not our backoff
    assert client.responses_429 == 1


def test_429_with_retry_after_http_date(
    httpserver: HTTPServer, make_client: Callable[..., CrossrefClient], sleeps: Sleeps
) -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 3, 1, 12, 0, 12, tzinfo=UTC), usegmt=True)
    httpserver.expect_oneshot_request(work_path(ARTICLE_DOI)).respond_with_data(
        "", status=429, headers={"Retry-After": later}
    )
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(envelope("journal_article"))
    client = make_client(base_url(httpserver), wall_clock=now.timestamp)

    client.fetch_work(ARTICLE_DOI)

    assert sleeps == [12.0]


def test_429_without_retry_after_backs_off_then_gives_up(
    httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps
) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data("slow down", status=429)

    with pytest.raises(RateLimited) as caught:
        client.fetch_work(ARTICLE_DOI)

    assert len(httpserver.log) == 5  # RetryPolicy.max_attempts
    assert caught.value.retry_after is None
    assert caught.value.doi == ARTICLE_DOI
    assert "after 5 attempts" in str(caught.value)
    assert len(sleeps) == 4
    # exponential with equal jitter: attempt n waits between 2**(n-1)/2 and 2**(n-1) seconds
    for attempt, slept in enumerate(sleeps, start=1):
        assert 2 ** (attempt - 1) / 2 <= slept <= 2 ** (attempt - 1)
    assert client.responses_429 == 5


def test_long_retry_after_gives_up_at_once_and_says_when(
    httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps
) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )

    with pytest.raises(RateLimited, match="try again in 3600 s") as caught:
        client.fetch_work(ARTICLE_DOI)

    assert caught.value.retry_after == 3600.0
    assert len(httpserver.log) == 1
    assert sleeps == []


def test_total_sleep_is_capped(
    httpserver: HTTPServer, make_client: Callable[..., CrossrefClient], sleeps: Sleeps
) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data("", status=503)
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=30.0, max_total_sleep=5.0)
    client = make_client(base_url(httpserver), retry=policy)

    with pytest.raises(CrossrefUnavailable):
        client.fetch_work(ARTICLE_DOI)

    assert sum(sleeps) <= 5.0
    assert len(httpserver.log) == len(sleeps) + 1 < 10


def test_429_follows_advertised_rate_limit(httpserver: HTTPServer, client: CrossrefClient) -> None:
    headers = {"Retry-After": "1", "X-Rate-Limit-Limit": "4", "X-Rate-Limit-Interval": "1s"}
    httpserver.expect_oneshot_request(work_path(ARTICLE_DOI)).respond_with_data(
        "", status=429, headers=headers
    )
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(envelope("journal_article"))

    client.fetch_work(ARTICLE_DOI)

    # followed the advertised 4/s, then halved it because even that was too fast
    assert client.limiters["single"].per_second == pytest.approx(2.0)


def test_500_then_success(httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps) -> None:
    httpserver.expect_oneshot_request(work_path(ARTICLE_DOI)).respond_with_data("oops", status=500)
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(envelope("journal_article"))

    assert client.fetch_work(ARTICLE_DOI).citation_count == 42
    assert len(httpserver.log) == 2
    assert len(sleeps) == 1


def test_5xx_every_time_is_unavailable(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data("Bad gateway", status=502)

    with pytest.raises(CrossrefUnavailable, match=r"server error \(HTTP 502\) for DOI 10\.5555"):
        client.fetch_work(ARTICLE_DOI)
    assert len(httpserver.log) == 5


def test_other_4xx_is_never_retried(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data("Forbidden", status=403)

    with pytest.raises(CrossrefError, match="refused the request for DOI") as caught:
        client.fetch_work(ARTICLE_DOI)
    assert not isinstance(caught.value, CrossrefUnavailable | RateLimited | DoiNotFound)
    assert len(httpserver.log) == 1


def test_malformed_json_is_bad_response(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data(
        '{"status": "ok", "message": {"DOI": ', content_type="application/json"
    )

    with pytest.raises(BadResponse, match="malformed JSON") as caught:
        client.fetch_work(ARTICLE_DOI)
    assert caught.value.doi == ARTICLE_DOI
    assert len(httpserver.log) == 1


def test_html_instead_of_json_is_bad_response(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_data(
        "<html>captive portal</html>", content_type="text/html"
    )

    with pytest.raises(BadResponse, match=ARTICLE_DOI):
        client.fetch_work(ARTICLE_DOI)


def test_wrong_shape_is_bad_response(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(
        {"status": "ok", "message-type": "work", "message": {"DOI": ARTICLE_DOI, "author": "Pereira A"}}
    )

    with pytest.raises(BadResponse, match="unexpected 'author'"):
        client.fetch_work(ARTICLE_DOI)


def test_invalid_doi_is_refused_before_any_request(httpserver: HTTPServer, client: CrossrefClient) -> None:
    with pytest.raises(InvalidIdentifier):
        client.fetch_work("not-a-doi")
    with pytest.raises(InvalidIdentifier):
        client.fetch_works([ARTICLE_DOI, "nope"])
    assert httpserver.log == []


# --- network faults ---------------------------------------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A server that answers while an earlier handler is still sleeping (for timeouts)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def slow_then_fast(body: dict[str, Any], delay: float, slow_calls: int) -> Callable[[Request], Response]:
    calls = {"n": 0}
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n <= slow_calls:
            time.sleep(delay)
        return Response(json.dumps(body), content_type="application/json")

    return handler


def test_timeout_is_retried(
    threaded_server: HTTPServer, make_client: Callable[..., CrossrefClient], sleeps: Sleeps
) -> None:
    handler = slow_then_fast(envelope("journal_article"), delay=1.0, slow_calls=1)
    threaded_server.expect_request(work_path(ARTICLE_DOI)).respond_with_handler(handler)
    client = make_client(base_url(threaded_server), timeout=0.2)

    assert client.fetch_work(ARTICLE_DOI).doi == ARTICLE_DOI
    assert client.requests_sent == 2
    assert len(sleeps) == 1


def test_timeouts_every_time_say_so(
    threaded_server: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    handler = slow_then_fast(envelope("journal_article"), delay=0.6, slow_calls=99)
    threaded_server.expect_request(work_path(ARTICLE_DOI)).respond_with_handler(handler)
    client = make_client(base_url(threaded_server), timeout=0.1, retry=RetryPolicy(max_attempts=2))

    with pytest.raises(CrossrefUnavailable, match="did not answer in time for DOI") as caught:
        client.fetch_work(ARTICLE_DOI)
    assert "\n" not in str(caught.value)
    assert client.requests_sent == 2


def test_timeout_on_a_query_path(
    threaded_server: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    """habanero turns a list-route timeout into a bare RuntimeError("timed out")."""
    handler = slow_then_fast(envelope("search_bibliographic"), delay=0.6, slow_calls=1)
    threaded_server.expect_request("/works").respond_with_handler(handler)
    client = make_client(base_url(threaded_server), timeout=0.1)

    candidates = client.search_bibliographic("Markovic 2015 stainless steel case series")

    assert [work.doi for work in candidates] == [PARTIAL_DOI, "10.5555/iastm.2016.other"]
    assert client.requests_sent == 2


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_no_network_is_unavailable_at_once(
    make_client: Callable[..., CrossrefClient], sleeps: Sleeps
) -> None:
    client = make_client(closed_port_url())

    with pytest.raises(CrossrefUnavailable, match=r"could not be reached for DOI .* \(no network\?\)"):
        client.fetch_work(ARTICLE_DOI)
    assert client.requests_sent == 1  # a refused connection is not retried
    assert sleeps == []


def test_no_network_in_a_batch_stops_early(make_client: Callable[..., CrossrefClient]) -> None:
    client = make_client(closed_port_url(), batch_size=2)
    dois = [f"10.5555/n{i}" for i in range(5)]

    results = client.fetch_works(dois)

    assert all(isinstance(result, CrossrefUnavailable) for result in results.values())
    assert [result.doi for result in results.values() if isinstance(result, CrossrefError)] == dois
    assert client.requests_sent == 1  # the first batch failed; the others were not tried


# --- batches ----------------------------------------------------------------------------------------


def work_list_server(known: dict[str, dict[str, Any]]) -> Callable[[Request], Response]:
    """A stand-in for GET /works?filter=doi:A,doi:B&rows=N that answers from ``known``."""

    def handler(request: Request) -> Response:
        query = parse_qs(request.query_string.decode())
        asked = [part.removeprefix("doi:") for part in query["filter"][0].split(",")]
        rows = int(query["rows"][0])
        items = [known[doi] for doi in asked if doi in known][:rows]
        body = {
            "status": "ok",
            "message-type": "work-list",
            "message": {"total-results": len(items), "items": items},
        }
        return Response(json.dumps(body), content_type="application/json")

    return handler


def known_works(dois: list[str]) -> dict[str, dict[str, Any]]:
    # Crossref answers with its own capitalisation; matching must not care.
    return {
        doi: {"DOI": doi.upper(), "title": [f"Study {doi}"], "issued": {"date-parts": [[2020]]}}
        for doi in dois
    }


def test_batch_is_one_request_and_missing_dois_are_not_found(
    httpserver: HTTPServer, client: CrossrefClient
) -> None:
    httpserver.expect_request("/works").respond_with_json(envelope("work_list"))
    seen: list[tuple[str, object]] = []

    results = client.fetch_works(
        [ARTICLE_DOI, "10.5555/MISSING", PARTIAL_DOI, ARTICLE_DOI],
        on_result=lambda doi, result: seen.append((doi, result)),
    )

    assert list(results) == [ARTICLE_DOI, "10.5555/missing", PARTIAL_DOI]  # input order, once each
    assert isinstance(results[ARTICLE_DOI], CrossrefWork)
    assert isinstance(results[PARTIAL_DOI], CrossrefWork)
    missing = results["10.5555/missing"]
    assert isinstance(missing, DoiNotFound)
    assert missing.doi == "10.5555/missing"
    assert len(httpserver.log) == 1  # no confirming request
    query = parse_qs(httpserver.log[0][0].query_string.decode())
    assert query["filter"] == [f"doi:{ARTICLE_DOI},doi:10.5555/missing,doi:{PARTIAL_DOI}"]
    assert query["rows"] == ["3"]
    assert sorted(doi for doi, _ in seen) == sorted(results)


def test_fifty_dois_are_one_request(httpserver: HTTPServer, client: CrossrefClient) -> None:
    dois = [f"10.5555/trial.{i:03d}" for i in range(50)]
    httpserver.expect_request("/works").respond_with_handler(work_list_server(known_works(dois)))

    results = client.fetch_works(dois)

    assert len(httpserver.log) == 1
    assert all(isinstance(result, CrossrefWork) for result in results.values())
    assert results["10.5555/trial.007"].title == "Study 10.5555/trial.007"  # type: ignore[union-attr]


def test_many_dois_go_fifty_at_a_time(httpserver: HTTPServer, client: CrossrefClient) -> None:
    dois = [f"10.5555/trial.{i:03d}" for i in range(120)]
    httpserver.expect_request("/works").respond_with_handler(work_list_server(known_works(dois[:-1])))

    results = client.fetch_works(dois)

    assert [parse_qs(req.query_string.decode())["rows"] for req, _ in httpserver.log] == [
        ["50"],
        ["50"],
        ["20"],
    ]
    assert isinstance(results[dois[-1]], DoiNotFound)
    assert sum(isinstance(result, CrossrefWork) for result in results.values()) == 119


def test_confirm_missing_asks_once_per_missing_doi(httpserver: HTTPServer, client: CrossrefClient) -> None:
    alias = "10.5555/old-alias"
    httpserver.expect_request("/works").respond_with_json(envelope("work_list"))
    # /works/{alias} resolves to the primary record, which the doi: filter does not match
    httpserver.expect_request(work_path(alias)).respond_with_json(envelope("journal_article"))

    results = client.fetch_works([ARTICLE_DOI, alias], confirm_missing=True)

    confirmed = results[alias]
    assert isinstance(confirmed, CrossrefWork)
    assert confirmed.doi == ARTICLE_DOI
    assert len(httpserver.log) == 2


def test_batch_with_a_malformed_item_fails_only_that_doi(
    httpserver: HTTPServer, client: CrossrefClient
) -> None:
    good, bad = "10.5555/good", "10.5555/bad"
    known = known_works([good])
    known[bad] = {"DOI": bad, "author": "not a list"}
    httpserver.expect_request("/works").respond_with_handler(work_list_server(known))

    results = client.fetch_works([good, bad])

    assert isinstance(results[good], CrossrefWork)
    assert isinstance(results[bad], BadResponse)
    assert results[bad].doi == bad


def test_batch_server_error_fails_each_doi_and_stops(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request("/works").respond_with_data("Service unavailable", status=503)
    dois = [f"10.5555/s{i}" for i in range(60)]

    results = client.fetch_works(dois)

    assert len(results) == 60
    assert all(isinstance(result, CrossrefUnavailable) for result in results.values())
    assert results["10.5555/s59"].doi == "10.5555/s59"
    assert "10.5555/s59" in str(results["10.5555/s59"])
    assert len(httpserver.log) == 5  # the first batch's attempts; the second batch was never sent


def test_batch_rate_limited_then_served(
    httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps
) -> None:
    httpserver.expect_oneshot_request("/works").respond_with_data(
        "", status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_request("/works").respond_with_json(envelope("work_list"))

    results = client.fetch_works([ARTICLE_DOI, PARTIAL_DOI])

    assert all(isinstance(result, CrossrefWork) for result in results.values())
    assert len(httpserver.log) == 2
    assert sleeps == [2.0]


def test_refused_batch_falls_back_to_single_requests(httpserver: HTTPServer, client: CrossrefClient) -> None:
    validation = {
        "status": "failed",
        "message-type": "validation-failure",
        "message": [{"type": "filter-value-invalid", "value": "doi:10.5555/x y", "message": "bad DOI"}],
    }
    httpserver.expect_request("/works").respond_with_json(validation, status=400)
    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_json(envelope("journal_article"))
    httpserver.expect_request(work_path("10.5555/odd")).respond_with_data("Resource not found.", status=404)

    results = client.fetch_works([ARTICLE_DOI, "10.5555/odd"])

    assert isinstance(results[ARTICLE_DOI], CrossrefWork)
    assert isinstance(results["10.5555/odd"], DoiNotFound)
    assert len(httpserver.log) == 3


def test_a_confirming_request_that_fails_for_good_stops_the_run(
    httpserver: HTTPServer, client: CrossrefClient
) -> None:
    """Review: a 5xx on /works/{doi} (confirm_missing, as enrich uses it) did not stop the run."""
    missing = [f"10.5555/gone.{i}" for i in range(3)]
    httpserver.expect_request("/works").respond_with_json(envelope("work_list"))
    httpserver.expect_request(re.compile(r"^/works/.+")).respond_with_data("Bad gateway", status=502)

    results = client.fetch_works([ARTICLE_DOI, *missing], confirm_missing=True)

    assert isinstance(results[ARTICLE_DOI], CrossrefWork)
    assert all(isinstance(results[doi], CrossrefUnavailable) for doi in missing)
    assert "HTTP 502" in str(results[missing[0]]) and "not attempted" not in str(results[missing[0]])
    assert all(str(results[doi]).startswith("not attempted: ") for doi in missing[1:])
    # one batch, then the first confirming request with its retries (max_attempts), then nothing
    assert len(httpserver.log) == 1 + client.retry.max_attempts
    assert [req.path for req, _ in httpserver.log[1:]] == [f"/works/{missing[0]}"] * client.retry.max_attempts


def test_a_timeout_on_a_single_doi_stops_the_following_ones(
    threaded_server: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    handler = slow_then_fast(envelope("journal_article"), delay=0.6, slow_calls=99)
    threaded_server.expect_request(re.compile(r"^/works/.+")).respond_with_handler(handler)
    client = make_client(base_url(threaded_server), timeout=0.1, retry=RetryPolicy(max_attempts=2))
    commas = ["10.5555/(sici)1,2", "10.5555/(sici)3,4", "10.5555/(sici)5,6"]  # fetched one by one

    results = client.fetch_works(commas)

    assert all(isinstance(result, CrossrefUnavailable) for result in results.values())
    assert "did not answer in time" in str(results[commas[0]])
    assert str(results[commas[2]]).startswith("not attempted: ")
    assert client.requests_sent == 2  # the first DOI's two attempts; the other two never sent


def test_refused_batch_fallback_stops_when_every_single_request_is_refused_too(
    httpserver: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    """Review: a batch 400 fell back to one request per DOI, and every one got 400 too: 114 requests."""
    client = make_client(base_url(httpserver), batch_size=50)
    httpserver.expect_request(re.compile(r"^/works.*")).respond_with_json(
        {"status": "failed", "message-type": "validation-failure", "message": [{"message": "no"}]}, status=400
    )
    dois = [f"10.5555/r.{i}" for i in range(120)]

    results = client.fetch_works(dois)

    assert len(httpserver.log) == 1 + MAX_REFUSED_SINGLES  # the batch, then 3 single DOIs: stop
    assert all(isinstance(result, CrossrefError) for result in results.values())
    assert "HTTP 400" in str(results[dois[0]])
    assert str(results[dois[3]]).startswith("not attempted: ")
    assert str(results[dois[119]]).startswith("not attempted: ")  # the later batches were never sent


def test_refused_batch_fallback_goes_on_while_single_dois_are_answered(
    httpserver: HTTPServer, client: CrossrefClient
) -> None:
    odd = "10.5555/odd"
    fine = [f"10.5555/f.{i}" for i in range(4)]
    httpserver.expect_request("/works").respond_with_json({"status": "failed", "message": []}, status=400)
    httpserver.expect_request(work_path(odd)).respond_with_json(
        {"status": "failed", "message": []}, status=400
    )
    for doi in fine:
        httpserver.expect_request(work_path(doi)).respond_with_json(
            {"status": "ok", "message-type": "work", "message": {"DOI": doi}}
        )

    results = client.fetch_works([odd, *fine])

    assert all(isinstance(results[doi], CrossrefWork) for doi in fine)
    assert type(results[odd]) is CrossrefError and "HTTP 400" in str(results[odd])
    assert len(httpserver.log) == 1 + 5


def test_404_on_the_list_route_is_a_wrong_address_not_missing_dois(
    httpserver: HTTPServer, client: CrossrefClient
) -> None:
    """Review: a 404 on /works?filter=... marked every DOI "not in Crossref"."""
    httpserver.expect_request("/works").respond_with_data("Resource not found.", status=404)
    dois = [f"10.5555/w.{i}" for i in range(60)]

    results = client.fetch_works(dois, confirm_missing=True)

    assert all(isinstance(result, BadEndpoint) for result in results.values())
    assert not any(isinstance(result, DoiNotFound) for result in results.values())
    first = str(results[dois[0]])
    assert "HTTP 404" in first and f"{base_url(httpserver)}/works?filter=doi:10.5555/w.0" in first
    assert "EVIDENCE_CROSSREF_URL" in first
    assert len(httpserver.log) == 1  # not retried, no second batch, no confirming requests

    with pytest.raises(BadEndpoint, match=r"for the citation search at .*/works\?.*query\.bibliographic"):
        client.search_bibliographic("Markovic 2015 foam rolling")
    assert len(httpserver.log) == 2


def test_doi_with_a_comma_is_fetched_alone(httpserver: HTTPServer, client: CrossrefClient) -> None:
    comma = "10.5555/(sici)1,2"
    httpserver.expect_request("/works").respond_with_json(envelope("work_list"))
    httpserver.expect_request(work_path(comma)).respond_with_json(
        {"status": "ok", "message-type": "work", "message": {"DOI": comma}}
    )

    results = client.fetch_works([ARTICLE_DOI, comma])

    assert isinstance(results[comma], CrossrefWork)
    assert "," not in parse_qs(httpserver.log[0][0].query_string.decode())["filter"][0].replace(",doi:", "")
    assert len(httpserver.log) == 2


def test_empty_batch_sends_nothing(httpserver: HTTPServer, client: CrossrefClient) -> None:
    assert client.fetch_works([]) == {}
    assert httpserver.log == []


# --- citation search --------------------------------------------------------------------------------


def test_search_bibliographic(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request("/works").respond_with_json(envelope("search_bibliographic"))

    candidates = client.search_bibliographic("Markovic  2015 IASTM\ncase series", rows=2)

    assert [(work.doi, work.score) for work in candidates] == [
        (PARTIAL_DOI, 74.31),
        ("10.5555/iastm.2016.other", 41.2),
    ]
    query = parse_qs(httpserver.log[0][0].query_string.decode())
    assert query["query.bibliographic"] == ["Markovic 2015 IASTM case series"]
    assert query["rows"] == ["2"]


def test_search_with_no_hits_is_an_empty_list(httpserver: HTTPServer, client: CrossrefClient) -> None:
    empty = {"status": "ok", "message-type": "work-list", "message": {"total-results": 0, "items": []}}
    httpserver.expect_request("/works").respond_with_json(empty)

    assert client.search_bibliographic("nothing like this exists") == []


def test_search_error_with_string_message(httpserver: HTTPServer, client: CrossrefClient) -> None:
    """habanero raises TypeError on a JSON error whose message is a string; we still see the status."""
    httpserver.expect_request("/works").respond_with_json(
        {"status": "failed", "message": "query too long"}, status=400
    )

    with pytest.raises(CrossrefError, match=r"refused the request for the citation search \(HTTP 400"):
        client.search_bibliographic("x")
    assert len(httpserver.log) == 1


def test_search_5xx_with_string_message_is_retried(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_oneshot_request("/works").respond_with_json(
        {"status": "failed", "message": "busy"}, status=503
    )
    httpserver.expect_request("/works").respond_with_json(envelope("search_bibliographic"))

    assert len(client.search_bibliographic("Markovic 2015")) == 2
    assert len(httpserver.log) == 2


def test_search_429_with_json_body_keeps_retry_after(
    httpserver: HTTPServer, client: CrossrefClient, sleeps: Sleeps
) -> None:
    body = {"status": "failed", "message": [{"type": "rate-limit", "message": "Too many requests"}]}
    httpserver.expect_oneshot_request("/works").respond_with_json(
        body, status=429, headers={"Retry-After": "3"}
    )
    httpserver.expect_request("/works").respond_with_json(envelope("search_bibliographic"))

    client.search_bibliographic("Markovic 2015")

    assert sleeps == [3.0]


def test_search_malformed_json(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request("/works").respond_with_data("{", content_type="application/json")

    with pytest.raises(BadResponse, match="the citation search"):
        client.search_bibliographic("x")


def test_search_wrong_shape(httpserver: HTTPServer, client: CrossrefClient) -> None:
    httpserver.expect_request("/works").respond_with_json({"status": "ok", "message": ["not", "a", "list"]})

    with pytest.raises(BadResponse):
        client.search_bibliographic("x")
    assert len(httpserver.log) == 1


# --- throttling -------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5.0, clock=clock, sleep=clock.sleep)

    waits = [limiter.wait() for _ in range(4)]

    assert waits == pytest.approx([0.0, 0.2, 0.2, 0.2])
    clock.now += 10  # idle time is not banked as a burst
    assert limiter.wait() == 0.0
    assert limiter.wait() == pytest.approx(0.2)


def test_rate_limiter_slow_down_and_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.slow_down()
    assert limiter.per_second == RateLimiter.MIN_PER_SECOND
    with pytest.raises(ValueError):
        limiter.set_rate(0)


def test_rate_limiter_is_thread_safe() -> None:
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.slept.append(seconds)

    limiter = RateLimiter(10.0, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=limiter.wait) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # every request got its own slot: waits 0.1, 0.2, ... 1.9 in some order
    assert sorted(clock.slept) == pytest.approx([0.1 * i for i in range(1, 20)])


def test_pool_limits_follow_mailto(
    httpserver: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    public = make_client(base_url(httpserver), limits=None)
    polite = make_client(base_url(httpserver), limits=None, mailto="clinic@example.org")

    assert public.limits == PUBLIC_POOL
    assert public.limiters["single"] is public.limiters["list"]  # one budget of 5/s
    assert public.limiters["list"].per_second == 5.0
    assert polite.limits == POLITE_POOL
    assert polite.limiters["single"].per_second == 10.0
    assert polite.limiters["list"].per_second == 3.0


def test_server_sees_requests_at_the_limited_rate(
    httpserver: HTTPServer, make_client: Callable[..., CrossrefClient]
) -> None:
    """Real clock, real sleep: the stand-in records when each request arrived."""
    arrivals: list[float] = []

    def handler(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return Response(json.dumps(envelope("journal_article")), content_type="application/json")

    httpserver.expect_request(work_path(ARTICLE_DOI)).respond_with_handler(handler)
    limits = PoolLimits(single_per_second=20.0, list_per_second=20.0, concurrency=1, shared_budget=True)
    client = make_client(base_url(httpserver), limits=limits, sleep=time.sleep)

    for _ in range(5):
        client.fetch_work(ARTICLE_DOI)

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 4 * 0.05 * 0.9  # 1/20 s apart, less a little scheduling slack
    assert min(gaps) >= 0.035


# --- header parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(
    ("headers", "per_second"),
    [
        ({}, None),
        ({"X-Rate-Limit-Limit": "50", "X-Rate-Limit-Interval": "1s"}, 50.0),
        ({"x-rate-limit-limit": "5"}, 5.0),
        ({"x-rate-limit-limit": "30", "x-rate-limit-interval": "1m"}, 0.5),
        ({"x-rate-limit-limit": "lots", "x-rate-limit-interval": "1s"}, None),
        ({"x-rate-limit-limit": "5", "x-rate-limit-interval": "soon"}, None),
    ],
)
def test_parse_rate_limit(headers: dict[str, str], per_second: float | None) -> None:
    assert parse_rate_limit(headers) == per_second
