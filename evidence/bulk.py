"""Bulk insertion of many study dicts (imports, benchmarks): Core executemany, no ORM object per row.

Takes the project's study dict shape (see `evidence.query.ROW_FIELDS`); values must already be
validated (`records.normalize_fields` does that per row). Citekeys are made unique against the library
and the batch with one look-up, not one per row. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from evidence import vocab
from evidence.models import Author, Claim, Study, StudyClaim, StudyTag, utcnow
from evidence.records import citekey_base

STUDY_COLUMNS = (
    "citekey",
    "doi",
    "pmid",
    "pmcid",
    "title",
    "journal",
    "issn",
    "publisher",
    "year",
    "volume",
    "issue",
    "pages",
    "article_number",
    "publication_type",
    "abstract",
    "url",
    "language",
    "design",
    "level",
    "population",
    "population_detail",
    "condition",
    "body_region",
    "sample_size",
    "pedro",
    "notes",
    "status",
    "updates",
    "citations",
)


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


class CitekeyAllocator:
    """Hands out unique citekeys (family + year + title word, then a, b, ...) with one initial query."""

    def __init__(self, session: Session) -> None:
        self.taken: set[str] = set(session.scalars(select(Study.citekey)))
        self._next: dict[str, int] = {}  # per base, the suffix number to try next (keeps this linear)

    def allocate(self, wanted: str | None, family: str | None, year: int | None, title: str | None) -> str:
        base = wanted or citekey_base(family, year, title)
        key, n = base, self._next.get(base, 0)
        while key in self.taken:
            n += 1
            suffix, k = "", n
            while k:
                k, r = divmod(k - 1, 26)
                suffix = chr(ord("a") + r) + suffix
            key = base + suffix
        self._next[base] = n
        self.taken.add(key)
        return key


def insert_studies(
    session: Session,
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str = "import",
    chunk_size: int = 2000,
    allocator: CitekeyAllocator | None = None,
) -> list[int]:
    """Insert studies with their authors, tags and claim links; returns the new ids in input order."""
    claim_ids = {name: id_ for id_, name in session.execute(select(Claim.id, Claim.name))}
    citekeys = allocator or CitekeyAllocator(session)
    now = utcnow()
    new_ids: list[int] = []
    for chunk in _chunks(rows, chunk_size):
        study_values = []
        for row in chunk:
            values = {name: row.get(name) for name in STUDY_COLUMNS}
            authors = row.get("authors") or []
            first = authors[0] if authors else {}
            values["citekey"] = citekeys.allocate(
                row.get("citekey"),
                first.get("family") or first.get("name"),
                row.get("year"),
                row.get("title"),
            )
            level_given = row.get("level") is not None
            if not level_given and row.get("design"):
                values["level"] = vocab.level_for_design(row["design"])
            values["level_overridden"] = level_given
            values["status"] = values["status"] or "ok"
            values["updates"] = values["updates"] or []
            values["source"] = source
            values["field_sources"] = {
                k: source for k, v in values.items() if v is not None and k in STUDY_COLUMNS
            }
            values["created_at"] = now
            values["updated_at"] = now
            study_values.append(values)
        # Core inserts on the tables (not the ORM entities): one executemany per table and chunk. The ORM
        # bulk path splits a batch wherever the set of non-null keys changes, i.e. nearly per row.
        studies = Study.__table__
        assert isinstance(studies, Table)
        ids = list(
            session.scalars(
                insert(studies).returning(studies.c.id, sort_by_parameter_order=True), study_values
            )
        )
        authors_rows, tag_rows, link_rows = [], [], []
        for study_id, row in zip(ids, chunk, strict=True):
            for position, author in enumerate(row.get("authors") or []):
                authors_rows.append(
                    {
                        "study_id": study_id,
                        "position": position,
                        "family": author.get("family"),
                        "given": author.get("given"),
                        "orcid": author.get("orcid"),
                        "name": None if author.get("family") else author.get("name"),
                    }
                )
            for tag in dict.fromkeys(row.get("tags") or []):
                tag_rows.append({"study_id": study_id, "tag": tag})
            seen: set[int] = set()
            for link in row.get("claims") or []:
                claim_id = claim_ids[link["claim"]]
                if claim_id in seen:
                    continue
                seen.add(claim_id)
                link_rows.append(
                    {
                        "study_id": study_id,
                        "claim_id": claim_id,
                        "stance": link["stance"],
                        "finding": link.get("finding"),
                    }
                )
        for model, values_list in ((Author, authors_rows), (StudyTag, tag_rows), (StudyClaim, link_rows)):
            if values_list:
                session.execute(insert(cast(Table, model.__table__)), values_list)
        new_ids.extend(ids)
    return new_ids
