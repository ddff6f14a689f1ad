"""How studies are named: ASCII folding, the stop words, citekeys and the one allocator that keeps them
unique (in the library, and within an exported file). Standard library only, so the formats, the
matcher and the store can all use it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from evidence.sequences import letters

# Letters NFKD cannot take apart into an ASCII base and a mark (Ødegård, Wałęsa, Straße).
_TRANSLITERATE = str.maketrans({
    "Ø": "O", "ø": "o", "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ß": "ss", "Æ": "AE", "æ": "ae",
    "Œ": "OE", "œ": "oe", "Þ": "Th", "þ": "th", "\u0131": "i",
})  # fmt: skip

# Words that neither name a study (citekeys take the first other word) nor tell two titles apart.
STOPWORDS = frozenset(
    "a an the of on in for and or to with by at from as is are was were its into via vs versus".split()  # noqa: SIM905
)
# Characters a BibTeX key cannot hold (and a library citekey never has: records.check_citekey).
_UNSAFE = re.compile(r"[\s,{}()=#%\"'\\~]")


def ascii_fold(text: str) -> str:
    """``Müller`` -> ``Muller``, ``Ødegård`` -> ``Odegard``: the ASCII letters a reader would see."""
    folded = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    return folded.encode("ascii", "ignore").decode("ascii")


def citekey_base(family: str | None, year: int | None, title: str | None) -> str:
    """``loghmani2009instrument``: first author's family name, year, first significant title word (not a
    stop word, not a number)."""
    name = re.sub(r"[^a-z]", "", ascii_fold(family or "").lower()) or "anon"
    words = [re.sub(r"[^a-z0-9]", "", ascii_fold(w).lower()) for w in (title or "").split()]
    word = next((w for w in words if w and w not in STOPWORDS and not w.isdigit()), "")
    # Cut so that a key with its clash suffix fits the citekey column (VARCHAR(128)): a 2,000-letter
    # "word" made a key PostgreSQL refused.
    return f"{name[:40]}{year or ''}{word[:40]}"


def key_name(author: Mapping[str, Any] | None) -> str | None:
    """The name a citekey starts with: a person's family name, an organisation's first word."""
    if not author:
        return None
    if author.get("family"):
        return str(author["family"])
    return next(iter(str(author.get("name") or "").split()), None)


class CitekeyAllocator:
    """Hands out citekeys unique among `taken` and those it handed out before: the wanted key (without
    characters a BibTeX key cannot hold), else `citekey_base`; a clash gets a, b, ... z, aa, ...
    appended. The library's allocator starts from its citekeys, an export's from none."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken: set[str] = set(taken)
        self._next: dict[str, int] = {}  # per base, the suffix number to try next (keeps this linear)

    def allocate(self, wanted: str | None, family: str | None, year: int | None, title: str | None) -> str:
        base = _UNSAFE.sub("", wanted or "") or citekey_base(family, year, title)
        key, n = base, self._next.get(base, 0)
        while key in self.taken:
            n += 1
            key = base + letters(n)
        self._next[base] = n
        self.taken.add(key)
        return key

    def key_for(self, study: Mapping[str, Any]) -> str:
        """The key of a study dict (its own citekey, or one made from its first author, year, title)."""
        authors = study.get("authors") or []
        first = authors[0] if authors else None
        return self.allocate(study.get("citekey"), key_name(first), study.get("year"), study.get("title"))
