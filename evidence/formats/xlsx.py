"""The Excel workbook (OOXML SpreadsheetML, ECMA-376) of an xlsx export: one sheet of text and number
cells, assembled from runs of rows that are turned into XML and compressed on their own, so that a large
export can do that work in several processes (`evidence.sqlite_export`) and join the runs in order.

Why not a workbook library: every one we measured compresses the sheet in one thread, after the rows. On
the same 100,000 studies (a 250 MB sheet), rustpy-xlsxwriter, the fastest, takes 2.5 s of which about
2 s is that compression; openpyxl, XlsxWriter and PyExcelerate take 11 to 13 s in all. The export target
is 3 s. Here each run is deflated by ISA-L (`isal`, 0.2 s for the whole sheet at level 1) and ends on a
byte boundary (a sync flush), so runs compressed apart are one valid deflate stream put end to end (the
technique of pigz); their CRC-32s are combined with `crc32_combine`.

What is written is the plain subset every reader takes: inline strings (`t="inlineStr"`), integers as
numbers, no formulas, a one-sheet workbook with the minimal parts and styles, a ZIP without ZIP64. Text
is stored as OOXML says (ST_Xstring): `&`, `<`, `>` escaped, a carriage return as `_x000D_`, a literal
`_x0041_` as `_x005F_x0041_`, control characters XML cannot hold removed. Limits are Excel's own: at
most 1,048,576 rows and 32,767 characters in a cell (an `ExportError` names the study, never a
silently cut cell), and a sheet of at most 4 GiB of XML (the ZIP's 32-bit sizes).
"""

from __future__ import annotations

import io
import math
import re
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from evidence.errors import ExportError
from evidence.sequences import letters

MAX_ROWS = 1_048_576  # Excel's rows per sheet, the header row included
MAX_CELL_CHARS = 32_767  # Excel's characters per cell
MAX_PART_BYTES = 0xFFFF_FFFF  # a part's size in a ZIP without ZIP64
LEVEL = 1  # ISA-L's level 1: 0.2 s and 35 MB for a 250 MB sheet (zlib's level 1: 0.8 s and 37 MB)


class Segment(NamedTuple):
    """A piece of a part, deflated: raw deflate blocks ending on a byte boundary (not the final block)."""

    data: bytes
    crc: int  # CRC-32 of the uncompressed bytes
    size: int  # uncompressed bytes


def deflate(data: bytes) -> Segment:
    """`data` as a segment that can be followed by any other segment (see the module's docstring)."""
    from isal import isal_zlib

    compressor = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
    packed = compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    return Segment(packed, isal_zlib.crc32(data), len(data))


_FINAL_BLOCK = b"\x03\x00"  # an empty final deflate block (fixed Huffman codes): ends the stream


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # control characters XML cannot hold
_NOT_XML_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))  # the same, as UTF-8 bytes
_OOXML_ESCAPE = re.compile(rb"_(x[0-9A-Fa-f]{4}_)")


def _fix_text(xml: bytes) -> bytes:
    """What OOXML asks of text beyond XML's escapes (see the module's docstring), done on a whole run of
    rows in UTF-8 at once (measured: 0.4 s per 100,000 studies, against 2 s for a regular expression
    searching the text): the markup around the text never holds a control character, `_xHHHH_` or a CR,
    and in UTF-8 the bytes below 0x20 stand only for themselves."""
    xml = xml.translate(None, _NOT_XML_BYTES)
    if b"_" in xml:  # a byte search: ten times faster than one for b"_x"
        xml = _OOXML_ESCAPE.sub(rb"_x005F_\1", xml)  # before the carriage returns become `_x000D_`
    if b"\r" in xml:
        xml = xml.replace(b"\r", b"_x000D_")
    return xml


class Sheet:
    """Rows of cells (None: an empty cell; int: a number; str: text) as SpreadsheetML, in `columns`."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._letters = [letters(n).upper() for n in range(1, len(self.columns) + 1)]

    def rows_xml(
        self, rows: Iterable[Sequence[Any]], first: int, *, name: Callable[[int], str] | None = None
    ) -> bytes:
        """The `<row>` elements of `rows` in UTF-8, the first being row number `first` (1: the header row).
        `name(n)` names the n-th of `rows` in an error (a cell too long for Excel): "study 7", say."""
        parts: list[str] = []
        append = parts.append
        letters = self._letters
        for number, cells in enumerate(rows, first):
            append(f'<row r="{number}">')
            for letter, value in zip(letters, cells, strict=True):
                if not value and (value is None or value == ""):
                    continue
                if value.__class__ is not str:
                    if value.__class__ is int or (value.__class__ is float and math.isfinite(value)):
                        append(f'<c r="{letter}{number}"><v>{value!r}</v></c>')
                        continue
                    value = str(value)
                if len(value) > MAX_CELL_CHARS:
                    self._check_length(name(number - first) if name else f"row {number}", letter, value)
                if "&" in value or "<" in value or ">" in value:
                    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                # Whitespace (or a control character) at an end is kept only where the text says so.
                space = ' xml:space="preserve"' if value[0] <= " " or value[-1] <= " " else ""
                append(f'<c r="{letter}{number}" t="inlineStr"><is><t{space}>{value}</t></is></c>')
            append("</row>")
        return _fix_text("".join(parts).encode())

    def _check_length(self, who: str, letter: str, value: str) -> None:
        length = len(_NOT_XML.sub("", value))
        if length <= MAX_CELL_CHARS:
            return
        column = self.columns[self._letters.index(letter)]
        raise ExportError(
            f"{who}: the {column} cell has {length:,} characters, more than an Excel cell holds "
            f"({MAX_CELL_CHARS:,}); export it as csv instead"
        )

    def head(self, rows: int) -> bytes:
        """The sheet's start, with the header row, for a sheet of `rows` rows below the header."""
        last = f"{self._letters[-1]}{rows + 1}"
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<worksheet xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><dimension ref="A1:{last}"/>'
            '<sheetViews><sheetView tabSelected="1" workbookViewId="0"/></sheetViews>'
            '<sheetFormatPr defaultRowHeight="15"/><sheetData>'
        ).encode() + self.rows_xml([self.columns], 1)

    TAIL = (
        b'</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" '
        b'footer="0.3"/></worksheet>'
    )


def write_workbook(
    sheet: Sheet, segments: Sequence[Segment], rows: int, out: str | Path | BinaryIO, *, sheet_name: str
) -> None:
    """Write the workbook whose sheet has `rows` rows below its header, deflated in `segments` (in order),
    to a path or a binary stream. Checks Excel's row limit and the ZIP's size limit before writing."""
    if rows + 1 > MAX_ROWS:
        raise ExportError(
            f"{rows:,} studies do not fit in an Excel sheet (at most {MAX_ROWS - 1:,} below the header); "
            "export them as csv, or a smaller selection as xlsx"
        )
    pieces = [deflate(sheet.head(rows)), *segments, deflate(Sheet.TAIL)]
    size = sum(piece.size for piece in pieces)
    if size > MAX_PART_BYTES:
        raise ExportError(
            f"the sheet would hold {size / 2**30:.1f} GiB of text, more than an xlsx file can (4 GiB); "
            "export the studies as csv, or a smaller selection as xlsx"
        )
    zipped = _ZipWriter()
    with _binary_target(out) as target:
        for name, text in _fixed_parts(sheet_name):
            zipped.add(target, name, [deflate(text.encode())])
        zipped.add(target, "xl/worksheets/sheet1.xml", pieces)
        zipped.finish(target)


def check_target(out: Any) -> None:
    """Refuse a target a workbook cannot go to: stdout, a text stream or a terminal (ExportError)."""
    refused = isinstance(out, io.TextIOBase) or out in ("-", sys.stdout, getattr(sys.stdout, "buffer", None))
    if refused or (not isinstance(out, (str, Path)) and getattr(out, "isatty", lambda: False)()):
        raise ExportError("xlsx is a binary spreadsheet: give a file to write it to (-o FILE.xlsx)")


def _binary_target(out: str | Path | BinaryIO) -> AbstractContextManager[BinaryIO]:
    """An open binary file for a path, or the stream itself (left open)."""
    check_target(out)
    return Path(out).open("wb") if isinstance(out, (str, Path)) else _Borrowed(out)


class _Borrowed:
    """A caller's stream used as a context manager that does not close it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __enter__(self) -> BinaryIO:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()


class _ZipWriter:
    """The ZIP container (PKWARE APPNOTE 6.3): deflated entries with sizes and CRC known before they are
    written (no data descriptors, no ZIP64), dated 1980-01-01 so the same studies give the same bytes."""

    _DATE = (1 << 5) | 1  # MS-DOS date 1980-01-01; time 00:00:00 is 0

    def __init__(self) -> None:
        self._offset = 0
        self._central: list[bytes] = []

    def add(self, out: BinaryIO, name: str, pieces: Sequence[Segment]) -> None:
        """An entry made of `pieces` in order, ended by the stream's final block."""
        from isal import isal_zlib

        crc = 0
        for piece in pieces:
            crc = isal_zlib.crc32_combine(crc, piece.crc, piece.size)
        size = sum(piece.size for piece in pieces)
        packed = sum(len(piece.data) for piece in pieces) + len(_FINAL_BLOCK)
        encoded = name.encode("ascii")
        fields = (20, 0, 8, 0, self._DATE, crc, packed, size, len(encoded), 0)  # version 2.0, deflate
        header = struct.pack("<I5H3I2H", 0x04034B50, *fields) + encoded
        self._central.append(
            struct.pack("<I6H3I5HII", 0x02014B50, 20, *fields, 0, 0, 0, 0, self._offset) + encoded
        )
        out.write(header)
        for piece in pieces:
            out.write(piece.data)
        out.write(_FINAL_BLOCK)
        self._offset += len(header) + packed

    def finish(self, out: BinaryIO) -> None:
        directory = b"".join(self._central)
        out.write(directory)
        count = len(self._central)
        out.write(struct.pack("<I4H2IH", 0x06054B50, 0, 0, count, count, len(directory), self._offset, 0))


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006"
_TYPES = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _fixed_parts(sheet_name: str) -> list[tuple[str, str]]:
    """Every part but the sheet: content types, relationships, the workbook and its (default) styles."""
    # Escaped here rather than by xml.sax.saxutils, which imports urllib (20 ms on every command's start).
    name = sheet_name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return [
        (
            "[Content_Types].xml",
            f'{_XML}<Types xmlns="{_PACKAGE}/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPES}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_TYPES}.worksheet+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_TYPES}.styles+xml"/></Types>',
        ),
        (
            "_rels/.rels",
            f'{_XML}<Relationships xmlns="{_PACKAGE}/relationships">'
            f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>",
        ),
        (
            "xl/workbook.xml",
            f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}">'
            f'<bookViews><workbookView/></bookViews><sheets><sheet name="{name}" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>",
        ),
        (
            "xl/_rels/workbook.xml.rels",
            f'{_XML}<Relationships xmlns="{_PACKAGE}/relationships">'
            f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_RELATIONSHIPS}/styles" Target="styles.xml"/></Relationships>',
        ),
        (
            "xl/styles.xml",
            f'{_XML}<styleSheet xmlns="{_MAIN}">'
            '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            "</styleSheet>",
        ),
    ]
