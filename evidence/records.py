"""Write-side services: add, edit, remove, tag, link claims, notes. They take a Session and never commit.

Values are validated here (not only in the CLI) so that a notebook user gets the same one-line errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, func, select
from sqlalchemy.orm import Session

from evidence import ids, vocab
from evidence.errors import DuplicateRecord, InvalidValue, RecordNotFound, UnknownName, quoted
from evidence.naming import CitekeyAllocator, citekey_base, key_name
from evidence.schema import CONTROL_CHARACTERS, TEXT_LIMITS
from evidence.store.models import Author, Claim, Study, StudyClaim, StudyTag, utcnow

# Bibliographic and clinical fields a user may set directly, with their kind.
TEXT_FIELDS = (
    "title",
    "journal",
    "issn",
    "publisher",
    "volume",
    "issue",
    "pages",
    "article_number",
    "publication_type",
    "abstract",
    "url",
    "language",
    "population_detail",
    "condition",
    "body_region",
    "verification_note",
)
INT_FIELDS = ("year", "sample_size", "pedro", "level")
ID_FIELDS = ("doi", "pmid", "pmcid")
VOCAB_FIELDS = ("design", "population")
VERIFICATION_FIELDS = (
    "doi_verification",
    "pmid_verification",
    "authors_verification",
    "bibliographic_verification",
    "design_verification",
)
EDITABLE_FIELDS = (
    *TEXT_FIELDS,
    *INT_FIELDS,
    *ID_FIELDS,
    *VOCAB_FIELDS,
    *VERIFICATION_FIELDS,
    "citekey",
    "notes",
)
MIN_YEAR = 1800


def _column_lengths(table: Any) -> dict[str, int]:
    return {c.name: c.type.length for c in table.columns if isinstance(c.type, String) and c.type.length}


# The most characters each VARCHAR(n) column holds (see `too_long`).
STUDY_LENGTHS = _column_lengths(Study.__table__)
AUTHOR_LENGTHS = _column_lengths(Author.__table__)
_ID_RE = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and small enough for a SQLite integer
MAX_ID = 2**31 - 1  # the largest study id: the id column is a 32-bit INTEGER on PostgreSQL

# Which verification status a hand edit of a field puts in doubt: what we verified is no longer what is
# stored, so the status drops to "unverified" (unless the same edit sets the status itself).
VERIFICATION_OF_FIELD = {
    "doi": "doi_verification",
    "pmid": "pmid_verification",
    "authors": "authors_verification",
    "design": "design_verification",
    **dict.fromkeys(("title", "journal", "year", "volume", "issue", "pages"), "bibliographic_verification"),
}


@dataclass(frozen=True)
class AuthorName:
    family: str | None = None
    given: str | None = None
    orcid: str | None = None
    name: str | None = None  # an organisation, kept as one literal name

    @classmethod
    def parse(cls, value: str | Mapping[str, Any]) -> AuthorName:
        """From ``{"family", "given", "orcid"}`` / ``{"name"}`` or a ``"Family, Given"`` string."""
        if isinstance(value, Mapping):
            family = _clean(value.get("family"))
            name = _clean(value.get("name") or value.get("literal"))
            if not family and not name:
                raise InvalidValue(
                    f"an author needs a family name or an organisation name: {quoted(dict(value))}"
                )
            return cls(
                family or None,
                _clean(value.get("given")) or None,
                _clean(value.get("orcid")) or None,
                None if family else check_length("an author's name", name),
            ).checked()
        text = check_text("an author's name", value).strip()
        if not text:
            raise InvalidValue("an author name is empty")
        if "," in text:
            family, given = (part.strip() for part in text.split(",", 1))
            if not family:
                raise InvalidValue(f'author {quoted(value)} has no family name (write "Family, Given")')
            return cls(family=family, given=given or None).checked()
        return cls(name=check_length("an author's name", text))

    def checked(self) -> AuthorName:
        """This name, if each part fits its column (InvalidValue names the part that does not)."""
        for part, label in (("family", "family name"), ("given", "given name"), ("orcid", "ORCID")):
            value = getattr(self, part)
            limit = too_long(part, value, AUTHOR_LENGTHS)
            if limit is not None:
                raise InvalidValue(f"an author's {label} {_cut(value)} is longer than {limit} characters")
        return self

    def display(self) -> str:
        if self.name:
            return self.name
        return f"{self.family}, {self.given}" if self.given else str(self.family)


def _clean(value: Any) -> str:
    return "" if value is None else check_text("an author's name", str(value)).strip()


def check_text(field: str, value: str) -> str:
    """``value``, unless it holds a NUL or another control character (`CONTROL_CHARACTERS`), which no
    text field may: PostgreSQL refuses NUL (SQLite would keep it), and in a citation file one means the
    file is not UTF-8 text (UTF-16, say); an import strips the others first (`strip_controls`)."""
    if "\x00" in value:
        raise InvalidValue(f"{field} holds a NUL character (\\x00), which a library cannot store")
    control = CONTROL_CHARACTERS.search(value)
    if control is not None:
        raise InvalidValue(
            f"{field} holds a control character ({control.group()!r}), which a library does not store"
        )
    return value


def strip_controls(value: str) -> str:
    """``value`` without the control characters `check_text` refuses (NUL stays: it is refused)."""
    return CONTROL_CHARACTERS.sub("", value)


def check_length(field: str, value: str | None) -> str | None:
    """``value``, unless it is longer than `TEXT_LIMITS` allows ``field``."""
    limit = TEXT_LIMITS.get(field.removeprefix("a "))
    if value is not None and limit is not None and len(value) > limit:
        raise InvalidValue(
            f"{field} is {len(value):,} characters long, longer than a study's {field} may be "
            f"({limit:,}): {_cut(value)}"
        )
    return value


# --- validation ----------------------------------------------------------------------------------------


def check_name(kind: str, value: str, valid: tuple[str, ...]) -> str:
    name = value.strip().lower()
    if name not in valid:
        raise UnknownName(kind, value, valid)
    return name


def check_claim(value: str) -> str:
    return check_name("claim", value, tuple(c.name for c in vocab.CLAIMS))


def check_mechanism(value: str) -> str:
    return check_name("mechanism", value, tuple(m.name for m in vocab.MECHANISMS))


def check_stance(value: str) -> str:
    return check_name("stance", value, vocab.STANCES)


def check_design(value: str) -> str:
    return check_name("design", value, vocab.DESIGNS)


def check_year(value: Any) -> int:
    latest = utcnow().year + 1
    try:
        year = int(str(value).strip())
    except ValueError:
        raise InvalidValue(f"year must be a whole number, not {quoted(value)}") from None
    if not MIN_YEAR <= year <= latest:
        raise InvalidValue(f"year {year} is out of range ({MIN_YEAR}-{latest})")
    return year


def check_pedro(value: Any) -> int:
    try:
        score = int(str(value).strip())
    except ValueError:
        raise InvalidValue(f"PEDro score must be a whole number from 0 to 10, not {quoted(value)}") from None
    if not 0 <= score <= 10:
        raise InvalidValue(f"PEDro score must be from 0 to 10, not {score}")
    return score


def _check_int(field: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidValue(f"{field} must be a whole number, not {quoted(value)}") from None
    if not low <= number <= high:
        raise InvalidValue(f"{field} must be from {low} to {high}, not {number}")
    return number


def normalize_fields(
    fields: Mapping[str, Any], *, skip_too_long: Callable[[str, Any, int], None] | None = None
) -> dict[str, Any]:
    """Validate and normalise the scalar fields of a study; unknown keys are an error. A value longer
    than its column is an error too, unless ``skip_too_long`` is given: then the field is left out and
    ``skip_too_long(key, value, limit)`` told (an import keeps the record, without it)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in EDITABLE_FIELDS:
            raise InvalidValue(f"unknown field {quoted(key)}; editable fields: {', '.join(EDITABLE_FIELDS)}")
        if isinstance(value, str):
            check_text(key, value)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key == "title":
                raise InvalidValue("a study needs a title")
            out[key] = None
            continue
        out[key] = normalize_field(key, value)
        if isinstance(out[key], str):
            check_length(key, out[key])
        limit = too_long(key, out[key])
        if limit is not None:
            if skip_too_long is None:
                raise InvalidValue(f"{key} {_cut(out[key])} is longer than {limit} characters")
            skip_too_long(key, value, limit)
            del out[key]
    return out


def normalize_field(key: str, value: Any) -> Any:
    """One field's value validated and normalised (not empty; see `normalize_fields`)."""
    if key == "doi":
        return ids.normalize_doi(str(value))
    if key == "pmid":
        return ids.normalize_pmid(value)
    if key == "pmcid":
        return ids.normalize_pmcid(str(value))
    if key == "year":
        return check_year(value)
    if key == "pedro":
        return check_pedro(value)
    if key == "level":
        return _check_int("OCEBM level", value, 1, 5)
    if key == "sample_size":
        return _check_int("sample size", value, 1, 10_000_000)
    if key == "design":
        return check_design(str(value))
    if key == "population":
        return check_name("population", str(value), vocab.POPULATIONS)
    if key in VERIFICATION_FIELDS:
        return check_name("verification status", str(value), vocab.VERIFICATION)
    if key == "citekey":
        return check_citekey(str(value))
    text = str(value).strip()
    if key == "pages":
        # Data keeps a plain hyphen; en and em dashes belong to formatted output only.
        text = re.sub(r"\s*[\u2010-\u2015\u2212]+\s*|\s*-+\s*", "-", text)
    return text


def too_long(key: str, value: Any, lengths: Mapping[str, int] | None = None) -> int | None:
    """The length limit of column ``key`` when ``value`` exceeds it (else None): PostgreSQL refuses a
    longer value for a VARCHAR(n) column, where SQLite would store it whole."""
    limit = (STUDY_LENGTHS if lengths is None else lengths).get(key)
    return limit if limit is not None and isinstance(value, str) and len(value) > limit else None


def _cut(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def check_citekey(value: str) -> str:
    key = value.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_:.\-]*", key):
        raise InvalidValue(
            f"citekey {quoted(value)} must start with a letter and use only letters, digits, _ : . -"
        )
    limit = too_long("citekey", key)
    if limit is not None:
        raise InvalidValue(f"citekey {_cut(key)} is longer than {limit} characters")
    return key


# --- citekeys --------------------------------------------------------------------------------------------


def unique_citekey(session: Session, base: str) -> str:
    """``base``, or ``base`` + a, b, ... z, aa, ... when the library already has it."""
    taken = session.scalars(select(Study.citekey).where(Study.citekey.like(f"{base}%")))
    return CitekeyAllocator(taken).allocate(base, None, None, None)


# --- finding studies ---------------------------------------------------------------------------------------


def resolve_ref(session: Session, ref: str) -> Study:
    """A study by id, citekey, DOI or PMID (``id:``, ``pmid:``, ``doi:`` prefixes force the kind)."""
    text = ref.strip()
    lowered = text.lower()
    study: Study | None = None
    if lowered.startswith("id:"):
        study = _by_id(session, int(text[3:])) if _ID_RE.fullmatch(text[3:].strip()) else None
    elif lowered.startswith("pmid:"):
        study = session.scalar(select(Study).where(Study.pmid == ids.normalize_pmid(text[5:])))
    elif ids.is_doi(text):
        study = session.scalar(select(Study).where(Study.doi == ids.normalize_doi(text)))
    elif _ID_RE.fullmatch(text):
        # A small number is an id; a PubMed id is 1-9 digits too, so fall back to PMID.
        study = _by_id(session, int(text)) or session.scalar(
            select(Study).where(Study.pmid == str(int(text)))
        )
    else:
        study = session.scalar(select(Study).where(Study.citekey == text)) or session.scalar(
            select(Study).where(func.lower(Study.citekey) == lowered).order_by(Study.id).limit(1)
        )
    if study is None:
        raise RecordNotFound(ref)
    return study


def _by_id(session: Session, study_id: int) -> Study | None:
    # Ids are INTEGER: 32 bits on PostgreSQL, which refuses to compare a larger number with one ("integer
    # out of range") where SQLite just finds nothing. No study has such an id on either.
    return session.get(Study, study_id) if study_id <= MAX_ID else None


def find_duplicate(
    session: Session, doi: str | None, pmid: str | None, citekey: str | None, exclude_id: int | None = None
) -> None:
    """Raise DuplicateRecord if another study has this DOI, PMID or citekey."""
    for field, column, value in (
        ("DOI", Study.doi, doi),
        ("PMID", Study.pmid, pmid),
        ("citekey", Study.citekey, citekey),
    ):
        if value is None:
            continue
        stmt = select(Study.id, Study.citekey).where(column == value)
        if exclude_id is not None:
            stmt = stmt.where(Study.id != exclude_id)
        row = session.execute(stmt).first()
        if row is not None:
            raise DuplicateRecord(field, value, row.id, row.citekey)


# --- writing ---------------------------------------------------------------------------------------------


def _claim_ids(session: Session) -> dict[str, int]:
    return {name: id_ for id_, name in session.execute(select(Claim.id, Claim.name))}


def claim_links(claims: Sequence[str], stance: str | None, finding: str | None) -> list[dict[str, Any]]:
    """Links for ``--claim C ... --stance S --finding F``: one stance for every claim given (both or none)."""
    if claims and not stance:
        raise InvalidValue("--claim needs --stance (supports, contradicts, mixed or no-effect)")
    if stance and not claims:
        raise InvalidValue("--stance needs at least one --claim")
    for claim in claims:
        check_claim(claim)
    if stance:
        check_stance(stance)
    return [{"claim": c, "stance": stance, "finding": finding} for c in claims]


def add_study(
    session: Session,
    fields: Mapping[str, Any],
    *,
    authors: Iterable[str | Mapping[str, Any]] = (),
    tags: Iterable[str] = (),
    claims: Iterable[Mapping[str, Any]] = (),
    source: str = "manual",
    extra: Mapping[str, Any] | None = None,
) -> Study:
    """Validate and add one study; ``DuplicateRecord`` if its DOI, PMID or citekey is taken.

    ``extra`` sets columns outside the user-editable set (seed_key, status, updates, citations...).
    """
    if source not in vocab.SOURCES:
        raise UnknownName("source", source, vocab.SOURCES)
    values = normalize_fields(fields)
    if not values.get("title"):
        raise InvalidValue("a study needs a title")
    author_names = [AuthorName.parse(a) for a in authors]
    if values.get("citekey") is None:
        first = author_names[0] if author_names else None
        name = key_name({"family": first.family, "name": first.name}) if first else None
        base = citekey_base(name, values.get("year"), values["title"])
        values["citekey"] = unique_citekey(session, base)
    find_duplicate(session, values.get("doi"), values.get("pmid"), values["citekey"])

    if values.get("journal") and not values.get("publication_type"):
        # A study in a journal is a journal article unless told otherwise (exports choose @article / JOUR).
        values["publication_type"] = "journal-article"
    level_given = values.get("level") is not None
    if not level_given and values.get("design"):
        values["level"] = vocab.level_for_design(values["design"])
    study = Study(
        **values,
        level_overridden=level_given,
        source=source,
        field_sources={k: source for k, v in values.items() if v is not None},
    )
    for key, value in (extra or {}).items():
        setattr(study, key, value)
    study.authors = [
        Author(position=i, family=a.family, given=a.given, orcid=a.orcid, name=a.name)
        for i, a in enumerate(author_names)
    ]
    if author_names:
        study.field_sources["authors"] = source
    study.tags, study.claim_links = [], []  # a new study's collections: nothing to load from the database
    session.add(study)
    for tag in tags:
        _tag(study, tag)
    claim_ids = _claim_ids(session) if claims else {}
    for link in claims:
        _link(claim_ids, study, str(link["claim"]), str(link["stance"]), link.get("finding"))
    session.flush()  # once: a flush per tag, link and claim-id lookup made a new library 0.30 s, not 0.21
    return study


def edit_study(
    session: Session,
    study: Study,
    changes: Mapping[str, Any],
    *,
    source: str = "manual",
    authors: Iterable[str | Mapping[str, Any]] | None = None,
) -> list[str]:
    """Apply field changes; returns the names of the fields that changed. Recomputes the level."""
    values = normalize_fields(changes)
    find_duplicate(session, values.get("doi"), values.get("pmid"), values.get("citekey"), exclude_id=study.id)
    changed: list[str] = []
    sources = dict(study.field_sources or {})
    for key, value in values.items():
        if getattr(study, key) != value:
            setattr(study, key, value)
            sources[key] = source
            changed.append(key)
    if "level" in values:
        study.level_overridden = values["level"] is not None
    if not study.level_overridden:
        level = vocab.level_for_design(study.design) if study.design else None
        if level != study.level:
            study.level = level
            if "level" not in changed:
                changed.append("level")
    if authors is not None:
        new = [AuthorName.parse(a) for a in authors]
        old = [AuthorName(a.family, a.given, a.orcid, a.name) for a in study.authors]
        if new != old:
            study.authors.clear()
            session.flush()
            study.authors.extend(
                Author(position=i, family=a.family, given=a.given, orcid=a.orcid, name=a.name)
                for i, a in enumerate(new)
            )
            sources["authors"] = source
            changed.append("authors")
    if source in ("manual", "import"):
        for name in changed:
            status_field = VERIFICATION_OF_FIELD.get(name)
            if status_field and status_field not in values and getattr(study, status_field) != "unverified":
                setattr(study, status_field, "unverified")
                changed.append(status_field)
    if changed:
        study.field_sources = sources
        study.updated_at = utcnow()
    session.flush()
    return changed


def remove_study(session: Session, study: Study) -> None:
    session.delete(study)
    session.flush()


def normalize_tag(tag: str) -> str:
    cleaned = re.sub(r"\s+", "-", check_text("a tag", tag).strip().lower())
    if not cleaned or len(cleaned) > 64:
        raise InvalidValue(f"a tag must be 1-64 characters, not {quoted(tag)}")
    return cleaned


def add_tag(session: Session, study: Study, tag: str) -> bool:
    """Tag a study; False if it already had the tag."""
    added = _tag(study, tag)
    if added:
        session.flush()
    return added


def _tag(study: Study, tag: str) -> bool:
    name = normalize_tag(tag)
    if any(t.tag == name for t in study.tags):
        return False
    study.tags.append(StudyTag(tag=name))
    return True


def remove_tag(session: Session, study: Study, tag: str) -> bool:
    name = normalize_tag(tag)
    for existing in list(study.tags):
        if existing.tag == name:
            study.tags.remove(existing)
            session.flush()
            return True
    return False


def link_claim(
    session: Session, study: Study, claim: str, stance: str, finding: str | None = None
) -> StudyClaim:
    """Link a study to a claim with a stance (replacing an earlier link to the same claim)."""
    link = _link(_claim_ids(session), study, claim, stance, finding)
    session.flush()
    return link


def _link(
    claim_ids: Mapping[str, int], study: Study, claim: str, stance: str, finding: str | None
) -> StudyClaim:
    claim_name = check_claim(claim)
    stance_name = check_stance(stance)
    claim_id = claim_ids[claim_name]
    finding = check_length("a finding", check_text("a finding", finding).strip()) if finding else None
    finding = finding or None
    study.updated_at = utcnow()
    for link in study.claim_links:
        if link.claim_id == claim_id:
            if finding is not None:
                link.finding = finding
            elif link.stance != stance_name:
                # The old finding argued for the old stance; keeping it would contradict the new one.
                link.finding = None
            link.stance = stance_name
            return link
    link = StudyClaim(claim_id=claim_id, stance=stance_name, finding=finding)
    study.claim_links.append(link)
    return link


def unlink_claim(session: Session, study: Study, claim: str) -> bool:
    claim_id = _claim_ids(session)[check_claim(claim)]
    for link in list(study.claim_links):
        if link.claim_id == claim_id:
            study.claim_links.remove(link)
            session.flush()
            return True
    return False


def add_note(session: Session, study: Study, text: str, *, replace: bool = False) -> None:
    """Append a paragraph to the study's notes (or replace them)."""
    note = check_text("a note", text).strip()
    if not note and not replace:
        raise InvalidValue("a note is empty")
    study.notes = check_length(
        "notes", (note or None) if replace or not study.notes else f"{study.notes}\n\n{note}"
    )
    study.field_sources = {**(study.field_sources or {}), "notes": "manual"}
    study.updated_at = utcnow()
    session.flush()
