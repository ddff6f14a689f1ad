"""Benchmark: enriching 1,000 DOIs against a rate-limited loopback Crossref stand-in.

    .venv/bin/python tests/bench/bench_crossref.py                 # 1,000 DOIs, habanero sample of 50
    .venv/bin/python tests/bench/bench_crossref.py --n 200 --sample 20

The stand-in is a small threaded ``http.server`` on 127.0.0.1 that behaves like Crossref's public pool:
every answer takes ``--latency`` (100 ms), and it allows ``--rate`` (5) requests per second with **one** in
flight; a request beyond either limit gets HTTP 429 (with ``x-rate-limit-*`` headers, no Retry-After). It
answers ``/works/{doi}`` and ``/works?filter=doi:A,doi:B,...`` with synthetic works, stops itself after
``--max-requests`` or ``--deadline`` seconds, and counts what it saw.

Measured:

1. ``evidence.enrich.enrich`` over an empty library (``init_library(empty=True)``) holding ``--n`` minimal
   studies inserted with ``evidence.store.bulk.insert_studies``, with the client the CLI uses (public pool
   limits, default retries): requests per DOI (target <= 0.03), 429s (target 0), wall time against the
   theoretical minimum under the stand-in's limit.
2. The same enrichment again: requests sent (target 0; everything comes from the cache).
3. For comparison, habanero's own ``Crossref.works(ids=[...])`` (one request per DOI, no throttling, no
   retries) on a sample of ``--sample`` DOIs, extrapolated to ``--n`` (the extrapolation is labelled).

Prints a markdown table and writes ``bench-out/crossref.md``. Not a pass/fail test; the verdict column
compares with the targets of issue 3. The benchmark imports habanero directly for the comparison only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DOI_PREFIX = "10.5555/bench."


def synthetic_work(doi: str) -> dict[str, Any]:
    """A Crossref-shaped work for ``doi`` (one in fifty retracted, for realism)."""
    number = int(doi.rsplit(".", 1)[-1]) if doi.rsplit(".", 1)[-1].isdigit() else 0
    message: dict[str, Any] = {
        "DOI": doi,
        "type": "journal-article",
        "title": [f"Synthetic trial {number}"],  # as in the library: no conflicts to report
        "container-title": ["Journal of Synthetic Manual Therapy"],
        "author": [
            {
                "given": "Ana",
                "family": "Pereira",
                "sequence": "first",
                "ORCID": "https://orcid.org/0000-0002-1825-0097",
            },
            {"given": "Jonas", "family": "Lindqvist", "sequence": "additional"},
        ],
        "issued": {"date-parts": [[2000 + number % 25, 1 + number % 12]]},
        "volume": str(1 + number % 40),
        "issue": str(1 + number % 6),
        "page": f"{100 + number % 300}-{110 + number % 300}",
        "ISSN": ["1234-5678"],
        "publisher": "Synthetic Publishing",
        "abstract": f"<jats:p>Abstract of synthetic trial {number}.</jats:p>",
        "is-referenced-by-count": number % 97,
        "references-count": 20 + number % 30,
    }
    if number % 50 == 7:
        message["updated-by"] = [
            {
                "DOI": f"{doi}.retraction",
                "type": "retraction",
                "source": "retraction-watch",
                "updated": {"date-parts": [[2024, 1, 2]]},
            }
        ]
    return message


@dataclass
class StandInStats:
    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    by_route: dict[str, int] = field(default_factory=lambda: {"single": 0, "list": 0})

    def snapshot(self) -> tuple[int, int, int]:
        return self.requests, self.ok, self.rate_limited


class CrossrefStandIn:
    """A loopback Crossref with latency and a public-pool style limit: ``rate``/s and 1 concurrent.

    The rate is a sliding one-second window of accepted requests (a 20 ms allowance absorbs loopback
    scheduling jitter); a refused request is not counted in the window. After ``max_requests`` requests or
    ``deadline`` seconds it shuts itself down.
    """

    def __init__(self, *, latency: float, rate: float, concurrency: int, max_requests: int, deadline: float):
        self.latency = latency
        self.rate = rate
        self.concurrency = concurrency
        self.max_requests = max_requests
        self.stats = StandInStats()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._accepted: deque[float] = deque()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.timer = threading.Timer(deadline, self.stop)
        self.timer.daemon = True

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> CrossrefStandIn:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.timer.cancel()
        threading.Thread(target=self.server.shutdown, daemon=True).start()
        self.thread.join(timeout=5)
        self.server.server_close()

    def _admit(self) -> bool:
        now = time.monotonic()
        with self._lock:
            self.stats.requests += 1
            if self.stats.requests >= self.max_requests:
                threading.Thread(target=self.stop, daemon=True).start()
            while self._accepted and self._accepted[0] <= now - (1.0 - 0.02):
                self._accepted.popleft()
            if self._in_flight >= self.concurrency or len(self._accepted) >= self.rate:
                self.stats.rate_limited += 1
                return False
            self._accepted.append(now)
            self._in_flight += 1
            return True

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        admitted = self._admit()
        try:
            time.sleep(self.latency)
            if not admitted:
                self._send(
                    request,
                    429,
                    {"x-rate-limit-limit": f"{self.rate:g}", "x-rate-limit-interval": "1s"},
                    b"Too Many Requests",
                    "text/plain",
                )
                return
            parts = urlsplit(request.path)
            if parts.path.rstrip("/") == "/works":
                query = parse_qs(parts.query)
                wanted = [
                    v[4:] for v in ",".join(query.get("filter", [""])).split(",") if v.startswith("doi:")
                ]
                items = [synthetic_work(doi) for doi in wanted]
                body = {
                    "status": "ok",
                    "message-type": "work-list",
                    "message": {"items": items, "total-results": len(items)},
                }
                route = "list"
            else:
                doi = unquote(parts.path[len("/works/") :]).lower()
                body = {"status": "ok", "message-type": "work", "message": synthetic_work(doi)}
                route = "single"
            with self._lock:
                self.stats.ok += 1
                self.stats.by_route[route] += 1
            self._send(request, 200, {}, json.dumps(body).encode(), "application/json")
        finally:
            if admitted:
                with self._lock:
                    self._in_flight -= 1

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes, kind: str
    ) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", kind)
            request.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(body)
        except OSError:  # the client gave up (timeout): nothing to answer
            pass


def build_library(home: Path, n: int) -> Any:
    from evidence.config import load_settings
    from evidence.library import init_library
    from evidence.store import bulk
    from evidence.store.db import open_database

    settings = load_settings({"EVIDENCE_HOME": str(home)})
    db = open_database(settings)
    with db.transaction() as session:
        init_library(session, empty=True)
        rows = [{"title": f"Synthetic trial {i}", "doi": f"{DOI_PREFIX}{i}"} for i in range(n)]
        bulk.insert_studies(session, rows, source="import")
    return db, settings


def theoretical_minimum(requests: int, rate: float, latency: float) -> float:
    """Fastest possible: starts at least 1/rate apart, one at a time, each taking ``latency``."""
    if requests == 0:
        return 0.0
    return (requests - 1) * max(1.0 / rate, latency) + latency


def run_habanero(url: str, dois: list[str], timeout: float) -> tuple[int, float]:
    """habanero's own works(ids=[...]); returns (DOIs answered, seconds)."""
    import habanero

    cr = habanero.Crossref(base_url=url, timeout=timeout)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warn=True turns each failed DOI (a 429 here) into a warning + None
        answers = cr.works(ids=dois, warn=True)
    elapsed = time.perf_counter() - started
    if isinstance(answers, dict):
        answers = [answers]
    return sum(1 for a in answers if a is not None), elapsed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000, help="DOIs to enrich")
    parser.add_argument(
        "--sample", type=int, default=50, help="DOIs for the habanero works(ids=...) comparison"
    )
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per answer")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second the stand-in allows")
    parser.add_argument("--max-requests", type=int, default=5000, help="the stand-in stops after this many")
    parser.add_argument(
        "--deadline", type=float, default=600.0, help="the stand-in stops after this long (s)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="folder for crossref.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    from evidence.crossref import MAX_BATCH, CrossrefClient
    from evidence.enrich import enrich

    with (
        tempfile.TemporaryDirectory(prefix="evidence-bench-crossref-") as tmp,
        CrossrefStandIn(
            latency=args.latency,
            rate=args.rate,
            concurrency=1,
            max_requests=args.max_requests,
            deadline=args.deadline,
        ) as stand_in,
    ):
        db, settings = build_library(Path(tmp), args.n)
        settings = dataclasses.replace(settings, crossref_url=stand_in.url, crossref_timeout=10.0)
        try:
            client = CrossrefClient(settings)  # no mailto: the public pool, as the stand-in enforces
            before = stand_in.stats.snapshot()
            started = time.perf_counter()
            first = enrich(db, client, None)
            first_time = time.perf_counter() - started
            sent_1, _ok_1, limited_1 = (a - b for a, b in zip(stand_in.stats.snapshot(), before, strict=True))

            client2 = CrossrefClient(settings)
            before = stand_in.stats.snapshot()
            started = time.perf_counter()
            second = enrich(db, client2, None)
            second_time = time.perf_counter() - started
            sent_2 = stand_in.stats.snapshot()[0] - before[0]
        finally:
            db.close()

        time.sleep(1.0)  # let the stand-in's rate window empty before habanero starts
        sample = [f"{DOI_PREFIX}{i}" for i in range(min(args.sample, args.n))]
        before = stand_in.stats.snapshot()
        answered, hab_time = run_habanero(stand_in.url, sample, 10.0)
        hab_sent, _hab_ok, hab_limited = (
            a - b for a, b in zip(stand_in.stats.snapshot(), before, strict=True)
        )

    n = args.n
    min_requests = math.ceil(n / MAX_BATCH)
    floor = theoretical_minimum(min_requests, args.rate, args.latency)
    enriched = first.count("enriched")
    scale = n / len(sample) if sample else 0.0
    hab_floor = theoretical_minimum(n, args.rate, args.latency)

    def verdict(ok: bool) -> str:
        return "ok" if ok else "**MISS**"

    rows = [
        (
            "DOIs enriched (first run)",
            f"{enriched} of {n} ({first.count('failed')} failed)",
            f"{n}",
            verdict(enriched == n),
        ),
        (
            "requests sent per DOI, batched",
            f"{sent_1 / n:.3f} ({sent_1} requests)",
            "<= 0.03",
            verdict(sent_1 / n <= 0.03),
        ),
        ("HTTP 429 received", f"{limited_1}", "0", verdict(limited_1 == 0)),
        (
            "wall time, first run",
            f"{first_time:.2f} s",
            f"minimum {floor:.2f} s",
            f"{first_time / floor:.2f}x" if floor else "-",
        ),
        ("requests sent, second (cached) run", f"{sent_2}", "0", verdict(sent_2 == 0)),
        ("wall time, second run", f"{second_time:.2f} s", "-", "-"),
        (
            f"habanero `works(ids=[...])`, {len(sample)} DOIs: requests per DOI",
            f"{hab_sent / max(len(sample), 1):.2f} ({hab_sent} requests)",
            "(comparison)",
            "-",
        ),
        (
            f"habanero, {len(sample)} DOIs: HTTP 429 / DOIs lost",
            f"{hab_limited} / {len(sample) - answered}",
            "(comparison)",
            "-",
        ),
        (f"habanero, {len(sample)} DOIs: wall time", f"{hab_time:.2f} s", "(comparison)", "-"),
        (
            f"habanero, extrapolated to {n} DOIs (x{scale:g}, not measured)",
            f"{n} requests, ~{hab_limited * scale:.0f} x 429, ~{hab_time * scale:.0f} s",
            f"within the limit: >= {hab_floor:.0f} s",
            "-",
        ),
    ]
    header = (
        f"Crossref enrichment of {n} DOIs against a loopback stand-in: {args.latency * 1000:.0f} ms latency, "
        f"{args.rate:g} requests/s, 1 concurrent (429 beyond). Minimum for {min_requests} batched requests: "
        f"{floor:.2f} s. Second run: {second.from_cache} studies from the cache."
    )
    lines = [header, "", "| measure | value | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "crossref.md").write_text(table, encoding="utf-8")
    print(f"wrote {args.out / 'crossref.md'}", file=sys.stderr)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
