"""`evidence report` as a user drives it: the page's content against `find`, a self-contained file, hostile
text kept as text, bad input refused with nothing written; then the page in a real browser (Chromium via
Playwright): no console error, no request beyond file://, charts with the expected marks; and the PDF."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from evidence.report import chart_marks, make_report
from tests.browser import Browser, missing, require_chromium, start_browser
from tests.helpers import db_execute, run

HOSTILE_TITLE = '<script>alert(1)</script> IASTM and "><img src=x onerror=alert(2)> pain'
HOSTILE_FINDING = "Pain fell <b onmouseover=alert(3)>a lot</b> & more"
HOSTILE_JOURNAL = "J Evil </td></tr></table><iframe src=https://example.com>"


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def study_ids(self) -> set[int]:
        return {int(str(a["data-study-id"])) for _, a in self.tags if "data-study-id" in a}


@pytest.fixture
def library(library_url: str) -> str:
    run("db", "init")
    return library_url


def find_ids(*args: str) -> set[int]:
    return {row["id"] for row in json.loads(run("find", *args, "--format", "json").stdout)}


def write_report(tmp_path: Path, *args: str, name: str = "report.html") -> tuple[Path, Page]:
    target = tmp_path / name
    result = run("report", *args, "-o", str(target))
    assert re.fullmatch(
        rf"wrote a report on \d+ stud(y|ies) to {re.escape(str(target))} \([\d,]+ bytes\)\n", result.stderr
    )
    return target, Page(target.read_text(encoding="utf-8"))


def add_hostile_study() -> None:
    run(
        "add", "--title", HOSTILE_TITLE, "--author", "Doe, Jane", "--year", "2024",
        "--journal", HOSTILE_JOURNAL, "--design", "rct", "--population", "human", "--doi", "10.1234/evil(1)",
        "--claim", "pain-modulation", "--stance", "supports", "--finding", HOSTILE_FINDING,
    )  # fmt: skip


@pytest.mark.both_backends
def test_the_report_shows_every_study_find_shows(library: str, tmp_path: Path) -> None:
    _, page = write_report(tmp_path)
    everything = find_ids()
    assert page.study_ids() == everything
    (summary,) = [a for _, a in page.tags if a.get("id") == "summary"]
    assert summary["data-study-count"] == str(len(everything))
    text = " ".join(page.text)
    assert f"{len(everything)} studies (" in text
    # A section per mechanism, with each claim that has studies.
    sections = [a["id"] for a in page.all("section") if "mechanism" in str(a.get("class"))]
    assert sections == ["neural-stimulation", "adhesion-breakdown", "inflammatory-healing", "unlinked"]
    _, narrowed = write_report(
        tmp_path, "--mechanism", "neural-stimulation", "--population", "human", name="n.html"
    )
    assert narrowed.study_ids() == find_ids("--mechanism", "neural-stimulation", "--population", "human")
    claims = [a["id"] for a in narrowed.all("article")]
    assert claims == ["claim-pain-modulation", "claim-mechanoreceptor-rom", "claim-proprioception"]


def test_the_page_is_self_contained(library: str, tmp_path: Path) -> None:
    target, page = write_report(tmp_path)
    html = target.read_text(encoding="utf-8")
    assert page.all("script") == [] and page.all("img") == [] and page.all("link") == []
    assert page.all("iframe") == [] and page.all("object") == [] and page.all("embed") == []
    assert re.findall(r"url\((?!#)", html) == [] and "@import" not in html  # only the charts' own clip paths
    ids = [a["id"] for _, a in page.tags if a.get("id")]
    assert len(ids) == len(set(ids))  # two inline charts, no id of one shadowing the other's
    hrefs = [str(a.get("href")) for _, a in page.tags if a.get("href")]
    assert hrefs, "the studies are linked"
    outside = [
        h for h in hrefs if not h.startswith(("#", "https://doi.org/10.", "https://pubmed.ncbi.nlm.nih.gov/"))
    ]
    assert outside == []
    assert not [a for _, a in page.tags if a.get("src")]
    (csp,) = [a for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert str(csp["content"]).startswith("default-src 'none'")
    assert len(page.all("svg")) == 2  # the two charts, inline


def test_hostile_text_is_text(library: str, tmp_path: Path) -> None:
    add_hostile_study()
    _, page = write_report(tmp_path, "--claim", "pain-modulation")
    assert (
        page.all("script") == []
        and page.all("img") == []
        and page.all("iframe") == []
        and page.all("b") == []
    )
    assert [a for _, a in page.tags if any(k.startswith("on") for k in a)] == []
    text = "".join(page.text)
    assert "<script>alert(1)</script> IASTM" in text  # shown, as text
    assert HOSTILE_FINDING in text
    assert "J Evil </td></tr></table>" in text
    assert "https://doi.org/10.1234/evil(1)" in [a.get("href") for a in page.all("a")]


def test_a_retracted_study_is_flagged_and_not_counted(library: str, tmp_path: Path) -> None:
    _, before = write_report(tmp_path, "--claim", "pain-modulation", name="before.html")
    verdict_before = next(
        t for t in before.text if t.strip().startswith(tuple("0123456789")) and "studies:" in t
    )
    n_before = int(verdict_before.split()[0])
    db_execute(library, "UPDATE studies SET status = 'retracted' WHERE citekey = 'crothers2016spinal'")
    target, after = write_report(tmp_path, "--claim", "pain-modulation", name="after.html")
    verdict_after = next(
        t for t in after.text if t.strip().startswith(tuple("0123456789")) and "studies:" in t
    )
    assert int(verdict_after.split()[0]) == n_before - 1
    assert "1 retracted study is listed but not counted." in verdict_after
    (row,) = [a for _, a in after.tags if a.get("data-citekey") == "crothers2016spinal"]
    assert "flagged" in str(row["class"])
    assert "RETRACTED: not counted" in after.text
    assert "[RETRACTED]" in target.read_text(encoding="utf-8")  # the reference says so too


def test_unverified_facts_are_said_in_shows_words(library: str, tmp_path: Path) -> None:
    from evidence.vocab import VERIFICATION_WORDS

    _, page = write_report(tmp_path)
    shown = {str(a["data-citekey"]) for _, a in page.tags if a.get("data-citekey")}
    for citekey in sorted(shown)[:49]:
        study = json.loads(run("show", citekey, "--format", "json").stdout)
        if study["verification"]["authors"] == "citing-reference":
            break
    else:
        pytest.fail("the seed has a study whose authors were seen only in a citing reference list")
    text = " ".join(page.text)
    assert f"authors {VERIFICATION_WORDS['citing-reference']}" in text
    assert f"authors {VERIFICATION_WORDS['unverified']}" in text


def test_by_claim_and_another_style(library: str, tmp_path: Path) -> None:
    _, page = write_report(tmp_path, "--by", "claim", "--style", "apa", "--title", "Heel & elbow <pain>")
    sections = [a["id"] for a in page.all("section") if "mechanism" in str(a.get("class"))]
    assert sections[0] == "pain-modulation" and "neural-stimulation" not in sections
    assert "Heel & elbow <pain>" in page.text
    assert page.study_ids() == find_ids()


def test_bad_input_writes_nothing(library: str, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    empty = run("report", "--text", "zyzzyvaquux", "-o", str(target), expect=1)
    assert empty.stderr == "Error: no study matches these filters; no report written\n"
    style = run("report", "--style", "no-such-style", "-o", str(target), expect=1)
    assert "unknown citation style 'no-such-style'" in style.stderr and "--list-styles" in style.stderr
    folder = run("report", "-o", str(tmp_path / "missing" / "r.html"), expect=1)
    assert folder.stderr.count("\n") == 1 and "does not exist" in folder.stderr
    directory = run("report", "-o", str(tmp_path), expect=1)
    assert "it is a folder" in directory.stderr
    no_browser = run(
        "report", "--pdf", "--chromium", str(tmp_path / "nochromium"), "-o", str(target), expect=1
    )
    assert no_browser.stderr.count("\n") == 1 and "apt install chromium" in no_browser.stderr
    assert run("report", expect=2).stderr.endswith("Error: Missing option '-o' / '--output'.\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "evidence-home"]


def test_pdf_without_chromium_on_the_path(
    library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run("report", "--pdf", "-o", str(tmp_path / "r.pdf"), expect=1)
    assert result.stderr.startswith(
        "Error: cannot print the PDF: Chromium was not found on the PATH; install"
    )
    assert not (tmp_path / "r.pdf").exists()


def test_the_charting_library_loads_only_for_report(library: str) -> None:
    code = (
        "import sys; from cli import cli; "
        "cli(['find', '--limit', '1'], standalone_mode=False); "
        "sys.exit(1 if {'matplotlib', 'jinja2'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, capture_output=True).returncode == 0


# --- in a real browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from start_browser()


def test_the_report_in_chromium(library: str, tmp_path: Path, browser: Browser, isolated_home: Path) -> None:
    add_hostile_study()
    target, _ = write_report(tmp_path)
    from evidence.config import load_settings
    from evidence.library import open_library

    database = open_library(load_settings({}).with_db(library))
    with database.sessions() as session:
        expected = chart_marks(make_report(session))
    database.close()
    for visit in browser.visit(target):
        p = visit.page
        assert visit.console_errors == [] and visit.page_errors == []
        assert visit.requests and all(url.startswith("file://") for url in visit.requests), visit.requests
        # A mark is a path or a <use> of a shared marker inside its series' group.
        marks = "svg g[id^='{0}'] > path, svg g[id^='{0}'] use"
        assert (
            p.locator("#evidence-map").locator(marks.format("marks-")).count() == expected["evidence-map"] > 0
        )
        assert p.locator("#years").locator(marks.format("years-level-")).count() == expected["years"] > 0
        assert p.locator("#evidence-map").get_attribute("data-marks") == str(expected["evidence-map"])
        assert p.locator("tr.study").evaluate_all(
            "rows => new Set(rows.map(r => r.dataset.studyId)).size"
        ) == len(find_ids())
        assert p.locator("#summary").get_attribute("data-study-count") == str(len(find_ids()))
        # The hostile title is text on the page, and nothing ran.
        assert p.locator("script").count() == 0 and p.locator("img").count() == 0
        assert p.get_by_text("<script>alert(1)</script> IASTM", exact=False).count() >= 1
        assert p.evaluate("typeof window.alert_called") == "undefined"
        # Charts have their text equivalent and a label for screen readers.
        assert p.locator("#evidence-map svg").get_attribute("role") == "img"
        assert p.locator("#evidence-map-table tbody tr").count() == p.locator("article.claim").count()
        # Printed, each mechanism starts a page and no table row is cut.
        p.emulate_media(media="print")
        assert p.locator("section.mechanism").first.evaluate("s => getComputedStyle(s).breakBefore") == "page"
        assert p.locator("tr.study").first.evaluate("r => getComputedStyle(r).breakInside") == "avoid"


def test_the_pdf(library: str, tmp_path: Path) -> None:
    require_chromium()
    pages: dict[str, Any] = {}
    for paper, size in (("a4", "A4"), ("letter", "letter")):
        target = tmp_path / f"report-{paper}.pdf"
        result = run(
            "report", "--pdf", "--paper", paper, "--mechanism", "inflammatory-healing", "-o", str(target)
        )
        assert result.stderr.startswith(
            f"wrote a report on {len(find_ids('--mechanism', 'inflammatory-healing'))} studies"
        )
        data = target.read_bytes()
        assert data.startswith(b"%PDF-")
        if shutil.which("pdfinfo") is None or shutil.which("pdftotext") is None:
            missing("pdfinfo and pdftotext are not installed (Debian: apt install poppler-utils)")
        info = subprocess.run(["pdfinfo", str(target)], capture_output=True, text=True, check=True).stdout
        pages[paper] = int(re.search(r"Pages:\s+(\d+)", info).group(1))  # type: ignore[union-attr]
        assert re.search(rf"Page size:.*\({size}\)", info), info
        text = subprocess.run(
            ["pdftotext", str(target), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "What the data say" in text and "Inflammatory healing" in text
    assert all(n >= 2 for n in pages.values())  # front matter, then the mechanism on a page of its own
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left
