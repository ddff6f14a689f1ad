"""evidence.enrich as a notebook would use it: citation judging (pure), merge rules, cache, chunked enrich."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select

from evidence import enrich, records
from evidence.config import load_settings
from evidence.crossref import CrossrefClient, parse_work
from evidence.errors import CrossrefUnavailable, DuplicateRecord, InvalidValue
from evidence.library import init_library
from evidence.store.db import Database, open_database
from evidence.store.models import CrossrefCache, Study, utcnow
from tests.crossref_fake import FakeCrossref, envelope, fast_client, install, install_closed_port, work

CITATION = (
    "Markovic G. Acute effects of instrument assisted soft tissue mobilization vs. foam rolling on knee "
    "and hip range of motion in soccer players. J Bodyw Mov Ther. 2015;19(4):690-696."
)


def works(name: str) -> list[Any]:
    return [parse_work(item) for item in envelope(name)["message"]["items"]]


# --- judging citations (pure) ---------------------------------------------------------------------------


def test_the_right_candidate_wins_although_crossref_scores_it_lower() -> None:
    decision = enrich.decide(CITATION, works("search_markovic"))

    assert decision.confident
    assert decision.match is not None and decision.match.work.doi == "10.5555/jbmt.2015.04.010"
    assert decision.match.rank == 1 and decision.match.author_found is True  # Marković ~ Markovic
    assert decision.match.year_check == "exact"
    assert "runner-up" in decision.why
    assert [c.rank for c in decision.candidates] == [1, 2, 3]


def test_a_high_crossref_score_alone_is_never_accepted() -> None:
    only = works("search_markovic")[:1]  # "Foam rolling and hip range of motion...", score 88
    decision = enrich.decide(CITATION, only)
    assert not decision.confident
    assert "title only" in decision.why


def test_year_that_contradicts_the_text_refuses_the_match() -> None:
    text = CITATION.replace("2015", "2009")
    decision = enrich.decide(text, works("search_markovic")[1:2])
    assert not decision.confident and "year differs" in decision.why
    assert decision.candidates[0].year_check == "mismatch"


def test_one_year_off_is_accepted_with_the_author() -> None:
    decision = enrich.decide(CITATION.replace("2015", "2016"), works("search_markovic")[1:2])
    assert decision.confident and decision.candidates[0].year_check == "near"


def test_a_different_first_author_refuses_the_match() -> None:
    decision = enrich.decide(CITATION.replace("Markovic G.", "Jones P."), works("search_markovic")[1:2])
    assert not decision.confident and "first author not in the text" in decision.why


def test_a_preprint_and_its_article_are_ambiguous() -> None:
    text = (
        "Santos R. Instrument-assisted soft tissue mobilization and ankle dorsiflexion in older adults. 2020"
    )
    decision = enrich.decide(text, works("search_ambiguous"))
    assert not decision.confident and "too close" in decision.why
    assert decision.pick(2).work.doi in {"10.5555/preprint.2020.0417", "10.5555/jgpt.2020.ankle"}
    with pytest.raises(InvalidValue, match="--pick must be from 1 to 2"):
        decision.pick(3)


def test_half_a_title_does_not_match_a_longer_title_fully() -> None:
    decision = enrich.decide("foam rolling soccer", works("search_markovic"))
    assert not decision.confident
    assert all(c.title_similarity < enrich.TITLE_THRESHOLD for c in decision.candidates)


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("Clin J 2016;12:1995-2001.", [2016]),  # 1995 and 2001 are pages
        ("Smith J (2016) Title. J Med 12:1999", [2016]),  # after a colon: a page
        ("Smith J. The 2010 consensus. Med. 2016;3:4", [2016, 2010]),  # the title's year comes second
        ("Doe A, 2014. Seasons 2012-2013 in football. J 7", [2014]),
        ("no year here", []),
    ],
)
def test_citation_years_skip_pages_and_rank_the_publication_year_first(text: str, years: list[int]) -> None:
    assert enrich.citation_years(text) == years


def test_a_title_inside_a_longer_cited_title_covers_too_little() -> None:
    text = (
        "Smith J. Hamstring flexibility and sprint performance in elite soccer players. Br J Sports Med. 2016"
    )
    short = parse_work(work("10.5555/e.1", "Hamstring flexibility", family="Smith", year=2016))
    candidate = enrich.score_candidate(short, text)
    assert candidate.title_similarity == 100 and candidate.title_coverage < 0.3
    assert not candidate.acceptable
    decision = enrich.decide(text, [short])
    assert not decision.confident and "covers only" in decision.why
    # A title split by "vs." in the citation is still covered whole.
    markovic = enrich.decide(CITATION, works("search_markovic"))
    assert markovic.match is not None and markovic.match.title_coverage == 1.0


def test_no_candidates() -> None:
    decision = enrich.decide("anything at all", [])
    assert not decision.confident and decision.candidates == () and "no candidate" in decision.why


# --- fields and comparisons ---------------------------------------------------------------------------------


def test_work_fields_keep_article_numbers_apart_and_join_issns() -> None:
    fields = enrich.work_fields(parse_work(envelope("article_number")["message"]))
    assert fields["pages"] is None and fields["article_number"]
    journal = enrich.work_fields(parse_work(envelope("journal_article")["message"]))
    assert journal["issn"] == "1234-5678, 8765-4321" and journal["pages"] == "127-134"


def test_organisation_authors_are_kept_as_one_name() -> None:
    authors = enrich.work_authors(parse_work(envelope("organisation_author")["message"]))
    assert any("name" in a and "family" not in a for a in authors)


@pytest.mark.parametrize(
    ("name", "ours", "theirs", "same"),
    [
        ("pages", "690-6", "690\u2013696", True),
        ("pages", "16-21", "16-22", False),
        ("title", "Instrument-assisted soft tissue", "Instrument Assisted Soft Tissue", True),
        ("issn", "8765-4321, 1234-5678", "1234-5678, 8765-4321", True),
        ("year", 2015, 2016, False),
        ("journal", "Journal of Bodywork", "Journal of bodywork.", True),
        ("issn", "1234-5678", "1234-5678, 8765-4321", True),  # ours is one of print / electronic
        ("issn", "1111-2222", "1234-5678, 8765-4321", False),
        ("pages", "255-270", "255", True),  # Crossref has only the first page
        ("pages", "255-270", "256", False),
        ("pages", "255", "255-270", False),
    ],
)
def test_same_value(name: str, ours: Any, theirs: Any, same: bool) -> None:
    assert enrich.same_value(name, ours, theirs) is same


def test_journal_abbreviation_matches_the_short_container_title() -> None:
    markovic = parse_work(envelope("markovic_2015")["message"])
    assert enrich.same_value("journal", "J Bodyw Mov Ther", markovic.container_title, markovic)


# --- merge rules, cache and chunks on a real database ------------------------------------------------------


@pytest.fixture
def db(isolated_home: Path) -> Iterator[Database]:
    database = open_database(load_settings())
    with database.transaction() as session:
        init_library(session, empty=True)
    yield database
    database.close()


@pytest.fixture
def crossref(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeCrossref:
    return install(httpserver, monkeypatch)


@pytest.fixture
def client(crossref: FakeCrossref) -> CrossrefClient:
    return fast_client(load_settings())


def test_crossref_values_follow_crossref_but_curated_ones_do_not(db: Database) -> None:
    first = parse_work(work("10.5555/m.1", "Old title", year=2019, volume="3"))
    with db.transaction() as session:
        study = records.add_study(session, {"title": "Old title", "doi": "10.5555/m.1", "volume": "3"})
        study.field_sources = {**study.field_sources, "volume": "crossref"}  # volume came from Crossref
        merged = enrich.merge_work(session, study, first, utcnow())
        assert set(merged.filled) >= {"year", "journal", "abstract", "authors"}
        corrected = parse_work(work("10.5555/m.1", "New title", year=2019, volume="4"))
        merged = enrich.merge_work(session, study, corrected, utcnow())
        assert merged.filled == ["volume"] and study.volume == "4"
        assert [c.field for c in merged.conflicts] == ["title"]  # manual title kept
        assert study.title == "Old title"


def test_facts_only_touches_nothing_but_facts(db: Database) -> None:
    retracted = parse_work(envelope("retracted")["message"])
    with db.transaction() as session:
        study = records.add_study(session, {"title": "Mine", "doi": retracted.doi})
        merged = enrich.merge_work(session, study, retracted, utcnow(), facts_only=True)
        assert merged.filled == [] and set(merged.updated) == {
            "status",
            "updates",
            "citations",
            "references_count",
        }
        assert study.status == "retracted" and study.journal is None


def test_add_by_doi_uses_the_cache_unless_refresh(
    db: Database, crossref: FakeCrossref, client: CrossrefClient
) -> None:
    crossref.add(envelope("markovic_2015")["message"])
    with db.transaction() as session:
        study = enrich.add_by_doi(session, client, "10.5555/jbmt.2015.04.010", fields={"pedro": 6})
        assert study["pedro"] == 6 and study["field_sources"]["pedro"] == "manual"
        cached = session.get(CrossrefCache, "10.5555/jbmt.2015.04.010")
        assert cached is not None and cached.message["DOI"] == "10.5555/JBMT.2015.04.010"
        with pytest.raises(DuplicateRecord):
            enrich.add_by_doi(session, client, "10.5555/JBMT.2015.04.010")
        session.delete(session.get(Study, study["id"]))
    with db.transaction() as session:
        enrich.add_by_doi(session, client, "10.5555/jbmt.2015.04.010")
    assert len(crossref.requests) == 1  # re-added from the cache
    with db.transaction() as session:
        _work, _, from_cache = enrich.fetch_work_cached(
            session, client, "10.5555/jbmt.2015.04.010", refresh=True
        )
    assert not from_cache and len(crossref.requests) == 2


def test_enrich_reports_progress_per_study_and_counts_requests(
    db: Database, crossref: FakeCrossref, client: CrossrefClient
) -> None:
    with db.transaction() as session:
        for i in range(7):
            records.add_study(session, {"title": f"S{i}", "doi": f"10.5555/p.{i}"}, source="import")
            crossref.add(work(f"10.5555/p.{i}", f"S{i}"))
        records.add_study(session, {"title": "No DOI"})
    seen: list[tuple[str, int, int]] = []

    report = enrich.enrich(
        db, client, chunk_size=3, on_progress=lambda o, d, t: seen.append((o.outcome, d, t))
    )

    assert [d for _, d, _ in seen] == list(range(1, 9)) and {t for _, _, t in seen} == {8}
    assert report.count("enriched") == 7 and report.count("no-doi") == 1 and not report.failed
    assert report.requests_sent == 3  # 3 + 3 + 1
    assert "7 enriched" in report.summary()
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CrossrefCache)) == 7


def test_enrich_without_network_raises_one_error_and_changes_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_closed_port(monkeypatch)
    with db.transaction() as session:
        records.add_study(session, {"title": "S", "doi": "10.5555/p.1"})
    with pytest.raises(CrossrefUnavailable, match=r"^Crossref could not be reached \(.*Connection refused"):
        enrich.enrich(db, fast_client(load_settings()))
    with db.transaction() as session:
        assert session.scalar(select(Study.crossref_checked_at)) is None


def test_check_from_the_cache_sends_no_request_even_offline(
    db: Database, crossref: FakeCrossref, client: CrossrefClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.transaction() as session:
        records.add_study(session, {"title": "S", "doi": "10.5555/p.1"})
        records.add_study(session, {"title": "T", "doi": "10.5555/gone"})
    crossref.add(work("10.5555/p.1", "S"))
    first = enrich.check_updates(db, client)
    assert first.checked == 1 and len(first.not_found) == 1 and first.report.requests_sent == 2
    with db.transaction() as session:
        row = session.get(CrossrefCache, "10.5555/gone")
        assert row is not None and row.status == "not-found" and row.message is None

    install_closed_port(monkeypatch)
    cached = enrich.check_updates(db, fast_client(load_settings()), refresh=False)

    assert cached.checked == 1 and len(cached.not_found) == 1 and cached.report.requests_sent == 0
    assert not cached.failed and not cached.nothing_checked


def test_crossref_values_a_study_may_not_hold_are_cleaned_or_left_out() -> None:
    # Issue 13: add and import refuse or strip control characters and values past their limit; what
    # Crossref sends must not slip them in.
    message = work("10.5555/e.9", "Bell\x07 title\x00", family="Smith", year=2016)
    message["abstract"] = "<jats:p>" + "a" * 100_001 + "</jats:p>"
    message["publisher"] = "Press\x1b[31m"
    fields = enrich.work_fields(parse_work(message))
    assert fields["title"] == "Bell title" and fields["publisher"] == "Press[31m"
    assert fields["abstract"] is None
