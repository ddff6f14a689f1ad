"""LaTeX escaping for BibTeX/BibLaTeX values, and decoding of LaTeX found in imported fields.

Escaping choice (documented in the export docs):

* The ten special characters are always escaped. Literal `{` and `}` become `\\{` `\\}` when they pair
  up, else `\\textbraceleft{}` / `\\textbraceright{}`: BibTeX counts escaped braces when it balances a
  field, so one unpaired `\\{` would break the whole .bib file (pandoc drops \\textbraceleft, hence the
  paired form where it is safe).
* Non-ASCII: `bibtex` output (classic bibtex 0.99, 8-bit, abbreviates given names byte by byte) gets
  accented Latin letters as brace-protected LaTeX commands (`{\\"u}`, `{\\L}`) so that sorting, purify$
  and initials work, and en/em dashes as `--`/`---`; other symbols (®, ≥, curly quotes) stay UTF-8, which
  LaTeX, biber and pandoc read (pandoc's BibTeX reader drops `\\textregistered` and friends). `biblatex`
  output (biber, Unicode-aware) keeps UTF-8 as is. A literal `--` is written `-{}-`.
* Decoding on import runs only on fields that contain a backslash or a brace: pylatexenc is slow (a large
  import cannot afford it on every field), and a field without either is plain text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import compress, count
from operator import itemgetter, ne
from typing import Any

_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\textbraceleft{}",
    "}": r"\textbraceright{}",
    "%": r"\%",
    "&": r"\&",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_SPECIALS_TABLE = str.maketrans(_SPECIALS)
# Literal braces that pair up are written \{ \} (what pandoc and LaTeX read); bibtex counts them like
# any brace, which is harmless when they balance.
_SPECIALS_BALANCED_TABLE = str.maketrans(_SPECIALS | {"{": r"\{", "}": r"\}"})

# Our own escapes that pylatexenc decodes wrongly (it drops \textbraceleft and turns \textasciicircum into
# a modifier letter): swapped for private-use placeholders before decoding and restored after.
_PLACEHOLDERS = {
    r"\textbraceleft{}": "\ue000",
    r"\textbraceright{}": "\ue001",
    r"\textasciicircum{}": "\ue002",
    r"\textasciitilde{}": "\ue003",
    r"\textbackslash{}": "\ue004",
    r"\{": "\ue000",
    r"\}": "\ue001",
}
_RESTORE = str.maketrans({"\ue000": "{", "\ue001": "}", "\ue002": "^", "\ue003": "~", "\ue004": "\\"})
_RESTORE_BRACES = str.maketrans("", "", "{}")
_PLACEHOLDER_RE = re.compile("|".join(re.escape(k) for k in _PLACEHOLDERS))


_DOUBLE_HYPHEN_RE = re.compile(r"-(?=-)")


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def escape(text: str, *, ascii_only: bool) -> str:
    """Escape `text` for a BibTeX value; with `ascii_only`, accented Latin letters become LaTeX commands
    and dashes TeX ligatures (see the module docstring)."""
    return escape_ascii(text) if ascii_only else escape_utf8(text)


def escape_utf8(text: str) -> str:
    """`escape(text, ascii_only=False)`: the BibLaTeX form, UTF-8 kept."""
    # Substring tests (a memchr each) rather than a regex or a frozenset: an abstract is scanned ten times
    # faster, and the common values need nothing. str.translate with a mapping to strings costs a
    # dictionary look-up per character, so it only runs for the rare characters whose escape is not just
    # a backslash in front (`\\{}~^`).
    if "\\" in text or "{" in text or "}" in text or "~" in text or "^" in text:
        table = _SPECIALS_TABLE
        if ("{" in text or "}" in text) and _balanced(text):
            table = _SPECIALS_BALANCED_TABLE
        text = text.translate(table)
    elif "%" in text or "&" in text or "$" in text or "#" in text or "_" in text:
        for char, escaped in _SIMPLE_SPECIALS:
            if char in text:
                text = text.replace(char, escaped)
    if "--" in text:  # TeX reads -- and --- as dashes: keep literal hyphens apart
        text = _DOUBLE_HYPHEN_RE.sub("-{}", text)
    return text


_SIMPLE_SPECIALS = tuple((char, "\\" + char) for char in "%&$#_")


def escape_ascii(text: str) -> str:
    """`escape(text, ascii_only=True)`: the classic BibTeX form, accented letters as LaTeX commands."""
    text = escape_utf8(text)
    if not text.isascii():  # a regex visits only the non-ASCII characters (an abstract has few)
        text = _NON_ASCII_RE.sub(_ascii_match, text)
    return text


_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")


def _ascii_match(match: re.Match[str]) -> str:
    return _ascii_form(match.group())


@lru_cache(maxsize=4096)
def _ascii_form(char: str) -> str:
    if char == "\u2013":
        return "--"
    if char == "\u2014":
        return "---"
    if not unicodedata.name(char, "").startswith("LATIN"):
        # Symbols (®, ≥, Greek letters, curly quotes) stay UTF-8: they have no effect on how bibtex sorts or
        # abbreviates, and LaTeX (utf8 is the default input encoding), biber and pandoc read them, while
        # commands like \textregistered are dropped by pandoc's BibTeX reader.
        return char
    encoded: str = _encoder().unicode_to_latex(char)
    return encoded


@lru_cache(maxsize=1)
def _encoder() -> Any:
    # pylatexenc ships no type hints (a bibtexparser 2 dependency, used for the rare LaTeX we do not
    # decode ourselves).
    from pylatexenc.latexencode import UnicodeToLatexEncoder

    # 'braces-all' gives {\"u}: the form BibTeX treats as one "special character" when it sorts,
    # purifies and abbreviates names. Unknown characters stay UTF-8 rather than becoming '?'.
    return UnicodeToLatexEncoder(
        non_ascii_only=True, replacement_latex_protection="braces-all", unknown_char_policy="keep"
    )


@lru_cache(maxsize=1)
def _decoder() -> Any:
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(math_mode="text", strict_latex_spaces=True)


_COMBINING = {
    "`": "\u0300",
    "'": "\u0301",
    "^": "\u0302",
    "~": "\u0303",
    "=": "\u0304",
    "u": "\u0306",
    ".": "\u0307",
    '"': "\u0308",
    "r": "\u030a",
    "H": "\u030b",
    "v": "\u030c",
    "d": "\u0323",
    "c": "\u0327",
    "k": "\u0328",
    "b": "\u0331",
}
_SYMBOLS = {
    "ss": "ß",
    "o": "ø",
    "O": "Ø",
    "l": "ł",
    "L": "Ł",
    "ae": "æ",
    "AE": "Æ",
    "oe": "œ",
    "OE": "Œ",
    "aa": "å",
    "AA": "Å",
    "i": "\u0131",
    "j": "\u0237",  # dotless i and j
}
# The accents and escapes that make up nearly all LaTeX in real .bib files ({\"u}, \'e, \c{c}, {\L},
# \&), decoded with regexes; anything else goes to pylatexenc, which costs ~300 us a call.
_ACCENT_RE = re.compile(
    r"""\\([`'^"~=.])\s*(?:\{\s*(\\?[A-Za-z])\s*\}|(\\?[A-Za-z]))"""
    r"""|\\([uvHckrbd])(?:\s*\{\s*(\\?[A-Za-z])\s*\}|\s+([A-Za-z]))"""
    r"""|\\(ss|ae|AE|oe|OE|aa|AA|[oOlLij])(?![A-Za-z])(?:\{\}|\s+)?"""
    r"""|\\([&%$#_])"""
)


def _accent(match: re.Match[str]) -> str:
    if match.group(7):
        return _SYMBOLS[match.group(7)]
    if match.group(8):
        return match.group(8)
    accent = match.group(1) or match.group(4)
    letter = match.group(2) or match.group(3) or match.group(5) or match.group(6)
    letter = {"\\i": "i", "\\j": "j"}.get(letter, letter)
    return unicodedata.normalize("NFC", letter + _COMBINING[accent])


@lru_cache(maxsize=65536)
def decode(text: str, *, keep_newlines: bool = False) -> str:
    """Plain text of a BibTeX value: LaTeX commands decoded, protecting braces removed, runs of
    whitespace collapsed (line breaks kept with `keep_newlines`, for notes).

    Values with neither a backslash nor a brace only have their whitespace normalised (the fast path).
    Cached: author names and journal titles repeat across a library.
    """
    if keep_newlines and "\n" in text:
        lines = decode(text.replace("\n", "\ue005")).split("\ue005")
        return "\n".join(line.strip() for line in lines)
    if "\\" in text:
        text = _PLACEHOLDER_RE.sub(lambda m: _PLACEHOLDERS[m.group(0)], text)
        if "\\" not in text and "--" in text:
            text = text.replace("---", "\u2014").replace("--", "\u2013")
        if "\\" in text:
            fast = _ACCENT_RE.sub(_accent, text)
            if "\\" in fast:
                text = _decoder().latex_to_text(text).replace("\xa0", " ")
            else:
                text = fast.replace("~", " ").replace("---", "\u2014").replace("--", "\u2013")
        text = text.translate(_RESTORE_BRACES)
        return " ".join(text.split()).translate(_RESTORE)
    if "--" in text:
        text = text.replace("---", "\u2014").replace("--", "\u2013")
    if "{" in text or "}" in text:
        text = text.translate(_RESTORE_BRACES)
    if "~" in text:  # a tie (unbreakable space); our exports write a literal tilde as \textasciitilde{}
        text = text.replace("~", " ")
    return " ".join(text.split())


def protect_title(escaped: str, original: str) -> str:
    """Wrap words whose capitals must survive a style's case change in braces.

    Sentence-case titles (most words lower case): every capitalised word after the first, except the
    word after a colon (bibtex keeps that one itself). Title-case titles: only acronyms and words with
    an inner capital (IASTM, McKenzie), since protecting every word would stop styles lowercasing.
    """
    words = escaped.split()
    if not words:
        return escaped
    # Only words that lower() changes can need braces: found by comparing with the lowered title in C
    # (lower() never makes or removes whitespace), which keeps the per-word loop off the common path.
    changed = list(compress(count(), map(ne, words, escaped.lower().split())))
    if not changed:
        return " ".join(words)
    sentence_case: bool | None = None
    out = list(words)
    for index in changed:
        word = words[index]
        letters = list(filter(str.isalpha, word))
        if not letters:
            continue
        if any(map(str.isupper, letters[1:])):
            out[index] = "{" + word + "}"
        elif index > 0 and letters[0].isupper() and not words[index - 1].endswith(":"):
            if sentence_case is None:
                originals = original.split()
                capitalised = sum(map(str.isupper, map(itemgetter(0), originals)))  # first letters
                sentence_case = capitalised <= max(1, len(originals) // 2)
            if sentence_case:
                out[index] = "{" + word + "}"
    return " ".join(out)
