"""Format detection decides on how the file starts, not on text that happens to appear in a note."""

from __future__ import annotations

import pytest

from evidence.errors import ImportFormatError
from evidence.formats import detect_format

BIBTEX_WITH_RIS_IN_A_NOTE = """% This file was created with JabRef
@article{a, title={x}, note={Line one
TY  - JOUR
PMID- 123
ER  - }}
"""


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (BIBTEX_WITH_RIS_IN_A_NOTE, "bibtex"),
        ("\ufeffTY  - JOUR\nN1  - @article{x,\nER  - \n", "ris"),
        ("\nPMID- 22851875\nTI  - x\n", "nbib"),
        ('[{"title": "x", "note": "TY  - JOUR"}]', "csljson"),
        ('id,citekey,doi,title,authors\n1,a,,"TY  - JOUR",\n', "csv"),
    ],
)
def test_first_line_decides(head: str, expected: str) -> None:
    assert detect_format("file.txt", head) == expected


def test_a_zotero_csv_is_refused_with_advice() -> None:
    head = '"Key","Item Type","Publication Year","Author","Title","Publication Title"\n'
    with pytest.raises(ImportFormatError, match="Zotero CSV export"):
        detect_format("zotero.csv", head)
