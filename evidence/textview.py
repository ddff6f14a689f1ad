"""Plain-text rendering of one study for `evidence show` (a reading view, not a data format), and the
words for each verification state (`verification_phrase`, from `vocab.VERIFICATION_WORDS`) that every
view of a study uses."""

from __future__ import annotations

import textwrap
from typing import Any

from evidence import vocab
from evidence.render import TABLE_CELL_CHARS, author_display
from evidence.schema import TEXT_LIMITS


def verification_phrase(state: str | None) -> str:
    """The one wording of a verification state (`vocab.VERIFICATION`), e.g. "seen only in a citing
    paper's reference list"; an unknown state is shown as it is, none as "not verified"."""
    if state is None:
        return vocab.VERIFICATION_WORDS["unverified"]
    return vocab.VERIFICATION_WORDS.get(state, state)


def _mark(state: str | None, *, quiet_when_verified: bool = True, what: str = "") -> str:
    """`  [state words]` after a field, or nothing for a verified one (unless asked)."""
    if state is None or (quiet_when_verified and state == "verified"):
        return ""
    return f"  [{what}{verification_phrase(state)}]"


def study_text(study: dict[str, Any], width: int = 100) -> str:
    lines: list[str] = []
    status = study.get("status") or "ok"
    if status != "ok":
        lines.append(
            f"*** {status.upper()} ***  "
            + "; ".join(
                f"{u.get('type')}: {u.get('doi') or ''} {u.get('date') or ''} ({u.get('source') or '?'})"
                for u in study.get("updates") or []
            )
        )
    lines.append(f"{study['citekey']}  (id {study['id']})")
    lines.extend(_wrap(study["title"], width, "title"))
    verification = study.get("verification") or {}
    authors = study.get("authors") or []
    if authors or verification.get("authors") not in (None, "verified"):
        names = "; ".join(author_display(a) for a in authors) or "-"
        lines.append(f"{'Authors:':<12}{names}{_mark(verification.get('authors'))}")
    citation = ", ".join(
        str(part)
        for part in (
            study.get("journal"),
            study.get("year"),
            f"{study['volume']}({study['issue']})"
            if study.get("volume") and study.get("issue")
            else study.get("volume"),
            study.get("pages") or study.get("article_number"),
        )
        if part
    )
    if citation:
        lines.append(f"{'Published:':<12}{citation}{_mark(verification.get('bibliographic'))}")

    def ident(label: str, key: str) -> None:
        value = study.get(key)
        lines.append(f"{label:<12}{value or '-'}{_mark(verification.get(key), quiet_when_verified=False)}")

    ident("DOI:", "doi")
    ident("PMID:", "pmid")
    if study.get("pmcid"):
        lines.append(f"{'PMCID:':<12}{study['pmcid']}")
    design = study.get("design")
    level = study.get("level")
    design_text = vocab.DESIGN_LABELS.get(design, design) if design else "-"
    level_text = (
        f"OCEBM level {level}" + (" (set by hand)" if study.get("level_overridden") else "")
        if level
        else "no level"
    )
    lines.append(
        f"{'Design:':<12}{design_text}; {level_text}{_mark(verification.get('design'), what='design ')}"
    )
    population = " ".join(
        str(p)
        for p in (
            study.get("population"),
            study.get("population_detail") and f"({study['population_detail']})",
        )
        if p
    )
    if population:
        lines.append(f"{'Population:':<12}{population}")
    for label, key in (
        ("Condition:", "condition"),
        ("Region:", "body_region"),
        ("Sample:", "sample_size"),
        ("PEDro:", "pedro"),
        ("Citations:", "citations"),
        ("ISSN:", "issn"),
        ("Publisher:", "publisher"),
        ("URL:", "url"),
    ):
        if study.get(key) is not None:
            lines.append(f"{label:<12}{study[key]}")
    if study.get("tags"):
        lines.append(f"{'Tags:':<12}{', '.join(study['tags'])}")
    if study.get("cited_by_practice_article"):
        lines.append(f"{'':<12}cited by the IASTM practice article")
    claims = study.get("claims") or []
    lines.append("Claims:" if claims else "Claims:     none linked")
    for c in claims:
        lines.append(f"  {c['stance'].upper():<12}{c['claim']} ({c['mechanism']})")
        if c.get("finding"):
            lines.extend(
                _wrap(c["finding"], width, "finding", initial_indent=" " * 14, subsequent_indent=" " * 14)
            )
    if study.get("abstract"):
        lines.append("Abstract:")
        lines.extend(_wrap(study["abstract"], width, "abstract", initial_indent="  ", subsequent_indent="  "))
    if study.get("notes"):
        lines.append("Notes:")
        for para in _clip(str(study["notes"]), "notes").split("\n\n"):
            lines.extend(textwrap.wrap(para, width, initial_indent="  ", subsequent_indent="  "))
    if verification.get("note"):
        lines.append("Verification:")
        lines.extend(
            _wrap(
                verification["note"], width, "verification_note", initial_indent="  ", subsequent_indent="  "
            )
        )
    if study.get("source"):
        lines.append(
            f"{'Source:':<12}{study['source']}" + (f" ({study['seed_key']})" if study.get("seed_key") else "")
        )
    # Where the verified facts were seen: what a verification state rests on.
    for n, url in enumerate(study.get("source_urls") or []):
        lines.append(f"{'Seen at:' if n == 0 else '':<12}{url}")
    return "\n".join(lines)


def _clip(text: str, field: str) -> str:
    """``text`` cut at its field's limit (a library filled before the limits may hold a longer one:
    wrapping 10 MB took seconds); `show --format json` has it whole."""
    limit = TEXT_LIMITS.get(field, TABLE_CELL_CHARS)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\u2026 [{len(text) - limit:,} more characters: show --format json has them]"


def _wrap(
    text: str, width: int, field: str, initial_indent: str = "", subsequent_indent: str = ""
) -> list[str]:
    return textwrap.wrap(
        _clip(text, field), width, initial_indent=initial_indent, subsequent_indent=subsequent_indent
    )
