"""CSV and XLSX (Excel, the clinic's spreadsheets): export (`write_csv` through pandas, `write_xlsx`
through XlsxWriter, both a chunk of studies at a time) and import of our own CSV columns (`read_csv`).

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
import io
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from evidence.errors import ExportError, ImportFormatError, quoted
from evidence.formats.common import (
    STUDY_KEYS,
    StudyRow,
    apply_note_lines,
    empty_study,
    finalize_imported,
    finding_lines,
    notice_lines,
    person,
)
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


def row_cells(study: StudyRow) -> list[Any]:
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


CHUNK = 5000  # studies per DataFrame: a frame of the whole library would not fit the memory budget


def write_csv(studies: Iterable[StudyRow], out: TextIO) -> int:
    """Write studies as CSV (UTF-8, header row, one row per study) through pandas; returns the count."""
    import pandas as pd

    out.write(",".join(COLUMNS) + "\n")
    count = 0
    for batch in chunks(studies, CHUNK):
        # dtype=object: a year column with a gap must stay 2011, not become 2011.0.
        frame = pd.DataFrame([row_cells(study) for study in batch], columns=list(COLUMNS), dtype=object)
        frame.to_csv(out, header=False, index=False, lineterminator="\n")
        count += len(batch)
    return count


MAX_ROWS = 1_048_576  # Excel's rows per sheet, the header row included
MAX_CELL_CHARS = 32_767  # Excel's characters per cell
# Characters XML 1.0 cannot hold (XlsxWriter would write them as _xHHHH_ escapes, which readers turn back
# into the control characters): dropped, as Excel itself does when it saves such a cell.
_NOT_XML = {c: None for c in range(32) if chr(c) not in "\t\n\r"}


def write_xlsx(studies: Iterable[StudyRow], out: str | Path | BinaryIO) -> int:
    """Write studies as an Excel workbook (one sheet, "studies") to a path or binary stream; returns the
    count. Stdout and text streams are refused, and so are a cell longer than Excel holds and more rows
    than a sheet holds (ExportError naming the study): the caller's file is then not written.

    XlsxWriter in constant-memory mode writes each row as it comes (pandas' `to_excel` writes a frame
    column by column, which that mode cannot take, and would hold the whole selection in memory).
    """
    import xlsxwriter

    check_xlsx_target(out)
    # The rows wait in a temporary file until close() zips them: in a folder of our own, so that an export
    # stopped half-way (a cell too long, an interrupt) leaves no file behind.
    with tempfile.TemporaryDirectory(prefix="evidence-xlsx-") as tmpdir:
        book = xlsxwriter.Workbook(
            str(out) if isinstance(out, Path) else out,
            {
                "constant_memory": True,
                "tmpdir": tmpdir,
                "strings_to_formulas": False,  # text stays text (our guard also prefixes an apostrophe)
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "use_zip64": True,
            },
        )
        sheet = book.add_worksheet("studies")
        sheet.write_row(0, 0, COLUMNS)
        count = 0
        try:
            for study in studies:
                count += 1
                check_xlsx_rows(count)
                sheet.write_row(count, 0, _xlsx_cells(study, count))
        except BaseException:
            # Nothing reaches `out` before close(): drop the rows written so far, and mark the workbook
            # closed so that it does not complain when collected.
            sheet._opt_close()
            book.fileclosed = True
            raise
        book.close()
    return count


def check_xlsx_rows(count: int) -> None:
    """ExportError when `count` studies do not fit in one sheet below the header."""
    if count + 1 > MAX_ROWS:
        raise ExportError(
            f"{count:,} studies do not fit in an Excel sheet (at most {MAX_ROWS - 1:,} below the header); "
            "export them as csv, or a smaller selection as xlsx"
        )


def _xlsx_cells(study: StudyRow, row: int) -> list[Any]:
    cells = row_cells(study)
    for index, cell in enumerate(cells):
        if cell.__class__ is str and cell:
            if not cell.isprintable():
                cell = cells[index] = cell.translate(_NOT_XML)
            if len(cell) > MAX_CELL_CHARS:
                who = f"study {study['id']}" if study.get("id") is not None else f"sheet row {row + 1}"
                raise ExportError(
                    f"{who}: the {COLUMNS[index]} cell has {len(cell):,} characters, more than an Excel "
                    f"cell holds ({MAX_CELL_CHARS:,}); export it as csv instead"
                )
    return cells


def check_xlsx_target(out: Any) -> None:
    """Refuse a target a workbook cannot go to: stdout, a text stream or a terminal (ExportError)."""
    stdout = (None, "-", sys.stdout, getattr(sys.stdout, "buffer", None))
    refused = isinstance(out, io.TextIOBase) or any(out is s or out == s for s in stdout)
    if refused or (not isinstance(out, (str, Path)) and getattr(out, "isatty", lambda: False)()):
        raise ExportError("xlsx is a binary spreadsheet: give a file to write it to (-o FILE.xlsx)")


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


CSV_CELL_LIMIT = 32 * 1024 * 1024


def read_csv(stream: TextIO, path: str = "<stdin>") -> Iterator[StudyRow]:
    """Yield a study dict per row of a CSV in our export columns (needs at least a `title` column)."""
    # The csv module refuses a cell past 128 KiB, shorter than an abstract may be: a file our export
    # wrote must come back in. A cell too long for its field is refused later, with its line.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_CELL_LIMIT))
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
        shown = ", ".join(" ".join(h.split())[:40] for h in header[:12]) + (
            ", ..." if len(header) > 12 else ""
        )
        raise ImportFormatError(path, 1, f"expected a 'title' column in the header, got: {shown}")
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


def _study_from_row(row: dict[str, str], line: int, path: str) -> StudyRow:
    study = empty_study()
    study["_line"] = line
    for key in STUDY_KEYS:
        cell = (row.get(key) or "").strip() if key not in ("notes", "abstract") else (row.get(key) or "")
        if not cell:
            continue
        if key in _INT_COLUMNS:
            try:
                study[key] = int(float(cell))
            except (ValueError, OverflowError):  # not a number; 1e400 is infinite
                raise ImportFormatError(
                    path, line, f"expected a whole number in column '{key}', got {quoted(cell)}"
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
