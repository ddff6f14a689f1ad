"""CSV and XLSX (Excel, the clinic's spreadsheets): export (`write_csv` through pandas, a run of
studies at a time; `write_xlsx` through `evidence.formats.xlsx`, a run of studies at a time), and import
of our own CSV columns (`read_csv`).

One row per study, columns in `STUDY_KEYS` order. Lists are joined with "; ": authors as
`Family, Given` (an ORCID as ` <0000-...>`, an organisation in braces `{World Health Organization}`),
mechanisms, tags, claims as `claim:stance`; findings and update notices one per line in their own
columns (`findings`, `updates`), in the same words as the RIS/CSL notes.

Formula injection (OWASP "CSV injection"): a text cell starting with `=`, `+`, `-`, `@`, tab or carriage
return would run as a formula in Excel or LibreOffice (some writers, openpyxl among them, even store such
strings as formulas; ours stores every text cell as text).
Those cells get a leading apostrophe, unless the whole cell is a plain number (`-3`); a cell already
starting with an apostrophe gets one more, so the import can remove exactly one and the round trip is
exact. Integer fields (year, level, PEDro...) stay numbers.

The importer uses the csv module rather than pandas: it streams, keeps text as text (a PMID or a volume
"007" is not a number) and knows the line of each row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from evidence.errors import ImportFormatError
from evidence.formats.common import (
    RUN,
    STUDY_KEYS,
    CitekeyAllocator,
    Study,
    TextLayout,
    apply_note_lines,
    empty_study,
    finalize_imported,
    finding_lines,
    notice_lines,
    person,
    write_text,
)
from evidence.formats.xlsx import Segment, Sheet, check_target, deflate, write_workbook
from evidence.sequences import chunks
from evidence.vocab import CLAIM_BY_NAME

COLUMNS: tuple[str, ...] = (*STUDY_KEYS, "findings")
_INT_COLUMNS = frozenset({"id", "year", "level", "sample_size", "pedro", "citations"})
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
_TRIGGER_CHARS = "".join(_TRIGGERS)
_NUMBER_RE = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_ORCID_RE = re.compile(r"^(.*?)\s*<([0-9X-]{15,19})>$")


def guard_cell(value: str) -> str:
    """Neutralise a text cell that a spreadsheet would run as a formula (leading apostrophe)."""
    if value.startswith(_TRIGGERS) and not _NUMBER_RE.match(value):
        return "'" + value
    return value


def unguard_cell(value: str) -> str:
    """Undo `guard_cell` on a cell read back from our CSV."""
    return value[1:] if value.startswith("'") else value


def _author_cell(author: dict[str, Any]) -> str:
    if author.get("name"):
        return "{" + str(author["name"]) + "}"
    text = str(author.get("family") or "")
    if author.get("given"):
        text += f", {author['given']}"
    if author.get("orcid"):
        text += f" <{author['orcid']}>"
    return text


_AUTHORS, _MECHANISMS, _CLAIMS, _TAGS, _UPDATES = (
    STUDY_KEYS.index(key) for key in ("authors", "mechanisms", "claims", "tags", "updates")
)


def row_cells(study: Study) -> list[Any]:
    """The spreadsheet row of a study, its cells in `COLUMNS` order: lists joined, text cells that a
    spreadsheet would run guarded, integers left as integers, empty cells None or ""."""
    cells = list(map(study.get, STUDY_KEYS))
    authors = cells[_AUTHORS]
    cells[_AUTHORS] = "; ".join([_author_cell(a) for a in authors]) if authors else ""
    claims = cells[_CLAIMS]
    cells[_CLAIMS] = (
        "; ".join([f"{c['claim']}:{c['stance']}" if c.get("stance") else c["claim"] for c in claims])
        if claims
        else ""
    )
    cells[_MECHANISMS] = "; ".join(cells[_MECHANISMS] or ())
    cells[_TAGS] = "; ".join(cells[_TAGS] or ())
    status = study.get("status")
    # notice_lines has nothing to say for a study in good standing without update notices (most of them).
    flagged = cells[_UPDATES] or status not in (None, "", "ok")
    cells[_UPDATES] = "\n".join(notice_lines(study)) if flagged else ""
    cells.append("\n".join(finding_lines(study)))
    # One look at each cell's first character (a cell is text, an integer, or empty: None or "").
    return [guard_cell(c) if c and c.__class__ is str and c[0] in _TRIGGER_CHARS else c for c in cells]


def csv_entries(studies: Sequence[Study], keys: CitekeyAllocator | None = None) -> str:
    """A run of CSV rows through pandas (see `TextLayout`; the file's header is the layout's head)."""
    import pandas as pd

    # dtype=object: a year column with a gap must stay 2011, not become 2011.0.
    frame = pd.DataFrame([row_cells(study) for study in studies], columns=list(COLUMNS), dtype=object)
    return str(frame.to_csv(header=False, index=False, lineterminator="\n"))


_HEADER = ",".join(COLUMNS) + "\n"
CSV_LAYOUT = TextLayout(csv_entries, head=_HEADER, empty=_HEADER)


def write_csv(studies: Iterable[Study], out: TextIO) -> int:
    """Write studies as CSV (UTF-8, header row, one row per study) through pandas; returns the count.

    One DataFrame per run of studies rather than one for the library: a single frame of 100,000
    studies holds 460 MB, the export's memory budget is 500 MB.
    """
    return write_text(studies, CSV_LAYOUT, out)


XLSX_SHEET = Sheet(COLUMNS)


def xlsx_segment(studies: Sequence[Study], first: int) -> Segment:
    """A run of studies as deflated sheet rows, the first on sheet row `first` (2: below the header)."""

    def name(index: int) -> str:
        study_id = studies[index].get("id")
        return f"study {study_id}" if study_id is not None else f"sheet row {first + index}"

    return deflate(XLSX_SHEET.rows_xml(map(row_cells, studies), first, name=name))


def write_xlsx(studies: Iterable[Study], out: str | Path | BinaryIO) -> int:
    """Write studies as an Excel workbook to a path or binary stream; stdout is refused (ExportError).

    The rows are turned into XML and compressed a run at a time (`evidence.formats.xlsx`, which says why
    not a workbook library); only the compressed runs are kept until the file is written, about 35 MB
    for 100,000 studies.
    """
    check_target(out)
    segments, count = [], 0
    for batch in chunks(studies, RUN):
        segments.append(xlsx_segment(batch, count + 2))
        count += len(batch)
    return write_xlsx_segments(segments, count, out)


def write_xlsx_segments(segments: Sequence[Segment], count: int, out: str | Path | BinaryIO) -> int:
    """Write the workbook of `count` studies whose rows are `segments` (from `xlsx_segment`, in order)."""
    write_workbook(XLSX_SHEET, segments, count, out, sheet_name="studies")
    return count


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()] if cell else []


def _parse_author(text: str) -> dict[str, Any]:
    if text.startswith("{") and text.endswith("}"):
        return {"name": text[1:-1]}
    orcid = None
    match = _ORCID_RE.match(text)
    if match:
        text, orcid = match.group(1), match.group(2)
    family, _, given = text.partition(",")
    return person(family.strip(), given.strip() or None, orcid)


def read_csv(stream: TextIO, path: str = "<stdin>") -> Iterator[Study]:
    """Yield a study dict per row of a CSV in our export columns (needs at least a `title` column)."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFormatError(
            path, 1, "the file is empty: expected a header row with a 'title' column"
        ) from None
    except csv.Error as exc:
        raise ImportFormatError(path, reader.line_num, f"expected CSV: {exc}") from None
    header = [h.lstrip("\ufeff").strip().lower() for h in header]
    if "title" not in header:
        raise ImportFormatError(path, 1, f"expected a 'title' column in the header, got: {', '.join(header)}")
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(path, start, f"expected a CSV row: {exc}") from None
        line, start = start, reader.line_num + 1
        if not any(cells):
            continue
        if len(cells) != len(header):
            raise ImportFormatError(
                path, line, f"expected {len(header)} cells like the header, got {len(cells)}"
            )
        yield _study_from_row(dict(zip(header, (unguard_cell(c) for c in cells), strict=True)), line, path)


def _study_from_row(row: dict[str, str], line: int, path: str) -> Study:
    study = empty_study()
    study["_line"] = line
    for key in STUDY_KEYS:
        cell = (row.get(key) or "").strip() if key not in ("notes", "abstract") else (row.get(key) or "")
        if not cell:
            continue
        if key in _INT_COLUMNS:
            try:
                study[key] = int(float(cell))
            except ValueError:
                raise ImportFormatError(
                    path, line, f"expected a whole number in column '{key}', got {cell!r}"
                ) from None
        elif key == "authors":
            study["authors"] = [_parse_author(a) for a in _split(cell)]
        elif key in ("mechanisms", "tags"):
            study[key] = _split(cell)
        elif key == "claims":
            for part in _split(cell):
                name, _, stance = part.partition(":")
                study["claims"].append(
                    {"claim": name, "mechanism": None, "stance": stance or None, "finding": None}
                )
        elif key == "updates":
            apply_note_lines(study, cell.split("\n"))
        else:
            study[key] = cell
    if not study["title"]:
        raise ImportFormatError(path, line, "expected a title in this row")
    status = (row.get("status") or "").strip()
    if status:
        study["status"] = status
    if row.get("findings"):
        apply_note_lines(study, row["findings"].split("\n"))
    for claim in study["claims"]:
        spec = CLAIM_BY_NAME.get(claim["claim"])
        claim["mechanism"] = spec.mechanism if spec else None
    return finalize_imported(study)
