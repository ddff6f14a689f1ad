"""The shipped seed library data/studies.json is well formed and uses only the controlled vocabularies."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evidence import vocab

SEED = Path(__file__).resolve().parent.parent / "data" / "studies.json"


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    with SEED.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture(scope="module")
def studies(seed: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = seed["studies"]
    return items


def test_header(seed: dict[str, Any]) -> None:
    assert seed["format"] == "evidence-seed/1"
    assert isinstance(seed["description"], str) and seed["description"].strip()


def test_counts(studies: list[dict[str, Any]]) -> None:
    assert len(studies) == 49
    cited = [s for s in studies if s["cited_by_practice_article"] is True]
    assert len(cited) == 9
    assert all(s["seed_key"].startswith("T1-") for s in cited)
    assert all(
        s["cited_by_practice_article"] is False for s in studies if not s["seed_key"].startswith("T1-")
    )


@pytest.mark.parametrize("field", ["seed_key", "citekey", "doi", "pmid", "pmcid"])
def test_identifiers_unique(studies: list[dict[str, Any]], field: str) -> None:
    values = [s[field] for s in studies if s[field] is not None]
    dupes = [v for v, n in Counter(values).items() if n > 1]
    assert not dupes, f"duplicate {field}: {dupes}"


def test_identifier_shapes(studies: list[dict[str, Any]]) -> None:
    for s in studies:
        key = s["seed_key"]
        assert re.fullmatch(r"[a-z]+\d{4}[a-z]+", s["citekey"]), key
        if s["doi"] is not None:
            assert s["doi"] == s["doi"].lower() and s["doi"].startswith("10."), key
        if s["pmid"] is not None:
            assert isinstance(s["pmid"], str) and s["pmid"].isdigit(), key
        if s["pmcid"] is not None:
            assert re.fullmatch(r"PMC\d+", s["pmcid"]), key
        if s["issn"] is not None:
            assert re.fullmatch(r"\d{4}-\d{3}[\dX]", s["issn"]), key


def test_vocabulary_values(studies: list[dict[str, Any]]) -> None:
    claim_names = {c.name for c in vocab.CLAIMS}
    for s in studies:
        key = s["seed_key"]
        assert s["design"] in vocab.DESIGNS, key
        assert s["population"] is None or s["population"] in vocab.POPULATIONS, key
        assert set(s["verification"]) == {"doi", "pmid", "authors", "bibliographic", "design"}, key
        for value in s["verification"].values():
            assert value in vocab.VERIFICATION, key
        # A study whose result nobody has read (Rowlett 2019) is deliberately left unlinked.
        assert len(s["claims"]) <= 4, key
        assert s["claims"] or "not linked" in (s["notes"] or ""), key
        for link in s["claims"]:
            assert link["claim"] in claim_names, key
            assert link["stance"] in vocab.STANCES, key
            assert link["finding"].strip(), key
        assert len({link["claim"] for link in s["claims"]}) == len(s["claims"]), key


def test_field_types(studies: list[dict[str, Any]]) -> None:
    for s in studies:
        key = s["seed_key"]
        assert isinstance(s["title"], str) and s["title"].strip(), key
        assert isinstance(s["year"], int) and 1900 < s["year"] < 2100, key
        for field in ("volume", "issue", "pages"):
            assert s[field] is None or isinstance(s[field], str), key
        assert s["level"] is None or (isinstance(s["level"], int) and 1 <= s["level"] <= 5), key
        assert s["sample_size"] is None or (isinstance(s["sample_size"], int) and s["sample_size"] > 0), key
        assert s["pedro"] is None, key
        assert s["authors"], key
        for author in s["authors"]:
            assert author.get("family") or author.get("name"), key
        assert all(url.startswith(("http://", "https://")) for url in s["source_urls"]), key
        assert all(tag == tag.lower() for tag in s["tags"]), key
        assert ("practice-article" in s["tags"]) == s["cited_by_practice_article"], key


def test_null_identifier_is_marked(studies: list[dict[str, Any]]) -> None:
    """A missing DOI or PMID is never shown as verified."""
    for s in studies:
        for field in ("doi", "pmid"):
            if s[field] is None:
                assert s["verification"][field] != "verified", (s["seed_key"], field)
