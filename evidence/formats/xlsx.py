"""A streaming XLSX writer for one sheet of text and numbers: the SpreadsheetML that xlsxwriter's
`constant_memory` mode writes (inline strings, no shared-string table, one default style), a row at a
time.

Why not a library: openpyxl's write-only mode and xlsxwriter both build every cell through several
Python calls (type dispatch, escaping, a cell reference, a write), 11 s for the 3.4 million cells of
100,000 studies however they are fed (measured: openpyxl `append`, xlsxwriter `write_row` with
`constant_memory`, `strings_to_numbers`/`strings_to_urls` off, no formats). Here a row is one list
comprehension of f-strings, and the sheet is deflated (zlib, which releases the GIL) in a second thread
while the next rows are built. openpyxl and pandas read the files back in the tests.

Cells: None and empty text are no cell; `bool` is a boolean cell; `int` and `float` are numbers; anything
else is text (`str()`), XML-escaped, with `xml:space="preserve"` when it starts or ends with whitespace.
Control characters that XML 1.0 forbids are removed (as openpyxl required of its callers). A carriage
return is written as `&#13;`, so that XML's line-end normalisation does not turn it into a line feed. Text
like `_x0041_` is written as is, as openpyxl writes it (openpyxl and pandas read it back unchanged).
"""

from __future__ import annotations

import queue
import re
import threading
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

ROW_BATCH = 500  # rows encoded and handed to the compressing thread at once

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _package_parts(sheet_name: str) -> dict[str, str]:
    name = escape_text(sheet_name).replace('"', "&quot;")
    types = "application/vnd.openxmlformats-officedocument"
    return {
        "[Content_Types].xml": (
            f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{types}.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            f'ContentType="{types}.spreadsheetml.worksheet+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{types}.spreadsheetml.styles+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'{_HEAD}<Relationships xmlns="{_PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'{_HEAD}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f'<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'{_HEAD}<Relationships xmlns="{_PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_REL_NS}/styles" Target="styles.xml"/>'
            "</Relationships>"
        ),
        # The smallest stylesheet Excel accepts: one font, the two fills it requires, one border, one format.
        "xl/styles.xml": (
            f'{_HEAD}<styleSheet xmlns="{_MAIN_NS}">'
            '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            "</styleSheet>"
        ),
    }


def escape_text(text: str) -> str:
    """Text as the content of a `<t>` element (see the module docstring)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def column_letters(count: int) -> list[str]:
    """`A`, `B`, ... `Z`, `AA`, ... for the first `count` columns."""
    letters = []
    for index in range(count):
        name, n = "", index + 1
        while n:
            n, rem = divmod(n - 1, 26)
            name = chr(65 + rem) + name
        letters.append(name)
    return letters


def _text_cell(ref: str, text: str) -> str:
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{escape_text(text)}</t></is></c>'


def _cell(ref: str, value: Any) -> str:
    if value.__class__ is str:
        return _text_cell(ref, value) if value else ""  # empty text is no cell, as with openpyxl
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    return _text_cell(ref, str(value))


def row_xml(number: int, columns: Sequence[str], cells: Sequence[Any]) -> str:
    """One `<row>`: a cell per value that is not None, referenced by column letter and row number."""
    row = str(number)
    return (
        f'<row r="{row}">'
        + "".join(
            [
                # The common cells inline: plain text (no markup characters, no edge whitespace) and
                # integers; everything else through _cell.
                f'<c r="{column}{row}" t="inlineStr"><is><t>{value}</t></is></c>'
                if value.__class__ is str
                and value
                and not value[0].isspace()
                and not value[-1].isspace()
                and "&" not in value
                and "<" not in value
                and ">" not in value
                and "\r" not in value
                else f'<c r="{column}{row}"><v>{value}</v></c>'
                if value.__class__ is int
                else _cell(column + row, value)
                for column, value in zip(columns, cells, strict=False)
                if value is not None
            ]
        )
        + "</row>"
    )


# Characters XML 1.0 does not allow (control characters other than tab, line feed, carriage return).
_ILLEGAL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_ILLEGAL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


def _rows_xml(first: int, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """The rows as UTF-8 XML. Forbidden characters are rare: one look over the encoded batch finds them
    (bytes.translate, 3x faster than a regex; in UTF-8 these bytes are never part of another character)."""
    data = "".join([row_xml(number, columns, cells) for number, cells in enumerate(rows, first)]).encode()
    if len(data.translate(None, _ILLEGAL_BYTES)) == len(data):
        return data
    cleaned = [[_ILLEGAL_RE.sub("", v) if isinstance(v, str) else v for v in cells] for cells in rows]
    return "".join([row_xml(number, columns, cells) for number, cells in enumerate(cleaned, first)]).encode()


def write_sheet(target: str | Path | IO[bytes], sheet_name: str, rows: Iterable[Sequence[Any]]) -> int:
    """Write a workbook with one sheet of `rows` (the first row is usually a header) to a path or a
    binary stream; returns the number of rows written."""
    done: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        for name, text in _package_parts(sheet_name).items():
            package.writestr(name, text)
        with package.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:

            def compress() -> None:
                # Deflating the sheet takes as long as building it; zlib and file writes release the
                # GIL, so this thread runs beside the one building rows.
                try:
                    while (data := done.get()) is not None:
                        sheet.write(data)
                except BaseException as exc:  # reported by the building thread, which then stops
                    failure.append(exc)
                    while done.get() is not None:  # let the building thread finish its puts
                        pass

            worker = threading.Thread(target=compress, name="xlsx-deflate", daemon=True)
            worker.start()
            try:
                done.put(f'{_HEAD}<worksheet xmlns="{_MAIN_NS}"><sheetData>'.encode())
                columns: list[str] = []
                batch: list[Sequence[Any]] = []
                for cells in rows:
                    if len(cells) > len(columns):
                        columns = column_letters(len(cells))
                    batch.append(cells)
                    if len(batch) == ROW_BATCH:
                        if failure:
                            break
                        done.put(_rows_xml(count + 1, columns, batch))
                        count += len(batch)
                        batch.clear()
                done.put(_rows_xml(count + 1, columns, batch) + b"</sheetData></worksheet>")
                count += len(batch)
            finally:
                done.put(None)
                worker.join()
            if failure:
                raise failure[0]
    return count
