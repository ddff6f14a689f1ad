"""A Crossref stand-in on pytest-httpserver for the enrichment and CLI tests (habanero is never mocked).

``FakeCrossref`` answers the three routes evidence uses, from a dict of work messages:

- ``GET /works/{doi}``: the work, or 404 ``Resource not found.``
- ``GET /works?filter=doi:A,doi:B&rows=N``: a work-list of the known DOIs (unknown ones are simply absent,
  as on Crossref)
- ``GET /works?query.bibliographic=...``: the envelope set in ``search``

``faults`` are consulted first, in order: each takes the request and the fake and returns a response to
send instead, or ``None``. ``requests`` records ``(kind, detail)`` for each request.
"""

from __future__ import annotations

import json
import random
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from evidence import enrich
from evidence.config import Settings
from evidence.crossref import CrossrefClient, PoolLimits, RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures" / "crossref"
FAST = PoolLimits(single_per_second=1000.0, list_per_second=1000.0, concurrency=1, shared_budget=True)
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.004, max_total_sleep=1.0)

Fault = Callable[[Request, "FakeCrossref"], Response | None]


def envelope(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return result


def fast_client(settings: Settings) -> CrossrefClient:
    """The CLI's client, minus the waiting: no throttle, millisecond backoff (still real HTTP)."""
    return CrossrefClient(settings, limits=FAST, retry=FAST_RETRY, rng=random.Random(3))


def work(
    doi: str,
    title: str = "A study",
    *,
    family: str = "Doe",
    year: int | None = 2020,
    **extra: Any,
) -> dict[str, Any]:
    """A Crossref work message with the fields enrichment reads."""
    message: dict[str, Any] = {
        "DOI": doi,
        "type": "journal-article",
        "title": [title],
        "container-title": ["Journal of Examples"],
        "author": [{"given": "Jane", "family": family, "sequence": "first", "affiliation": []}],
        "abstract": f"<jats:p>Abstract of {doi}.</jats:p>",
        "ISSN": ["1234-5678"],
        "publisher": "Example Press",
        "is-referenced-by-count": 3,
        "references-count": 12,
    }
    if year is not None:
        message["issued"] = {"date-parts": [[year]]}
    message.update(extra)
    return message


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class FakeCrossref:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.works: dict[str, dict[str, Any]] = {}
        self.search: dict[str, Any] = {"status": "ok", "message-type": "work-list", "message": {"items": []}}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        server.expect_request(re.compile(r"^/works.*")).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def add(self, message: dict[str, Any]) -> None:
        self.works[str(message["DOI"]).lower()] = message

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.requests if k == kind)

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/works":
            if "query.bibliographic" in request.args:
                kind, detail = "search", request.args["query.bibliographic"]
            else:
                kind, detail = "batch", request.args.get("filter", "")
        else:
            kind, detail = "single", unquote(request.path[len("/works/") :]).lower()
        self.requests.append((kind, detail))
        for fault in list(self.faults):
            answer = fault(request, self)
            if answer is not None:
                return answer
        if kind == "search":
            return json_response(self.search)
        if kind == "batch":
            dois = [part[4:].lower() for part in detail.split(",") if part.startswith("doi:")]
            items = [self.works[d] for d in dois if d in self.works]
            return json_response(
                {
                    "status": "ok",
                    "message-type": "work-list",
                    "message": {"items": items, "total-results": len(items)},
                }
            )
        if detail in self.works:
            return json_response({"status": "ok", "message-type": "work", "message": self.works[detail]})
        return Response("Resource not found.", status=404, content_type="text/plain")


def fail_once(status: int, kind: str = "batch") -> Fault:
    """The first request of ``kind`` gets ``status``; later ones pass."""
    done: list[bool] = []

    def fault(request: Request, fake: FakeCrossref) -> Response | None:
        if fake.requests[-1][0] == kind and not done:
            done.append(True)
            return Response("server trouble", status=status, content_type="text/plain")
        return None

    return fault


def fail_batches_from(number: int, status: int = 503) -> Fault:
    """Batch requests for the ``number``-th distinct batch onwards fail forever (retries included)."""
    seen: list[str] = []

    def fault(request: Request, fake: FakeCrossref) -> Response | None:
        kind, detail = fake.requests[-1]
        if kind != "batch":
            return None
        if detail not in seen:
            seen.append(detail)
        if seen.index(detail) + 1 >= number:
            return Response("unavailable", status=status, content_type="text/plain")
        return None

    return fault


def install(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeCrossref:
    """A FakeCrossref that the CLI talks to (EVIDENCE_CROSSREF_URL), with a client that does not wait."""
    fake = FakeCrossref(httpserver)
    monkeypatch.setenv("EVIDENCE_CROSSREF_URL", fake.url)
    monkeypatch.setenv("EVIDENCE_CROSSREF_TIMEOUT", "2")
    monkeypatch.setattr(enrich, "make_client", fast_client)
    return fake


def install_closed_port(monkeypatch: pytest.MonkeyPatch) -> str:
    """EVIDENCE_CROSSREF_URL pointing at a 127.0.0.1 port nobody listens on: "no network"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("EVIDENCE_CROSSREF_URL", url)
    monkeypatch.setenv("EVIDENCE_CROSSREF_TIMEOUT", "2")
    monkeypatch.setattr(enrich, "make_client", fast_client)
    return url
