"""Citation formats in and out, on plain study dicts (the stable JSON row shape; see `common.py`).

One module per format; this registry maps a format name to its writer or reader:

* `export_format(name)` is an `ExportFormat`: `.write(studies, out) -> int` writes an iterable of study
  dicts and returns the count; `out` is a text stream, except for a `.binary` format (xlsx: a path or a
  binary stream; stdout raises `ExportError`). `EXPORTERS[name]` is the same writer.
* `IMPORTERS[name](stream, path) -> Iterator[study dict]` streams records from a text stream; `path` is
  only used in `ImportFormatError(path, line, message)`. Each dict carries `"_line"`.
* `detect_format(path, text_head)` recognises a file from its content (its first few KB).

Nothing here imports click, SQLAlchemy or the ORM; pandas, XlsxWriter, pylatexenc and citeproc are
imported inside the functions that need them, so `import evidence.formats` stays cheap.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from evidence.errors import ExportError, ImportFormatError, quoted
from evidence.formats.bibtex import read_bibtex, write_biblatex, write_bibtex
from evidence.formats.common import StudyRow
from evidence.formats.csljson import read_csljson, write_csljson
from evidence.formats.nbib import read_nbib
from evidence.formats.ris import read_ris, write_ris
from evidence.formats.tabular import check_xlsx_rows, read_csv, write_csv, write_xlsx

__all__ = [
    "BINARY_FORMATS",
    "EXPORTERS",
    "EXPORT_FORMATS",
    "IMPORTERS",
    "IMPORT_FORMATS",
    "ExportFormat",
    "Exporter",
    "Importer",
    "StudyRow",
    "detect_format",
    "export_format",
    "export_studies",
    "read_file",
    "read_stream",
]

Exporter = Callable[[Iterable[StudyRow], Any], int]
Importer = Callable[[TextIO, str], Iterator[StudyRow]]


def _any_count(_count: int) -> None:
    return None


@dataclass(frozen=True)
class ExportFormat:
    """An export format, decided once: its writer, whether it is a binary file (a workbook: its writer
    takes a path or a binary stream and refuses stdout), and the check that refuses a selection too large
    for it before anything is read."""

    name: str
    write: Exporter
    binary: bool = False
    check_count: Callable[[int], None] = _any_count


EXPORT_REGISTRY: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("bibtex", write_bibtex),
        ExportFormat("biblatex", write_biblatex),
        ExportFormat("ris", write_ris),
        ExportFormat("csljson", write_csljson),
        ExportFormat("csv", write_csv),
        ExportFormat("xlsx", write_xlsx, binary=True, check_count=check_xlsx_rows),
    )
}
EXPORTERS: dict[str, Exporter] = {name: f.write for name, f in EXPORT_REGISTRY.items()}
IMPORTERS: dict[str, Importer] = {
    "bibtex": read_bibtex,
    "ris": read_ris,
    "csljson": read_csljson,
    "nbib": read_nbib,
    "csv": read_csv,
}
EXPORT_FORMATS: tuple[str, ...] = tuple(EXPORTERS)
IMPORT_FORMATS: tuple[str, ...] = tuple(IMPORTERS)
BINARY_FORMATS: frozenset[str] = frozenset(name for name, f in EXPORT_REGISTRY.items() if f.binary)

_EXTENSIONS = {
    ".bib": "bibtex",
    ".bibtex": "bibtex",
    ".ris": "ris",
    ".json": "csljson",
    ".nbib": "nbib",
    ".medline": "nbib",
    ".csv": "csv",
}
_BIBTEX_RE = re.compile(r"^\s*@\s*[A-Za-z]+\s*[{(]", re.MULTILINE)
_RIS_RE = re.compile(r"^(?:\ufeff)?\s*TY  ?- ", re.MULTILINE)
_NBIB_RE = re.compile(r"^(?:\ufeff)?PMID- ?\d", re.MULTILINE)


def _first_line_format(head: str) -> str | None:
    """The format the first meaningful line announces: what a record's *start* looks like. Deciding on it
    first keeps a note that merely contains "TY  - " or "PMID- " further down from misleading us."""
    for line in head.splitlines():
        text = line.strip()
        if not text or text.startswith("%"):  # blank, or a BibTeX/JabRef comment line
            continue
        if text.startswith(("[", "{")):
            return "csljson"
        if text.startswith("@"):
            return "bibtex"
        if re.match(r"PMID- ?[0-9]", text):
            return "nbib"
        if re.match(r"TY  ?- ", line.lstrip("\ufeff")):
            return "ris"
        return None
    return None


def _csv_header(first_line: str) -> list[str]:
    return [cell.strip().strip('"').strip().lower() for cell in first_line.split(",")]


def detect_format(path: str | Path, text_head: str) -> str:
    """The import format of a file, recognised from its first few KB (the extension only breaks ties)."""
    head = text_head.lstrip("\ufeff")
    stripped = head.lstrip()
    announced = _first_line_format(head)
    if announced is not None:
        return announced
    header = _csv_header(stripped.split("\n", 1)[0])
    if "item type" in header and "title" in header:
        raise ImportFormatError(
            str(path),
            1,
            "this looks like a Zotero CSV export, whose columns we do not read; "
            "export RIS or CSL JSON from Zotero instead",
        )
    if "title" in header and ("citekey" in header or "authors" in header):
        return "csv"
    if _NBIB_RE.search(head):
        return "nbib"
    if _RIS_RE.search(head):
        return "ris"
    if _BIBTEX_RE.search(head):
        return "bibtex"
    by_extension = _EXTENSIONS.get(Path(path).suffix.lower())
    if by_extension and not stripped:
        return by_extension
    if "\x00" in head:
        raise ImportFormatError(
            str(path),
            1 + head.count("\n", 0, head.index("\x00")),
            f"a NUL byte: this is UTF-16 text or a binary file; {TEXT_FORMATS_HINT}",
        )
    raise ImportFormatError(
        str(path),
        None,
        "could not recognise the format (expected BibTeX, RIS, CSL-JSON, PubMed NBIB or our CSV); "
        "give it with --format",
    )


def read_file(path: str | Path, fmt: str = "auto") -> Iterator[StudyRow]:
    """Stream study dicts from a file; `fmt="auto"` detects the format from the content."""
    path = Path(path)
    check_import_format(str(path), fmt)
    # newline="" keeps CSV cells with line breaks intact; the other readers strip line ends themselves.
    with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as stream:
        yield from read_stream(stream, str(path), fmt)


def check_import_format(path: str, fmt: str) -> None:
    """ImportFormatError for a format name that is neither `auto` nor an importer."""
    if fmt != "auto" and fmt not in IMPORTERS:
        raise ImportFormatError(
            path, None, f"unknown format {quoted(fmt)}; valid: auto, {', '.join(IMPORT_FORMATS)}"
        )


def read_stream(stream: TextIO, path: str = "<stdin>", fmt: str = "auto") -> Iterator[StudyRow]:
    """Stream study dicts from an open text stream (a file, or stdin); `path` names it in errors.

    Detection reads the first 8 KB; a stream that cannot seek back (stdin, a pipe) is read whole first.
    """
    check_import_format(path, fmt)
    try:
        if fmt == "auto":
            if stream.seekable():
                head = stream.read(8192)
                stream.seek(0)
            else:
                stream = io.StringIO(stream.read())
                head = stream.read(8192)
                stream.seek(0)
            fmt = detect_format(path, head)
        yield from IMPORTERS[fmt](stream, path)
    except UnicodeDecodeError as exc:
        raise _not_utf8(stream, path, exc) from None


# What a file that is not UTF-8 text is, by its first bytes, and what to do about it.
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook, say), not a citation file"),
    (b"\xd0\xcf\x11\xe0", "an Office document (an Excel .xls workbook, say), not a citation file"),
    (b"%PDF", "a PDF, not a citation file"),
    (b"\x1f\x8b", "gzip-compressed (decompress it first)"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
)
TEXT_FORMATS_HINT = "evidence reads UTF-8 text: BibTeX, RIS, CSL-JSON, PubMed NBIB or our CSV"


def _not_utf8(stream: TextIO, path: str, exc: UnicodeDecodeError) -> ImportFormatError:
    """The error for a file that is not UTF-8: what it is when its first bytes say (a workbook, a PDF,
    UTF-16), else the line of the first byte that is not UTF-8 (Latin-1 text, say)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None or not buffer.seekable():
        return ImportFormatError(path, None, f"expected UTF-8 text ({exc.reason})")
    buffer.seek(0)
    data = buffer.read()
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return ImportFormatError(path, None, f"this is {kind}; {TEXT_FORMATS_HINT}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as whole:
        line = 1 + data.count(b"\n", 0, whole.start)
        byte = data[whole.start : whole.start + 1].hex()
        return ImportFormatError(
            path, line, f"expected UTF-8 text, got byte 0x{byte} ({whole.reason}); save the file as UTF-8"
        )
    return ImportFormatError(path, None, f"expected UTF-8 text ({exc.reason})")


def export_format(fmt: str) -> ExportFormat:
    """The export format called `fmt` (ExportError naming the valid ones for any other name)."""
    try:
        return EXPORT_REGISTRY[fmt]
    except KeyError:
        raise ExportError(
            f"unknown export format {quoted(fmt)}; valid: {', '.join(EXPORT_FORMATS)}"
        ) from None


def export_studies(studies: Iterable[StudyRow], fmt: str, out: Any) -> int:
    """Write studies in format `fmt` to `out` (a text stream; a path or binary stream for xlsx)."""
    return export_format(fmt).write(studies, out)
