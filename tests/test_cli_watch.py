"""`evidence watch`, `triage` and `prisma` as a user drives them, against a Crossref search with deep
paging on 127.0.0.1 (tests/watch_fake.py; habanero is real): pages stored as they come, the cursor saved
and resumed, duplicates counted not stored, faults retried, decisions kept, PRISMA counts that add up."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from evidence import enrich
from tests.crossref_fake import fast_client, install_closed_port
from tests.helpers import db_rows, dump_tables, run
from tests.watch_fake import FakeSearch, fail_request, search_work

QUERY = "instrument assisted soft tissue mobilization"


@pytest.fixture
def library(library_url: str) -> str:
    run("db", "init")
    return library_url


@pytest.fixture
def crossref(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, library: str) -> FakeSearch:
    fake = FakeSearch(httpserver)
    fake.works = [search_work(n) for n in range(1, 251)]
    monkeypatch.setenv("EVIDENCE_CROSSREF_URL", fake.url)
    monkeypatch.setenv("EVIDENCE_CROSSREF_TIMEOUT", "2")
    monkeypatch.setattr(enrich, "make_client", fast_client)
    return fake


def candidates(db: str) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT doi, state FROM candidates ORDER BY id")


def pending_json(*args: str) -> list[dict[str, Any]]:
    return json.loads(run("triage", "--all", *args, "--format", "json").stdout)  # type: ignore[no-any-return]


def prisma() -> dict[str, Any]:
    return json.loads(run("prisma", "--format", "json").stdout)  # type: ignore[no-any-return]


def studies_count() -> int:
    return len(json.loads(run("find", "--format", "json").stdout))


def check_prisma_adds_up(counts: dict[str, Any]) -> None:
    assert counts["identified"] == sum(s["records"] for s in counts["searches"])
    assert counts["identified"] == counts["duplicates"] + counts["screened"]
    assert counts["duplicates"] == counts["duplicates_in_library"] + counts["duplicates_earlier_candidates"]
    assert counts["screened"] == counts["excluded"] + counts["pending"] + counts["included"]
    assert counts["excluded"] == sum(counts["excluded_by_reason"].values())
    assert counts["included_linked"] <= counts["included"]


def test_saved_searches_and_bad_input(library: str) -> None:
    before = dump_tables(library)
    assert (
        "saved search iastm" in run("watch", "add", "iastm", "--query", QUERY, "--since", "2024-01-01").stderr
    )
    rows = json.loads(run("watch", "list", "--format", "json").stdout)
    assert [(r["name"], r["query"], r["since"], r["type"], r["last_run"]) for r in rows] == [
        ("iastm", QUERY, "2024-01-01", "journal-article", None)
    ]
    after_add = dump_tables(library)
    for args, message in (
        (("watch", "add", "x", "--query", "   "), "a saved search needs a query"),
        (("watch", "add", "x", "--query", "a" * 1000), "a query is at most 500 characters, not 1,000"),
        (("watch", "add", "Bad Name!", "--query", "q"), "a search name is 1-64 lower-case letters"),
        (("watch", "add", "iastm", "--query", "q"), "a search named 'iastm' is already saved"),
        (
            ("watch", "add", "x", "--query", "q", "--since", "2024-13-01"),
            "--since must be a date as YYYY-MM-DD",
        ),
        (("watch", "add", "x", "--query", "q", "--type", "novel"), "unknown work type 'novel'"),
        (("watch", "run", "nope"), "no saved search named 'nope'; saved searches: iastm"),
        (("watch", "remove", "nope", "--yes"), "no saved search named 'nope'"),
        (("prisma", "nope"), "no saved search named 'nope'"),
    ):
        result = run(*args, expect=None)
        assert result.exit_code in (1, 2), args
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert len(result.stderr) < 300  # a long value is quoted, not echoed whole
    assert dump_tables(library) == after_add
    run("watch", "remove", "iastm", "--yes")
    assert dump_tables(library) == before


def test_a_run_stores_candidates_page_by_page_and_a_second_run_adds_nothing(
    library: str, crossref: FakeSearch
) -> None:
    studies = studies_count()
    run("watch", "add", "iastm", "--query", QUERY, "--since", "2024-01-01")
    result = run("watch", "run")
    assert result.stderr == "iastm: 250 works in 3 requests: 250 new\n"
    assert crossref.requests == [
        ("*", 100, "from-index-date:2024-01-01,type:journal-article"),
        ("c1", 100, "from-index-date:2024-01-01,type:journal-article"),
        ("c2", 100, "from-index-date:2024-01-01,type:journal-article"),
    ]
    assert len(candidates(library)) == 250
    assert studies_count() == studies  # candidates are not studies
    (listed,) = json.loads(run("watch", "list", "--format", "json").stdout)
    assert listed["records"] == listed["pending"] == 250 and listed["next_from"] == date.today().isoformat()
    # Nothing new since: one request, nothing added.
    crossref.requests.clear()
    assert run("watch", "run", "iastm").stderr == "iastm: 0 works in 1 request: 0 new\n"
    assert crossref.requests == [
        ("*", 100, f"from-index-date:{date.today().isoformat()},type:journal-article")
    ]
    assert len(candidates(library)) == 250
    # A work re-indexed since is returned again, and not counted or stored twice.
    crossref.works[0]["indexed"]["date-time"] = f"{date.today().isoformat()}T01:00:00Z"
    assert run("watch", "run").stderr == "iastm: 1 works in 1 request: 0 new, 1 seen before\n"
    assert len(candidates(library)) == 250


def test_duplicates_of_the_library_and_of_other_searches_are_counted_not_stored(
    library: str, crossref: FakeSearch
) -> None:
    seed = json.loads(run("show", "crothers2016spinal", "--format", "json").stdout)
    other = json.loads(run("show", "saha2019gua", "--format", "json").stdout)  # no DOI in the seed
    crossref.works = [
        search_work(1),
        search_work(2, DOI=seed["doi"].upper()),  # the library's, by DOI
        # The library's by title, first author and year (its DOI differs in case only ... or is absent).
        search_work(
            3,
            DOI="10.5555/other.copy",
            title=other["title"],
            author=[{"family": other["authors"][0]["family"], "given": other["authors"][0]["given"]}],
            issued={"date-parts": [[other["year"]]]},
        ),
        search_work(4, **{"updated-by": [{"type": "retraction", "DOI": "10.5555/r", "source": "publisher"}]}),
    ]
    run("watch", "add", "a", "--query", QUERY)
    run("watch", "add", "b", "--query", "gua sha")
    out = run("watch", "run", "a").stderr.splitlines()
    assert out[0] == "a: 4 works in 1 request: 2 new, 2 already in the library, 1 of the new retracted"
    # The same title, author and year under another DOI (a preprint's, say) is another candidate: works
    # with different DOIs are never merged by title (triage can exclude one as a duplicate).
    twin = {k: v for k, v in search_work(1).items() if k != "DOI"}
    crossref.works += [{**twin, "DOI": "10.5555/preprint.1"}]
    out = run("watch", "run", "b").stderr.splitlines()
    assert out[0] == "b: 5 works in 1 request: 1 new, 2 already in the library, 2 already candidates"
    dois = [doi for doi, _ in candidates(library)]
    assert dois == ["10.5555/watch.1", "10.5555/watch.4", "10.5555/preprint.1"]
    outcomes = db_rows(library, "SELECT outcome FROM watch_records WHERE search_id = 2 ORDER BY id")
    assert [o for (o,) in outcomes] == [
        "earlier-candidate", "in-library", "in-library", "earlier-candidate", "candidate",
    ]  # fmt: skip
    listed = pending_json()
    assert [r["status"] for r in listed] == ["ok", "retracted", "ok"]
    counts = prisma()
    check_prisma_adds_up(counts)
    found = (counts["identified"], counts["duplicates_in_library"], counts["duplicates_earlier_candidates"])
    assert found == (9, 4, 2)
    assert counts["screened"] == counts["pending"] == 3


def test_faults_mid_pagination_are_retried(library: str, crossref: FakeSearch) -> None:
    crossref.faults = [
        fail_request(2, 429, times=1, headers={"Retry-After": "0"}),
        fail_request(4, 500, times=1),
    ]
    run("watch", "add", "iastm", "--query", QUERY)
    assert run("watch", "run").stderr == "iastm: 250 works in 5 requests: 250 new\n"
    assert crossref.cursors_sent() == ["*", "c1", "c1", "c2", "c2"]
    assert len({doi for doi, _ in candidates(library)}) == len(candidates(library)) == 250


def test_a_failure_on_page_3_keeps_pages_1_and_2_and_the_next_run_resumes(
    library: str, crossref: FakeSearch
) -> None:
    crossref.faults = [fail_request(3, 500)]
    run("watch", "add", "iastm", "--query", QUERY)
    failed = run("watch", "run", expect=1)
    assert failed.stderr.startswith("iastm: 200 works in 5 requests: 200 new; stopped: ")
    assert "Error: " in failed.stderr.splitlines()[-1]
    assert len(candidates(library)) == 200
    assert db_rows(library, "SELECT cursor FROM watch_searches") == [("c2",)]
    crossref.faults.clear()
    crossref.requests.clear()
    resumed = run("watch", "run")
    assert (
        resumed.stderr == "iastm: 50 works in 1 request: 50 new; went on from the last run's saved cursor\n"
    )
    assert crossref.cursors_sent() == ["c2"]
    assert len({doi for doi, _ in candidates(library)}) == len(candidates(library)) == 250
    assert db_rows(library, "SELECT cursor, next_from FROM watch_searches") == [
        (None, date.today().isoformat())
    ]


def test_an_expired_cursor_walks_again_without_duplicating(library: str, crossref: FakeSearch) -> None:
    run("watch", "add", "iastm", "--query", QUERY)
    first = run("watch", "run", "--max", "100")
    assert (
        first.stderr
        == "iastm: 100 works in 1 request: 100 new; stopped at --max, the next run goes on from here\n"
    )
    crossref.expired.add("c1")
    crossref.requests.clear()
    again = run("watch", "run")
    assert again.stderr == (
        "iastm: 250 works in 4 requests: 150 new, 100 seen before; went on from the last run's saved cursor "
        "(refused, so from the start of the window again)\n"
    )
    assert crossref.cursors_sent()[:2] == ["c1", "*"]
    assert len({doi for doi, _ in candidates(library)}) == len(candidates(library)) == 250
    check_prisma_adds_up(prisma())


def test_offline_changes_nothing(library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run("watch", "add", "a", "--query", QUERY)
    run("watch", "add", "b", "--query", "gua sha")
    install_closed_port(monkeypatch)
    before = dump_tables(library)
    result = run("watch", "run", expect=1)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("a: 0 works in ")
    assert lines[-1].startswith("Error: ") and "works offline" in lines[-1]
    assert not any(line.startswith("b:") for line in lines)  # not attempted once Crossref is unreachable
    assert dump_tables(library) == before


def test_triage_include_exclude_undo(library: str, crossref: FakeSearch) -> None:
    crossref.works = [search_work(n) for n in range(1, 6)]
    run("watch", "add", "iastm", "--query", QUERY)
    run("watch", "run")
    table = run("triage", "--wide").stdout
    assert "Author1" in table and "Instrument-assisted soft" in table
    listed = pending_json()
    assert [r["id"] for r in listed] == [1, 2, 3, 4, 5]
    assert listed[0]["abstract"] == "Background. Study 1 of IASTM. Methods and results follow at length."
    studies = studies_count()

    included = run(
        "triage", "include", "1", "--claim", "pain-modulation", "--stance", "no-effect", "--design", "rct",
        "--finding", "No better than sham",
    )  # fmt: skip
    assert included.stderr.startswith("included candidate 1 as author2025instrumentassisted")
    study = json.loads(run("show", "10.5555/watch.1", "--format", "json").stdout)
    assert study["design"] == "rct" and study["level"] == 2 and "watch:iastm" in study["tags"]
    assert study["claims"] == [
        {
            "claim": "pain-modulation",
            "mechanism": "neural-stimulation",
            "stance": "no-effect",
            "finding": "No better than sham",
        }
    ]
    assert "Found by the saved Crossref search 'iastm'" in study["notes"]
    assert studies_count() == studies + 1

    before = dump_tables(library)
    for args, message in (
        (("triage", "include", "1"), "candidate 1 was already included on"),
        (
            ("triage", "exclude", "2", "--reason", "boring"),
            "unknown reason 'boring'; expected one of not-iastm",
        ),
        (("triage", "exclude", "2", "--reason", "other:"), "--reason other:TEXT needs the text"),
        (("triage", "include", "99"), "no candidate '99'"),
        (("triage", "undo", "2"), "candidate 2 is pending: there is no decision to undo"),
        (("triage", "include", "3", "--claim", "pain-modulation"), "stance"),
    ):
        result = run(*args, expect=None)
        assert result.exit_code in (1, 2) and message in result.stderr, (args, result.stderr)
    assert dump_tables(library) == before

    run("triage", "exclude", "2", "--reason", "not-iastm")
    run("triage", "exclude", "10.5555/watch.3", "--reason", "other:conference abstract")
    assert [r["id"] for r in pending_json()] == [4, 5]
    counts = prisma()
    check_prisma_adds_up(counts)
    assert counts["excluded_by_reason"] == {"not-iastm": 1, "other:conference abstract": 1}
    assert (counts["included"], counts["included_linked"], counts["pending"]) == (1, 1, 2)

    assert "pending again (was excluded)" in run("triage", "undo", "2").stderr
    undone = run("triage", "undo", "1").stderr
    assert "pending again (was included); removed study author2025instrumentassisted" in undone
    assert studies_count() == studies
    assert [r["id"] for r in pending_json()] == [1, 2, 4, 5]


def test_an_excluded_work_never_comes_back_as_new(library: str, crossref: FakeSearch) -> None:
    crossref.works = [search_work(n) for n in range(1, 4)]
    run("watch", "add", "iastm", "--query", QUERY)
    run("watch", "run")
    run("triage", "exclude", "1", "--reason", "wrong-population")
    # The search is removed (its pending candidates with it) and saved again: the decision stays.
    run("watch", "remove", "iastm", "--yes")
    assert candidates(library) == [("10.5555/watch.1", "excluded")]
    run("watch", "add", "iastm", "--query", QUERY)
    assert run("watch", "run").stderr == "iastm: 3 works in 1 request: 2 new, 1 already candidates\n"
    assert [r["doi"] for r in pending_json()] == ["10.5555/watch.2", "10.5555/watch.3"]
    check_prisma_adds_up(prisma())


def test_prisma_table_and_triage_listing_shapes(library: str, crossref: FakeSearch) -> None:
    crossref.works = [search_work(n) for n in range(1, 81)]
    run("watch", "add", "iastm", "--query", QUERY)
    run("watch", "run")
    listing = run("triage")
    assert "50 of 80 pending candidates shown (--all for every one)" in listing.stderr
    assert len(pending_json()) == 80
    csv_text = run("prisma", "--format", "csv").stdout.splitlines()
    assert csv_text[0] == "stage,detail,count"
    assert "identified,search iastm,80" in csv_text and "awaiting screening,pending,80" in csv_text


def test_the_report_draws_the_prisma_flow(library: str, crossref: FakeSearch, tmp_path: Any) -> None:
    from tests.test_report import Page

    plain = tmp_path / "plain.html"
    run("report", "-o", str(plain))
    assert "PRISMA" not in plain.read_text(encoding="utf-8")  # no saved search: no flow diagram
    crossref.works = [search_work(n) for n in range(1, 6)]
    run("watch", "add", "iastm", "--query", QUERY)
    run("watch", "run")
    run("triage", "include", "1", "--claim", "pain-modulation", "--stance", "mixed")
    run("triage", "exclude", "2", "--reason", "not-iastm")
    target = tmp_path / "report.html"
    run("report", "-o", str(target))
    page = Page(target.read_text(encoding="utf-8"))
    counts = prisma()
    boxes = [int(str(a["data-count"])) for _, a in page.tags if "data-count" in a]
    expected = ["identified", "duplicates", "screened", "excluded", "included", "pending"]
    assert boxes == [counts[k] for k in expected] == [5, 0, 5, 1, 1, 3]
    text = " ".join(page.text)
    assert "not-iastm (n = 1)" in text and "search iastm (n = 5)" in text


@pytest.mark.sqlite_only("the layout is the same on both backends")
@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_watch_listings_fit_the_terminal(library: str, crossref: FakeSearch, width: int) -> None:
    from click.testing import CliRunner

    from cli import cli
    from tests.test_tables import assert_fits

    crossref.works = [
        search_work(n, title=f"Graston technique versus sham for tendinopathy, trial {n}")
        for n in range(1, 8)
    ]
    run("watch", "add", "iastm", "--query", QUERY, "--since", "2024-01-01")
    run("watch", "run")
    run("triage", "exclude", "1", "--reason", "other:conference abstract without methods")
    for args in (("watch", "list"), ("triage",), ("prisma",)):
        table = (
            CliRunner().invoke(cli, list(args), env={"COLUMNS": str(width)}, catch_exceptions=False).stdout
        )
        rows = json.loads(run(*args, "--format", "json").stdout)
        fields = set(rows) if isinstance(rows, dict) else {key for row in rows for key in row}
        assert table, args
        assert_fits(table, width, fields | {"stage", "detail", "count"})
