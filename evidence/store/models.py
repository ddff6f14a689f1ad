"""The ORM: studies, their ordered authors, tags, mechanisms, claims and stance-carrying claim links.

SQLAlchemy 2.0 typed declarative mapping. Every constraint gets a stable name from the naming convention,
so Alembic batch migrations on SQLite can find it again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The one clock of the project (timezone-aware UTC); tests may monkeypatch it."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back timezone-aware datetimes (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Mechanism(Base):
    __tablename__ = "mechanisms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text)

    claims: Mapped[list[Claim]] = relationship(back_populates="mechanism", order_by="Claim.id")


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    mechanism_id: Mapped[int] = mapped_column(ForeignKey("mechanisms.id"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text)

    mechanism: Mapped[Mechanism] = relationship(back_populates="claims")


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint("pedro IS NULL OR (pedro >= 0 AND pedro <= 10)", name="pedro_range"),
        CheckConstraint("level IS NULL OR (level >= 1 AND level <= 5)", name="level_range"),
        CheckConstraint("population IS NULL OR population IN ('human', 'animal')", name="population"),
        CheckConstraint("source IN ('seed', 'manual', 'import', 'crossref')", name="source"),
        Index("ix_studies_level_year", "level", "year"),
        Index("ix_studies_year", "year"),
        # Ids are shown to users and written in their notes: never hand out a removed study's id again.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    citekey: Mapped[str] = mapped_column(String(128), unique=True)
    doi: Mapped[str | None] = mapped_column(String(255), unique=True)
    pmid: Mapped[str | None] = mapped_column(String(16), unique=True)
    pmcid: Mapped[str | None] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(Text)
    journal: Mapped[str | None] = mapped_column(Text)
    issn: Mapped[str | None] = mapped_column(String(64))
    publisher: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None]
    volume: Mapped[str | None] = mapped_column(String(32))
    issue: Mapped[str | None] = mapped_column(String(32))
    pages: Mapped[str | None] = mapped_column(String(64))
    article_number: Mapped[str | None] = mapped_column(String(64))
    publication_type: Mapped[str | None] = mapped_column(String(64))
    abstract: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))

    design: Mapped[str | None] = mapped_column(String(64), index=True)
    level: Mapped[int | None]
    level_overridden: Mapped[bool] = mapped_column(default=False, server_default=false())
    population: Mapped[str | None] = mapped_column(String(16), index=True)
    population_detail: Mapped[str | None] = mapped_column(Text)
    condition: Mapped[str | None] = mapped_column(Text)
    body_region: Mapped[str | None] = mapped_column(String(64))
    sample_size: Mapped[int | None]
    pedro: Mapped[int | None]
    notes: Mapped[str | None] = mapped_column(Text)
    cited_by_practice_article: Mapped[bool] = mapped_column(default=False, server_default=false())

    # How well each identifier or fact is known (vocab.VERIFICATION), and the raw evidence for it.
    doi_verification: Mapped[str] = mapped_column(
        String(32), default="unverified", server_default="unverified"
    )
    pmid_verification: Mapped[str] = mapped_column(
        String(32), default="unverified", server_default="unverified"
    )
    authors_verification: Mapped[str] = mapped_column(
        String(32), default="unverified", server_default="unverified"
    )
    bibliographic_verification: Mapped[str] = mapped_column(
        String(32), default="unverified", server_default="unverified"
    )
    design_verification: Mapped[str] = mapped_column(
        String(32), default="unverified", server_default="unverified"
    )
    verification_note: Mapped[str | None] = mapped_column(Text)
    source_urls: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")

    # Provenance: where the record came from, and per field where its current value came from
    # ({"title": "seed", "abstract": "crossref", "journal": "manual"}).
    source: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")
    seed_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    field_sources: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")

    # Crossref facts: citation counts and the update notices (retraction, correction, concern).
    status: Mapped[str] = mapped_column(String(32), default="ok", server_default="ok", index=True)
    updates: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    citations: Mapped[int | None]
    references_count: Mapped[int | None]
    crossref_checked_at: Mapped[datetime | None]

    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.current_timestamp())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.current_timestamp()
    )

    authors: Mapped[list[Author]] = relationship(
        back_populates="study", order_by="Author.position", cascade="all, delete-orphan"
    )
    tags: Mapped[list[StudyTag]] = relationship(
        back_populates="study", order_by="StudyTag.tag", cascade="all, delete-orphan"
    )
    claim_links: Mapped[list[StudyClaim]] = relationship(
        back_populates="study", order_by="StudyClaim.claim_id", cascade="all, delete-orphan"
    )


class Author(Base):
    __tablename__ = "authors"
    __table_args__ = (
        CheckConstraint("family IS NOT NULL OR name IS NOT NULL", name="family_or_name"),
        Index("ix_authors_study_position", "study_id", "position", unique=True),
        Index("ix_authors_family", "family"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    family: Mapped[str | None] = mapped_column(String(255))
    given: Mapped[str | None] = mapped_column(String(255))
    orcid: Mapped[str | None] = mapped_column(String(32))
    # An organisation author is one literal name, never split into family/given.
    name: Mapped[str | None] = mapped_column(Text)

    study: Mapped[Study] = relationship(back_populates="authors")


class StudyTag(Base):
    __tablename__ = "study_tags"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)

    study: Mapped[Study] = relationship(back_populates="tags")


class StudyClaim(Base):
    """A study bears on a claim, pointing one way (stance), with a one-line finding in our words."""

    __tablename__ = "study_claims"
    __table_args__ = (
        CheckConstraint("stance IN ('supports', 'contradicts', 'mixed', 'no-effect')", name="stance"),
        Index("ix_study_claims_claim_stance", "claim_id", "stance", "study_id"),
    )

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), primary_key=True)
    stance: Mapped[str] = mapped_column(String(16))
    finding: Mapped[str | None] = mapped_column(Text)

    study: Mapped[Study] = relationship(back_populates="claim_links")
    claim: Mapped[Claim] = relationship()


#: ``CrossrefCache.status``: Crossref sent the work (``message`` holds it), or had no record of the DOI.
CACHE_FOUND = "found"
CACHE_NOT_FOUND = "not-found"


class CrossrefCache(Base):
    """Crossref's answers, so asking again for a DOI already asked about costs no request.

    A DOI Crossref does not know is cached too (``status="not-found"``, ``message`` NULL): ``message`` stays
    exactly what Crossref sent, never a made-up placeholder.
    """

    __tablename__ = "crossref_cache"
    __table_args__ = (
        CheckConstraint(f"status IN ('{CACHE_FOUND}', '{CACHE_NOT_FOUND}')", name="status"),
        CheckConstraint(f"status = '{CACHE_NOT_FOUND}' OR message IS NOT NULL", name="found_has_message"),
    )

    doi: Mapped[str] = mapped_column(String(255), primary_key=True)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=CACHE_FOUND, server_default=CACHE_FOUND)
    # none_as_null: a not-found row stores SQL NULL, not the JSON text 'null'.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class Meta(Base):
    """Small key/value facts about the library itself (e.g. when it was seeded)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# --- keeping the evidence current: saved Crossref searches, what they found, the triage queue --------------

#: ``Candidate.state``: waiting to be screened, made a study, or left out (with a reason).
CANDIDATE_STATES: tuple[str, ...] = ("pending", "included", "excluded")
#: ``WatchRecord.outcome``: a work first seen by this search became a candidate, or was one already (in
#: the library, or a candidate of another search).
RECORD_OUTCOMES: tuple[str, ...] = ("candidate", "in-library", "earlier-candidate")


class WatchSearch(Base):
    """A saved Crossref search (`evidence watch add`), with the state of its runs.

    ``next_from`` is the ``from-index-date`` of the next run (the day the last complete run began, or
    ``since``). A run that stopped before its last page (``--max``, a failure, a kill) keeps ``cursor``
    (Crossref's deep-paging cursor for the next page), ``run_from`` and ``run_started_at``, and the next
    run goes on from there.
    """

    __tablename__ = "watch_searches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    query: Mapped[str] = mapped_column(Text)
    since: Mapped[str | None] = mapped_column(String(10))  # YYYY-MM-DD
    work_type: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_run_at: Mapped[datetime | None]
    next_from: Mapped[str | None] = mapped_column(String(10))
    cursor: Mapped[str | None] = mapped_column(Text)
    run_from: Mapped[str | None] = mapped_column(String(10))
    run_started_at: Mapped[datetime | None]


class Candidate(Base):
    """A work a saved search found that is not (yet) a study: in the triage queue until screened."""

    __tablename__ = "candidates"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'included', 'excluded')", name="state"),
        CheckConstraint("state != 'excluded' OR reason IS NOT NULL", name="excluded_has_reason"),
        Index("ix_candidates_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doi: Mapped[str] = mapped_column(String(255), unique=True)
    # The search that found it first; NULL once that search is removed (a decision outlives its search).
    search_id: Mapped[int | None] = mapped_column(
        ForeignKey("watch_searches.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(Text)
    first_author: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None]
    journal: Mapped[str | None] = mapped_column(Text)
    abstract: Mapped[str | None] = mapped_column(Text)
    work_type: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="ok", server_default="ok")
    message: Mapped[dict[str, Any]] = mapped_column(JSON())  # Crossref's work, as sent
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    reason: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None]
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"), index=True)

    search: Mapped[WatchSearch | None] = relationship()


class WatchRecord(Base):
    """Each distinct work a search has returned, once: what PRISMA's "records identified" counts, and why a
    work seen again is not counted (or stored) again."""

    __tablename__ = "watch_records"
    __table_args__ = (
        CheckConstraint("outcome IN ('candidate', 'in-library', 'earlier-candidate')", name="outcome"),
        Index("ix_watch_records_search_doi", "search_id", "doi", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("watch_searches.id", ondelete="CASCADE"))
    doi: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(20))
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id", ondelete="SET NULL"))
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
