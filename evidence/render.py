"""Turning rows into text: table (rich), CSV, JSON (one streamed array) and NDJSON; writing files whole.

Used by the CLI; no click here. Nested values (authors, claims) are flattened for tables and CSV and kept
as structures in JSON.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from evidence.errors import InvalidValue, quoted

FORMATS = ("table", "csv", "json", "ndjson")


def author_display(author: dict[str, Any]) -> str:
    if author.get("name"):
        return str(author["name"])
    given = author.get("given")
    return f"{author.get('family')}, {given}" if given else str(author.get("family"))


def flat_value(key: str, value: Any) -> str:
    """A cell for tables and CSV."""
    if value is None:
        return ""
    if key == "authors" and isinstance(value, list):
        return "; ".join(author_display(a) for a in value)
    if key == "claims" and isinstance(value, list):
        return "; ".join(f"{c['claim']}:{c['stance']}" for c in value)
    if key == "updates" and isinstance(value, list):
        return "; ".join(f"{u.get('type')} {u.get('doi') or ''} {u.get('date') or ''}".strip() for u in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(flat_value(key, v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def select_columns(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None, fields: Sequence[str] | None = None
) -> list[str]:
    """The columns to write: ``columns`` checked against what the rows (or, with none, ``fields``) have."""
    available = list(rows[0]) if rows else list(fields or columns or [])
    if not columns:
        return available
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise InvalidValue(f"unknown column {quoted(unknown[0])}; available: {', '.join(available)}")
    return list(columns)


@contextmanager
def open_output(path: str | None, *, binary: bool = False) -> Iterator[IO[Any]]:
    """stdout for None or '-', else a temporary file beside ``path`` renamed into place on success, so a
    failure never leaves a half-written file. A target that is not a regular file (/dev/null, a FIFO) is
    written directly; an existing file keeps its permissions, a new one gets the umask's."""
    if path in (None, "-"):
        yield sys.stdout.buffer if binary else sys.stdout
        return
    target = Path(path)
    try:
        if target.exists() and not target.is_file():
            if target.is_dir():
                raise InvalidValue(f"cannot write {path}: it is a folder")
            direct: IO[Any] = target.open("wb") if binary else target.open("w", encoding="utf-8")
            with direct as fh:
                yield fh
            return
        if not target.parent.is_dir():
            raise InvalidValue(f"cannot write {path}: folder {target.parent} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise InvalidValue(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        handle: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with handle as fh:
            yield fh
        Path(tmp).chmod(_mode_for(target))
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[str],
    *,
    columns: Sequence[str] | None = None,
    table_columns: Sequence[str] | None = None,
    title: str | None = None,
    fields: Sequence[str] | None = None,
    wide: bool = False,
) -> int:
    """Write rows in ``fmt``; returns how many were written. ``fields`` names the columns a row would
    have, so that an empty result still gets a CSV header and its --columns checked. A table leaves out
    the columns none of the rows has a value in, unless ``columns`` names them or ``wide``."""
    if fmt not in FORMATS:
        raise InvalidValue(f"unknown format {quoted(fmt)}; valid: {', '.join(FORMATS)}")
    if columns and fields:
        select_columns([], columns, fields)
    if fmt == "json":
        return _write_json(rows, out, columns)
    if fmt == "ndjson":
        count = 0
        for row in rows:
            out.write(json.dumps(_pick(row, columns), ensure_ascii=False) + "\n")
            count += 1
        return count
    materialised = list(rows)
    if fmt == "csv":
        names = select_columns(materialised, columns, fields)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for row in materialised:
            writer.writerow([flat_value(n, row.get(n)) for n in names])
        return len(materialised)
    names = select_columns(
        materialised,
        columns or [c for c in (table_columns or ()) if not materialised or c in materialised[0]] or None,
        fields,
    )
    if not columns and not wide:
        names = [n for n in names if any(flat_value(n, row.get(n)) for row in materialised)] or names
    write_table(materialised, names, out, title=title, wide=wide)
    return len(materialised)


def _pick(row: dict[str, Any], columns: Sequence[str] | None) -> dict[str, Any]:
    if not columns:
        return row
    missing = [c for c in columns if c not in row]
    if missing:
        raise InvalidValue(f"unknown column {quoted(missing[0])}; available: {', '.join(row)}")
    return {c: row[c] for c in columns}


def _write_json(rows: Iterable[dict[str, Any]], out: IO[str], columns: Sequence[str] | None) -> int:
    # Streamed: one element at a time, so a large export never holds the whole document in memory.
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n  " if count else "\n  ")
        out.write(json.dumps(_pick(row, columns), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


# The most characters a table cell shows (a title's limit): rich lays out every character it is given,
# and a 10 MB title made `find` take minutes (a library filled before the limits, say). CSV and JSON
# carry values whole.
TABLE_CELL_CHARS = 2_000


def write_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    out: IO[str],
    title: str | None = None,
    *,
    wide: bool = False,
) -> None:
    """A rich table of `rows`. It fits the terminal (rich's width on a terminal, else `$COLUMNS`, else 80):
    see `evidence.layout` for how columns fold and titles are cut; a column that had to be left out is
    named under the table. `wide`: the full layout, every cell whole (200 cells wide off a terminal)."""
    from rich.console import Console

    if (
        not rows
    ):  # none: nothing at all (the caller says so on stderr, so that `-o FILE` and pipes stay empty)
        return
    terminal = hasattr(out, "isatty") and out.isatty()
    if wide:
        width: int | None = None if terminal else 200
    else:
        from evidence.config import output_width

        width = None if terminal else output_width()
    console = Console(file=out, width=width, highlight=False, markup=False, emoji=False, soft_wrap=False)
    cells = {name: [_cell(name, row) for row in rows] for name in columns}
    table = (
        _wide_table(columns, cells, title) if wide else _fitted_table(columns, cells, title, console.width)
    )
    console.print(table)


def _cell(name: str, row: dict[str, Any]) -> str:
    cell = flat_value(name, row.get(name))
    if len(cell) > TABLE_CELL_CHARS:
        cell = cell[: TABLE_CELL_CHARS - 1] + "\u2026"
    if name in ("title", "study_title") and row.get("status") not in (None, "ok"):
        cell = f"[{str(row['status']).upper()}] {cell}"
    return cell


def _wide_table(columns: Sequence[str], cells: dict[str, list[str]], title: str | None) -> Any:
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in ("id", "year", "level", "pedro"))
    for row in zip(*(cells[name] for name in columns), strict=True):
        table.add_row(*row)
    return table


# The header is underlined column by column (a gap at each divider, so the columns show even without
# colour); no other rule.
_RULED_HEAD = "    \n    \n \u2500  \n    \n    \n    \n    \n    \n"


def _fitted_table(columns: Sequence[str], cells: dict[str, list[str]], title: str | None, width: int) -> Any:
    from rich.box import Box
    from rich.table import Table

    from evidence.layout import fit_cell, plan_columns

    plan = plan_columns(columns, {name: name for name in columns}, cells, width)
    caption = None
    if plan.left_out:
        # Under the table, not on stderr: it belongs to what is shown (and stderr keeps one-line errors).
        noun = "column" if len(plan.left_out) == 1 else "columns"
        caption = f"{', '.join(plan.left_out)} {noun} left out to fit {width} columns: --wide shows all"
    table = Table(
        title=title,
        caption=caption,
        caption_justify="left",
        box=Box(_RULED_HEAD),
        show_edge=False,
        pad_edge=False,
        padding=(0, plan.gap - 1),
        collapse_padding=True,
        header_style="bold",
    )
    for name, size in zip(plan.columns, plan.widths, strict=True):
        table.add_column(fit_cell(name, "", size), width=size, no_wrap=True, overflow="crop")
    for row in zip(*(cells[name] for name in plan.columns), strict=True):
        table.add_row(
            *(
                fit_cell(text, name, size)
                for text, name, size in zip(row, plan.columns, plan.widths, strict=True)
            )
        )
    return table
