"""`evidence export`, `cite` and `import` as a user drives them: real readers on the CLI's output, golden
bibliographies, one-transaction imports (the library unchanged after a malformed file or a dry run)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_formats_export import parse_bib

from evidence.formats.common import evidence_keywords
from evidence.vocab import CLAIMS
from tests.helpers import another_library_url, db_execute, db_rows, dump_tables, run

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
GOLDEN_REFS = ("bayliss2011treatment", "bove2012visceral", "lauche2012randomized", "nazari2019effectiveness")


@pytest.fixture
def library(library_url: str) -> str:
    """The test's library with the seed studies in it, on the test's backend."""
    run("db", "init")
    return library_url


@pytest.fixture
def empty_library(library_url: str) -> str:
    run("db", "init", "--empty")
    return library_url


def rows(db: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(run("--db", db, "find", *args, "--format", "json").stdout)  # type: ignore[no-any-return]


def snapshot(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sorted), to prove a failed or dry-run import changed nothing."""
    return dump_tables(db)


# --- export ----------------------------------------------------------------------------------------


def test_export_bibtex_and_biblatex_read_by_bibtexparser(library: str, tmp_path: Path) -> None:
    everything = rows(library)
    for fmt in ("bibtex", "biblatex"):
        target = tmp_path / f"refs-{fmt}.bib"
        result = run("--db", library, "export", "--to", fmt, "-o", str(target))
        assert result.stdout == ""
        assert result.stderr == f"exported {len(everything)} studies to {target}\n"
        entries = parse_bib(target.read_text(encoding="utf-8")).entries
        assert [e.key for e in entries] == [s["citekey"] for s in everything]  # find's order, stable keys
        by_key = {e.key: e for e in entries}
        for study in everything:
            fields = by_key[study["citekey"]].fields_dict
            if study["doi"]:
                assert fields["doi"].value == study["doi"]
            keywords = [k.strip() for k in fields["keywords"].value.split(",")]
            assert keywords == evidence_keywords(study)
            assert bool({"number", "issue"} & fields.keys()) == bool(study["issue"])
            if fmt == "bibtex" and study["issue"]:
                # BibTeX styles read `number` (beside a volume); without a volume the issue goes in
                # `issue`, which bibtex ignores silently instead of warning "a number but no volume".
                assert ("number" in fields) == bool(study["volume"])
            assert (("year" if fmt == "bibtex" else "date") in fields) == bool(study["year"])


def test_export_ris_read_by_rispy_and_follows_filters(library: str) -> None:
    import rispy

    chosen = rows(library, "--claim", "pain-modulation")
    result = run("--db", library, "export", "--claim", "pain-modulation", "--to", "ris")
    assert result.stderr == f"exported {len(chosen)} studies to stdout\n"
    records = rispy.loads(result.stdout)
    assert [r["id"] for r in records] == [s["citekey"] for s in chosen]
    for study, record in zip(chosen, records, strict=True):
        assert record["title"] == study["title"]
        assert (
            "claim:pain-modulation:"
            + next(c["stance"] for c in study["claims"] if c["claim"] == "pain-modulation")
            in record["keywords"]
        )
        assert record.get("doi") == study["doi"]


def test_export_csljson_follows_the_csl_rules_and_refs_keep_their_order(library: str) -> None:
    refs = ("nazari2019effectiveness", "bayliss2011treatment", "10.1016/j.jbmt.2011.02.004")
    items = json.loads(run("--db", library, "export", *refs, "--to", "csljson").stdout)
    assert [i["id"] for i in items] == ["nazari2019effectiveness", "bayliss2011treatment", "bove2012visceral"]
    for item in items:
        assert item["type"] == "article-journal"
        assert set(item["issued"]) == {"date-parts"} and isinstance(item["issued"]["date-parts"][0][0], int)
        assert all(set(name) <= {"family", "given", "literal"} for name in item["author"])
        for variable in ("title", "container-title", "volume", "page", "DOI", "keyword", "note"):
            assert isinstance(item.get(variable, ""), str), variable
    sorted_items = json.loads(
        run("--db", library, "export", *refs, "--sort", "year", "--to", "csljson").stdout
    )
    assert [i["issued"]["date-parts"][0][0] for i in sorted_items] == [2019, 2012, 2011]


def test_export_csv_and_xlsx_read_by_pandas_and_openpyxl(library: str, tmp_path: Path) -> None:
    import pandas as pd
    from openpyxl import load_workbook

    everything = rows(library)
    run("--db", library, "export", "--to", "csv", "-o", str(tmp_path / "all.csv"))
    run("--db", library, "export", "--to", "xlsx", "-o", str(tmp_path / "all.xlsx"))
    frame = pd.read_csv(tmp_path / "all.csv", dtype=str, keep_default_na=False)
    sheet = pd.read_excel(tmp_path / "all.xlsx", dtype=str, keep_default_na=False, engine="openpyxl")
    assert len(frame) == len(sheet) == len(everything)
    assert list(frame["citekey"]) == list(sheet["citekey"]) == [s["citekey"] for s in everything]
    assert list(frame["title"]) == list(sheet["title"])
    workbook = load_workbook(tmp_path / "all.xlsx", read_only=True)
    worksheet = workbook.worksheets[0]
    header = [c.value for c in next(worksheet.iter_rows(max_row=1))]
    year_column = header.index("year")
    years = [row[year_column].value for row in worksheet.iter_rows(min_row=2)]
    assert years == [s["year"] for s in everything]  # numbers stay numbers
    workbook.close()


def test_export_xlsx_refuses_a_cell_excel_cannot_hold_and_writes_nothing(
    library: str, tmp_path: Path
) -> None:
    ((study_id, citekey),) = db_rows(library, "SELECT id, citekey FROM studies ORDER BY id LIMIT 1")
    db_execute(library, "UPDATE studies SET notes = :notes WHERE id = :id", notes="n" * 40_000, id=study_id)
    out = tmp_path / "out"
    out.mkdir()
    result = run("--db", library, "export", "--to", "xlsx", "-o", str(out / "all.xlsx"), expect=1)
    assert result.stderr == (
        f"Error: study {study_id}: the notes cell has 40,000 characters, more than an Excel cell holds "
        "(32,767); export it as csv instead\n"
    )
    assert list(out.iterdir()) == []  # no file, not even a temporary one
    run("--db", library, "export", citekey, "--to", "csv", "-o", str(out / "one.csv"))
    assert "n" * 40_000 in (out / "one.csv").read_text(encoding="utf-8")


def test_export_xlsx_needs_a_file(library: str) -> None:
    result = run("--db", library, "export", "--to", "xlsx", expect=1)
    assert result.stdout == ""
    assert result.stderr == "Error: xlsx is a binary spreadsheet: give a file to write it to (-o FILE.xlsx)\n"


def test_export_is_written_whole_or_not_at_all(
    library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evidence import formats
    from evidence.errors import ExportError

    target = tmp_path / "refs.ris"
    target.write_text("previous export\n", encoding="utf-8")

    def failing(studies: Iterator[dict[str, Any]], out: Any) -> int:
        for study in studies:
            out.write(f"TY  - JOUR\nTI  - {study['title']}\n")
            raise ExportError("the disk is full (simulated)")
        return 0

    monkeypatch.setitem(formats.EXPORT_REGISTRY, "ris", formats.ExportFormat("ris", failing))
    result = run("--db", library, "export", "--to", "ris", "-o", str(target), expect=1)
    assert result.stderr == "Error: the disk is full (simulated)\n"
    assert target.read_text(encoding="utf-8") == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".refs")) == []  # no temp left
    missing = tmp_path / "new.bib"
    result = run("--db", library, "export", "no-such-study", "-o", str(missing), expect=1)
    assert "no-such-study" in result.stderr and not missing.exists()


def test_export_streams_in_chunks(library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    from evidence import exchange
    from evidence.config import load_settings
    from evidence.query import FindFilters, find_ids, iter_study_rows
    from evidence.store.db import open_database

    whole = run("--db", library, "export", "--to", "ris").stdout
    monkeypatch.setattr(exchange, "EXPORT_CHUNK", 10)
    assert run("--db", library, "export", "--to", "ris").stdout == whole
    # Lazily: the first row costs one chunk of queries, not the whole selection.
    database = open_database(load_settings().with_db(library))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    try:
        with database.transaction() as session:
            ids = find_ids(session, FindFilters())
            connection = session.connection()
            event.listen(connection, "before_cursor_execute", record)
            rows = iter_study_rows(session, ids, chunk=exchange.EXPORT_CHUNK)
            first = next(rows)
            assert first["id"] == ids[0]
            study_queries = [s for s in statements if "FROM studies \nWHERE studies.id IN" in s]
            assert len(study_queries) == 1
            assert sum(1 for _ in rows) == len(ids) - 1
            event.remove(connection, "before_cursor_execute", record)
    finally:
        database.close()
    assert len([s for s in statements if "FROM studies \nWHERE studies.id IN" in s]) == -(-len(ids) // 10)


def test_export_with_no_match_writes_an_empty_but_valid_file(library: str) -> None:
    result = run("--db", library, "export", "--text", "zzzznotaword", "--to", "csljson")
    assert json.loads(result.stdout) == []
    assert result.stderr == "exported 0 studies to stdout\n"


# --- cite ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "golden"),
    [
        ((), "golden_ama.txt"),
        (("--style", "vancouver"), "golden_vancouver.txt"),
        (("--format", "html"), "golden_ama.html"),
        (("--style", "vancouver", "--format", "markdown"), "golden_vancouver.md"),
        (("--by-claim",), "golden_ama_by_claim.txt"),
    ],
)
def test_cite_golden_on_the_seed_library(library: str, args: tuple[str, ...], golden: str) -> None:
    result = run("--db", library, "cite", *GOLDEN_REFS, *args)
    assert result.stdout == (FIXTURES / golden).read_text(encoding="utf-8")
    assert result.stderr == ""


def test_cite_from_a_library_filled_by_import_matches_the_golden_files(
    empty_library: str, tmp_path: Path
) -> None:
    # The frozen copy of the seed (tests/fixtures/formats) through `evidence import`, then `evidence cite`:
    # the same golden text whatever happens to the live seed data later.
    studies = json.loads((FIXTURES / "seed_studies.json").read_text(encoding="utf-8"))
    from evidence.formats import EXPORTERS

    csl = tmp_path / "frozen.json"
    with csl.open("w", encoding="utf-8") as out:
        EXPORTERS["csljson"](studies, out)
    run("--db", empty_library, "import", str(csl))
    ama = run("--db", empty_library, "cite", *GOLDEN_REFS).stdout
    vancouver = run("--db", empty_library, "cite", *GOLDEN_REFS, "--style", "vancouver").stdout
    assert ama == (FIXTURES / "golden_ama.txt").read_text(encoding="utf-8")
    assert vancouver == (FIXTURES / "golden_vancouver.txt").read_text(encoding="utf-8")


def test_cite_numbers_a_filtered_selection_and_writes_a_file(library: str, tmp_path: Path) -> None:
    chosen = rows(library, "--claim", "mechanoreceptor-rom", "--sort", "year")
    target = tmp_path / "rom.md"
    result = run(
        "--db",
        library,
        "cite",
        "--claim",
        "mechanoreceptor-rom",
        "--sort",
        "year",
        "--style",
        "vancouver",
        "--format",
        "markdown",
        "-o",
        str(target),
    )
    assert result.stdout == "" and result.stderr == f"cited {len(chosen)} studies in {target}\n"
    entries = [e for e in target.read_text(encoding="utf-8").split("\n\n") if e.strip()]
    assert len(entries) == len(chosen)
    assert [e.split("\\.", 1)[0] for e in entries] == [str(n) for n in range(1, len(chosen) + 1)]
    assert chosen[0]["authors"][0]["family"] in entries[0]


def test_cite_by_claim_prints_only_the_selected_claims_and_stances(library: str) -> None:
    # Grouped by claim, a selection made by --claim/--mechanism/--stance shows those groups only, not
    # every other claim its studies happen to be linked to.
    def headings(*args: str) -> list[str]:
        text = run("--db", library, "cite", "--by-claim", "--format", "markdown", *args).stdout
        return [line for line in text.splitlines() if line.startswith("#")]

    everything = headings()
    assert sum(h.startswith("## ") for h in everything) > 2
    one = headings("--claim", "pain-modulation")
    assert [h for h in one if h.startswith("## ")] == ["## Pain gate / pain modulation (pain-modulation)"]
    stance = headings("--claim", "pain-modulation", "--stance", "supports")
    assert stance == ["## Pain gate / pain modulation (pain-modulation)", "### Supporting"]
    neural = {c.name for c in CLAIMS if c.mechanism == "neural-stimulation"}
    by_mechanism = [h for h in headings("--mechanism", "neural-stimulation") if h.startswith("## ")]
    assert by_mechanism and all(h.rsplit("(", 1)[1].rstrip(")") in neural for h in by_mechanism)
    # A selection without such filters still lists every claim of its studies.
    assert len([h for h in headings("--design", "rct") if h.startswith("## ")]) > 1


def test_cite_styles_and_errors(library: str) -> None:
    styles = run("cite", "--list-styles").stdout.split()
    assert {"american-medical-association", "vancouver", "apa", "ieee"} <= set(styles)
    apa = run("--db", library, "cite", "bayliss2011treatment", "--style", "apa").stdout
    assert apa.startswith("Bayliss, A. J., Klene, F. J., Gundeck, E. L., & Loghmani, M. T. (2011).")
    result = run("--db", library, "cite", "bayliss2011treatment", "--style", "no-such-style", expect=1)
    assert result.stderr == (
        "Error: unknown citation style 'no-such-style' (list them with `evidence cite --list-styles`)\n"
    )


def test_cite_marks_a_retracted_study(library: str) -> None:
    db_execute(library, "UPDATE studies SET status = 'retracted' WHERE citekey = 'bove2012visceral'")
    text = run("--db", library, "cite", "bove2012visceral", "bayliss2011treatment").stdout
    assert "[RETRACTED] Visceral mobilization can lyse" in text
    assert "[RETRACTED]" not in text.split("\n")[1]


# --- import ----------------------------------------------------------------------------------------

BIBTEX = """\
@article{doe2020first,
  title = {First imported trial of {IASTM} in runners},
  author = {Doe, Jane and M{\\"u}ller, J{\\"o}rg},
  journal = {Journal of Imports},
  year = {2020},
  doi = {10.5555/import.1},
  keywords = {claim:pain-modulation:supports, design:rct, pedro:6, runners}
}

@article{roe2021second,
  title = {Second imported study},
  author = {Roe, Richard},
  year = {2021},
  pmid = {39000001}
}

@article{doe2020again,
  title = {First imported trial of IASTM in runners},
  author = {Doe, J.},
  journal = {J Imports},
  year = {2020},
  doi = {10.5555/IMPORT.1},
  volume = {7}
}
"""


def test_import_adds_merges_duplicates_in_file_and_reports(empty_library: str, tmp_path: Path) -> None:
    source = tmp_path / "refs.bib"
    source.write_text(BIBTEX, encoding="utf-8")
    result = run("--db", empty_library, "import", str(source))
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"imported {source}: 3 records: 2 added, 0 merged into library studies, 0 already in the library "
        "unchanged, 1 duplicates within the file, 1 conflicts"
    )
    assert lines[1] == (
        f"  {source}:17: conflict with doe2020first: journal: first record has 'Journal of Imports', "
        "this one 'J Imports'"
    )
    doe, roe = sorted(rows(empty_library), key=lambda s: s["year"])
    assert doe["citekey"] == "doe2020first" and doe["volume"] == "7"  # filled from the in-file duplicate
    assert doe["authors"][1] == {"family": "Müller", "given": "Jörg", "orcid": None}
    assert (doe["design"], doe["level"], doe["pedro"], doe["tags"]) == ("rct", 2, 6, ["runners"])
    assert doe["claims"] == [
        {"claim": "pain-modulation", "mechanism": "neural-stimulation", "stance": "supports", "finding": None}
    ]
    assert roe["pmid"] == "39000001"


def test_import_merges_into_the_library_and_never_overwrites(library: str, tmp_path: Path) -> None:
    run("--db", library, "edit", "bayliss2011treatment", "--clear", "pages")
    source = tmp_path / "merge.ris"
    source.write_text(
        "TY  - JOUR\nTI  - Something else entirely\nAU  - Bayliss, Amy J\nPY  - 2011\n"
        "DO  - 10.1179/2042618611Y.0000000006\nSP  - 127\nEP  - 134\nT2  - A Different Journal Name\n"
        "KW  - handout\nER  - \n",
        encoding="utf-8",
    )
    result = run("--db", library, "import", str(source))
    lines = result.stderr.splitlines()
    assert "1 records: 0 added, 1 merged into library studies" in lines[0] and "2 conflicts" in lines[0]
    # Same DOI, different title: merged by the DOI, and the mismatch shown (one of them is a typo).
    assert lines[1].startswith(f"  {source}:1: conflict with bayliss2011treatment: title: the library has ")
    assert lines[1].endswith("this one 'Something else entirely' (same DOI: check it)")
    assert lines[2] == (
        f"  {source}:1: conflict with bayliss2011treatment: journal: library has "
        "'Journal of Manual & Manipulative Therapy', file has 'A Different Journal Name'"
    )
    study = json.loads(run("--db", library, "show", "bayliss2011treatment", "--format", "json").stdout)
    assert study["pages"] == "127-134" and study["field_sources"]["pages"] == "import"
    assert study["journal"] == "Journal of Manual & Manipulative Therapy"
    assert study["title"].startswith("Treatment of a patient")
    assert "handout" in study["tags"]


def test_a_tag_too_long_is_skipped_with_a_warning_naming_the_line(
    empty_library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keyword someone typed as a sentence cannot be a tag (64 characters at most): the record still
    # comes in without it, and the report on stderr says which record lost what.
    long_keyword = "Instrument assisted soft tissue mobilisation in recreational runners with pain"
    source = tmp_path / "theirs.ris"
    source.write_text(
        "TY  - JOUR\nTI  - First study\nPY  - 2020\nKW  - runners\nER  - \n\n"
        f"TY  - JOUR\nTI  - Second study\nPY  - 2021\nKW  - handout\nKW  - {long_keyword}\nER  - \n",
        encoding="utf-8",
    )
    result = run("--db", empty_library, "import", str(source))
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"imported {source}: 2 records: 2 added, ")
    assert lines[1].startswith(f"  {source}:7: warning: skipped tag 'Instrument assisted soft tissue ")
    assert lines[1].endswith("...' (a tag must be 1-64 characters)")
    assert len(lines) == 2
    tags = {s["title"]: s["tags"] for s in rows(empty_library)}
    assert tags == {"First study": ["runners"], "Second study": ["handout"]}
    # The same from BibTeX keywords, through the parsing worker that a large file's import uses.
    monkeypatch.setattr("evidence.importer.PARALLEL_MIN_BYTES", 0)
    bib = tmp_path / "theirs.bib"
    bib.write_text(
        f"@article{{x2022,\n  title = {{Third study}},\n  year = {{2022}},\n"
        f"  keywords = {{fascia; {long_keyword}}}\n}}\n",
        encoding="utf-8",
    )
    result = run("--db", empty_library, "import", str(bib))
    assert result.stderr.splitlines()[1].startswith(f"  {bib}:1: warning: skipped tag ")
    assert {s["title"]: s["tags"] for s in rows(empty_library)}["Third study"] == ["fascia"]


def test_someone_elses_prefixed_keywords_and_notes_are_kept_not_fatal(
    empty_library: str, tmp_path: Path
) -> None:
    # Keywords and notes that only look like ours (a capitalised prefix, a value outside our vocabulary,
    # a number that is not one) are someone's ordinary tags and notes: kept, never an error, never dropped.
    foreign = [
        "Population: older adults",
        "Design: survey",
        "Status: post-operative",
        "Claim: unproven",
        "Mechanism: unknown",
        "design:survey",
        "claim:unproven:supports",
        "claim:pain-modulation:maybe",
        "level:9",
        "pedro:high",
    ]
    source = tmp_path / "theirs.ris"
    source.write_text(
        "TY  - JOUR\nTI  - Foreign keywords\nAU  - Kw, A\nPY  - 2020\n"
        + "".join(f"KW  - {k}\n" for k in foreign)
        + "KW  - mechanism:neural-stimulation\nKW  - design:rct\n"
        "N1  - Finding on MRI: fascia thickened\nN1  - Sample size: about 40\n"
        "N1  - Finding on pain-modulation (perhaps): less pain\nER  - \n",
        encoding="utf-8",
    )
    result = run("--db", empty_library, "import", str(source))
    assert result.stderr.startswith(f"imported {source}: 1 records: 1 added")
    (study,) = rows(empty_library)
    assert set(study["tags"]) == {
        "population:-older-adults",
        "design:-survey",
        "status:-post-operative",
        "claim:-unproven",
        "mechanism:-unknown",
        "design:survey",
        "claim:unproven:supports",
        "claim:pain-modulation:maybe",
        "level:9",
        "pedro:high",
    }
    assert study["design"] == "rct"  # our own exact keywords still count
    assert study["claims"] == [] and study["sample_size"] is None and study["status"] == "ok"
    assert study["notes"] == (
        "Finding on MRI: fascia thickened\nSample size: about 40\n"
        "Finding on pain-modulation (perhaps): less pain"
    )
    # The same in CSL-JSON notes and keywords.
    csl = tmp_path / "theirs.json"
    csl.write_text(
        json.dumps(
            [
                {
                    "id": "x",
                    "type": "article-journal",
                    "title": "CSL foreign",
                    "keyword": "Population: older adults",
                    "note": "Finding on MRI: fascia thickened\nSample size: about 40",
                }
            ]
        ),
        encoding="utf-8",
    )
    run("--db", empty_library, "import", str(csl))
    study = {s["title"]: s for s in rows(empty_library)}["CSL foreign"]
    assert study["tags"] == ["population:-older-adults"]
    assert study["notes"] == "Finding on MRI: fascia thickened\nSample size: about 40"


def test_a_malformed_record_anywhere_leaves_the_library_unchanged(
    library: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    good = run("--db", library, "export", "--to", "ris").stdout
    source = tmp_path / "broken.ris"
    # Many good records, then one whose year is not a year (the last one: everything before it was added).
    source.write_text(good + "TY  - JOUR\nTI  - A broken record\nPY  - 20x1\nER  - \n", encoding="utf-8")
    line = good.count("\n") + 1
    other = another_library_url(request, "other")
    run("--db", other, "db", "init", "--empty")
    before = snapshot(other)
    result = run("--db", other, "import", str(source), expect=1)
    assert result.stderr.startswith(f"Error: {source}:{line}: ")
    assert "year" in result.stderr and len(result.stderr.splitlines()) == 1
    assert snapshot(other) == before


def test_a_file_that_is_not_a_citation_file(empty_library: str, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("just some notes\n", encoding="utf-8")
    result = run("--db", empty_library, "import", str(source), expect=1)
    assert result.stderr.startswith(f"Error: {source}: could not recognise the format")
    result = run("--db", empty_library, "import", str(tmp_path / "missing.bib"), expect=1)
    assert result.stderr == f"Error: {tmp_path / 'missing.bib'}: no such file\n"
    bad = tmp_path / "bad.bib"
    bad.write_text("@article{x,\n  title = {Unclosed,\n", encoding="utf-8")
    result = run("--db", empty_library, "import", str(bad), "--format", "bibtex", expect=1)
    assert result.stderr.startswith(f"Error: {bad}:1: ")


def test_dry_run_reports_and_rolls_back(library: str, tmp_path: Path) -> None:
    source = tmp_path / "refs.bib"
    source.write_text(BIBTEX, encoding="utf-8")
    mine = run("--db", library, "export", "bayliss2011treatment", "--to", "bibtex").stdout
    source.write_text(BIBTEX + "\n" + mine, encoding="utf-8")
    before = snapshot(library)
    result = run("--db", library, "import", str(source), "--dry-run")
    assert result.stdout == "" and snapshot(library) == before
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"dry run, nothing written: would import {source}: 4 records: 2 added, ")
    assert "1 already in the library unchanged, 1 duplicates within the file" in lines[0]
    assert f"  {source}:17: duplicate-in-file -> doe2020first by doi (filled volume)" in lines
    assert any(line.endswith("unchanged -> bayliss2011treatment by doi") for line in lines)


def test_import_from_stdin_with_a_format(empty_library: str) -> None:
    nbib = (FIXTURES / "pubmed_sample.nbib").read_text(encoding="utf-8")
    result = run("--db", empty_library, "import", "-", input=nbib)
    assert result.stderr.startswith("imported <stdin>: 4 records: 4 added")
    designs = {s["pmid"]: s["design"] for s in rows(empty_library)}
    assert designs == {
        "22851875": "case-report",
        "21276190": "rct",
        "30797743": "systematic-review",
        "22196431": None,
    }
    result = run("--db", empty_library, "import", "-", "--format", "ris", input=nbib, expect=1)
    assert result.stderr.startswith("Error: <stdin>:1: ")


def test_progress_bar_is_hidden_without_a_terminal(empty_library: str, tmp_path: Path) -> None:
    # A file above the progress threshold, imported by a real process whose stderr is a pipe.
    studies = json.loads((FIXTURES / "seed_studies.json").read_text(encoding="utf-8"))
    from evidence.formats import EXPORTERS

    source = tmp_path / "big.ris"
    with source.open("w", encoding="utf-8") as out:
        EXPORTERS["ris"](studies * 30, out)
    assert source.stat().st_size > 1_000_000
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--db", empty_library, "import", str(source)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"imported {source}: {len(studies) * 30} records: {len(studies)} added")
    assert "Importing" not in done.stderr and "\r" not in done.stderr


def test_a_large_file_is_parsed_in_a_worker_process_with_the_same_result(
    empty_library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from evidence import importer
    from evidence.formats import EXPORTERS

    studies = json.loads((FIXTURES / "seed_studies.json").read_text(encoding="utf-8"))
    source = tmp_path / "all.bib"
    with source.open("w", encoding="utf-8") as out:
        EXPORTERS["bibtex"](studies, out)
    serial = another_library_url(request, "serial")
    run("--db", serial, "db", "init", "--empty")
    run("--db", serial, "import", str(source))
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "WORKER_BATCH", 7)
    result = run("--db", empty_library, "import", str(source))
    assert result.stderr.startswith(f"imported {source}: {len(studies)} records: {len(studies)} added")
    assert rows(empty_library) == rows(serial)
    # Full-text search covers the imported studies, and the index trigger is back for later edits.
    assert [s["citekey"] for s in rows(empty_library, "--text", "visceral adhesions")] == ["bove2012visceral"]
    run("--db", empty_library, "add", "--title", "Zygomatic scraping in lutists", "--author", "Doe, J")
    assert len(rows(empty_library, "--text", "zygomatic")) == 1
    # An error found by the worker names the file and line, and the library stays as it was.
    broken = tmp_path / "broken.bib"
    broken.write_text(
        source.read_text(encoding="utf-8") + "\n@article{x,\n  year = {2020}\n}\n", encoding="utf-8"
    )
    line = source.read_text(encoding="utf-8").count("\n") + 2
    before = snapshot(empty_library)
    result = run("--db", empty_library, "import", str(broken), expect=1)
    assert result.stderr == f"Error: {broken}:{line}: entry 'x' has no title (expected 'title = {{...}}')\n"
    assert snapshot(empty_library) == before


@pytest.mark.slow
@pytest.mark.sqlite_only(reason="a benchmark of the SQLite library files it makes itself")
def test_formats_benchmark_runs_on_a_small_library(tmp_path: Path) -> None:
    bench = Path(__file__).parent / "bench" / "bench_formats.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--n", "300", "--cite", "20", "--repeat", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "formats.md").read_text(encoding="utf-8")
    assert table.strip() in done.stdout
    steps = [
        line.split("|")[1].strip()
        for line in table.splitlines()
        if line.startswith("| ") and "wall" not in line
    ]
    assert [s.split(" (")[0] for s in steps] == [
        "import bibtex",
        "import ris",
        "bare sqlite3 loader",
        *(f"export {fmt}" for fmt in ("bibtex", "biblatex", "ris", "csljson", "csv", "xlsx") for _ in "12"),
        "cite 20 studies, AMA",
    ]
    assert "300 records" in steps[0]
    exports = [step for step in steps if step.startswith("export")]
    assert all("runs " in step for step in exports)  # the range of the repeated runs
    assert sum("studies)" in step for step in exports) == 6  # and a small selection of each format
    assert "(issue: 4.3x)" in table
