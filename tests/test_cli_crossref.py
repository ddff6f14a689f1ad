"""The Crossref commands as a user drives them: add --doi / --citation, resolve, enrich, check, offline.

Every request goes to a real HTTP server on 127.0.0.1 (tests/crossref_fake.py); habanero is not mocked.
The client the CLI builds is swapped for one without throttling waits (``evidence.enrich.make_client``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from evidence import records
from evidence.config import load_settings
from evidence.store import bulk
from evidence.store.db import open_database
from tests.crossref_fake import (
    FakeCrossref,
    envelope,
    fail_batches_from,
    fail_once,
    install,
    install_closed_port,
    json_response,
    work,
)
from tests.helpers import dump_tables, run, run_json

MARKOVIC_DOI = "10.5555/jbmt.2015.04.010"
BAKER_DOI = "10.1123/ijatt.18.5.16"


@pytest.fixture
def crossref(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeCrossref:
    return install(httpserver, monkeypatch)


@pytest.fixture
def closed_port_url(monkeypatch: pytest.MonkeyPatch) -> str:
    return install_closed_port(monkeypatch)


@pytest.fixture
def empty_library(library_url: str) -> str:
    run("db", "init", "--empty")
    return library_url


@pytest.fixture
def seeded_library(library_url: str) -> str:
    run("db", "init")
    return library_url


def add_synthetic(n: int, prefix: str = "10.5555/syn") -> list[str]:
    """``n`` minimal studies (title + DOI) through the bulk path; returns their DOIs."""
    rows = [{"title": f"Synthetic study {i}", "doi": f"{prefix}.{i}", "year": 2020} for i in range(n)]
    db = open_database(load_settings())
    try:
        with db.transaction() as session:
            bulk.insert_studies(session, rows, source="import")
    finally:
        db.close()
    return [str(r["doi"]) for r in rows]


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a Crossref command could touch."""
    return dump_tables(url, ("studies", "authors", "study_claims", "study_tags", "crossref_cache"))


# --- add --doi --------------------------------------------------------------------------------------


def test_add_by_doi_stores_crossref_fields_and_the_users_claims(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.add(envelope("markovic_2015")["message"])

    result = run(
        "add",
        "--doi",
        "https://doi.org/10.5555/JBMT.2015.04.010",
        "--design",
        "non-randomised-controlled-trial",
        "--claim",
        "mechanoreceptor-rom",
        "--stance",
        "supports",
        "--tag",
        "foam-rolling",
        "--format",
        "json",
    )

    study = json.loads(result.stdout)
    assert study["doi"] == MARKOVIC_DOI
    assert study["title"].startswith("Acute effects of instrument assisted soft tissue mobilization")
    assert study["authors"] == [
        {"family": "Marković", "given": "Goran", "orcid": "0000-0001-9366-8567"},
        {"family": "Petrić", "given": "Ivan", "orcid": None},
    ]
    assert (study["journal"], study["year"], study["volume"], study["issue"], study["pages"]) == (
        "Journal of Bodywork and Movement Therapies",
        2015,
        "19",
        "4",
        "690-696",
    )
    assert study["abstract"] == (
        "We compared one session of instrument assisted soft tissue mobilization with foam rolling in soccer "
        "players."
    )
    assert (study["issn"], study["publisher"], study["language"]) == (
        "1360-8592",
        "Example Publishing Ltd",
        "en",
    )
    assert study["publication_type"] == "journal-article"
    assert study["url"] == "https://doi.org/10.5555/jbmt.2015.04.010"
    assert (study["citations"], study["references_count"], study["status"]) == (64, 31, "ok")
    assert study["crossref_checked_at"] is not None
    assert study["source"] == "crossref"
    assert study["field_sources"]["abstract"] == "crossref"
    assert study["field_sources"]["authors"] == "crossref"
    assert study["field_sources"]["design"] == "manual"
    assert study["level"] == 3
    assert study["claims"][0]["claim"] == "mechanoreceptor-rom" and study["tags"] == ["foam-rolling"]
    assert study["citekey"] == "markovic2015acute"
    assert crossref.requests == [("single", MARKOVIC_DOI)]


def test_add_by_doi_twice_is_a_duplicate_without_a_request(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.add(envelope("markovic_2015")["message"])
    run("add", "--doi", MARKOVIC_DOI)

    result = run("add", "--doi", MARKOVIC_DOI.upper(), expect=1)

    assert result.stderr.startswith(
        "Error: a study with DOI 10.5555/jbmt.2015.04.010 is already in the library"
    )
    assert len(crossref.requests) == 1
    assert len(run_json("find")) == 1


def test_add_by_doi_unknown_doi(empty_library: str, crossref: FakeCrossref) -> None:
    result = run("add", "--doi", "10.5555/nope", expect=1)
    assert "Crossref has no record of DOI 10.5555/nope" in result.stderr
    assert run_json("find") == []


def test_add_with_title_and_doi_stays_manual(empty_library: str, crossref: FakeCrossref) -> None:
    study = json.loads(run("add", "--title", "By hand", "--doi", "10.5555/hand.1", "--format", "json").stdout)
    assert study["source"] == "manual"
    assert crossref.requests == []


# --- add --citation / resolve -------------------------------------------------------------------------

MARKOVIC_CITATION = (
    "Markovic G. Acute effects of instrument assisted soft tissue mobilization vs. foam rolling on knee "
    "and hip range of motion in soccer players. J Bodyw Mov Ther. 2015;19(4):690-696."
)


def test_add_by_citation_stores_a_confident_match_despite_crossrefs_order(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.search = envelope("search_markovic")  # Crossref ranks another paper first (score 88 vs 72)

    result = run(
        "add", "--citation", MARKOVIC_CITATION, "--claim", "mechanoreceptor-rom", "--stance", "supports"
    )

    assert result.stderr.startswith(f"matched {MARKOVIC_DOI}: confident")
    (study,) = run_json("find")
    assert study["doi"] == MARKOVIC_DOI
    assert study["claims"][0]["stance"] == "supports"
    shown = run_json("show", MARKOVIC_DOI)
    assert "citation" in shown["verification"]["note"]
    assert crossref.count("search") == 1 and crossref.count("single") == 0  # the candidate is the record


def test_add_by_citation_ambiguous_stores_nothing_and_shows_candidates(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.search = envelope("search_ambiguous")
    text = (
        "Santos R. Instrument-assisted soft tissue mobilization and ankle dorsiflexion in older adults. 2020"
    )

    result = run("add", "--citation", text, expect=1)

    assert "ambiguous" in result.stderr and "--pick N" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "10.5555/preprint.2020.0417" in result.stdout and "10.5555/jgpt.2020.ankle" in result.stdout
    assert run_json("find") == []

    picked = run("add", "--citation", text, "--pick", "2", "--format", "json")
    study = json.loads(picked.stdout)
    ranked = json.loads(run("resolve", text, "--format", "json", expect=1).stdout)
    assert study["doi"] == ranked[1]["doi"]
    assert len(run_json("find")) == 1


def test_pick_out_of_range_and_without_citation(empty_library: str, crossref: FakeCrossref) -> None:
    crossref.search = envelope("search_ambiguous")
    assert (
        "--pick must be from 1 to 2"
        in run("add", "--citation", "Santos 2020 ankle", "--pick", "5", expect=1).stderr
    )
    assert run("add", "--doi", "10.5555/x.1", "--pick", "1", expect=2).exit_code == 2


def test_resolve_prints_candidates_and_the_evidence(empty_library: str, crossref: FakeCrossref) -> None:
    crossref.search = envelope("search_markovic")

    result = run("resolve", MARKOVIC_CITATION, "--format", "json")

    candidates = json.loads(result.stdout)
    assert candidates[0]["doi"] == MARKOVIC_DOI and candidates[0]["rank"] == 1
    assert candidates[0]["author_found"] is True and candidates[0]["year_check"] == "exact"
    assert candidates[0]["title_similarity"] >= 90
    assert candidates[0]["crossref_score"] < candidates[1]["crossref_score"]
    assert "confident match: candidate 1" in result.stderr
    assert run_json("find") == []  # resolve stores nothing


def test_resolve_vague_text_is_not_confident(empty_library: str, crossref: FakeCrossref) -> None:
    crossref.search = envelope("search_markovic")
    result = run("resolve", "foam rolling soccer", expect=1)
    assert result.stderr.startswith("Error: no confident match")
    assert MARKOVIC_DOI in result.stdout


def test_resolve_missing_reports_and_applies_only_with_apply(
    seeded_library: str, crossref: FakeCrossref
) -> None:
    crossref.search = envelope("search_markovic")
    no_doi = [s for s in run_json("find") if s["doi"] is None]
    assert any(s["citekey"] == "markovic2015acute" for s in no_doi)

    report = json.loads(run("resolve", "--missing", "--format", "json").stdout)

    assert crossref.count("search") == len(no_doi)
    markovic = next(r for r in report if r["citekey"] == "markovic2015acute")
    assert (
        markovic["found"] == MARKOVIC_DOI and markovic["confident"] is True and markovic["applied"] is False
    )
    assert "title" in markovic["why"] and "Markovic" in markovic["citation"]
    others = [r for r in report if r["citekey"] != "markovic2015acute"]
    assert all(r["found"] is None for r in others)  # every other study gets the Markovic answer: refused
    assert run_json("show", "markovic2015acute")["doi"] is None

    applied = json.loads(run("resolve", "--missing", "--apply", "--format", "json").stdout)
    assert next(r for r in applied if r["citekey"] == "markovic2015acute")["applied"] is True
    shown = run_json("show", "markovic2015acute")
    assert shown["doi"] == MARKOVIC_DOI
    assert shown["field_sources"]["doi"] == "crossref"
    assert shown["verification"]["doi"] == "unverified"
    assert "matched by a Crossref citation search" in shown["verification"]["note"]
    assert shown["title"].startswith("Acute effects")  # nothing but the DOI changed


# --- enrich -----------------------------------------------------------------------------------------


def baker_work(**extra: Any) -> dict[str, Any]:
    message = work(
        BAKER_DOI,
        "Instrument-Assisted Soft Tissue Mobilization Treatment for Tissue Extensibility Dysfunction",
        year=2013,
        **{
            "container-title": ["International Journal of Athletic Therapy and Training"],
            "volume": "19",  # the seed says 18: a conflict, kept
            "issue": "5",
            "page": "16\u201321",  # an en dash: the same pages
            "author": [
                {
                    "given": "Russell T.",
                    "family": "Baker",
                    "sequence": "first",
                    "ORCID": "0000-0002-1825-0097",
                },
                {"given": "Alan", "family": "Nasypany", "sequence": "additional"},
                {"given": "Jeff G.", "family": "Seegmiller", "sequence": "additional"},
                {"given": "Jim G.", "family": "Baker", "sequence": "additional"},
            ],
        },
    )
    message.update(extra)
    return message


def test_enrich_fills_missing_fields_and_reports_conflicts_with_curated_ones(
    seeded_library: str, crossref: FakeCrossref
) -> None:
    before = run_json("show", BAKER_DOI)
    crossref.add(baker_work())

    result = run("enrich", "baker2013instrument", "--format", "json")

    (row,) = json.loads(result.stdout)
    assert row["outcome"] == "enriched"
    assert set(row["filled"]) >= {"abstract", "issn", "publisher", "authors.orcid"}
    assert "title" not in row["filled"] and "pages" not in row["filled"]
    assert row["conflicts"] == ["volume: ours '18' (seed) vs Crossref '19'"]
    after = run_json("show", BAKER_DOI)
    assert after["volume"] == "18"  # curated: kept
    assert after["title"] == before["title"]
    assert after["authors"][0] == {"family": "Baker", "given": "R T", "orcid": "0000-0002-1825-0097"}
    assert after["abstract"] == f"Abstract of {BAKER_DOI}."
    assert after["field_sources"]["abstract"] == "crossref"
    assert after["field_sources"]["volume"] == "seed"
    assert after["field_sources"]["title"] == "seed"
    assert (after["citations"], after["references_count"]) == (3, 12)
    assert "1 enriched" in result.stderr and "1 conflicts kept" in result.stderr


def test_a_field_the_user_edited_is_never_overwritten(seeded_library: str, crossref: FakeCrossref) -> None:
    run("edit", "baker2013instrument", "--abstract", "My own summary.")
    crossref.add(baker_work())

    (row,) = json.loads(run("enrich", "baker2013instrument", "--format", "json").stdout)

    assert any(
        c.startswith("abstract: ours 'My own summary.' (manual) vs Crossref") for c in row["conflicts"]
    )
    assert run_json("show", BAKER_DOI)["abstract"] == "My own summary."


def test_enrich_batch_with_a_missing_doi_and_a_500_then_ok(
    empty_library: str, crossref: FakeCrossref
) -> None:
    dois = add_synthetic(4)
    for doi in dois[:3]:
        crossref.add(work(doi, f"Synthetic study {dois.index(doi)}"))
    crossref.faults.append(fail_once(500))

    result = run("enrich", "--all", "--format", "json", expect=1)

    rows = {r["doi"]: r for r in json.loads(result.stdout)}
    assert [rows[d]["outcome"] for d in dois] == ["enriched", "enriched", "enriched", "not-found"]
    assert "Crossref has no record of DOI 10.5555/syn.3" in rows[dois[3]]["detail"]
    # one batch answered 500, the retry succeeded; the DOI absent from the batch was confirmed once
    assert [kind for kind, _ in crossref.requests] == ["batch", "batch", "single"]
    assert crossref.requests[0][1] == ",".join(f"doi:{d}" for d in dois)
    assert "Error: some studies could not be enriched" in result.stderr
    assert run_json("show", dois[0])["abstract"] == f"Abstract of {dois[0]}."


def test_second_run_comes_from_the_cache_and_refresh_asks_again(
    empty_library: str, crossref: FakeCrossref
) -> None:
    dois = add_synthetic(3)
    for doi in dois:
        crossref.add(work(doi, "Synthetic"))
    run("enrich", "--all")
    sent = len(crossref.server.log)
    assert sent == 1

    again = run("enrich", "--all", "--format", "json")
    assert len(crossref.server.log) == sent  # not one request
    assert {r["outcome"] for r in json.loads(again.stdout)} == {"unchanged"}
    assert "0 requests to Crossref, 3 studies from the cache" in again.stderr

    crossref.add(work(dois[0], "Synthetic", **{"is-referenced-by-count": 99}))
    refreshed = run("enrich", "--all", "--refresh", "--format", "json")
    assert len(crossref.server.log) == sent + 1
    rows = {r["doi"]: r for r in json.loads(refreshed.stdout)}
    assert rows[dois[0]]["outcome"] == "enriched" and rows[dois[0]]["updated"] == ["citations"]
    assert run_json("show", dois[0])["citations"] == 99


def test_interrupted_enrich_keeps_the_first_chunk_and_a_rerun_resumes(
    empty_library: str, crossref: FakeCrossref
) -> None:
    dois = add_synthetic(120)
    for doi in dois:
        crossref.add(work(doi, "Synthetic"))
    crossref.faults.append(fail_batches_from(2, status=503))

    first = run("enrich", "--all", "--format", "json", expect=1)

    rows = json.loads(first.stdout)
    assert [r["outcome"] for r in rows[:50]] == ["enriched"] * 50
    assert {r["outcome"] for r in rows[50:]} == {"failed"}
    assert "HTTP 503" in rows[50]["detail"]
    assert rows[100]["detail"].startswith("not attempted: Crossref could not be reached")
    assert [kind for kind, _ in crossref.requests] == [
        "batch"
    ] * 4  # batch 1, batch 2 three times, no batch 3
    kept = run_json("show", dois[49])
    assert kept["abstract"] is not None and kept["crossref_checked_at"] is not None
    assert run_json("show", dois[50])["abstract"] is None

    crossref.faults.clear()
    crossref.requests.clear()
    second = run("enrich", "--all", "--format", "json")

    rows = {r["doi"]: r for r in json.loads(second.stdout)}
    assert all(rows[d]["outcome"] == "unchanged" for d in dois[:50])
    assert all(rows[d]["outcome"] == "enriched" for d in dois[50:])
    assert [kind for kind, _ in crossref.requests] == ["batch", "batch"]  # 50 + 20 new DOIs, none resent
    assert "doi:10.5555/syn.0," not in crossref.requests[0][1]


def test_enrich_needs_refs_or_all(empty_library: str, crossref: FakeCrossref) -> None:
    assert run("enrich", expect=2).exit_code == 2
    assert "no study matches 'nobody2020'" in run("enrich", "nobody2020", expect=1).stderr
    assert crossref.requests == []


def test_enrich_a_study_without_doi_says_so(seeded_library: str, crossref: FakeCrossref) -> None:
    (row,) = json.loads(run("enrich", "markovic2015acute", "--format", "json").stdout)
    assert row["outcome"] == "no-doi" and "resolve --missing" in row["detail"]
    assert crossref.requests == []


# --- check, and the retraction mark in find / show -------------------------------------------------------

RETRACTED_DOI = "10.5555/iastm.retracted.2017"


def test_check_reports_a_retraction_and_find_show_mark_it(empty_library: str, crossref: FakeCrossref) -> None:
    run(
        "add",
        "--title",
        "Rapid recovery of tendinopathy after instrument-assisted mobilisation",
        "--doi",
        RETRACTED_DOI,
        "--year",
        "2017",
    )
    run("add", "--title", "A sound study", "--doi", "10.5555/fine.1")
    crossref.add(envelope("retracted")["message"])
    crossref.add(work("10.5555/fine.1", "A sound study"))
    assert run_json("show", RETRACTED_DOI)["status"] == "ok"

    result = run("check")

    assert "retracted" in result.stdout and RETRACTED_DOI in result.stdout
    assert "checked 2 studies: 1 retracted, 0 corrected, 0 with an expression of concern" in result.stderr
    assert "WARNING: 1 retracted study is in the library" in result.stderr
    shown = run_json("show", RETRACTED_DOI)
    assert shown["status"] == "retracted"
    assert {
        "type": "retraction",
        "doi": "10.5555/iastm.retraction.2021",
        "date": "2021-02-09",
        "source": "retraction-watch",
    } in shown["updates"]
    assert (
        shown["title"] == "Rapid recovery of tendinopathy after instrument-assisted mobilisation"
    )  # facts only
    assert "*** RETRACTED ***" in run("show", RETRACTED_DOI).stdout
    assert "[RETRACTED] Rapid recovery" in run("find").stdout
    assert [s["doi"] for s in run_json("find", "--exclude-retracted")] == ["10.5555/fine.1"]

    assert json.loads(run("check", "--cached", "--format", "json").stdout)[0]["status"] == "retracted"
    assert crossref.count("batch") == 1  # --cached re-read the cache


def test_check_with_nothing_flagged(empty_library: str, crossref: FakeCrossref) -> None:
    run("add", "--title", "A sound study", "--doi", "10.5555/fine.1")
    crossref.add(work("10.5555/fine.1", "A sound study"))
    result = run("check")
    assert result.stdout == ""
    assert "checked 1 studies: 0 retracted" in result.stderr


# --- no network ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("add", "--doi", "10.5555/offline.1"),
        ("add", "--citation", MARKOVIC_CITATION),
        ("resolve", MARKOVIC_CITATION),
        ("resolve", "--missing", "--apply"),
        ("enrich", "--all"),
        ("enrich", "baker2013instrument", "--refresh"),
        ("check",),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_no_network_one_line_exit_1_nothing_changed(
    seeded_library: str, closed_port_url: str, args: tuple[str, ...]
) -> None:
    before = dump(seeded_library)

    result = run(*args, expect=1)

    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: Crossref could not be reached (")
    assert lines[0].endswith("no network? Everything else works offline.")
    assert dump(seeded_library) == before
    assert run("find", "--mechanism", "neural-stimulation").exit_code == 0  # the rest works offline


# --- review 3 regressions ---------------------------------------------------------------------------

HAMSTRING_CITATION = (
    "Smith J, Jones K. Hamstring flexibility and sprint performance in elite soccer players: a randomised "
    "trial. Br J Sports Med. 2016;50(3):123-130."
)


def search_of(*messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "ok",
        "message-type": "work-list",
        "message": {"total-results": len(messages), "items": list(messages)},
    }


def test_a_short_title_inside_the_cited_title_is_never_a_confident_match(
    empty_library: str, crossref: FakeCrossref
) -> None:
    editorial = work("10.5555/editorial.2016", "Hamstring flexibility", family="Smith", year=2016, score=99.0)
    crossref.search = search_of(editorial)

    result = run("resolve", HAMSTRING_CITATION, "--format", "json", expect=1)

    (candidate,) = json.loads(result.stdout)
    assert candidate["title_similarity"] == 100  # the words are there...
    assert candidate["title_coverage"] < 0.8  # ...but they are a fifth of the cited title
    assert "covers only" in result.stderr and "of the cited title" in result.stderr
    assert run("add", "--citation", HAMSTRING_CITATION, expect=1).stderr.startswith("Error: ambiguous")
    assert run_json("find") == []

    right = work(
        "10.5555/bjsm.2016.sprint",
        "Hamstring flexibility and sprint performance in elite soccer players",
        family="Smith",
        year=2016,
        subtitle=["a randomised trial"],
        score=40.0,
    )
    crossref.search = search_of(editorial, right)
    assert run("add", "--citation", HAMSTRING_CITATION).stderr.startswith("matched 10.5555/bjsm.2016.sprint")
    assert crossref.count("search") == 3


def test_pages_are_not_years_when_matching_a_citation(empty_library: str, crossref: FakeCrossref) -> None:
    text = "Smith J. Hamstring flexibility in soccer players. Clin J 2016;12:1995-2001."
    crossref.search = search_of(
        work("10.5555/old.1995", "Hamstring flexibility in soccer players", family="Smith", year=1995)
    )

    result = run("resolve", text, "--format", "json", expect=1)

    (candidate,) = json.loads(result.stdout)
    assert candidate["year_check"] == "mismatch"
    assert "year 1995 is not the text's 2016" in candidate["reasons"]
    assert "year differs" in result.stderr


def test_enrich_stops_after_a_confirming_request_fails_for_good(
    empty_library: str, crossref: FakeCrossref
) -> None:
    dois = add_synthetic(5)
    crossref.add(work(dois[0], "Synthetic study 0"))  # the other four are absent from the batch answer
    crossref.faults.append(
        lambda request, fake: (
            Response("unavailable", status=503) if fake.requests[-1][0] == "single" else None
        )
    )

    result = run("enrich", "--all", "--format", "json", expect=1)

    rows = {r["doi"]: r for r in json.loads(result.stdout)}
    assert rows[dois[0]]["outcome"] == "enriched"
    assert [rows[d]["outcome"] for d in dois[1:]] == ["failed"] * 4
    assert "HTTP 503" in rows[dois[1]]["detail"]
    assert rows[dois[2]]["detail"].startswith("not attempted: ")
    # one batch, one confirming DOI with its 3 attempts (the test client's retry policy), then nothing
    assert [kind for kind, _ in crossref.requests] == ["batch", "single", "single", "single"]


def test_enrich_stops_when_crossref_refuses_every_request(empty_library: str, crossref: FakeCrossref) -> None:
    """Review: every request answered 400, and the one-by-one fallback sent 114 requests."""
    add_synthetic(120)
    crossref.faults.append(lambda request, fake: json_response({"status": "failed", "message": []}, 400))
    before = dump(empty_library)

    result = run("enrich", "--all", expect=1)

    (line,) = result.stderr.strip().splitlines()
    assert (
        line.startswith("Error: Crossref refused our requests (HTTP 400") and "nothing more was sent" in line
    )
    assert [kind for kind, _ in crossref.requests] == ["batch", "single", "single", "single"]
    assert dump(empty_library) == before


def test_not_found_dois_are_cached_and_refresh_asks_again(empty_library: str, crossref: FakeCrossref) -> None:
    dois = add_synthetic(3)
    crossref.add(work(dois[0], "Synthetic study 0"))
    crossref.add(work(dois[1], "Synthetic study 1"))

    first = run("enrich", "--all", "--format", "json", expect=1)
    assert [kind for kind, _ in crossref.requests] == ["batch", "single"]  # the batch, the confirmation
    assert json.loads(first.stdout)[2]["outcome"] == "not-found"

    crossref.requests.clear()
    second = run("enrich", "--all", "--format", "json", expect=1)

    assert crossref.requests == []  # not one request: the not-found answer is cached too
    row = json.loads(second.stdout)[2]
    assert row["outcome"] == "not-found" and "from the cache; --refresh asks again" in row["detail"]
    assert "0 requests to Crossref, 3 studies from the cache" in second.stderr

    crossref.add(work(dois[2], "Synthetic study 2"))  # registered meanwhile
    refreshed = run("enrich", "--all", "--refresh", "--format", "json")
    assert [kind for kind, _ in crossref.requests] == ["batch"]
    assert json.loads(refreshed.stdout)[2]["outcome"] == "enriched"


def test_check_cached_never_goes_to_the_network(
    empty_library: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    crossref = install(httpserver, monkeypatch)
    run("add", "--title", "Retracted", "--doi", RETRACTED_DOI)
    run("add", "--title", "Unknown to Crossref", "--doi", "10.5555/unknown.1")
    crossref.add(envelope("retracted")["message"])
    run("check")
    assert [kind for kind, _ in crossref.requests] == ["batch", "single"]

    install_closed_port(monkeypatch)  # offline from now on
    result = run("check", "--cached", "--format", "json")

    assert [row["doi"] for row in json.loads(result.stdout)] == [RETRACTED_DOI]
    assert "checked 1 studies: 1 retracted" in result.stderr and "1 DOIs not in Crossref" in result.stderr
    assert len(crossref.requests) == 2

    run("add", "--title", "Never fetched", "--doi", "10.5555/new.1")
    never = run("check", "--cached", expect=1)
    assert "1 studies were not checked: not in the cache" in never.stderr
    assert "Crossref could not be reached" not in never.stderr


def test_404_on_the_list_route_stops_check_with_the_url(empty_library: str, crossref: FakeCrossref) -> None:
    run("add", "--title", "A sound study", "--doi", "10.5555/fine.1")
    crossref.add(work("10.5555/fine.1", "A sound study"))
    crossref.faults.append(
        lambda request, fake: (
            Response("Resource not found.", status=404) if fake.requests[-1][0] != "single" else None
        )
    )
    before = dump(empty_library)

    result = run("check", expect=1)

    assert result.stderr.startswith(f"Error: Crossref could not be used (HTTP 404 from {crossref.url}/works?")
    assert "is EVIDENCE_CROSSREF_URL right?" in result.stderr
    assert "not in Crossref" not in result.stderr
    assert [kind for kind, _ in crossref.requests] == ["batch"]  # no retry, no confirmations
    assert dump(empty_library) == before

    searched = run("resolve", MARKOVIC_CITATION, expect=1)
    assert "Crossref could not be used (HTTP 404 from" in searched.stderr
    assert "has no record of the citation search" not in searched.stderr


def test_check_exits_1_when_no_study_could_be_checked(empty_library: str, crossref: FakeCrossref) -> None:
    run("add", "--title", "Typo in the DOI", "--doi", "10.5555/typo.1")

    result = run("check", expect=1)

    assert "checked 0 studies" in result.stderr
    assert "Error: no study could be checked" in result.stderr


def test_enrich_issn_subset_and_first_page_only_are_no_conflict(
    empty_library: str, crossref: FakeCrossref
) -> None:
    db = open_database(load_settings())
    try:
        with db.transaction() as session:  # an import that brought one ISSN and the page range
            records.add_study(
                session,
                {"title": "A study", "doi": "10.5555/issn.1", "pages": "255-270", "issn": "1234-5678"},
                source="import",
            )
    finally:
        db.close()
    crossref.add(work("10.5555/issn.1", "A study", ISSN=["1234-5678", "8765-4321"], page="255"))

    (row,) = json.loads(run("enrich", "10.5555/issn.1", "--format", "json").stdout)

    assert row["conflicts"] == []
    shown = run_json("show", "10.5555/issn.1")
    assert (shown["pages"], shown["issn"]) == ("255-270", "1234-5678")


def test_add_by_citation_is_unverified_with_the_match_evidence(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.search = envelope("search_markovic")

    run("add", "--citation", MARKOVIC_CITATION)

    shown = run_json("show", MARKOVIC_DOI)
    assert shown["verification"]["doi"] == "unverified"
    assert shown["verification"]["note"].startswith(
        f"DOI {MARKOVIC_DOI} matched by a Crossref citation search on "
    )
    assert "title 100% similar" in shown["verification"]["note"]
    assert shown["verification"]["bibliographic"] == "verified"  # Crossref's record of that DOI, untouched


def test_add_by_doi_with_the_users_bibliographic_fields_is_not_verified(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.add(envelope("markovic_2015")["message"])

    run("add", "--doi", MARKOVIC_DOI, "--year", "2019", "--journal", "My Journal", "--design", "rct")

    shown = run_json("show", MARKOVIC_DOI)
    assert shown["verification"]["doi"] == "verified"
    assert shown["verification"]["bibliographic"] == "unverified"
    assert "year 2019 (Crossref: 2015)" in shown["verification"]["note"]
    assert shown["field_sources"]["year"] == "manual" and shown["field_sources"]["design"] == "manual"
    assert shown["field_sources"]["level"] == "manual"  # derived from the user's design
    assert shown["field_sources"]["title"] == "crossref"


def test_add_by_doi_with_a_users_year_equal_to_crossrefs_stays_verified(
    empty_library: str, crossref: FakeCrossref
) -> None:
    crossref.add(envelope("markovic_2015")["message"])
    run("add", "--doi", MARKOVIC_DOI, "--year", "2015")
    assert run_json("show", MARKOVIC_DOI)["verification"]["bibliographic"] == "verified"


def test_show_issn_label_does_not_run_into_the_value(empty_library: str, crossref: FakeCrossref) -> None:
    crossref.add(envelope("markovic_2015")["message"])
    run("add", "--doi", MARKOVIC_DOI)
    lines = run("show", MARKOVIC_DOI).stdout.splitlines()
    assert "ISSN:       1360-8592" in lines
