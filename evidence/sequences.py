"""Two small sequence helpers shared across the library, kept in a module of their own (nothing but the
standard library) so that importing them costs nothing: `evidence.records` is on every command's path,
and `evidence.formats` loads every citation format."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def letters(n: int) -> str:
    """The n-th (from 1) of a, b, ... z, aa, ab, ...: citekey suffixes, and upper-cased, spreadsheet
    columns."""
    text = ""
    while n:
        n, rem = divmod(n - 1, 26)
        text = chr(97 + rem) + text
    return text


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), consumed as they are needed."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
