"""CSV and XLSX (Excel, the clinic's spreadsheets): export (`write_csv` through the csv module,
`write_xlsx` through openpyxl's streaming writer), and import of our own CSV columns (`read_csv`).

One row per study, columns in `STUDY_KEYS` order. Lists are joined with "; ": authors as
`Family, Given` (an ORCID as ` <0000-...>`, an organisation in braces `{World Health Organization}`),
mechanisms, tags, claims as `claim:stance`; findings and update notices one per line in their own
columns (`findings`, `updates`), in the same words as the RIS/CSL notes.

Formula injection (OWASP "CSV injection"): a text cell starting with `=`, `+`, `-`, `@`, tab or carriage
return would run as a formula in Excel, and openpyxl itself writes such strings as formulas. Those cells
get a leading apostrophe, unless the whole cell is a plain number (`-3`); a cell already starting with an
apostrophe gets one more, so the import can remove exactly one and the round trip is exact. Integer
fields (year, level, PEDro...) stay numbers.

The importer uses the csv module rather than pandas: it streams, keeps text as text (a PMID or a volume
"007" is not a number) and knows the line of each row.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from evidence.errors import ExportError, ImportFormatError
from evidence.formats.common import (
    STUDY_KEYS,
    Study,
    apply_note_lines,
    empty_study,
    evidence_note_lines,
    finalize_imported,
    notice_lines,
    person,
)
from evidence.vocab import CLAIM_BY_NAME

COLUMNS: tuple[str, ...] = (*STUDY_KEYS, "findings")
_INT_COLUMNS = frozenset({"id", "year", "level", "sample_size", "pedro", "citations"})
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER_RE = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
# Characters openpyxl refuses in a cell (control characters other than tab, newline, carriage return).
_ILLEGAL_XLSX_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
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


def study_row(study: Study) -> dict[str, Any]:
    """The spreadsheet row of a study: lists joined, text cells guarded, integers left as integers."""
    row: dict[str, Any] = {}
    for key in STUDY_KEYS:
        value = study.get(key)
        if key == "authors":
            value = "; ".join(_author_cell(a) for a in value or [])
        elif key == "claims":
            value = "; ".join(
                f"{c['claim']}:{c['stance']}" if c.get("stance") else c["claim"] for c in value or []
            )
        elif key == "updates":
            value = "\n".join(notice_lines(study))
        elif key in ("mechanisms", "tags"):
            value = "; ".join(value or [])
        row[key] = value
    findings = [
        line for line in evidence_note_lines(study, fields=False, notes=False) if line.startswith("Finding")
    ]
    row["findings"] = "\n".join(findings)
    for key, value in row.items():
        if isinstance(value, str):
            row[key] = guard_cell(value) if value else None
    return row


def write_csv(studies: Iterable[Study], out: TextIO) -> int:
    """Write studies as CSV (UTF-8, header row, one row per study), streamed; returns the count.

    The csv module rather than pandas: a DataFrame holds every row at once (460 MB for 100,000 studies,
    the export's memory budget is 500 MB) and took 8 s where this takes 2 s; the cells are the same
    `study_row` values (None as an empty cell) and pandas still reads the file back in the tests.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for study in studies:
        writer.writerow(study_row(study).values())
        count += 1
    return count


def write_xlsx(studies: Iterable[Study], out: str | Path | BinaryIO) -> int:
    """Write studies as an Excel workbook to a path or binary stream; stdout is refused (ExportError)."""
    if isinstance(out, io.TextIOBase) or out in ("-", sys.stdout, getattr(sys.stdout, "buffer", None)):
        raise ExportError("xlsx is a binary spreadsheet: give a file to write it to (-o FILE.xlsx)")
    if not isinstance(out, (str, Path)) and getattr(out, "isatty", lambda: False)():
        raise ExportError("xlsx is a binary spreadsheet: give a file to write it to (-o FILE.xlsx)")
    from openpyxl import Workbook

    # openpyxl's write-only mode streams rows to disk: 100,000 studies in 12.2 s and flat memory, against
    # 37 s through pandas.DataFrame.to_excel (which cannot use write-only mode) and 12.5 s through
    # xlsxwriter's constant_memory mode (measured on the same rows: both spend the time per cell in
    # Python, so neither comes near the 3 s that CSV takes). The rows are the same `study_row` cells as
    # the CSV.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("studies")
    sheet.append(list(COLUMNS))
    count = 0
    for study in studies:
        row = study_row(study)
        sheet.append([_ILLEGAL_XLSX_RE.sub("", v) if isinstance(v, str) else v for v in row.values()])
        count += 1
    target: str | Path | IO[bytes] = out
    workbook.save(target)
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
