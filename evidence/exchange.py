"""Citation lists in and out of the library: the plain-Python twins of `evidence export`, `cite` and `import`.

* `select_ids` picks studies as `find` does (filters and sort) or by explicit references.
* `export_selection` streams those studies from the database a chunk at a time (`query.iter_study_rows`,
  the rows `find` and `show` use) into a format's writer, in this process.
* `cite_selection` renders them as a formatted bibliography (citeproc-py).
* `import_path` / `import_stream` read a citation file and bring it in through `evidence.importer`, in one
  transaction: a malformed record anywhere leaves the library unchanged, and a dry run rolls back.

No click here; the CLI renders what these return. Formats are in `evidence.formats`.
"""

from __future__ import annotations

import gc
import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session

from evidence.formats import export_format, read_stream
from evidence.import_report import ImportReport
from evidence.importer import Progress, import_records, read_records
from evidence.query import FindFilters, find_ids, iter_study_rows
from evidence.records import resolve_ref

log = logging.getLogger(__name__)

EXPORT_CHUNK = 500  # studies read from the database together while exporting


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


def export_selection(session: Session, study_ids: Sequence[int], fmt: str, out: Any) -> int:
    """Write the studies in format `fmt` to `out`: a binary stream (UTF-8 for the text formats), a text
    stream for a text format, or a path for xlsx. A target or a selection the format cannot take is
    refused (ExportError) before anything is written."""
    exporter = export_format(fmt)
    exporter.check_count(len(study_ids))
    with _gc_paused():
        rows = iter_study_rows(session, study_ids, chunk=EXPORT_CHUNK)
        if exporter.binary:
            return exporter.write(rows, out)
        with _as_text(out) as stream:
            return exporter.write(rows, stream)


@contextmanager
def _as_text(out: Any) -> Iterator[Any]:
    """`out` for a text format's writer: a binary stream wrapped for UTF-8 text (and left open)."""
    if isinstance(out, io.TextIOBase):
        yield out
        return
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        yield text
        text.flush()
    finally:
        text.detach()


def cite_selection(
    session: Session,
    study_ids: Sequence[int],
    *,
    style: str = "american-medical-association",
    fmt: str = "text",
    by_claim: bool = False,
    filters: FindFilters | None = None,
) -> str:
    """A formatted bibliography of the studies (all registered together, so numbering is right).

    `filters` are the ones the selection was made with: grouped `by_claim`, only the groups of the
    claims, mechanisms and stances they name are printed (`--claim X --by-claim` is about claim X).
    """
    from evidence.formats.cite import render_bibliography, render_by_claim

    studies = list(iter_study_rows(session, study_ids))
    if not by_claim:
        return render_bibliography(studies, style, fmt)
    f = filters.validated() if filters is not None else FindFilters()
    return render_by_claim(studies, style, fmt, claims=f.claims, mechanisms=f.mechanisms, stances=f.stances)


def list_styles() -> list[str]:
    """Every installed citation style name, plus the aliases (`vancouver`, `ama`)."""
    from evidence.formats.cite import list_styles as installed

    return installed()


# --- import --------------------------------------------------------------------------------------------


def import_path(
    session: Session,
    path: str | Path,
    *,
    fmt: str = "auto",
    on_progress: Progress | None = None,
    keep_outcomes: bool = False,
) -> ImportReport:
    """Import a citation file in the caller's transaction (which a dry run rolls back). A large file is
    parsed in a second process while this one matches and inserts (`importer.read_records`).
    `keep_outcomes`: the report keeps every record's outcome (else only those merged, duplicated or in
    conflict)."""
    records, validated = read_records(path, fmt, on_progress)
    with _gc_paused():
        return import_records(
            session, records, path=str(path), keep_outcomes=keep_outcomes, validated=validated
        )


def import_stream(
    session: Session, stream: TextIO, *, name: str = "<stdin>", fmt: str = "auto", keep_outcomes: bool = False
) -> ImportReport:
    """Import from an open text stream (stdin), in the caller's transaction; `name` stands for it in
    messages."""
    with _gc_paused():
        return import_records(session, read_stream(stream, name, fmt), path=name, keep_outcomes=keep_outcomes)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during an import or export: the records are plain acyclic dicts, and
    the collector would scan them over and over as they pile up."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
