"""Fitting a listing into the terminal: how wide each column is, and where its text may break.

`plan_columns` gives each column a width so that the whole table fits `width` cells; `fit_cell` then lays
a cell's text out in its column. The rules a clinician reading a listing relies on:

* a word is never broken inside: text breaks at spaces, and inside a word only after a hyphen, a colon, a
  semicolon, a comma or a slash, or between a year and the word after it (`javeria2023|effectiveness`);
  so `non-randomised-controlled-trial` may fold as `non-randomised-` / `controlled-trial`, never as
  `non-randomised-contr` / `olled-trial`;
* a title (`CUT_COLUMNS`) takes one line and is cut with an ellipsis (the whole title is in `show` and
  in JSON/CSV);
* prose (`PROSE_COLUMNS`: a description, a reason) wraps at spaces and may give up a little of its width
  first; when even the narrowest layout does not fit, prose columns are left out (last first), and the
  caller says so;
* an identifier (`IDENTIFIER_COLUMNS`: a citekey, a DOI) is not a word: when nothing else is left to
  give, it folds inside a piece too.

Widths are terminal cells (rich's `cell_len`), so wide characters count double. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

CUT_COLUMNS = frozenset({"title", "study_title"})
PROSE_COLUMNS = frozenset({"description", "why", "reasons", "detail", "note", "conflicts", "filled"})
# Identifiers, not words: as a last resort one may fold anywhere ("kwong2009biolumin" / "escence").
IDENTIFIER_COLUMNS = frozenset({"citekey", "doi", "study", "other", "best_candidate", "url", "updates"})
IDENTIFIER_MIN = 11
CUT_MIN = 12  # a title narrower than this says nothing ("The effect…" is 11)
PROSE_MIN = 16
COMFORTABLE = 30  # what a title or prose column keeps before the other columns start to fold
ELLIPSIS = "\u2026"

# A piece of a word ends after one of these, or where a run of digits meets a letter (a citekey's year).
_PIECE = re.compile(r"[^\-:;,/]*?(?:[\-:;,/]+|(?<=\d)(?=[^\W\d_])|$)")


def cell_len(text: str) -> int:
    from rich.cells import cell_len as rich_cell_len

    return int(rich_cell_len(text))


def pieces(word: str) -> list[str]:
    """The unbreakable pieces of one word (no spaces inside), in order; joined they give the word back."""
    return [p for p in _PIECE.findall(word) if p]


def _lines(text: str) -> list[str]:
    return text.split("\n") if text else [""]


def natural_width(texts: Sequence[str]) -> int:
    return max((cell_len(line) for text in texts for line in _lines(text)), default=0)


def narrowest(texts: Sequence[str]) -> int:
    """The width below which some piece of a word would have to be split."""
    return max((cell_len(p) for text in texts for word in text.split() for p in pieces(word)), default=0)


@dataclass(frozen=True)
class Plan:
    """Column widths (same order as the columns kept), the gap between columns, and what was left out."""

    columns: list[str]
    widths: list[int]
    gap: int
    left_out: list[str]


def plan_columns(
    columns: Sequence[str], header: dict[str, str], cells: dict[str, list[str]], width: int
) -> Plan:
    """Widths for `columns` (their header text and every cell's text) within `width` terminal cells.

    In order, the first layout that fits: every column at its natural width, two spaces between columns,
    then one; then (one space) the title or prose column down to `COMFORTABLE` cells and the other columns
    folded (the one furthest above its floor first) down to their longest piece; then the title and prose
    down to their minimum too. When even that does not fit, prose columns are left out,
    the last first, and the whole search starts again."""
    floors = {c: _floors(c, header, cells) for c in columns}  # once: each look is over every cell
    kept = list(columns)
    left_out: list[str] = []
    while True:
        for gap, stage in ((2, 0), (1, 0), (1, 1), (1, 2)):
            widths = _shrink(kept, floors, width - gap * (len(kept) - 1), stage)
            if widths is not None:
                return Plan(kept, widths, gap, left_out)
        prose = [c for c in kept if c in PROSE_COLUMNS]
        if not prose or len(kept) == 1:
            break
        kept.remove(prose[-1])
        left_out.append(prose[-1])
    widths = _shrink(kept, floors, width - (len(kept) - 1), 3)
    if widths is None:
        # The narrowest layout, wider than asked (only a very narrow terminal).
        widths = [floors[c][3] for c in kept]
    return Plan(kept, widths, 1, left_out)


def _floors(column: str, header: dict[str, str], cells: dict[str, list[str]]) -> tuple[int, int, int, int]:
    """Widths a column can take, widest first: its widest line; what it keeps through stage 1 (a title and
    prose `COMFORTABLE` cells, an identifier its whole width, a word its longest piece); its longest piece;
    the least it can take (a title's and prose's minimum, an identifier folded inside a piece)."""
    natural = natural_width([header[column], *cells[column]])
    head = narrowest([header[column]])
    longest_piece = max(head, narrowest(cells[column]))
    if column in CUT_COLUMNS or column in PROSE_COLUMNS:
        least = max(head, min(natural, CUT_MIN if column in CUT_COLUMNS else PROSE_MIN))
        soft = max(least, min(natural, COMFORTABLE))
        return natural, soft, least, least
    if column in IDENTIFIER_COLUMNS:
        return natural, natural, longest_piece, max(head, min(longest_piece, IDENTIFIER_MIN))
    return natural, longest_piece, longest_piece, longest_piece


def _shrink(
    columns: list[str], all_floors: dict[str, tuple[int, int, int, int]], room: int, stage: int
) -> list[int] | None:
    """Widths within `room`, or None. Stage 0: natural widths only; 1: the title and prose down to
    `COMFORTABLE`, words folded down to their longest piece; 2: the title and prose down to their
    minimum; 3: identifiers folded between pieces, then inside one."""
    floors = [all_floors[c] for c in columns]
    widths = [f[0] for f in floors]

    def reduce(indexes: list[int], level: int) -> None:
        # Take one cell at a time from the column furthest above its floor; when identifiers fold (level
        # 2 and 3), from the one with the longest text first, so that a list of notices folds before
        # the DOI beside it does.
        while sum(widths) > room:
            candidates = [i for i in indexes if widths[i] > floors[i][level]]
            if not candidates:
                return
            if level >= 2:
                widest = max(candidates, key=lambda i: (floors[i][0], widths[i]))
            else:
                widest = max(candidates, key=lambda i: (widths[i] - floors[i][level], widths[i]))
            widths[widest] -= 1

    every = list(range(len(columns)))
    flexible = [i for i in every if columns[i] in CUT_COLUMNS or columns[i] in PROSE_COLUMNS]
    if stage >= 1:
        reduce(flexible, 1)
        reduce(every, 1)
    if stage >= 2:
        reduce(flexible, 3)
    if stage >= 3:
        reduce(every, 2)
        reduce(every, 3)
    return widths if sum(widths) <= room else None


def fit_cell(text: str, column: str, width: int) -> str:
    """The cell's text laid out in `width` cells: a title cut with an ellipsis, anything else folded at
    spaces and between the pieces of a word (a piece wider than the column, which only prose can have,
    is folded where it must)."""
    if column in CUT_COLUMNS:
        return cut(" ".join(text.split()), width)
    out: list[str] = []
    for line in _lines(text):
        out.extend(_wrap(line, width))
    return "\n".join(out)


def cut(text: str, width: int) -> str:
    """`text` in one line of `width` cells, ending in an ellipsis when it had to be cut."""
    if cell_len(text) <= width:
        return text
    return _take(text, width - 1).rstrip() + ELLIPSIS


def _take(text: str, width: int) -> str:
    """The longest start of `text` that fits in `width` cells (at least one character)."""
    kept = text[:1]
    for char in text[1:]:
        if cell_len(kept + char) > width:
            break
        kept += char
    return kept


def _wrap(line: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in line.split():
        candidate = f"{current} {word}" if current else word
        if cell_len(candidate) <= width:
            current = candidate
            continue
        if current and cell_len(word) <= width:
            lines.append(current)
            current = word
            continue
        # The word does not fit on a line of its own: its pieces go on as they fit.
        if current:
            lines.append(current)
            current = ""
        for piece in pieces(word):
            if cell_len(current + piece) <= width:
                current += piece
                continue
            if current:
                lines.append(current)
                current = ""
            while cell_len(piece) > width:  # prose or an identifier: nowhere else to break
                head = _take(piece, width)
                lines.append(head)
                piece = piece[len(head) :]
            current = piece
    lines.append(current)
    return lines
