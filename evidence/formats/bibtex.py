"""BibTeX and BibLaTeX: export (`write_bibtex`, `write_biblatex`) and a streaming import (`read_bibtex`).

Export: `@article{key, ...}` with stable, unique citekeys; BibTeX writes `journal`, `year`, `number`
(`issue`, which bibtex ignores silently, when there is no volume: the standard styles warn about a number
without a volume), `pmid`, `language`, `annote`, accented letters as LaTeX commands; BibLaTeX writes
`journaltitle`, `date`, `number` for a numeric issue and `issue` for a designation ("Suppl 1": the
biblatex manual's meaning of `issue`), `eprint`/`eprinttype = {pubmed}`, `langid`, `annotation`, UTF-8
as is (see `latex.py` for the escaping).
Pages are `127--134`. Mechanisms, claims with stance, level, design, PEDro score, population, status and
tags travel in `keywords`; notices (retraction...) and findings in `note` (printed by bibliography styles,
so a retracted study is visibly marked); condition, body region and sample size in the extra fields
`condition`, `bodyregion`, `samplesize` (ignored by bibtex and biber).

Import: a hand-written tokenizer that reads the file one entry at a time. bibtexparser 2.1's `parse_file`
holds the whole file and its parse in memory (a large library does not fit the import's memory budget:
README, Performance), and it reports malformed entries as failed blocks without a line number. The
tokenizer handles the whole BibTeX grammar we meet in practice
(`{}`/`""` values, numbers, `@string` macros and `#` concatenation, `@comment`, `@preamble`, `()` as
entry delimiters), raises `ImportFormatError` with the line, and decodes LaTeX only in fields that
contain a backslash or a brace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from evidence.errors import ImportFormatError, quoted
from evidence.formats import latex
from evidence.formats.common import (
    StudyRow,
    apply_keywords,
    apply_note_lines,
    empty_study,
    evidence_keywords,
    evidence_note_lines,
    finalize_imported,
    normalise_pages,
    person,
    write_entries,
    year_from,
)

log = logging.getLogger(__name__)

_ENTRY_TYPES = {
    "journal-article": "article",
    "book": "book",
    "monograph": "book",
    "edited-book": "book",
    "book-chapter": "incollection",
    "proceedings-article": "inproceedings",
    "dissertation": "phdthesis",
    "report": "techreport",
}
_PUBLICATION_TYPES = {
    "article": "journal-article",
    "book": "book",
    "incollection": "book-chapter",
    "inbook": "book-chapter",
    "inproceedings": "proceedings-article",
    "conference": "proceedings-article",
    "phdthesis": "dissertation",
    "mastersthesis": "dissertation",
    "thesis": "dissertation",
    "techreport": "report",
    "report": "report",
}
# ISO 639-1 code <-> the babel/polyglossia name biblatex wants in `langid`.
_LANGIDS = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "sv": "swedish",
    "da": "danish",
    "no": "norwegian",
    "fi": "finnish",
    "pl": "polish",
    "ru": "russian",
    "tr": "turkish",
    "el": "greek",
    "cs": "czech",
    "hu": "hungarian",
    "ja": "japanese",
    "zh": "chinese",
    "ko": "korean",
}
_LANG_CODES = {name: code for code, name in _LANGIDS.items()} | {
    "ngerman": "de",
    "american": "en",
    "british": "en",
    "brazil": "pt",
}


_NUMERIC_ISSUE_RE = re.compile(r"^\d+(?:\s*[-/\u2013]\s*\d+)?$")

# --- export --------------------------------------------------------------------------------------


def write_bibtex(studies: Iterable[StudyRow], out: TextIO) -> int:
    """Write studies as BibTeX (classic bibtex: ASCII with LaTeX commands); returns the count."""
    return write_entries(studies, out, lambda study, key: format_entry(study, key, biblatex=False))


def write_biblatex(studies: Iterable[StudyRow], out: TextIO) -> int:
    """Write studies as BibLaTeX (biber: UTF-8, `journaltitle`, `date`, `issue`); returns the count."""
    return write_entries(studies, out, lambda study, key: format_entry(study, key, biblatex=True))


def format_entry(study: StudyRow, key: str, *, biblatex: bool) -> str:
    """One BibTeX/BibLaTeX entry for a study under citekey `key`."""
    esc = latex.escape_utf8 if biblatex else latex.escape_ascii
    get = study.get
    entry_type = _ENTRY_TYPES.get(get("publication_type") or "", "misc")
    fields: list[str] = []
    authors = get("authors")
    if authors:
        fields.append(f"  author = {{{_authors(authors, esc)}}}")
    title = str(get("title") or "")
    fields.append(f"  title = {{{latex.protect_title(esc(title), title)}}}")
    journal = get("journal")
    if journal:
        if entry_type in ("incollection", "inproceedings"):
            container = "booktitle"
        else:
            container = "journaltitle" if biblatex else "journal"
        fields.append(f"  {container} = {{{esc(str(journal))}}}")
    year = get("year")
    if year is not None:
        fields.append(f"  {'date' if biblatex else 'year'} = {{{year}}}")
    volume = get("volume")
    if volume is not None and volume != "":
        fields.append(f"  volume = {{{esc(str(volume))}}}")
    issue = get("issue")
    if issue is not None and issue != "":
        # biblatex's `number` is a journal's issue number; its `issue` field is for designations such as
        # "Spring" or "Suppl 1" (biblatex manual, 2.2.2), and pandoc ignores a numeric `issue`.
        # Classic BibTeX styles (plain, unsrt, abbrv...) warn "there's a number but no volume" for an
        # article with a `number` and no `volume`: there the issue goes in `issue`, a field bibtex ignores
        # without a word and our reader reads back.
        numeric = _NUMERIC_ISSUE_RE.match(str(issue)) is not None
        if biblatex:
            name = "number" if numeric else "issue"
        else:
            name = "number" if volume is not None and volume != "" else "issue"
        fields.append(f"  {name} = {{{esc(str(issue))}}}")
    pages = get("pages")
    if pages:
        fields.append(f"  pages = {{{esc(str(pages)).replace('-', '--')}}}")
    for name, field in (("eid", "article_number"), ("publisher", "publisher")):
        value = get(field)
        if value:
            fields.append(f"  {name} = {{{esc(str(value))}}}")
    # DOI and URL are verbatim fields in biblatex and go through \url/\doi in bibtex styles: no escaping.
    for name in ("doi", "issn"):
        value = get(name)
        if value:
            fields.append(f"  {name} = {{{value}}}")
    pmid = get("pmid")
    if pmid:
        if biblatex:
            fields.append(f"  eprint = {{{pmid}}}")
            fields.append("  eprinttype = {pubmed}")
        else:
            fields.append(f"  pmid = {{{pmid}}}")
    for name in ("pmcid", "url"):
        value = get(name)
        if value:
            fields.append(f"  {name} = {{{value}}}")
    language = get("language")
    if language:
        if not biblatex:
            fields.append(f"  language = {{{esc(str(language))}}}")
        elif language in _LANGIDS:
            fields.append(f"  langid = {{{_LANGIDS[language]}}}")
    abstract = get("abstract")
    if abstract:
        fields.append(f"  abstract = {{{esc(str(abstract))}}}")
    keywords = evidence_keywords(study)
    if keywords:
        fields.append(f"  keywords = {{{esc(', '.join(keywords))}}}")
    note = evidence_note_lines(study, fields=False, notes=False)
    if note:
        text = esc(note[0]) if len(note) == 1 else "\n    ".join([esc(line) for line in note])
        fields.append(f"  note = {{{text}}}")
    for name, field in _EXTRA_FIELDS:
        value = get(field)
        if value is not None and value != "":
            fields.append(f"  {name} = {{{esc(str(value))}}}")
    notes = get("notes")
    if notes:
        fields.append(f"  {'annotation' if biblatex else 'annote'} = {{{esc(str(notes))}}}")
    return f"@{entry_type}{{{key},\n" + ",\n".join(fields) + "\n}\n\n"


def _authors(authors: list[dict[str, Any]], esc: Callable[[str], str]) -> str:
    """The `author` value: `Family, Given and ...`, organisations and unsplittable names in braces."""
    # The common case, people with a given name and a family name that needs no braces, in one escape
    # call: escaping works character by character (braces aside) and never adds or removes a space, a
    # comma or " and ", so escaping the joined names is joining the escaped names.
    parts = []
    for author in authors:
        given = author.get("given")
        family = str(author.get("family") or "")
        if author.get("name") or not given or "," in family or " and " in family:
            return " and ".join([_name(a, esc) for a in authors])
        parts.append(f"{family}, {given}")
    joined = " and ".join(parts)
    if "{" in joined or "}" in joined:  # braces are escaped one way or another depending on the value
        return " and ".join([_name(a, esc) for a in authors])
    return esc(joined)


def _name(author: dict[str, Any], esc: Callable[[str], str]) -> str:
    if author.get("name"):
        # An organisation is one literal name: the extra braces stop bibtex splitting it into parts.
        return "{" + esc(str(author["name"])) + "}"
    family = esc(str(author.get("family") or ""))
    if " and " in family or "," in family:
        family = "{" + family + "}"
    given = author.get("given")
    if given:
        return f"{family}, {esc(str(given))}"
    # No given name: braces keep a multi-word family name in one piece (bibtex rejects "Family," with a
    # trailing comma). BibTeX cannot tell this from an organisation, so it comes back as one literal name.
    return "{" + family + "}" if " " in family else family


_EXTRA_FIELDS = (("condition", "condition"), ("bodyregion", "body_region"), ("samplesize", "sample_size"))


# --- import --------------------------------------------------------------------------------------

_HEAD_RE = re.compile(r"@\s*([A-Za-z][\w-]*)\s*([{(])\s*")
_KEY_RE = re.compile(r"([^\s,{}()=\"]*)\s*([,})])")
# The common field shape in one regex: name = {no nested braces} | "no braces" | 123, then , or close.
_FAST_FIELD_RE = re.compile(
    r'\s*([A-Za-z_][^\s=,{}"#()]*)\s*=\s*(?:\{([^{}]*)\}|"([^"{}]*)"|(\d+))\s*([,})])'
)
_NAME_RE = re.compile(r'\s*([A-Za-z_][^\s=,{}"#()]*)\s*=\s*')
_BRACE_RE = re.compile(r"[{}]")
_QUOTE_RE = re.compile(r'[{}"]')
_NUMBER_RE = re.compile(r"\d+")
_MACRO_RE = re.compile(r'[^\s=,{}"#()]+')
_WS_RE = re.compile(r"\s*")
_MONTHS = {
    m: str(i)
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


class _Incomplete(Exception):
    """The chunk ended inside an entry (a field line started with '@'): read on."""


class _Entry:
    __slots__ = ("fields", "key", "kind", "repeated")

    def __init__(self, kind: str, key: str, fields: dict[str, str], repeated: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.key = key
        self.fields = fields
        self.repeated = repeated  # fields given more than once (the first value is kept)


def _chunks(stream: TextIO) -> Iterator[tuple[int, str]]:
    """Text from one line starting with '@' up to the next, with its 1-based start line."""
    buf: list[str] = []
    start = 0
    for lineno, line in enumerate(stream, start=1):
        if line.lstrip().startswith("@"):
            if buf:
                yield start, "".join(buf)
            buf = [line]
            start = lineno
        elif buf:
            buf.append(line)
    if buf:
        yield start, "".join(buf)


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.macros: dict[str, str] = dict(_MONTHS)

    def error(self, text: str, start: int, pos: int, message: str) -> ImportFormatError:
        return ImportFormatError(self.path, start + text.count("\n", 0, pos), message)

    def entries(self, stream: TextIO) -> Iterator[tuple[int, _Entry]]:
        pending: tuple[int, str] | None = None
        for start, text in _chunks(stream):
            if pending is not None:
                start, text = pending[0], pending[1] + text
                pending = None
            try:
                entry = self.parse(text, start)
            except _Incomplete:
                pending = (start, text)
                continue
            if entry is not None:
                yield start, entry
        if pending is not None:
            start, text = pending
            head = _HEAD_RE.match(text, text.index("@"))
            close = ")" if head and head.group(2) == "(" else "}"
            raise ImportFormatError(
                self.path, start, f"this entry is never closed: expected '{close}' before the end of the file"
            )

    def parse(self, text: str, start: int) -> _Entry | None:
        at = text.index("@")
        head = _HEAD_RE.match(text, at)
        if head is None:
            raise self.error(text, start, at, "expected an entry like '@article{key,' after '@'")
        kind = head.group(1).lower()
        close = "}" if head.group(2) == "{" else ")"
        pos = head.end()
        if kind == "comment":
            return None
        if kind == "preamble":
            self.value(text, start, pos)  # only to find its end (or _Incomplete)
            return None
        if kind == "string":
            fields, _ = self.fields(text, start, pos, close)
            self.macros.update(fields)
            return None
        key_match = _KEY_RE.match(text, pos)
        if key_match is None:
            if "," not in text[pos:] and close not in text[pos:]:
                raise _Incomplete
            raise self.error(
                text, start, pos, "expected a citation key followed by ',' after '@" + kind + "{'"
            )
        key = key_match.group(1)
        if key_match.group(2) == close:
            return _Entry(kind, key, {})
        repeated: list[str] = []
        fields, _ = self.fields(text, start, key_match.end(), close, repeated)
        return _Entry(kind, key, fields, tuple(dict.fromkeys(repeated)))

    def fields(
        self, text: str, start: int, pos: int, close: str, repeated: list[str] | None = None
    ) -> tuple[dict[str, str], int]:
        """The fields from ``pos`` to the entry's close, and where it ends; the name of a field given
        again is appended to ``repeated`` (BibTeX keeps the first value, and so do we)."""
        fields: dict[str, str] = {}
        end = len(text)
        while True:
            fast = _FAST_FIELD_RE.match(text, pos)
            if fast is not None and (fast.group(5) == "," or fast.group(5) == close):
                name = fast.group(1).lower()
                value = fast.group(2)
                if value is None:
                    value = fast.group(3) if fast.group(3) is not None else fast.group(4)
                if name in fields and repeated is not None:
                    repeated.append(name)
                fields.setdefault(name, value)
                pos = fast.end()
                if fast.group(5) == close:
                    return fields, pos
            else:
                pos = _WS_RE.match(text, pos).end()  # type: ignore[union-attr]
                if pos >= end:
                    raise _Incomplete
                if text[pos] == close:
                    return fields, pos + 1
                name_match = _NAME_RE.match(text, pos)
                if name_match is None:
                    raise self.error(
                        text, start, pos, f"expected 'field = value' or '{close}' to close the entry"
                    )
                name = name_match.group(1).lower()
                value, value_end = self.value(text, start, name_match.end())
                if name in fields and repeated is not None:
                    repeated.append(name)
                fields.setdefault(name, value)
                pos = _WS_RE.match(text, value_end).end()  # type: ignore[union-attr]
                if pos >= end:
                    raise _Incomplete
                if text[pos] == close:
                    return fields, pos + 1
                if text[pos] != ",":
                    raise self.error(
                        text, start, value_end, f"expected ',' or '{close}' after the value of field '{name}'"
                    )
                pos += 1
            # After a comma: the entry may close right away (trailing comma).
            ws_end = _WS_RE.match(text, pos).end()  # type: ignore[union-attr]
            if ws_end < end and text[ws_end] == close:
                return fields, ws_end + 1

    def value(self, text: str, start: int, pos: int) -> tuple[str, int]:
        parts: list[str] = []
        end = len(text)
        while True:
            pos = _WS_RE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                raise _Incomplete
            char = text[pos]
            if char == "{" or char == "(":
                depth = 0
                closer = "}" if char == "{" else ")"
                pattern = _BRACE_RE if char == "{" else re.compile(r"[()]")
                for match in pattern.finditer(text, pos):
                    depth += 1 if match.group(0) != closer else -1
                    if depth == 0:
                        parts.append(text[pos + 1 : match.start()])
                        pos = match.end()
                        break
                else:
                    raise _Incomplete
            elif char == '"':
                depth = 0
                for match in _QUOTE_RE.finditer(text, pos + 1):
                    token = match.group(0)
                    if token == "{":
                        depth += 1
                    elif token == "}":
                        depth -= 1
                    elif depth == 0:
                        parts.append(text[pos + 1 : match.start()])
                        pos = match.end()
                        break
                else:
                    raise _Incomplete
            elif char.isdigit():
                number = _NUMBER_RE.match(text, pos)
                assert number is not None
                parts.append(number.group(0))
                pos = number.end()
            else:
                macro = _MACRO_RE.match(text, pos)
                if macro is None:
                    raise self.error(
                        text, start, pos, 'expected a value in {braces}, "quotes", a number or a @string name'
                    )
                parts.append(self.macros.get(macro.group(0).lower(), macro.group(0)))
                pos = macro.end()
            after = _WS_RE.match(text, pos).end()  # type: ignore[union-attr]
            if after < end and text[after] == "#":
                pos = after + 1
                continue
            return "".join(parts), pos


def read_bibtex(stream: TextIO, path: str = "<stdin>") -> Iterator[StudyRow]:
    """Yield a study dict per BibTeX/BibLaTeX entry, streaming; `ImportFormatError` names the line."""
    parser = _Parser(path)
    for line, entry in parser.entries(stream):
        yield _study_from_entry(entry, line, path)


_AND_RE = re.compile(r"\s+and\s+", re.IGNORECASE)
_AND_OR_BRACE_RE = re.compile(r"[{}]|\s+and\s+", re.IGNORECASE)


def _split_top(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Split on `pattern` only at brace depth 0 (pattern must also match '{' and '}')."""
    parts, depth, last = [], 0, 0
    for match in pattern.finditer(text):
        token = match.group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif depth == 0:
            parts.append(text[last : match.start()])
            last = match.end()
    parts.append(text[last:])
    return parts


def _is_wrapped(name: str) -> bool:
    """True for `{World Health Organization}`: one brace group spanning the whole name."""
    if not (name.startswith("{") and name.endswith("}")):
        return False
    depth = 0
    for index, char in enumerate(name):
        depth += char == "{"
        depth -= char == "}"
        if depth == 0 and index < len(name) - 1:
            return False
    return True


_COMMA_OR_BRACE_RE = re.compile(r"[{},]")
_SPACE_OR_BRACE_RE = re.compile(r"[{}]|\s+")


def parse_names(value: str) -> list[dict[str, Any]]:
    """BibTeX `author` value -> author dicts (organisations in extra braces stay one literal name)."""
    raw_names = _split_top(value, _AND_OR_BRACE_RE) if "{" in value else _AND_RE.split(value)
    authors: list[dict[str, Any]] = []
    for raw in raw_names:
        name = " ".join(raw.split())
        if not name or name.lower() == "others":
            continue
        if _is_wrapped(name):
            authors.append({"name": latex.decode(name[1:-1])})
            continue
        parts = _split_top(name, _COMMA_OR_BRACE_RE) if "{" in name else name.split(",")
        if len(parts) >= 2:
            family = parts[0].strip()
            given = parts[-1].strip()
            if len(parts) == 3 and parts[1].strip():  # von Last, Jr, First
                family = f"{family} {parts[1].strip()}"
        else:
            words = [w for w in _split_top(name, _SPACE_OR_BRACE_RE) if w]
            # Family is the last word, with any lower-case particles before it (van der, de la).
            split = len(words) - 1
            while split > 1 and words[split - 1][:1].islower():
                split -= 1
            family = " ".join(words[split:])
            given = " ".join(words[:split])
        authors.append(person(latex.decode(family), latex.decode(given) if given else None))
    return authors


def _study_from_entry(entry: _Entry, line: int, path: str) -> StudyRow:
    f = entry.fields
    study = empty_study()
    study["_line"] = line
    study["citekey"] = entry.key or None
    study["publication_type"] = _PUBLICATION_TYPES.get(entry.kind)
    if entry.repeated:
        study["_warnings"] = [f"field '{name}' given twice; kept the first" for name in entry.repeated]

    def text(*names: str) -> str | None:
        for name in names:
            value = f.get(name)
            if value is not None:
                decoded = latex.decode(value).strip()
                if decoded:
                    return decoded
        return None

    title = text("title")
    if title is None:
        raise ImportFormatError(path, line, f"entry '{entry.key}' has no title (expected 'title = {{...}}')")
    study["title"] = title
    if f.get("author"):
        study["authors"] = parse_names(f["author"])
    study["journal"] = text("journal", "journaltitle", "booktitle")
    raw_year = f.get("year") or f.get("date")
    if raw_year:
        study["year"] = year_from(raw_year)
        if study["year"] is None:
            raise ImportFormatError(
                path, line, f"entry '{entry.key}': expected a four-digit year, got {quoted(raw_year)}"
            )
    study["volume"] = text("volume")
    study["issue"] = text("number", "issue")
    study["pages"] = normalise_pages(text("pages"))
    study["article_number"] = text("eid")
    study["publisher"] = text("publisher")
    doi = f.get("doi")
    if doi:
        study["doi"] = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", "", doi.strip(), flags=re.I).replace(
            "\\_", "_"
        )
    study["issn"] = text("issn")
    pmid = f.get("pmid")
    if not pmid and (f.get("eprinttype") or "").strip().lower() == "pubmed":
        pmid = f.get("eprint")
    study["pmid"] = pmid.strip() if pmid else None
    study["pmcid"] = text("pmcid")
    if f.get("url"):
        study["url"] = f["url"].strip().replace("\\_", "_").replace("\\%", "%").replace("\\&", "&")
    language = text("langid", "language")
    if language:
        study["language"] = _LANG_CODES.get(
            language.lower(), language.lower() if len(language) <= 3 else language
        )
    raw_abstract = f.get("abstract")
    study["abstract"] = (
        latex.decode(raw_abstract, keep_newlines=True).strip() or None if raw_abstract else None
    )
    keywords = text("keywords")
    if keywords:
        apply_keywords(study, re.split(r"[,;]", keywords))
    note = f.get("note")
    if note:
        # Our note lines are separated by newlines; decode each line on its own so they survive.
        apply_note_lines(study, (latex.decode(part) for part in note.split("\n")))
    study["condition"] = text("condition")
    study["body_region"] = text("bodyregion")
    sample = text("samplesize")
    if sample is not None:
        study["sample_size"] = int(sample) if sample.isascii() and sample.isdigit() else None
    raw_annote = f.get("annote") or f.get("annotation")
    annote = latex.decode(raw_annote, keep_newlines=True).strip() if raw_annote else None
    if annote:
        study["notes"] = f"{study['notes']}\n{annote}" if study.get("notes") else annote
    return finalize_imported(study)
