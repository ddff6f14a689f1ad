"""RIS (EndNote, Zotero, Mendeley, RevMan): export (`write_ris`) and a streaming import (`read_ris`).

Tags written: `TY`, `ID` (citekey), `AU` (`Family, Given`; an organisation as its bare name, without a
comma, which Zotero reads as a single-field name), `TI`, `T2` (journal), `PY`, `VL`, `IS`, `SP`/`EP`,
`C7` (article number, as EndNote), `DO`, `SN`, `PB`, `UR`, `LA`, `AN` (PMID, as PubMed/EndNote), `C2`
(PMCID, as EndNote's PubMed filter), `AB`, one `KW` per evidence keyword or tag, one `N1` per note line
(notices, findings, condition, body region, sample size, notes; a multi-line note as one `N1` per line),
`ER`. A continuation line of another multi-line value that would read as a tag is written with one extra
leading space (see `_line`).

The reader is a plain line loop rather than rispy: it streams (rispy builds the whole list), reports the
line of a malformed record, and keeps multi-line values (a line without a tag continues the previous
value). rispy stays the independent reader in the tests.
"""

from __future__ import annotations

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
    split_pages,
    write_entries,
    year_from,
)

_RIS_TYPES = {
    "journal-article": "JOUR",
    "book": "BOOK",
    "monograph": "BOOK",
    "edited-book": "EDBOOK",
    "book-chapter": "CHAP",
    "proceedings-article": "CPAPER",
    "dissertation": "THES",
    "report": "RPRT",
}
_PUBLICATION_TYPES = {
    "JOUR": "journal-article",
    "JFULL": "journal-article",
    "EJOUR": "journal-article",
    "MGZN": "journal-article",
    "BOOK": "book",
    "EBOOK": "book",
    "EDBOOK": "edited-book",
    "CHAP": "book-chapter",
    "ECHAP": "book-chapter",
    "CPAPER": "proceedings-article",
    "CONF": "proceedings-article",
    "THES": "dissertation",
    "RPRT": "report",
}


def _line(tag: str, value: Any) -> str:
    """A tagged line for a value that may span lines. RIS has no escape: readers (ours, rispy, EndNote,
    Zotero) append an untagged line to the last tag, so a continuation line that would read as a tag
    (`ER  - ` ends the record, `TY  - ` starts one) gets one more leading space, which `read_ris` removes
    again from a continuation line that is spaces and a tag."""
    first, *rest = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = [f"{tag}  - {first}"]
    for line in rest:
        out.append(" " + line if _TAG_RE.match(line.lstrip(" ")) else line)
    return "\n".join(out) + "\n"


def _note_tags(note_lines: list[str]) -> list[tuple[str, str]]:
    """One `N1` per line: a multi-line note (the curator's `Notes: ...`) becomes several N1 tags, so no
    line of it can be read as a tag, and `apply_note_lines` joins the `Notes:` tail back together."""
    tags = []
    for note in note_lines:
        for line in note.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            tags.append(("N1", line))
    return tags


def format_record(study: StudyRow, key: str) -> str:
    """One RIS record (TY ... ER) for a study."""
    get = study.get
    lines: list[tuple[str, Any]] = [("TY", _RIS_TYPES.get(get("publication_type") or "", "GEN")), ("ID", key)]
    for author in get("authors") or ():
        if author.get("name"):
            lines.append(("AU", author["name"]))
        else:
            lines.append(("AU", f"{author.get('family') or ''}, {author.get('given') or ''}".rstrip()))
    lines.append(("TI", get("title") or ""))
    for tag, key_ in (("T2", "journal"), ("PY", "year"), ("VL", "volume"), ("IS", "issue")):
        value = get(key_)
        if value is not None and value != "":
            lines.append((tag, value))
    first, last = split_pages(get("pages"))
    if first:
        lines.append(("SP", first))
    if last:
        lines.append(("EP", last))
    for tag, key_ in _TAGGED_FIELDS:
        value = get(key_)
        if value is not None and value != "":
            lines.append((tag, value))
    lines.extend([("KW", keyword) for keyword in evidence_keywords(study)])
    lines.extend(_note_tags(evidence_note_lines(study)))
    text = "".join([f"{tag}  - {value}\n" for tag, value in lines])
    if text.count("\n") != len(lines) or "\r" in text:  # rare: a value spans lines
        text = "".join([_line(tag, value) for tag, value in lines])
    return text + "ER  - \n\n"


_TAGGED_FIELDS = (
    ("C7", "article_number"),
    ("DO", "doi"),
    ("SN", "issn"),
    ("PB", "publisher"),
    ("UR", "url"),
    ("LA", "language"),
    ("AN", "pmid"),
    ("C2", "pmcid"),
    ("AB", "abstract"),
)


def write_ris(studies: Iterable[StudyRow], out: TextIO) -> int:
    """Write studies as RIS records; returns the count."""
    return write_entries(studies, out, format_record)


_TAG_RE = re.compile(r"^([A-Z][A-Z0-9])  ?-(?: (.*))?$")


def read_ris(stream: TextIO, path: str = "<stdin>") -> Iterator[StudyRow]:
    """Yield a study dict per RIS record, streaming; `ImportFormatError` names the line."""
    record: dict[str, list[str]] | None = None
    start = 0
    last_tag: str | None = None
    lineno = 0
    for lineno, raw in enumerate(stream, start=1):
        line = raw.rstrip("\r\n")
        if lineno == 1:
            line = line.lstrip("\ufeff")
        match = _TAG_RE.match(line)
        if match is None:
            if record is not None and last_tag is not None:
                if line.startswith(" ") and _TAG_RE.match(line.lstrip(" ")):
                    line = line[1:]  # the space `_line` adds so that the line is not read as a tag
                values = record[last_tag]
                values[-1] = f"{values[-1]}\n{line}" if values[-1] else line
            elif line.strip():
                raise ImportFormatError(path, lineno, "expected a tagged line like 'TY  - JOUR'")
            continue
        tag, value = match.group(1), (match.group(2) or "").strip()
        if tag == "TY":
            if record is not None:
                raise ImportFormatError(
                    path, lineno, f"the record starting at line {start} has no 'ER  - ' before this 'TY'"
                )
            record, start, last_tag = {"TY": [value]}, lineno, "TY"
        elif record is None:
            raise ImportFormatError(path, lineno, f"expected 'TY  - ' to start a record, got tag {tag}")
        elif tag == "ER":
            yield _study_from_record(record, start, path)
            record, last_tag = None, None
        else:
            if tag == "A1":
                tag = "AU"  # the same authors list, in the file's order when a record mixes the two
            record.setdefault(tag, []).append(value)
            last_tag = tag
    if record is not None:
        raise ImportFormatError(
            path, start, "this record is never closed: expected 'ER  - ' before the end of the file"
        )


def _first(record: dict[str, list[str]], *tags: str) -> str | None:
    for tag in tags:
        for value in record.get(tag, ()):
            text = value.strip()
            if text:
                return text
    return None


def _study_from_record(record: dict[str, list[str]], line: int, path: str) -> StudyRow:
    study = empty_study()
    study["_line"] = line
    study["publication_type"] = _PUBLICATION_TYPES.get(record["TY"][0].upper())
    title = _first(record, "TI", "T1", "CT", "BT")
    if title is None:
        raise ImportFormatError(path, line, "this record has no title (expected 'TI  - ...')")
    study["title"] = " ".join(title.split())
    study["citekey"] = _first(record, "ID")
    authors = []
    for value in record.get("AU", []):
        name = " ".join(value.split())
        if not name:
            continue
        if "," in name:
            family, _, given = name.partition(",")
            authors.append(person(family.strip(), given.strip() or None))
        else:
            authors.append({"name": name})
    study["authors"] = authors
    study["journal"] = _first(record, "T2", "JF", "JO", "JA", "J2")
    date = _first(record, "PY", "Y1", "DA")
    if date:
        study["year"] = year_from(date)
        if study["year"] is None:
            raise ImportFormatError(path, line, f"expected a four-digit year in PY, got {quoted(date)}")
    study["volume"] = _first(record, "VL")
    study["issue"] = _first(record, "IS")
    first, last = _first(record, "SP"), _first(record, "EP")
    study["pages"] = normalise_pages(f"{first}-{last}" if first and last else first or last)
    study["article_number"] = _first(record, "C7")
    doi = _first(record, "DO")
    if doi:
        study["doi"] = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", "", doi, flags=re.I)
    study["issn"] = _first(record, "SN")
    study["publisher"] = _first(record, "PB")
    study["url"] = _first(record, "UR", "L2")
    study["language"] = _first(record, "LA")
    pmid = _first(record, "AN")
    study["pmid"] = pmid if pmid and pmid.isdigit() else None
    study["pmcid"] = _first(record, "C2")
    abstract = _first(record, "AB", "N2")
    study["abstract"] = abstract
    apply_keywords(study, record.get("KW", []))
    apply_note_lines(study, record.get("N1", []))
    return finalize_imported(study)
