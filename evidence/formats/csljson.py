"""CSL-JSON (Zotero, pandoc/Quarto `--citeproc`, citeproc-py): export (`write_csljson`, `to_csl_item`)
and import (`read_csljson`).

Each study becomes one CSL item: `id` and `citation-key` (the citekey), `type`, `title`,
`container-title`, `author` (`{family, given}`, an organisation as `{literal}`), `issued.date-parts`
(only the year we have: never an invented month or day), `volume`, `issue`, `page` (`127-134`), `number`
(article number), `DOI`, `PMID`, `PMCID`, `ISSN`, `publisher`, `URL`, `language`, `abstract`,
`keyword` (one comma-joined string, as CSL defines it) and `note` (notices, findings, fields, notes).

The evidence annotations also go, exactly, in `custom` (the CSL 1.0.2 schema's free object for
application data; pandoc and citeproc-py ignore it), so our own round trip is lossless; a file from
elsewhere falls back to `keyword` and `note`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from evidence.errors import ImportFormatError, quoted
from evidence.formats.common import (
    StudyRow,
    apply_keywords,
    apply_note_lines,
    empty_study,
    evidence_keywords,
    evidence_note_lines,
    finalize_imported,
    normalise_pages,
    person,
    split_note_text,
    write_entries,
    year_from,
)

CSL_TYPES = {
    "journal-article": "article-journal",
    "book": "book",
    "monograph": "book",
    "edited-book": "book",
    "book-chapter": "chapter",
    "proceedings-article": "paper-conference",
    "dissertation": "thesis",
    "report": "report",
    "posted-content": "article",
    "dataset": "dataset",
}
_PUBLICATION_TYPES = {
    "article-journal": "journal-article",
    "book": "book",
    "chapter": "book-chapter",
    "paper-conference": "proceedings-article",
    "thesis": "dissertation",
    "report": "report",
    "article": "posted-content",
    "dataset": "dataset",
}
# What `custom` carries: the fields CSL has no variable for.
_CUSTOM_KEYS = (
    "design",
    "level",
    "population",
    "condition",
    "body_region",
    "sample_size",
    "pedro",
    "mechanisms",
    "claims",
    "tags",
    "notes",
    "status",
    "updates",
    "citations",
)


def to_csl_item(study: StudyRow, key: str, *, custom: bool = True) -> dict[str, Any]:
    """The CSL-JSON item for a study (also what `cite.py` feeds citeproc-py)."""
    get = study.get
    item: dict[str, Any] = {
        "id": key,
        "citation-key": key,
        "type": CSL_TYPES.get(get("publication_type") or "", "article-journal"),
        "title": get("title") or "",
    }
    authors = get("authors")
    if authors:
        item["author"] = [_csl_name(author) for author in authors]
    if get("journal"):
        item["container-title"] = study["journal"]
    if get("year") is not None:
        item["issued"] = {"date-parts": [[int(study["year"])]]}
    for variable, key_ in _VARIABLES:
        value = get(key_)
        if value is not None and value != "":
            item[variable] = str(value)
    keywords = evidence_keywords(study)
    if keywords:
        item["keyword"] = ", ".join(keywords)
    note = evidence_note_lines(study)
    if note:
        item["note"] = "\n".join(note)
    if custom:
        data = {}
        for name in _CUSTOM_KEYS:
            value = get(name)
            if value is not None and value != "" and value != []:
                data[name] = value
        if authors:
            orcids = [author.get("orcid") for author in authors]
            if any(orcids):
                data["orcids"] = orcids
        if data:
            item["custom"] = data
    return item


_VARIABLES = (
    ("volume", "volume"),
    ("issue", "issue"),
    ("page", "pages"),
    ("number", "article_number"),
    ("DOI", "doi"),
    ("PMID", "pmid"),
    ("PMCID", "pmcid"),
    ("ISSN", "issn"),
    ("publisher", "publisher"),
    ("URL", "url"),
    ("language", "language"),
    ("abstract", "abstract"),
)


def _csl_name(author: dict[str, Any]) -> dict[str, Any]:
    if author.get("name"):
        return {"literal": author["name"]}
    given = author.get("given")
    if given:
        return {"family": author.get("family") or "", "given": given}
    return {"family": author.get("family") or ""}


# Compact, one item a line, non-ASCII characters as themselves (one encoder: `json.dumps` with options
# builds a new one for every call).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _csl_line(study: StudyRow, key: str) -> str:
    return _ENCODE(to_csl_item(study, key))


def write_csljson(studies: Iterable[StudyRow], out: TextIO) -> int:
    """Write studies as one CSL-JSON array, an item a line; returns the count."""
    return write_entries(studies, out, _csl_line, head="[\n", sep=",\n", tail="\n]\n", empty="[]\n")


_WS_RE = re.compile(r"\s*")
# How deep objects and arrays may nest in one item: a CSL item needs 3 (`issued.date-parts`, `custom`'s
# claims); Python's decoder would give up with a RecursionError at about 1,000.
MAX_NESTING = 20


def read_csljson(stream: TextIO, path: str = "<stdin>") -> Iterator[StudyRow]:
    """Yield a study dict per CSL-JSON item (an array of items, or one item); errors name the line. A key
    given twice in one object keeps its last value, with a warning."""
    text = stream.read().lstrip("\ufeff")
    repeated: list[str] = []

    def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) < len(pairs):
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    repeated.append(key)
                seen.add(key)
        return found

    decoder = json.JSONDecoder(object_pairs_hook=pairs_to_dict)
    pos = _WS_RE.match(text, 0).end()  # type: ignore[union-attr]
    line = 1 + text.count("\n", 0, pos)

    def fail(at: int, message: str) -> ImportFormatError:
        return ImportFormatError(path, 1 + text.count("\n", 0, at), message)

    def decode(at: int) -> tuple[Any, int]:
        repeated.clear()
        try:
            item, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise fail(at, f"objects and arrays nested deeper than {MAX_NESTING} levels") from None
        except ValueError as exc:  # a number of more than 4,300 digits, which int() refuses
            raise fail(at, f"invalid JSON: {str(exc).split(';')[0]}") from None
        if _too_deep(item):
            raise fail(at, f"objects and arrays nested deeper than {MAX_NESTING} levels")
        return item, end

    def study(item: Any, line: int) -> StudyRow:
        row = _study_from_item(item, line, path)
        if repeated:
            row["_warnings"] = [
                f"key {key!r} given twice in one object; kept the last value"
                for key in dict.fromkeys(repeated)
            ]
        return row

    if text.startswith("{", pos):
        item, _ = decode(pos)
        yield study(item, line)
        return
    if not text.startswith("[", pos):
        raise fail(pos, "expected a CSL-JSON array '[' of items")
    pos += 1
    counted = 0  # newlines counted up to `counted`, so line numbers cost O(file) in total
    first = True
    while True:
        pos = _WS_RE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            return
        if not first:
            if not text.startswith(",", pos):
                raise fail(pos, "expected ',' or ']' after a CSL-JSON item")
            pos = _WS_RE.match(text, pos + 1).end()  # type: ignore[union-attr]
        if pos >= len(text):
            raise fail(pos, "expected ']' to close the CSL-JSON array")
        line += text.count("\n", counted, pos)
        counted = pos
        item, pos = decode(pos)
        yield study(item, line)
        first = False


def _too_deep(value: Any) -> bool:
    """Whether objects and arrays nest in ``value`` deeper than `MAX_NESTING` (walked without recursion)."""
    level = [value]
    for _ in range(MAX_NESTING + 1):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _year(value: Any, line: int, path: str) -> int | None:
    """The year of an `issued` date; a date with no year in it is an error, as in BibTeX and RIS."""
    year = year_from(value)
    if year is None and value not in (None, ""):
        raise ImportFormatError(path, line, f"expected a four-digit year in 'issued', got {quoted(value)}")
    return year


def _study_from_item(item: Any, line: int, path: str) -> StudyRow:
    if not isinstance(item, dict):
        raise ImportFormatError(path, line, "expected a CSL-JSON item (an object with 'title')")
    title = _text(item.get("title"))
    if title is None:
        raise ImportFormatError(path, line, f"item {quoted(item.get('id'))} has no 'title'")
    study = empty_study()
    study["_line"] = line
    study["title"] = title
    study["citekey"] = _text(item.get("citation-key") or item.get("id"))
    study["publication_type"] = _PUBLICATION_TYPES.get(str(item.get("type")))
    authors = item.get("author") or []
    if not isinstance(authors, list):
        raise ImportFormatError(path, line, "expected 'author' to be a list of names")
    for name in authors:
        if not isinstance(name, dict):
            raise ImportFormatError(path, line, 'expected each author to be an object like {"family": ...}')
        if name.get("literal"):
            study["authors"].append({"name": str(name["literal"])})
        elif name.get("family") or name.get("given"):
            # Particles and suffix stay with the name as Zotero and citeproc display it: the
            # non-dropping particle before the family name ("van Beethoven"), the dropping particle after
            # the given names ("Ludwig van"), the suffix after them, comma-separated ("Martin, Jr."), as
            # RIS and BibTeX write `Family, Given, Suffix`.
            family = " ".join(str(p) for p in (name.get("non-dropping-particle"), name.get("family")) if p)
            given = " ".join(str(p) for p in (name.get("given"), name.get("dropping-particle")) if p)
            if name.get("suffix"):
                given = f"{given}, {name['suffix']}" if given else str(name["suffix"])
            study["authors"].append(person(family, _text(given)))
    study["journal"] = _text(item.get("container-title"))
    issued = item.get("issued")
    if isinstance(issued, dict):
        parts = issued.get("date-parts")
        if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
            study["year"] = _year(parts[0][0], line, path)
        elif issued.get("raw") or issued.get("literal"):
            study["year"] = _year(issued.get("raw") or issued.get("literal"), line, path)
    elif issued is not None:
        study["year"] = _year(issued, line, path)
    for variable, key in (
        ("volume", "volume"),
        ("issue", "issue"),
        ("number", "article_number"),
        ("DOI", "doi"),
        ("PMID", "pmid"),
        ("PMCID", "pmcid"),
        ("ISSN", "issn"),
        ("publisher", "publisher"),
        ("URL", "url"),
        ("language", "language"),
        ("abstract", "abstract"),
    ):
        study[key] = _text(item.get(variable))
    study["pages"] = normalise_pages(_text(item.get("page")))
    keyword = item.get("keyword")
    if keyword:
        apply_keywords(study, keyword if isinstance(keyword, list) else str(keyword).split(","))
    if item.get("note"):
        apply_note_lines(study, split_note_text(str(item["note"])))
    custom = item.get("custom")
    if isinstance(custom, dict):
        for key in _CUSTOM_KEYS:
            if key in custom:
                study[key] = custom[key]
        orcids = custom.get("orcids")
        if isinstance(orcids, list) and len(orcids) == len(study["authors"]):
            for author, orcid in zip(study["authors"], orcids, strict=True):
                if "family" in author:
                    author["orcid"] = orcid
    return finalize_imported(study)
