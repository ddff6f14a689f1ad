"""PubMed NBIB / MEDLINE import (`read_nbib`): what PubMed's "Send to -> Citation manager" writes.

Records start with `PMID- ` and are separated by blank lines; each line is a tag padded to four
characters, `- `, and the value; a line starting with six spaces continues the previous value. Tags read:
PMID, TI, FAU (or AU), CN (a group author), JT (or TA), DP, VI, IP, PG (`127-34` expanded to `127-134`),
AB, AID/LID (`... [doi]`), PT (publication types, mapped to a design), IS, PMC, LA (ISO 639-2 -> 639-1),
MH (`Humans` / `Animals` -> population). Import only: nobody exchanges studies by writing NBIB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TextIO

from evidence.errors import ImportFormatError
from evidence.formats.common import (
    StudyRow,
    empty_study,
    finalize_imported,
    normalise_pages,
    parse_family_given,
    year_from,
)

# PubMed publication type -> design, most informative first: a record typed both "Randomized Controlled
# Trial" and "Clinical Trial" is an RCT; "Systematic Review" wins over "Review".
PUBLICATION_TYPE_DESIGNS: tuple[tuple[str, str], ...] = (
    ("systematic review", "systematic-review"),
    ("meta-analysis", "systematic-review"),
    ("randomized controlled trial", "rct"),
    ("randomized controlled trial, veterinary", "rct"),
    ("equivalence trial", "rct"),
    ("controlled clinical trial", "non-randomised-controlled-trial"),
    ("clinical trial", "non-randomised-controlled-trial"),
    ("clinical trial, phase i", "non-randomised-controlled-trial"),
    ("clinical trial, phase ii", "non-randomised-controlled-trial"),
    ("clinical trial, phase iii", "non-randomised-controlled-trial"),
    ("clinical trial, phase iv", "non-randomised-controlled-trial"),
    ("clinical trial, veterinary", "non-randomised-controlled-trial"),
    ("pragmatic clinical trial", "non-randomised-controlled-trial"),
    ("observational study", "cohort"),
    ("observational study, veterinary", "cohort"),
    ("case reports", "case-report"),
    ("review", "narrative-review"),
    ("scoping review", "narrative-review"),
    ("editorial", "expert-opinion"),
)
_DESIGN_RANK = {pt: rank for rank, (pt, _) in enumerate(PUBLICATION_TYPE_DESIGNS)}
_DESIGN_FOR = dict(PUBLICATION_TYPE_DESIGNS)

# MEDLINE's LA is ISO 639-2; the study dict uses ISO 639-1.
_LANGUAGES = {
    "eng": "en",
    "ger": "de",
    "fre": "fr",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "dut": "nl",
    "swe": "sv",
    "dan": "da",
    "nor": "no",
    "fin": "fi",
    "pol": "pl",
    "rus": "ru",
    "tur": "tr",
    "gre": "el",
    "cze": "cs",
    "hun": "hu",
    "jpn": "ja",
    "chi": "zh",
    "kor": "ko",
    "per": "fa",
    "ara": "ar",
    "heb": "he",
}

_TAG_RE = re.compile(r"^([A-Z][A-Z0-9]{0,3}) *- (.*)$")


def design_for_publication_types(types: list[str]) -> str | None:
    """The design implied by PubMed publication types (None when none of them names a design)."""
    known = [t.strip().lower() for t in types if t.strip().lower() in _DESIGN_FOR]
    if not known:
        return None
    return _DESIGN_FOR[min(known, key=_DESIGN_RANK.__getitem__)]


def read_nbib(stream: TextIO, path: str = "<stdin>") -> Iterator[StudyRow]:
    """Yield a study dict per MEDLINE record, streaming; `ImportFormatError` names the line."""
    record: list[tuple[str, str]] = []
    start = 0
    raw = "\n"
    all_sourced = True  # every record so far ended with PubMed's closing SO (source) line
    for lineno, raw in enumerate(stream, start=1):
        line = raw.rstrip("\r\n")
        if lineno == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            if record:
                all_sourced = all_sourced and any(tag == "SO" for tag, _ in record)
                yield _study_from_record(record, start, path)
                record = []
            continue
        if line.startswith("      ") or line.startswith("\t"):
            if not record:
                raise ImportFormatError(path, lineno, "a continuation line (six spaces) outside a record")
            tag, value = record[-1]
            record[-1] = (tag, f"{value} {line.strip()}")
            continue
        match = _TAG_RE.match(line)
        if match is None:
            raise ImportFormatError(path, lineno, "expected a MEDLINE line like 'TI  - title' or six spaces")
        tag, value = match.group(1), match.group(2).strip()
        if not record:
            if tag != "PMID":
                raise ImportFormatError(path, lineno, f"expected 'PMID- ' to start a record, got tag {tag}")
            start = lineno
        record.append((tag, value))
    if record:
        study = _study_from_record(record, start, path)
        # A download cut short ends mid-line, or without the SO line every record before it had.
        if not raw.endswith("\n") or (all_sourced and start > 1 and all(tag != "SO" for tag, _ in record)):
            study["_warnings"] = [
                "the file ends inside this record (cut short?); imported what it holds: check it"
            ]
        yield study


def _study_from_record(record: list[tuple[str, str]], line: int, path: str) -> StudyRow:
    values: dict[str, list[str]] = {}
    for tag, value in record:
        values.setdefault(tag, []).append(value)

    def first(*tags: str) -> str | None:
        for tag in tags:
            for value in values.get(tag, ()):
                if value:
                    return value
        return None

    study = empty_study()
    study["_line"] = line
    study["publication_type"] = "journal-article"
    title = first("TI", "BTI")
    if title is None:
        raise ImportFormatError(
            path, line, f"record PMID {first('PMID')} has no title (expected 'TI  - ...')"
        )
    study["title"] = title
    study["pmid"] = first("PMID")
    # Authors in file order: FAU (full name) for people, CN for a group; AU only if a record has no FAU.
    use_fau = "FAU" in values
    for tag, value in record:
        if (tag == "FAU" and use_fau) or (tag == "AU" and not use_fau):
            study["authors"].append(parse_family_given(value) if tag == "FAU" else _au_name(value))
        elif tag == "CN":
            study["authors"].append({"name": value})
    study["journal"] = first("JT", "TA")
    date = first("DP")
    if date:
        study["year"] = year_from(date)
    study["volume"] = first("VI")
    study["issue"] = first("IP")
    study["pages"] = normalise_pages(first("PG"))
    study["abstract"] = first("AB")
    for value in values.get("AID", []) + values.get("LID", []):
        if value.endswith("[doi]") and not study["doi"]:
            study["doi"] = value[: -len("[doi]")].strip()
    study["issn"] = re.sub(r"\s*\(.*\)$", "", first("IS") or "") or None
    study["pmcid"] = first("PMC")
    language = first("LA")
    if language:
        study["language"] = _LANGUAGES.get(language.lower(), language.lower())
    study["design"] = design_for_publication_types(values.get("PT", []))
    mesh = {m.split("/")[0].lstrip("*").strip().lower() for m in values.get("MH", [])}
    if "humans" in mesh:
        study["population"] = "human"
    elif "animals" in mesh:
        study["population"] = "animal"
    return finalize_imported(study)


def _au_name(value: str) -> dict[str, str | None]:
    """`Bayliss AJ` (MEDLINE short form) -> family Bayliss, given AJ."""
    family, _, initials = value.rpartition(" ")
    if not family:
        return {"family": value, "given": None, "orcid": None}
    return {"family": family, "given": initials, "orcid": None}
