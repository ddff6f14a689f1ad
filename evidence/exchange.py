"""Citation lists in and out of the library: the plain-Python twins of `evidence export`, `cite` and `import`.

* `select_ids` picks studies as `find` does (filters and sort) or by explicit references.
* `export_selection` streams those studies from the database in chunks into a format writer.
* `cite_selection` renders them as a formatted bibliography (citeproc-py).
* `import_path` / `import_stream` read a citation file and bring it in through `evidence.importer`, in one
  transaction: a malformed record anywhere leaves the library unchanged, and a dry run rolls back.

No click here; the CLI renders what these return. Formats are in `evidence.formats`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session

from evidence.db import Database
from evidence.errors import ExportError, ImportFormatError
from evidence.formats import BINARY_FORMATS, EXPORT_FORMATS, export_studies, read_stream
from evidence.formats.common import Study
from evidence.importer import ImportReport, import_records
from evidence.query import FindFilters, find_ids, iter_study_rows
from evidence.records import resolve_ref

log = logging.getLogger(__name__)

EXPORT_CHUNK = 2000  # studies loaded per round trip to the database while exporting
PROGRESS_EVERY = 500  # records between two progress reports while importing

Progress = Callable[[int, int], None]  # (bytes read so far, file size)


def select_ids(
    session: Session,
    filters: FindFilters | None = None,
    refs: Sequence[str] = (),
    *,
    sort: str | None = None,
) -> list[int]:
    """Ids of the studies to export or cite: the given references in their order (each once), or else the
    studies matching `filters` in `find`'s order. References and filters together narrow the references."""
    if not refs:
        return find_ids(session, filters or FindFilters(), sort=sort)
    chosen = list(dict.fromkeys(resolve_ref(session, ref).id for ref in refs))
    if filters is not None and filters != FindFilters():
        matching = set(find_ids(session, filters))
        chosen = [i for i in chosen if i in matching]
    if sort is not None:
        order = {
            study_id: n for n, study_id in enumerate(find_ids(session, FindFilters(ids=chosen), sort=sort))
        }
        chosen.sort(key=order.__getitem__)
    return chosen


def iter_selection(session: Session, study_ids: Sequence[int]) -> Iterator[Study]:
    """Study dicts for `study_ids`, in order, loaded from the database a chunk at a time."""
    return iter_study_rows(session, study_ids, chunk=EXPORT_CHUNK)


def export_selection(session: Session, study_ids: Sequence[int], fmt: str, out: Any) -> int:
    """Write the studies in format `fmt` to `out` (a text stream; a binary stream or path for xlsx)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    return export_studies(iter_selection(session, study_ids), fmt, out)


def needs_file(fmt: str) -> bool:
    """True for formats that cannot go to stdout (xlsx)."""
    return fmt in BINARY_FORMATS


def cite_selection(
    session: Session,
    study_ids: Sequence[int],
    *,
    style: str = "american-medical-association",
    fmt: str = "text",
    by_claim: bool = False,
) -> str:
    """A formatted bibliography of the studies (all registered together, so numbering is right)."""
    from evidence.formats.cite import render_bibliography, render_by_claim

    studies = list(iter_selection(session, study_ids))
    render = render_by_claim if by_claim else render_bibliography
    return render(studies, style, fmt)


def list_styles() -> list[str]:
    """Every installed citation style name, plus the aliases (`vancouver`, `ama`)."""
    from evidence.formats.cite import list_styles as installed

    return installed()


# --- import --------------------------------------------------------------------------------------------


def import_path(
    database: Database,
    path: str | Path,
    *,
    fmt: str = "auto",
    dry_run: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import a citation file in one transaction (rolled back for a dry run or on any error)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(str(path), None, "no such file")
    size = path.stat().st_size
    with path.open("rb") as binary:
        # newline="" keeps CSV cells with line breaks intact; the other readers strip line ends themselves.
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="" if fmt == "csv" else None)
        records: Iterable[Study] = read_stream(text, str(path), fmt)
        if on_progress is not None:
            records = _reporting(records, lambda: binary.tell(), size, on_progress)
        return _import(database, records, str(path), dry_run=dry_run)


def import_stream(
    database: Database, stream: TextIO, *, name: str = "<stdin>", fmt: str = "auto", dry_run: bool = False
) -> ImportReport:
    """Import from an open text stream (stdin); `name` stands for it in messages."""
    return _import(database, read_stream(stream, name, fmt), name, dry_run=dry_run)


def _reporting(
    records: Iterable[Study], position: Callable[[], int], size: int, on_progress: Progress
) -> Iterator[Study]:
    for count, record in enumerate(records, 1):
        if count % PROGRESS_EVERY == 0:
            on_progress(position(), size)
        yield record
    on_progress(size, size)


def _import(database: Database, records: Iterable[Study], name: str, *, dry_run: bool) -> ImportReport:
    with _transaction(database, commit=not dry_run) as session:
        # A large import keeps only the records that were merged, duplicated or in conflict.
        return import_records(session, records, path=name, keep_outcomes=False)


@contextmanager
def _transaction(database: Database, *, commit: bool) -> Iterator[Session]:
    """One transaction: committed (or, for a dry run, rolled back) at the end; rolled back on any error."""
    with database.sessions() as session, session.begin() as transaction:
        yield session
        if not commit:
            transaction.rollback()
