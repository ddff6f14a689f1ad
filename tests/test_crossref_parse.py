"""parse_work and its helpers: pure, no HTTP. Fixtures are Crossref-shaped JSON envelopes."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from evidence.crossref import (
    Author,
    PartialDate,
    Relation,
    jats_to_text,
    normalise_orcid,
    normalise_update_type,
    parse_date_parts,
    parse_work,
)
from evidence.errors import BadResponse

FIXTURES = Path(__file__).parent / "fixtures" / "crossref"


def message(name: str) -> dict[str, Any]:
    envelope = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = envelope["message"]
    return result


def test_journal_article_every_field() -> None:
    work = parse_work(message("journal_article"))

    assert work.doi == "10.5555/iastm.2019.001"  # lower-cased
    assert work.title == (
        "Instrument-assisted soft tissue mobilisation and hamstring flexibility: "
        "a randomised controlled trial"
    )
    assert work.subtitle is None  # an empty list is no subtitle
    assert work.container_title == "Journal of Example Manual Therapy"
    assert work.short_container_title == "J Ex Man Ther"
    assert work.issued == PartialDate(2019, 3, 14)
    assert work.year == 2019
    assert (work.volume, work.issue, work.pages, work.article_number) == ("27", "3", "127-134", None)
    assert work.issn == ("1234-5678", "8765-4321")
    assert work.publisher == "Example Publishing Ltd"
    assert (work.type, work.subtype) == ("journal-article", None)
    assert work.url == "https://doi.org/10.5555/iastm.2019.001"
    assert work.language == "en"
    assert work.license_urls == ("https://creativecommons.org/licenses/by/4.0",)  # deduplicated
    assert work.funders == ("Example Physiotherapy Foundation", "Example University")
    assert work.citation_count == 42
    assert work.references_count == 31
    assert [(t.number, t.registry, t.type) for t in work.clinical_trials] == [
        ("NCT01234567", "10.18810/clinical-trials-gov", "preResults")
    ]
    assert work.relations == ()
    assert work.update_to == work.updated_by == ()
    assert work.status == "ok"
    assert work.score == 1.0
    assert work.raw == message("journal_article")


def test_authors_with_orcid_in_bare_form() -> None:
    authors = parse_work(message("journal_article")).authors

    assert authors[0] == Author(
        family="Pereira",
        given="Ana",
        orcid="0000-0002-1825-0097",
        sequence="first",
        affiliations=("School of Health Sciences, Example University",),
    )
    assert authors[1].orcid == "0000-0001-5109-395X"  # checksum X kept, http:// prefix dropped
    assert authors[2].orcid is None
    assert authors[2].display_name == "O'Neill, M."
    assert not any(author.is_organisation for author in authors)


def test_jats_abstract_becomes_clean_paragraphs() -> None:
    abstract = parse_work(message("journal_article")).abstract

    assert abstract == (
        "Background\n\n"
        "Instrument-assisted soft tissue mobilisation (IASTM) is widely used, but its effect on flexibility "
        "is uncertain.\n\n"
        "Methods\n\n"
        "Forty adults were randomised; range of motion was measured at 0 & 24 h (p < 0.05 considered "
        "significant)."
    )


@pytest.mark.parametrize(
    ("jats", "text"),
    [
        (None, None),
        ("", None),
        ("<jats:title>Abstract</jats:title>", None),
        ("Plain text, no tags.", "Plain text, no tags."),
        ("<jats:p>Abstract</jats:p><jats:p>Body.</jats:p>", "Body."),
        ("<p>HTML <i>italic</i> &amp; <b>bold</b></p><p>second</p>", "HTML italic & bold\n\nsecond"),
        ("<jats:p>H<jats:sub>2</jats:sub>O at 37&#176;C</jats:p>", "H2O at 37°C"),
        ("<jats:title>Summary</jats:title><jats:p>Kept.</jats:p>", "Summary\n\nKept."),
    ],
)
def test_jats_to_text(jats: str | None, text: str | None) -> None:
    assert jats_to_text(jats) == text


def test_organisation_author() -> None:
    work = parse_work(message("organisation_author"))

    group, person = work.authors
    assert group.is_organisation
    assert group.name == "IASTM Consensus Working Group"
    assert group.family is None
    assert group.display_name == "IASTM Consensus Working Group"
    assert person.display_name == "Shah, Ravi"
    assert person.affiliations == ("Example Clinic",)


def test_partial_date_keeps_only_the_year() -> None:
    work = parse_work(message("partial_date"))

    assert work.issued == PartialDate(2015)
    assert work.issued is not None
    assert work.issued.isoformat() == "2015"
    assert work.authors[0].family == "Marković"


def test_null_date_is_no_date() -> None:
    work = parse_work(message("null_date"))

    assert work.issued is None
    assert work.year is None
    assert work.container_title is None
    assert work.authors == ()


def test_issued_falls_back_to_print_then_online() -> None:
    base = {"DOI": "10.5555/x", "issued": {"date-parts": [[None]]}}
    online_only = {**base, "published-online": {"date-parts": [[2019, 4]]}}
    both = {**online_only, "published-print": {"date-parts": [[2020, 1, 5]]}}

    assert parse_work(online_only).issued == PartialDate(2019, 4)
    assert parse_work(both).issued == PartialDate(2020, 1, 5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({}, None),
        ({"date-parts": []}, None),
        ({"date-parts": [[]]}, None),
        ({"date-parts": [[None]]}, None),
        ({"date-parts": [[2015]]}, PartialDate(2015)),
        ({"date-parts": [[2015, 3]]}, PartialDate(2015, 3)),
        ({"date-parts": [[2015, 3, 2]]}, PartialDate(2015, 3, 2)),
        ({"date-parts": [[2015, None, None]]}, PartialDate(2015)),
        ({"date-parts": [["2015", "7"]]}, PartialDate(2015, 7)),
        ({"date-parts": [[2015, 13, 2]]}, PartialDate(2015)),  # never invent: a bad month drops the day too
        ({"date-parts": [[2015, 2, 40]]}, PartialDate(2015, 2)),
    ],
)
def test_parse_date_parts(value: object, expected: PartialDate | None) -> None:
    assert parse_date_parts(value) == expected


def test_partial_date_isoformat() -> None:
    assert PartialDate(2016, 7).isoformat() == "2016-07"
    assert PartialDate(2016, 7, 9).isoformat() == "2016-07-09"


def test_article_number_stands_in_for_pages() -> None:
    work = parse_work(message("article_number"))

    assert work.pages == "e0215421"
    assert work.article_number == "e0215421"
    assert work.abstract == "Plain text abstract without JATS markup, as some publishers deposit it."


def test_retracted_work_from_retraction_watch() -> None:
    work = parse_work(message("retracted"))

    assert work.status == "retracted"  # retraction outranks the earlier expression of concern
    retraction, concern = work.updated_by
    assert retraction.type == "retraction"
    assert retraction.doi == "10.5555/iastm.retraction.2021"
    assert retraction.date == PartialDate(2021, 2, 9)
    assert retraction.source == "retraction-watch"
    assert retraction.label == "Retraction"
    assert concern.type == "expression-of-concern"
    assert concern.raw_type == "expression_of_concern"
    assert concern.source == "publisher"


def test_corrected_work_and_its_erratum_notice() -> None:
    work = parse_work(message("corrected"))
    notice = parse_work(message("erratum_notice"))

    assert work.status == "corrected"
    (update,) = work.updated_by
    assert (update.type, update.raw_type, update.doi) == (
        "correction",
        "erratum",
        "10.5555/s12998-016-0112-0",
    )
    assert update.date == PartialDate(2016, 7, 19)
    assert work.pages == "16"
    assert work.container_title == "Example Chiropractic & Manual Therapies"

    # The notice points at the corrected work through update-to; it is not itself "corrected".
    assert notice.status == "ok"
    (points_to,) = notice.update_to
    assert (points_to.type, points_to.doi) == ("correction", "10.5555/s12998-016-0096-9")
    assert points_to.source is None


def test_expression_of_concern_alone() -> None:
    concern = {"type": "expression_of_concern", "DOI": "10.5555/eoc", "updated": {"date-parts": [[2022]]}}
    work = parse_work({"DOI": "10.5555/x", "updated-by": [concern]})

    assert work.status == "expression-of-concern"
    assert work.updated_by[0].date == PartialDate(2022)


def test_preprint_with_relation_to_version_of_record() -> None:
    work = parse_work(message("preprint"))

    assert (work.type, work.subtype) == ("posted-content", "preprint")
    assert work.relations == (
        Relation("is-preprint-of", "doi", "10.5555/iastm.heel.2023"),
        Relation("has-review", "uri", "https://example.org/review/1"),
    )
    assert work.relations[0].type == "is-preprint-of"
    assert work.container_title is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("retraction", "retraction"),
        ("partial_retraction", "retraction"),
        ("withdrawal", "retraction"),
        ("erratum", "correction"),
        ("corrigendum", "correction"),
        ("Correction", "correction"),
        ("expression_of_concern", "expression-of-concern"),
        ("expression-of-concern", "expression-of-concern"),
        ("new_version", "other"),
        ("", "other"),
    ],
)
def test_normalise_update_type(raw: str, normalised: str) -> None:
    assert normalise_update_type(raw) == normalised


def test_normalise_orcid() -> None:
    assert normalise_orcid("https://orcid.org/0000-0002-1825-0097") == "0000-0002-1825-0097"
    assert normalise_orcid("0000-0001-5109-395x") == "0000-0001-5109-395X"
    assert normalise_orcid("not an orcid") is None


def test_titles_lose_markup_and_extra_space() -> None:
    work = parse_work({"DOI": "10.5555/x", "title": ["  <i>In vivo</i> effects of\n  IASTM &amp; rest  "]})

    assert work.title == "In vivo effects of IASTM & rest"


def test_a_bare_string_title_is_tolerated() -> None:
    assert parse_work({"DOI": "10.5555/x", "title": "A title"}).title == "A title"


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"DOI": ""},
        {"DOI": 12},
        {"DOI": "10.5555/x", "title": [{"value": "nested"}]},
        {"DOI": "10.5555/x", "author": "Smith"},
        {"DOI": "10.5555/x", "author": [{"family": ["Smith"]}]},
        {"DOI": "10.5555/x", "issued": {"date-parts": "2015"}},
        {"DOI": "10.5555/x", "issued": {"date-parts": [["spring"]]}},
        {"DOI": "10.5555/x", "is-referenced-by-count": "many"},
        {"DOI": "10.5555/x", "relation": ["is-preprint-of"]},
        {"DOI": "10.5555/x", "updated-by": [{"type": "retraction", "updated": "2021"}]},
    ],
)
def test_unexpected_shapes_raise_bad_response(bad: dict[str, Any]) -> None:
    with pytest.raises(BadResponse) as caught:
        parse_work(bad)
    assert "\n" not in str(caught.value)


def test_bad_response_names_the_doi_and_field() -> None:
    with pytest.raises(BadResponse, match=r"10\.5555/x: unexpected 'author'") as caught:
        parse_work({"DOI": "10.5555/X", "author": "Smith"})
    assert caught.value.doi == "10.5555/x"


def test_not_a_mapping_is_a_bad_response() -> None:
    with pytest.raises(BadResponse):
        parse_work(["not", "a", "work"])  # type: ignore[arg-type]


def test_works_are_frozen_and_comparable_without_raw() -> None:
    work = parse_work(message("partial_date"))
    again = parse_work(json.loads(json.dumps(message("partial_date"))))

    assert work == again
    with pytest.raises(AttributeError):
        work.title = "changed"  # type: ignore[misc]


def test_crossref_package_imports_only_what_it_may() -> None:
    """evidence/crossref/ must not import sqlalchemy, the models, pandas or click; habanero only lazily."""
    top_level: set[str] = set()
    everywhere: set[str] = set()
    for path in sorted((Path(__file__).parents[1] / "evidence" / "crossref").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            everywhere.update(names)
            if node in tree.body:
                top_level.update(names)
    forbidden = {"sqlalchemy", "evidence.store.models", "evidence.store.db", "pandas", "click"}
    assert not {name for name in everywhere if name.split(".")[0] in forbidden or name in forbidden}
    assert not {name for name in top_level if name.split(".")[0] in {"habanero", "httpx2"}}
