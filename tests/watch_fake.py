"""A Crossref search with deep paging on pytest-httpserver, for the saved-search tests (habanero is real).

``FakeSearch`` answers ``GET /works?query=...&cursor=C&rows=N[&filter=from-index-date:D,type:T]`` from a
list of work messages, the way Crossref does: ``cursor=*`` starts a walk, each answer carries the
``next-cursor`` of the following page, and a walk past the end gets an empty page (with ``total-results``
still above zero). Works carry an ``indexed`` date; ``from-index-date`` keeps those indexed on or after
it. Cursors in ``expired`` are refused with HTTP 400, as Crossref refuses a stale cursor. ``faults`` are
consulted first, in order (each returns a response, or None to pass). ``requests`` logs each request's
``(cursor, rows, filter)``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.crossref_fake import json_response, work

Fault = Callable[[Request, "FakeSearch"], Response | None]


def search_work(
    n: int, *, indexed: str = "2026-11-01", title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """`crossref_fake.work` as a search finds it: numbered, with the `indexed` date Crossref filters on."""
    return work(
        f"10.5555/watch.{n}",
        title or f"Instrument-assisted soft tissue mobilization trial number {n}",
        family=f"Author{n}",
        year=2025,
        **{
            "container-title": ["Journal of Bodywork and Movement Therapies"],
            "abstract": (
                f"<jats:p>Background. Study {n} of IASTM. Methods and results follow at length.</jats:p>"
            ),
            "indexed": {
                "date-parts": [[int(p) for p in indexed.split("-")]],
                "date-time": f"{indexed}T00:00:00Z",
            },
            **extra,
        },
    )


class FakeSearch:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.works: list[dict[str, Any]] = []
        self.expired: set[str] = set()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, int, str]] = []
        self._cursors: dict[str, tuple[tuple[str, str], int]] = {}
        self._numbers = itertools.count(1)
        server.expect_request(re.compile(r"^/works/?$")).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def cursors_sent(self) -> list[str]:
        return [cursor for cursor, _, _ in self.requests]

    def _matching(self, filters: str) -> list[dict[str, Any]]:
        wanted = dict(part.split(":", 1) for part in filters.split(",") if ":" in part)
        since = wanted.get("from-index-date")
        kind = wanted.get("type")
        return [
            w
            for w in self.works
            if (since is None or w["indexed"]["date-time"][:10] >= since)
            and (kind is None or w["type"] == kind)
        ]

    def handle(self, request: Request) -> Response:
        cursor = request.args.get("cursor", "")
        rows = int(request.args.get("rows", "20"))
        filters = request.args.get("filter", "")
        self.requests.append((cursor, rows, filters))
        for fault in list(self.faults):
            answer = fault(request, self)
            if answer is not None:
                return answer
        if cursor in self.expired:
            return json_response(
                {"status": "failed", "message-type": "validation-failure",
                 "message": [{"type": "cursor-expired", "message": "Cursor has expired or does not exist"}]},
                status=400,
            )  # fmt: skip
        key = (request.args.get("query", ""), filters)
        if cursor == "*":
            offset = 0
        elif cursor in self._cursors:
            walk, offset = self._cursors[cursor]
            if walk != key:
                return json_response({"status": "failed", "message": "cursor of another query"}, status=400)
        else:
            return json_response({"status": "failed", "message": [{"message": "unknown cursor"}]}, status=400)
        matching = self._matching(filters)
        items = matching[offset : offset + rows]
        token = f"c{next(self._numbers)}"
        self._cursors[token] = (key, offset + len(items))
        return json_response(
            {
                "status": "ok",
                "message-type": "work-list",
                "message": {
                    "items": items,
                    "total-results": len(matching),
                    "items-per-page": rows,
                    "next-cursor": token,
                },
            }
        )


def fail_request(
    number: int, status: int = 500, *, times: int = 1_000_000, headers: dict[str, str] | None = None
) -> Fault:
    """The `number`-th request (1-based) and the next `times - 1` get `status`."""

    def fault(request: Request, fake: FakeSearch) -> Response | None:
        if number <= len(fake.requests) < number + times:
            return Response("trouble", status=status, content_type="text/plain", headers=headers or {})
        return None

    return fault
