"""What every citation format shares: the study dict shape, the evidence keywords and note lines our
exports write (and our importers read back), citekeys, pages and names.

A *study dict* is the project's stable JSON row (what `evidence find --format json` emits). Exporters take
an iterable of them; importers yield them, plus `"_line"` (1-based line of the record's start) for error
reporting. Nothing here does I/O.

The evidence annotations travel in two layers, so that any reference manager keeps them:

* **keywords** (RIS `KW`, BibTeX `keywords`, CSL-JSON `keyword`), machine-readable tokens:
  `mechanism:neural-stimulation`, `claim:pain-modulation:supports`, `level:2`, `design:rct`, `pedro:7`,
  `population:human`, `status:retracted`; plain tags as themselves (`tag:` prefix when a tag has a colon).
* **note lines** (RIS `N1`, BibTeX `note`, CSL-JSON `note`), human-readable and parsed back:
  `RETRACTED: see 10.x/notice (2020-05-01) [retraction-watch]`,
  `Finding on pain-modulation (supports): ...`, `Condition: ...`, `Body region: ...`, `Sample size: 40`,
  and last `Notes: ...` (the curator's free text, may span lines).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from evidence.naming import CitekeyAllocator
from evidence.schema import LIST_FIELDS, ROW_FIELDS
from evidence.vocab import CLAIM_BY_NAME, DESIGN_LEVELS, MECHANISM_BY_NAME, POPULATIONS, STANCES

# A study as a plain dict: the JSON row (not the ORM class `evidence.store.models.Study`).
StudyRow = dict[str, Any]

# The study dict's keys, in order (also the CSV header): the study row.
STUDY_KEYS: tuple[str, ...] = ROW_FIELDS
LIST_KEYS: frozenset[str] = LIST_FIELDS


def empty_study() -> StudyRow:
    """A study dict with every key present: lists empty, everything else None."""
    return {key: ([] if key in LIST_KEYS else None) for key in STUDY_KEYS}


# --- status (retraction, correction, expression of concern) -------------------------------------

# Update type (Crossref's `update-to.type`, Retraction Watch) -> the label printed in notes and titles.
UPDATE_LABELS: dict[str, str] = {
    "retraction": "RETRACTED",
    "correction": "CORRECTED",
    "expression-of-concern": "EXPRESSION OF CONCERN",
}
STATUS_FOR_UPDATE: dict[str, str] = {
    "retraction": "retracted",
    "correction": "corrected",
    "expression-of-concern": "expression-of-concern",
}
STATUS_LABELS: dict[str, str] = {
    "retracted": "RETRACTED",
    "corrected": "CORRECTED",
    "expression-of-concern": "EXPRESSION OF CONCERN",
}
# Most severe first: a study both corrected and retracted is retracted.
STATUS_SEVERITY: tuple[str, ...] = ("retracted", "expression-of-concern", "corrected", "ok")
_LABEL_TO_UPDATE = {label: kind for kind, label in UPDATE_LABELS.items()}
_NOTICE_RE = re.compile(
    r"^(RETRACTED|CORRECTED|EXPRESSION OF CONCERN)(?:: see (\S+))?(?: \(([^)]*)\))?(?: \[([^\]]*)\])?\.?$"
)


def is_flagged(study: StudyRow) -> bool:
    """True when the study is retracted, corrected or under an expression of concern."""
    return study.get("status") not in (None, "", "ok")


def status_label(study: StudyRow) -> str | None:
    """`RETRACTED`, `CORRECTED`, `EXPRESSION OF CONCERN`, or None for a study in good standing."""
    status = study.get("status")
    return STATUS_LABELS.get(status) if isinstance(status, str) else None


def notice_lines(study: StudyRow) -> list[str]:
    """One line per update notice, e.g. `RETRACTED: see 10.x/y (2020-05-01) [retraction-watch]`.

    A flagged study without notices still gets one line (`RETRACTED.`), so the fact is never silent.
    """
    lines = []
    for update in study.get("updates") or []:
        kind = str(update.get("type") or "")
        label = UPDATE_LABELS.get(kind, kind.upper().replace("-", " ") or "UPDATED")
        line = label
        if update.get("doi"):
            line += f": see {update['doi']}"
        if update.get("date"):
            line += f" ({update['date']})"
        if update.get("source"):
            line += f" [{update['source']}]"
        lines.append(line)
    flag = status_label(study)
    if flag and not any(line.startswith(flag) for line in lines):
        lines.insert(0, f"{flag}.")
    return lines


def parse_notice_line(line: str) -> dict[str, Any] | None:
    """The update dict a notice line describes (None if the line is not a notice)."""
    match = _NOTICE_RE.match(line.strip())
    if not match:
        return None
    label, doi, date, source = match.groups()
    return {"type": _LABEL_TO_UPDATE[label], "doi": doi, "date": date, "source": source}


def most_severe(statuses: Iterable[str]) -> str:
    """The most severe of several statuses ("ok" when there are none)."""
    found = set(statuses)
    return next((s for s in STATUS_SEVERITY if s in found), "ok")


# --- keywords ------------------------------------------------------------------------------------


def evidence_keywords(study: StudyRow) -> list[str]:
    """The keyword tokens that carry mechanisms, claims with stance, level, design, PEDro, status, tags."""
    get = study.get
    keywords = [f"mechanism:{m}" for m in get("mechanisms") or ()]
    for claim in get("claims") or ():
        stance = claim.get("stance")
        keywords.append(f"claim:{claim['claim']}:{stance}" if stance else f"claim:{claim['claim']}")
    for key in ("level", "design", "pedro", "population"):
        value = get(key)
        if value is not None and value != "":
            keywords.append(f"{key}:{value}")
    status = get("status")
    if status is not None and status != "" and status != "ok":  # is_flagged
        keywords.append(f"status:{status}")
    for tag in get("tags") or ():
        keywords.append(f"tag:{tag}" if ":" in tag or "," in tag or ";" in tag else tag)
    return keywords


def _int_in(text: str, low: int, high: int) -> int | None:
    """`text` as an int in [low, high] when it is one written plainly (`7`, not ` 7` or `7.0`)."""
    if not text.isdigit() or not text.isascii() or len(text) > 9:  # 5,000 digits: int() refuses them
        return None
    number = int(text)
    return number if low <= number <= high else None


_STATUSES = frozenset(STATUS_SEVERITY)


def _our_keyword(keyword: str) -> tuple[str, Any] | None:
    """(field, value) when `keyword` is one of ours: our exact lower-case `prefix:value` form with a value
    from our vocabulary (or a number in range); None for anyone else's keyword (`Population: older adults`,
    `Mechanism: unknown`, `claim:unproven`), which is then kept as a plain tag."""
    prefix, sep, rest = keyword.partition(":")
    if not sep or not rest or rest != rest.strip():
        return None
    if prefix == "mechanism":
        return (prefix, rest) if rest in MECHANISM_BY_NAME else None
    if prefix == "claim":
        name, _, stance = rest.partition(":")
        if name in CLAIM_BY_NAME and (not stance or stance in STANCES):
            return prefix, (name, stance or None)
        return None
    if prefix == "level":
        level = _int_in(rest, 1, 5)
        return None if level is None else (prefix, level)
    if prefix == "pedro":
        score = _int_in(rest, 0, 10)
        return None if score is None else (prefix, score)
    if prefix == "design":
        return (prefix, rest) if rest in DESIGN_LEVELS else None
    if prefix == "population":
        return (prefix, rest) if rest in POPULATIONS else None
    if prefix == "status":
        return (prefix, rest) if rest in _STATUSES else None
    if prefix == "tag":
        return prefix, rest
    return None


def apply_keywords(study: StudyRow, keywords: Iterable[str]) -> None:
    """Fill `study` from keyword tokens written by `evidence_keywords`; every other keyword (including
    one that only looks like ours, e.g. `Design: survey` or `design:survey`) becomes a plain tag: never an
    error, never dropped."""
    for raw in keywords:
        keyword = raw.strip()
        if not keyword:
            continue
        ours = _our_keyword(keyword)
        if ours is None:
            _append_unique(study["tags"], keyword)
            continue
        field, value = ours
        if field == "mechanism":
            _append_unique(study["mechanisms"], value)
        elif field == "claim":
            _add_claim(study, *value)
        elif field == "tag":
            _append_unique(study["tags"], value)
        else:
            study[field] = value


def _append_unique(items: list[Any], item: Any) -> None:
    if item not in items:
        items.append(item)


def _add_claim(study: StudyRow, name: str, stance: str | None) -> StudyRow:
    for claim in study["claims"]:
        if claim["claim"] == name and claim.get("stance") in (None, stance):
            if stance:
                claim["stance"] = stance
            return claim  # type: ignore[no-any-return]
    spec = CLAIM_BY_NAME.get(name)
    claim = {"claim": name, "mechanism": spec.mechanism if spec else None, "stance": stance, "finding": None}
    study["claims"].append(claim)
    return claim


# --- note lines ----------------------------------------------------------------------------------

_FINDING_RE = re.compile(r"^Finding on ([\w-]+)(?: \(([\w-]+)\))?: (.*)$", re.DOTALL)
_FIELD_LINES = (("condition", "Condition"), ("body_region", "Body region"), ("sample_size", "Sample size"))
_NOTES_PREFIX = "Notes: "


def evidence_note_lines(study: StudyRow, *, fields: bool = True, notes: bool = True) -> list[str]:
    """Human-readable note lines: notices, findings per claim, and (optionally) condition, body region,
    sample size and the curator's notes (last, prefixed `Notes: `, may span lines)."""
    get = study.get
    status = get("status")
    # notice_lines has nothing to say for a study in good standing without update notices (most of them).
    lines = notice_lines(study) if get("updates") or status not in (None, "", "ok") else []
    lines += finding_lines(study)
    if fields:
        for key, label in _FIELD_LINES:
            value = get(key)
            if value is not None and value != "":
                lines.append(f"{label}: {' '.join(str(value).split())}")
    if notes:
        text = get("notes")
        if text:
            lines.append(_NOTES_PREFIX + str(text))
    return lines


def finding_lines(study: StudyRow) -> list[str]:
    """`Finding on pain-modulation (supports): ...` for each claim with a finding."""
    lines = []
    for claim in study.get("claims") or ():
        finding = claim.get("finding")
        if finding:
            stance = claim.get("stance")
            about = f"{claim['claim']} ({stance})" if stance else claim["claim"]
            lines.append(f"Finding on {about}: {' '.join(str(finding).split())}")
    return lines


def apply_note_lines(study: StudyRow, lines: Iterable[str]) -> None:
    """Fill `study` from note lines; lines we did not write are kept as the study's notes.

    A line is ours only in our exact form with a value we could have written: `Finding on MRI: ...`
    (not one of our claims) or `Sample size: about 40` (not a number) stays in the notes text. The
    `Notes: ` line comes last in our exports, so it and every line after it (blank ones too) are the
    curator's notes, taken verbatim: a note line there that looks like one of ours stays text."""
    leftover: list[str] = []
    updates: list[dict[str, Any]] = []
    in_notes = False  # after a `Notes: ` line every line is the curator's text, blank lines included
    for raw in lines:
        line = raw.strip("\n")
        if in_notes:
            leftover.append(line)
            continue
        if not line.strip():
            continue
        if line.startswith(_NOTES_PREFIX) or line == _NOTES_PREFIX.rstrip():
            leftover.append(line[len(_NOTES_PREFIX) :])
            in_notes = True
            continue
        notice = parse_notice_line(line)
        if notice is not None:
            if notice["doi"] or notice["date"] or notice["source"]:
                updates.append(notice)
            study["status"] = most_severe(
                [study.get("status") or "ok", STATUS_FOR_UPDATE.get(notice["type"], "ok")]
            )
            continue
        finding = _FINDING_RE.match(line)
        if finding and finding.group(1) in CLAIM_BY_NAME and finding.group(2) in (None, *STANCES):
            claim = _add_claim(study, finding.group(1), finding.group(2))
            claim["finding"] = finding.group(3)
            continue
        for key, label in _FIELD_LINES:
            if line.startswith(label + ": "):
                value = line[len(label) + 2 :].strip()
                if key == "sample_size":
                    size = _int_in(value, 1, 10_000_000)
                    if size is None:
                        continue  # `Sample size: about 40` is someone's note, not our field
                    study[key] = size
                else:
                    study[key] = value
                break
        else:
            leftover.append(line)
    if updates:
        study["updates"] = updates
    notes = "\n".join(leftover).strip("\n")
    if notes:
        study["notes"] = notes


def split_note_text(text: str) -> list[str]:
    """Split a single note string back into lines, keeping a multi-line `Notes:` tail together."""
    head, sep, tail = text.partition("\n" + _NOTES_PREFIX)
    if not sep and text.startswith(_NOTES_PREFIX):
        return [text]
    lines = head.split("\n")
    if sep:
        lines.append(_NOTES_PREFIX + tail)
    return lines


def finalize_imported(study: StudyRow) -> StudyRow:
    """Derived fields an importer fills after reading a record: level from design, status default."""
    if study.get("level") is None and study.get("design") in DESIGN_LEVELS:
        study["level"] = DESIGN_LEVELS[study["design"]]
    if not study.get("status"):
        study["status"] = "ok"
    for claim in study.get("claims") or []:
        if claim.get("stance") not in (None, *STANCES):
            claim["stance"] = None
    return study


# --- pages, years, names -------------------------------------------------------------------------

_PAGE_DASHES = re.compile(r"\s*(?:-{1,3}|\u2013|\u2014|\u2012|\u2212)\s*")


def normalise_pages(pages: str | None) -> str | None:
    """Pages as stored: `127-134` (a single hyphen, no spaces); abbreviated ends expanded (127-34)."""
    if pages is None:
        return None
    text = _PAGE_DASHES.sub("-", str(pages).strip())
    if not text:
        return None
    first, sep, last = text.partition("-")
    if sep and first.isdigit() and last.isdigit() and len(last) < len(first):
        last = first[: len(first) - len(last)] + last
    return f"{first}{sep}{last}"


def split_pages(pages: str | None) -> tuple[str | None, str | None]:
    """(`127`, `134`) from `127-134`; (`e123`, None) from a single page."""
    if not pages:
        return None, None
    first, sep, last = str(pages).partition("-")
    return first or None, (last or None) if sep else None


_YEAR_RE = re.compile(r"\b(1[5-9]\d\d|20\d\d|21\d\d)\b")


def year_from(text: Any) -> int | None:
    """The first plausible four-digit year in a date string (never invents one)."""
    if isinstance(text, int):
        return text
    match = _YEAR_RE.search(str(text or ""))
    return int(match.group(1)) if match else None


def person(family: str, given: str | None = None, orcid: str | None = None) -> dict[str, Any]:
    """An author dict for a person."""
    return {"family": family, "given": given or None, "orcid": orcid}


def parse_family_given(text: str) -> dict[str, Any]:
    """`Family, Given` -> person; `Given Family` -> person (last word is the family name)."""
    text = " ".join(text.split())
    if "," in text:
        family, _, given = text.partition(",")
        return person(family.strip(), given.strip() or None)
    parts = text.rsplit(" ", 1)
    if len(parts) == 1:
        return person(parts[0])
    return person(parts[1], parts[0])


def author_family_given(author: dict[str, Any]) -> str:
    """`Family, Given` for a person, the literal name for an organisation."""
    if author.get("name"):
        return str(author["name"])
    if author.get("given"):
        return f"{author.get('family') or ''}, {author['given']}"
    return str(author.get("family") or "")


# --- text files ---------------------------------------------------------------------------------------


def write_entries(
    studies: Iterable[StudyRow],
    out: TextIO,
    entry: Callable[[StudyRow, str], str],
    *,
    head: str = "",
    sep: str = "",
    tail: str = "",
    empty: str = "",
) -> int:
    """Write `head`, one `entry(study, citekey)` per study (`sep` between them) and `tail`, or `empty`
    when there is no study; citekeys are unique within the file. Returns the count."""
    keys = CitekeyAllocator()
    count = 0
    for study in studies:
        out.write(sep if count else head)
        out.write(entry(study, keys.key_for(study)))
        count += 1
    out.write(tail if count else empty)
    return count
