"""The study row: the one list of a study's fields, in order, from which every other list of them derives
(the JSON row of `find`, the records of the citation formats, the spreadsheet's columns, what a writer
sets). Standard library only; everything may import it."""

from __future__ import annotations

import re

# Every field of a study row, in order: `find --format json`, a citation format's record (the study dict)
# and the CSV / XLSX columns.
ROW_FIELDS: tuple[str, ...] = (
    "id", "citekey", "doi", "pmid", "pmcid", "title", "authors", "journal", "issn", "publisher", "year",
    "volume", "issue", "pages", "article_number", "publication_type", "abstract", "url", "language",
    "design", "level", "population", "condition", "body_region", "sample_size", "pedro", "mechanisms",
    "claims", "tags", "notes", "citations", "status", "updates",
)  # fmt: skip
# Filled from the authors, study_claims and study_tags tables; every other row field is a studies column.
RELATED_FIELDS: tuple[str, ...] = ("authors", "mechanisms", "claims", "tags")
LIST_FIELDS: frozenset[str] = frozenset({*RELATED_FIELDS, "updates"})
COLUMN_FIELDS: tuple[str, ...] = tuple(f for f in ROW_FIELDS if f not in RELATED_FIELDS)
# What the library hands out or Crossref reports, never a writer: the id, the status with its notices, the
# citation count.
COMPUTED_FIELDS: tuple[str, ...] = ("id", "status", "updates", "citations")
# The study's own fields a writer sets (the seed loader, the importer, the bulk inserter, a hand edit):
# the row's columns less the computed ones, and the population's detail, which the row leaves out.
STUDY_FIELDS: tuple[str, ...] = (
    *(f for f in COLUMN_FIELDS if f not in COMPUTED_FIELDS),
    "population_detail",
)

# The longest value of each free-text (TEXT) column: far beyond any real study's, short of what makes a
# table or `show` crawl (a 10 MB title took `find` minutes). A longer value is refused: by add and edit,
# and by an import with its file and line.
TEXT_LIMITS: dict[str, int] = {
    "title": 2_000,
    "journal": 1_000,
    "publisher": 1_000,
    "abstract": 100_000,
    "url": 2_000,
    "population_detail": 2_000,
    "condition": 1_000,
    "notes": 100_000,
    "verification_note": 10_000,
    "finding": 10_000,
    "an author's name": 1_000,
}

# Control characters no text field keeps: C0 but tab, line feed and carriage return (line ends), DEL and
# C1. A terminal obeys them (an ESC sequence recolours or clears the screen), other programs choke on them.
CONTROL_CHARACTERS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
