"""The xlsx workbook (evidence.formats.tabular.write_xlsx, through XlsxWriter): read back by two independent
readers (openpyxl, and calamine, which decodes OOXML's escapes as Excel does), the ZIP's checksums verified,
text kept as text, and Excel's limits refused with a one-line error before anything is written."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_formats_roundtrip import hard_studies, seed_studies

import evidence.formats.tabular as tabular
from evidence.errors import ExportError
from evidence.formats.common import empty_study
from evidence.formats.tabular import COLUMNS, row_cells, write_xlsx


def calamine_rows(path: Path | io.BytesIO) -> list[list[Any]]:
    from python_calamine import CalamineWorkbook

    if isinstance(path, io.BytesIO):
        book = CalamineWorkbook.from_filelike(io.BytesIO(path.getvalue()))
    else:
        book = CalamineWorkbook.from_path(str(path))
    assert book.sheet_names == ["studies"]
    return [list(row) for row in book.get_sheet_by_name("studies").to_python(skip_empty_area=False)]


def openpyxl_rows(path: Path) -> list[list[Any]]:
    from openpyxl import load_workbook

    sheet = load_workbook(path).worksheets[0]
    assert sheet.title == "studies"
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def expected_cells(study: dict[str, Any]) -> list[Any]:
    """What a reader shows for a study's row: `row_cells` without the control characters XML cannot hold,
    empty cells as calamine gives them ("")."""
    cells = []
    for cell in row_cells(study):
        if isinstance(cell, str):
            cell = "".join(c for c in cell if c >= " " or c in "\t\n\r")
        cells.append("" if cell is None else cell)
    return cells


def test_every_study_reads_back_the_same_in_calamine_and_openpyxl(tmp_path: Path) -> None:
    data = seed_studies() + hard_studies()
    path = tmp_path / "all.xlsx"
    assert write_xlsx(data, path) == len(data)
    with zipfile.ZipFile(path) as archive:
        assert "xl/worksheets/sheet1.xml" in archive.namelist()
        assert archive.testzip() is None  # every part's CRC-32 and size are right
    rows = calamine_rows(path)
    assert rows[0] == list(COLUMNS)
    assert len(rows) == len(data) + 1
    for study, row in zip(data, rows[1:], strict=True):
        # calamine reads every number as a float (Excel keeps numbers as doubles).
        shown = [int(v) if isinstance(v, float) and v.is_integer() else v for v in row]
        assert shown == expected_cells(study), study.get("citekey")
    by_openpyxl = openpyxl_rows(path)
    assert len(by_openpyxl) == len(rows)
    assert by_openpyxl[1][COLUMNS.index("citekey")] == data[0]["citekey"]


def test_text_is_stored_as_excel_reads_it(tmp_path: Path) -> None:
    text = ["both\r\n", "_x0041_ and _x000D_", "\r at the start", " spaced ", "a < b & c > d", "ctrl\x01\x0b",
            "=1+1", "]]>", "Müller \u2013 ≥ 😀"]  # fmt: skip
    studies = [{**empty_study(), "title": t, "year": 2011} for t in text]
    path = tmp_path / "cells.xlsx"
    write_xlsx(studies, path)
    title = COLUMNS.index("title")
    assert [row[title] for row in calamine_rows(path)[1:]] == [
        "both\r\n", "_x0041_ and _x000D_", "'\r at the start", " spaced ", "a < b & c > d", "ctrl",
        "'=1+1", "]]>", "Müller \u2013 ≥ 😀",
    ]  # fmt: skip
    assert all(cell.data_type != "f" for cell in _openpyxl_cells(path))


def _openpyxl_cells(path: Path) -> list[Any]:
    from openpyxl import load_workbook

    return [cell for row in load_workbook(path).worksheets[0].iter_rows() for cell in row]


def test_a_workbook_goes_to_a_binary_stream_but_never_to_stdout(tmp_path: Path) -> None:
    data = seed_studies()
    buffer = io.BytesIO()
    assert write_xlsx(data, buffer) == len(data)
    path = tmp_path / "file.xlsx"
    write_xlsx(data, path)
    assert calamine_rows(buffer) == calamine_rows(path)
    for target in ("-", io.StringIO()):
        with pytest.raises(ExportError, match=r"xlsx is a binary spreadsheet: give a file"):
            write_xlsx(data, target)


def test_an_empty_selection_is_a_header_row(tmp_path: Path) -> None:
    path = tmp_path / "none.xlsx"
    assert write_xlsx([], path) == 0
    assert calamine_rows(path) == [list(COLUMNS)]
    assert openpyxl_rows(path) == [list(COLUMNS)]


def test_a_cell_longer_than_excel_holds_is_refused_naming_the_study(tmp_path: Path) -> None:
    study = {**empty_study(), "id": 42, "title": "ok", "abstract": "x" * (tabular.MAX_CELL_CHARS + 1)}
    path = tmp_path / "long.xlsx"
    with pytest.raises(
        ExportError, match=r"^study 42: the abstract cell has 32,768 characters, .* export it as csv"
    ):
        write_xlsx([study], path)
    assert not path.exists()
    # At the limit (control characters do not count: they are not written) it is written whole.
    study["abstract"] = "x" * tabular.MAX_CELL_CHARS + "\x01"
    write_xlsx([study], path)
    assert len(calamine_rows(path)[1][COLUMNS.index("abstract")]) == tabular.MAX_CELL_CHARS


def test_more_rows_than_a_sheet_holds_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = seed_studies()[:3]
    path = tmp_path / "big.xlsx"
    monkeypatch.setattr(tabular, "MAX_ROWS", 3)
    with pytest.raises(ExportError, match=r"^3 studies do not fit in an Excel sheet \(at most 2 below"):
        write_xlsx(data, path)
    assert not path.exists()
    with pytest.raises(ExportError, match=r"^3 studies do not fit in an Excel sheet"):
        tabular.check_xlsx_rows(3)  # what `evidence export` checks before it reads a study
