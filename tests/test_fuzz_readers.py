"""Fuzzing every reader (issue 13): random and mutated BibTeX, RIS, NBIB, CSL-JSON and CSV files, as text
and as bytes, and random `--text` queries. Whatever comes in, the only failure allowed is the project's
own error naming the file (`ImportFormatError`, "FILE:LINE: ..."), and a failed import changes nothing.

Mutations start from real files (the seed library exported in each format, PubMed's sample) and cut,
splice, repeat and corrupt them: truncation, unbalanced braces and brackets, binary garbage, NUL bytes,
UTF-16 and Latin-1 bytes, huge numbers, deep nesting, repeated keys. Inputs that ever failed live in
`tests/fixtures/fuzz/` and are replayed every run. Under CI=true the examples are derandomised, so a
run is the same run every time; `max_examples` is kept small enough for `make test`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence.errors import EvidenceError, ImportFormatError
from evidence.formats import read_stream
from evidence.importer import read_records, validate_record

settings.register_profile(
    "evidence",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("evidence-ci", parent=settings.get_profile("evidence"), derandomize=True)
settings.load_profile(
    "evidence-ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "evidence"
)

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "fuzz"
FORMATS = ("bibtex", "ris", "nbib", "csljson", "csv")
SUFFIX = {"bibtex": ".bib", "ris": ".ris", "nbib": ".nbib", "csljson": ".json", "csv": ".csv"}
# Examples tried per test (the figure the README gives is the sum over the tests below).
# EVIDENCE_FUZZ_SCALE=20 tries twenty times as many (a hunt, not a test run).
_SCALE = int(os.environ.get("EVIDENCE_FUZZ_SCALE", "1"))
EXAMPLES = {
    name: count * _SCALE
    for name, count in {"mutated": 60, "bytes": 40, "random": 30, "query": 60, "library": 15}.items()
}


def _seed_texts() -> dict[str, str]:
    """A real file of each format: the frozen seed library exported by our writers, PubMed's sample."""
    import json

    from evidence.formats import export_studies

    studies = json.loads((FIXTURES / "formats" / "seed_studies.json").read_text(encoding="utf-8"))[:6]
    texts = {}
    for fmt in ("bibtex", "ris", "csljson", "csv"):
        out = io.StringIO()
        export_studies(studies, fmt, out)
        texts[fmt] = out.getvalue()
    texts["nbib"] = (FIXTURES / "formats" / "pubmed_sample.nbib").read_text(encoding="utf-8")[:6000]
    return texts


SEEDS = _seed_texts()
HOSTILE = [
    "\x00",
    "{",
    "}",
    "[",
    "]",
    '"',
    ",",
    "@article{",
    "\n\n",
    "TY  - ",
    "ER  - \n",
    "PMID- ",
    "9" * 5000,
    "1e400",
    "-0",
    "[" * 200,
    '{"title": "x", "title": "y"}',
    "title = {dup},",
    "\ufeff",
    "\ud7ff\ue000\U0010ffff",
    "\x1b[2J",
    "\u2028",
    "%",
    "#",
    "\\",
    "\\x",
    '\\"{',
]


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> str:
    """A real file of ``fmt`` cut, spliced and corrupted a few times."""
    text = SEEDS[fmt]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["truncate", "insert", "delete", "repeat", "hostile"]))
        if kind == "truncate":
            text = text[:at]
        elif kind == "insert":
            text = text[:at] + draw(st.text(max_size=40)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 200)) :]
        elif kind == "repeat":
            text = text[:at] + text[at : at + draw(st.integers(1, 400))] * draw(st.integers(2, 5)) + text[at:]
        else:
            text = text[:at] + draw(st.sampled_from(HOSTILE)) * draw(st.integers(1, 3)) + text[at:]
    return text


def _consume(text: str, fmt: str) -> None:
    """Read and validate every record of ``text`` as the importer would."""
    path = f"fuzz{SUFFIX[fmt]}"
    try:
        for raw in read_stream(io.StringIO(text), path, fmt):
            validate_record(raw, path)
    except ImportFormatError as exc:
        assert str(exc).startswith(path), exc
        assert "\n" not in str(exc), exc


def _consume_file(path: Path) -> None:
    """Read and validate a file through `read_records` (auto-detected, bytes decoded as the CLI does)."""
    try:
        records, validated = read_records(path)
        for raw in records:
            if not validated:
                validate_record(raw, str(path))
    except ImportFormatError as exc:
        assert str(exc).startswith(str(path)), exc
        assert "\n" not in str(exc), exc


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=EXAMPLES["mutated"])
@given(data=st.data())
def test_mutated_files_fail_only_with_file_and_line(fmt: str, data: st.DataObject) -> None:
    _consume(data.draw(mutated(fmt)), fmt)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="evidence-fuzz-") as folder:
        yield Path(folder)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=EXAMPLES["bytes"])
@given(data=st.data())
def test_files_as_bytes_in_any_encoding_fail_only_with_file_and_line(
    fmt: str, scratch: Path, data: st.DataObject
) -> None:
    text = data.draw(mutated(fmt))
    encoding = data.draw(st.sampled_from(["utf-8", "utf-16", "utf-16-le", "latin-1", "garbage"]))
    if encoding == "garbage":
        raw = text.encode("utf-8", "surrogatepass")
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=64)) + raw[at:]
    else:
        raw = text.encode(encoding, "replace")
    path = scratch / f"fuzz{SUFFIX[fmt]}"
    path.write_bytes(raw)
    _consume_file(path)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=EXAMPLES["random"])
@given(text=st.text(max_size=400))
def test_random_text_fails_only_with_file_and_line(fmt: str, text: str) -> None:
    _consume(text, fmt)


def test_a_10_mb_line_and_1000_deep_nesting_fail_only_with_file_and_line(scratch: Path) -> None:
    line = "x" * 10_000_000
    for fmt, text in {
        "bibtex": "@article{k,\n title={" + line + "}\n}\n",
        "ris": "TY  - JOUR\nTI  - " + line + "\nER  - \n",
        "nbib": "PMID- 1\nTI  - " + line + "\n",
        "csljson": '[{"title": "' + line + '"}]',
        "csv": "title,authors\n" + line + ",x\n",
    }.items():
        _consume(text, fmt)
    for nested in (
        "[" * 1000 + "]" * 1000,
        '[{"title": "t", "custom": ' + '{"a":' * 1000 + "1" + "}" * 1001 + "]",
    ):
        path = scratch / "deep.json"
        path.write_text(nested, encoding="utf-8")
        with pytest.raises(ImportFormatError, match="nested deeper than 20 levels"):
            _consume_strict(path)


def _consume_strict(path: Path) -> None:
    records, _validated = read_records(path)
    for raw in records:
        validate_record(raw, str(path))


@pytest.mark.parametrize("case", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_inputs_that_once_failed_fail_only_with_file_and_line(case: Path) -> None:
    # Each of these raised something else once (a traceback), or imported what it should not have.
    _consume_file(case)


# --- the --text query parser ---------------------------------------------------------------------------

QUERY_PIECES = st.sampled_from(
    ['"', "-", "OR", "or", "*", "(", ")", ":", "^", "NEAR", "AND", "NOT", "\x00", "'", "\\", "title:", "+"]
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from evidence.config import load_settings
    from evidence.library import open_library

    database = open_library(load_settings({}).with_db(str(tmp_path_factory.mktemp("q") / "q.db")))
    yield database
    database.close()


@settings(max_examples=EXAMPLES["query"])
@given(pieces=st.lists(st.one_of(QUERY_PIECES, st.text(max_size=12)), max_size=8))
def test_any_text_query_is_rows_or_one_line_error(seeded: Any, pieces: list[str]) -> None:
    from evidence.query import FindFilters, find_studies

    query = " ".join(pieces)
    try:
        with seeded.transaction() as session:
            rows = list(find_studies(session, FindFilters(text=query), sort="relevance", limit=5))
    except EvidenceError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(isinstance(r["id"], int) for r in rows)


# --- a failed import changes nothing -------------------------------------------------------------------


def _counts(database: Any) -> dict[str, int]:
    from sqlalchemy import text

    with database.engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("studies", "authors", "study_tags", "study_claims", "studies_fts")
        }


@settings(max_examples=EXAMPLES["library"])
@given(data=st.data())
def test_a_failed_import_leaves_the_library_as_it_was(
    seeded: Any, scratch: Path, data: st.DataObject
) -> None:
    from evidence.exchange import import_path

    fmt = data.draw(st.sampled_from(FORMATS))
    # A mutated file whose last record is broken for sure: every record before it would go in.
    text = (
        data.draw(mutated(fmt))
        + {
            "bibtex": "\n@article{",
            "ris": "\nTY  - JOUR\n",
            "nbib": "\n\nAU  - x\n",
            "csljson": "\n[",
            "csv": '\n"',
        }[fmt]
    )
    path = scratch / f"broken{SUFFIX[fmt]}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = _counts(seeded)
    try:
        with seeded.transaction() as session:
            import_path(session, path)
    except ImportFormatError:
        pass
    else:  # some mutations still read as a whole file (a truncation before the last record, say)
        return
    assert _counts(seeded) == before
