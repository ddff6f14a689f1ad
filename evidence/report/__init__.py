"""The evidence report: one self-contained HTML page (and its PDF) that says, claim by claim, what the
selected studies show, how strong they are and which way they point. The plain-Python twin of `evidence
report`.

* `make_report(session, filters, ...)` picks the studies as `find` does and computes the content
  (`report.content`: sections, tables, verdicts built from counts) with each study's formatted reference
  (the `cite` path, numbered once in the order the page shows them).
* `render_html(report)` fills the Jinja2 template (autoescaped: every value from the library or Crossref is
  text, never markup) with the CSS and the two charts (`report.charts`, SVG) inline: nothing is fetched
  when the page opens, so it works offline and can be e-mailed.
* `write_html(report, path)` / `write_pdf(report, path, chromium=...)` write the file whole or not at all;
  the PDF is printed by a headless Chromium found on the PATH (`report.pdf`).

matplotlib and Jinja2 are imported only here, inside the functions that need them.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from evidence import vocab
from evidence.errors import ExportError
from evidence.query import FindFilters, find_ids, iter_study_rows, verification_states
from evidence.report.content import (
    BY,
    POPULATION_BUCKETS,
    STANCE_LABELS,
    STANCE_ORDER,
    MapCell,
    Report,
    YearCell,
    build_report,
    evidence_map,
    stance_phrase,
    studies_by_year,
)

DEFAULT_TITLE = "What the evidence says: instrument-assisted soft tissue mobilisation"
PAPERS: dict[str, str] = {"a4": "A4", "letter": "letter"}

__all__ = ["BY", "DEFAULT_TITLE", "PAPERS", "Report", "describe_filters", "make_report", "render_html"]


def describe_filters(f: FindFilters) -> list[str]:
    """The selection's filters in words, one per line of the report's front matter."""
    lines: list[str] = []
    for label, values in (
        ("mechanism", f.mechanisms),
        ("claim", f.claims),
        ("stance", f.stances),
        ("design", f.designs),
        ("tag", f.tags),
    ):
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    if f.max_level is not None:
        lines.append(f"OCEBM level {f.max_level} or stronger")
    if f.population:
        lines.append(f"population: {f.population}")
    if f.condition:
        lines.append(f"condition: {f.condition}")
    if f.year_from or f.year_to:
        lines.append(f"published from {f.year_from or 'any year'} to {f.year_to or 'today'}")
    if f.min_pedro is not None:
        lines.append(f"PEDro score {f.min_pedro} or more")
    if f.text:
        lines.append(f"text: {f.text}")
    if f.exclude_retracted:
        lines.append("retracted studies left out")
    return lines


def make_report(
    session: Session,
    filters: FindFilters | None = None,
    *,
    by: str = "mechanism",
    style: str = "american-medical-association",
    title: str | None = None,
    library: str = "",
    today: dt.date | None = None,
) -> Report:
    """The report on the studies `find` would list with these filters. An empty selection is refused
    (ExportError) so that no empty page is written; an unknown style is refused before any work."""
    from evidence.formats.cite import render_entries

    if by not in BY:
        raise ExportError(f"unknown grouping {by!r}; expected one of {', '.join(BY)}")
    f = (filters or FindFilters()).validated()
    ids = find_ids(session, f, sort="level")
    if not ids:
        raise ExportError("no study matches these filters; no report written")
    studies = list(iter_study_rows(session, ids))
    states = verification_states(session, ids)
    for study in studies:
        study["verification"] = states.get(study["id"], {})
    report = build_report(
        studies,
        by=by,
        claims=f.claims,
        mechanisms=f.mechanisms,
        stances=f.stances,
        title=title.strip() if title and title.strip() else DEFAULT_TITLE,
        generated=(today or dt.date.today()).isoformat(),
        library=library,
        filters=describe_filters(f),
        style=style,
    )
    ordered = report.document_order()
    citations = dict(zip((s["id"] for s in ordered), render_entries(ordered, style, "html"), strict=True))
    for entry in report.entries():
        entry.citation = citations[entry.study["id"]]
    report.prisma = _prisma(session)
    return report


def _prisma(session: Session) -> dict[str, Any] | None:
    """The saved searches' PRISMA counts for the flow diagram, when the library has saved searches."""
    from evidence.watch.prisma import prisma_counts

    counts = prisma_counts(session)
    return counts if counts["searches"] else None


# --- HTML ------------------------------------------------------------------------------------------------


def study_links(study: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, URL) of the study itself: its DOI and its PubMed record, the page's only links."""
    links = []
    if study.get("doi"):
        links.append(("DOI", "https://doi.org/" + urllib.parse.quote(str(study["doi"]), safe="/:;()._-")))
    if study.get("pmid"):
        links.append(("PubMed", f"https://pubmed.ncbi.nlm.nih.gov/{urllib.parse.quote(str(study['pmid']))}/"))
    return links


def unverified(study: dict[str, Any]) -> list[str]:
    """What of a study's reference is not verified, in the one wording of each state (`show`'s), e.g.
    "DOI seen only in a citing paper's reference list"."""
    from evidence.textview import verification_phrase

    labels = {"doi": "DOI", "pmid": "PMID", "authors": "authors", "bibliographic": "journal details",
              "design": "design"}  # fmt: skip
    states = study.get("verification") or {}
    return [
        f"{labels[name]} {verification_phrase(state)}"
        for name, state in states.items()
        if state != "verified" and (name not in ("doi", "pmid") or study.get(name))
    ]


def _population_text(study: dict[str, Any]) -> str:
    population = study.get("population") or "not recorded"
    condition = study.get("condition")
    return f"{population}; {condition}" if condition else str(population)


def render_html(report: Report, *, paper: str = "a4") -> str:
    import jinja2
    from markupsafe import Markup

    from evidence.report import charts

    if paper not in PAPERS:
        raise ExportError(f"unknown paper size {paper!r}; expected one of {', '.join(PAPERS)}")
    claims = [c.name for c in report.claims]
    map_cells = evidence_map(report)
    year_cells = studies_by_year(report)
    evidence_map_svg = (
        charts.evidence_map_svg(
            map_cells, claims, "Evidence map: studies per claim and OCEBM level, by stance and population"
        )
        if map_cells
        else ""
    )
    years_svg = (
        charts.years_svg(year_cells, claims, "Studies per claim by publication year, shaded by best level")
        if year_cells
        else ""
    )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evidence.report", "templates"),
        autoescape=True,  # every {{ value }} is escaped; only the SVG and the citations are Markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        report=report,
        paper=PAPERS[paper],
        # citeproc-py's HTML, whose variables the cite path escaped before formatting (formats.cite).
        citation=lambda entry: Markup(entry.citation),
        links=study_links,
        unverified=unverified,
        population_text=_population_text,
        stance_label=lambda s: STANCE_LABELS.get(s, s),
        stances=STANCE_ORDER,
        populations=POPULATION_BUCKETS,
        design_label=lambda d: vocab.DESIGN_LABELS.get(d, d) if d else "not recorded",
        claim_label=lambda c: vocab.CLAIM_BY_NAME[c].label if c in vocab.CLAIM_BY_NAME else c,
        map_cells=map_cells,
        year_cells=year_cells,
        map_table=map_table(map_cells),
        year_table=year_table(year_cells),
        evidence_map_svg=Markup(evidence_map_svg),
        years_svg=Markup(years_svg),
        level_colour=charts.level_colour,
        stance_colours=charts.STANCE_COLOURS,
    )


def map_table(cells: Sequence[MapCell]) -> dict[tuple[str, int], str]:
    """(claim, level) -> the cell in words, e.g. "2 supports (1 human, 1 animal); 1 no effect (human)"."""
    grouped: dict[tuple[str, int], dict[str, dict[str, int]]] = {}
    for cell in cells:
        by_stance = grouped.setdefault((cell.claim, cell.level), {})
        by_stance.setdefault(cell.stance, {})[cell.population] = cell.count
    words = {"human": "human", "animal": "animal", "unknown": "population not recorded"}
    text = {}
    for key, by_stance in grouped.items():
        parts = []
        for stance in STANCE_ORDER:
            if stance not in by_stance:
                continue
            populations = by_stance[stance]
            split = ", ".join(f"{populations[p]} {words[p]}" for p in POPULATION_BUCKETS if p in populations)
            parts.append(f"{stance_phrase(stance, sum(populations.values()))} ({split})")
        text[key] = "; ".join(parts)
    return text


def year_table(cells: Sequence[YearCell]) -> dict[str, str]:
    """claim -> "2009: 1 (level 5); 2015: 2 (level 2)" in year order."""
    text: dict[str, list[str]] = {}
    for cell in sorted(cells, key=lambda c: c.year):
        best = f" (level {cell.best_level})" if cell.best_level else ""
        text.setdefault(cell.claim, []).append(f"{cell.year}: {cell.count}{best}")
    return {claim: "; ".join(parts) for claim, parts in text.items()}


def write_html(report: Report, path: str | Path, *, paper: str = "a4") -> int:
    """Write the page whole (a temporary file renamed into place); returns its size in bytes."""
    from evidence.render import open_output

    page = render_html(report, paper=paper)
    with open_output(str(path)) as out:
        out.write(page)
    return len(page.encode("utf-8"))


def write_pdf(report: Report, path: str | Path, *, chromium: str | None = None, paper: str = "a4") -> int:
    """Print the page to PDF through headless Chromium; returns the PDF's size in bytes."""
    from evidence.report.pdf import find_chromium, print_pdf

    browser = find_chromium(chromium)  # before the work, so a missing browser costs nothing
    return print_pdf(render_html(report, paper=paper), Path(path), browser)


def write_report(
    session: Session,
    filters: FindFilters | None,
    output: str | Path,
    *,
    pdf: bool = False,
    chromium: str | None = None,
    paper: str = "a4",
    by: str = "mechanism",
    style: str = "american-medical-association",
    title: str | None = None,
    library: str = "",
) -> tuple[Report, int]:
    """`evidence report`: the report on the selection, written to `output` as HTML or (`pdf`) PDF.
    Returns the report and the file's size in bytes. Nothing is written on any failure."""
    if paper not in PAPERS:
        raise ExportError(f"unknown paper size {paper!r}; expected one of {', '.join(PAPERS)}")
    if pdf:
        from evidence.report.pdf import find_chromium

        chromium = find_chromium(chromium)  # a missing browser is said before any work
    report = make_report(session, filters, by=by, style=style, title=title, library=library)
    if pdf:
        return report, write_pdf(report, output, chromium=chromium, paper=paper)
    return report, write_html(report, output, paper=paper)


def chart_marks(report: Report) -> dict[str, int]:
    """How many marks each chart draws (what the browser tests count)."""
    return {"evidence-map": len(evidence_map(report)), "years": len(studies_by_year(report))}
