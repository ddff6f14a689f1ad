"""Pure normalisation and validation of DOIs, PMIDs and PMCIDs. No I/O."""

from __future__ import annotations

import re
from urllib.parse import unquote

from evidence.errors import InvalidIdentifier, quoted

_DOI_PREFIXES = (
    "https://doi.org/",
    "http://doi.org/",
    "https://dx.doi.org/",
    "http://dx.doi.org/",
    "doi.org/",
    "dx.doi.org/",
    "doi:",
)
# Crossref's own advice: 10.<registrant, 4-9 digits, dotted parts allowed>/<any suffix without spaces>.
_DOI_RE = re.compile(r"^10\.[0-9]{4,9}(\.[0-9]+)*/\S+$")
_PMID_RE = re.compile(r"^[0-9]{1,9}$")
_PMCID_RE = re.compile(r"^PMC[0-9]{1,9}$")


def normalize_doi(value: str) -> str:
    """Lower-case DOI without resolver prefix; raises InvalidIdentifier if it is not a DOI."""
    text = value.strip()
    lowered = text.lower()
    for prefix in _DOI_PREFIXES:
        if lowered.startswith(prefix):
            # A resolver URL may be percent-encoded (10.4085%2F1062-6050...); a bare DOI is taken as is.
            text = unquote(text[len(prefix) :])
            break
    doi = text.strip().lower()
    if not _DOI_RE.match(doi):
        raise InvalidIdentifier(f"not a DOI: {quoted(value)} (expected 10.NNNN/suffix)")
    return doi


def is_doi(value: str) -> bool:
    try:
        normalize_doi(value)
    except InvalidIdentifier:
        return False
    return True


def normalize_pmid(value: str | int) -> str:
    """PMID as a digit string without leading zeros; raises InvalidIdentifier otherwise."""
    text = str(value).strip()
    if text.lower().startswith("pmid:"):
        text = text[5:].strip()
    if not _PMID_RE.match(text) or int(text) == 0:
        raise InvalidIdentifier(f"not a PMID: {quoted(value)} (expected 1 to 9 digits)")
    return str(int(text))


def normalize_pmcid(value: str) -> str:
    """PMCID as ``PMC`` + digits; a bare number gets the prefix."""
    text = value.strip().upper()
    if text.isascii() and text.isdigit():
        text = "PMC" + text
    if not _PMCID_RE.match(text):
        raise InvalidIdentifier(f"not a PMCID: {quoted(value)} (expected PMC followed by digits)")
    return text
