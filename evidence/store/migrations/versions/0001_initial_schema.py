"""Initial schema: studies, authors, tags, mechanisms, claims, stance links, Crossref cache, full-text
search (FTS5 on SQLite; on PostgreSQL a generated tsvector column with a GIN index).

Revision ID: 0001
Revises: -
Create Date: 2026-11-24 20:24:42.169982
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FTS_SQLITE = (
    "CREATE VIRTUAL TABLE studies_fts USING fts5(title, abstract, notes, content='studies', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER studies_fts_ai AFTER INSERT ON studies BEGIN "
    "INSERT INTO studies_fts(rowid, title, abstract, notes) "
    "VALUES (new.id, new.title, new.abstract, new.notes); "
    "END",
    "CREATE TRIGGER studies_fts_ad AFTER DELETE ON studies BEGIN "
    "INSERT INTO studies_fts(studies_fts, rowid, title, abstract, notes) "
    "VALUES ('delete', old.id, old.title, old.abstract, old.notes); "
    "END",
    "CREATE TRIGGER studies_fts_au AFTER UPDATE OF title, abstract, notes ON studies BEGIN "
    "INSERT INTO studies_fts(studies_fts, rowid, title, abstract, notes) "
    "VALUES ('delete', old.id, old.title, old.abstract, old.notes); "
    "INSERT INTO studies_fts(rowid, title, abstract, notes) "
    "VALUES (new.id, new.title, new.abstract, new.notes); "
    "END",
)

# PostgreSQL: the database keeps the search vector itself (a stored generated column, so no trigger and
# no application code can let it drift); title words weigh most, then the abstract, then notes. A slash
# parts words ("scar-tissue/adhesion" would otherwise be read as one file path, as FTS5 does not). The
# column is not in the models: nothing writes it, and `evidence.query` reads it by name.
FTS_POSTGRESQL = (
    "ALTER TABLE studies ADD COLUMN search tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', translate(coalesce(title, ''), '/', ' ')), 'A') || "
    "setweight(to_tsvector('english', translate(coalesce(abstract, ''), '/', ' ')), 'B') || "
    "setweight(to_tsvector('english', translate(coalesce(notes, ''), '/', ' ')), 'C')) STORED",
    "CREATE INDEX ix_studies_search ON studies USING gin (search)",
)


def upgrade() -> None:
    op.create_table(
        "crossref_cache",
        sa.Column("doi", sa.String(length=255), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("doi", name=op.f("pk_crossref_cache")),
    )
    op.create_table(
        "mechanisms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mechanisms")),
        sa.UniqueConstraint("name", name=op.f("uq_mechanisms_name")),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citekey", sa.String(length=128), nullable=False),
        sa.Column("doi", sa.String(length=255), nullable=True),
        sa.Column("pmid", sa.String(length=16), nullable=True),
        sa.Column("pmcid", sa.String(length=16), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("journal", sa.Text(), nullable=True),
        sa.Column("issn", sa.String(length=64), nullable=True),
        sa.Column("publisher", sa.Text(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("volume", sa.String(length=32), nullable=True),
        sa.Column("issue", sa.String(length=32), nullable=True),
        sa.Column("pages", sa.String(length=64), nullable=True),
        sa.Column("article_number", sa.String(length=64), nullable=True),
        sa.Column("publication_type", sa.String(length=64), nullable=True),
        sa.Column("abstract", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("design", sa.String(length=64), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("level_overridden", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("population", sa.String(length=16), nullable=True),
        sa.Column("population_detail", sa.Text(), nullable=True),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("body_region", sa.String(length=64), nullable=True),
        sa.Column("sample_size", sa.Integer(), nullable=True),
        sa.Column("pedro", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("cited_by_practice_article", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("doi_verification", sa.String(length=32), server_default="unverified", nullable=False),
        sa.Column("pmid_verification", sa.String(length=32), server_default="unverified", nullable=False),
        sa.Column("authors_verification", sa.String(length=32), server_default="unverified", nullable=False),
        sa.Column(
            "bibliographic_verification", sa.String(length=32), server_default="unverified", nullable=False
        ),
        sa.Column("design_verification", sa.String(length=32), server_default="unverified", nullable=False),
        sa.Column("verification_note", sa.Text(), nullable=True),
        sa.Column("source_urls", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("source", sa.String(length=16), server_default="manual", nullable=False),
        sa.Column("seed_key", sa.String(length=64), nullable=True),
        sa.Column("field_sources", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("status", sa.String(length=32), server_default="ok", nullable=False),
        sa.Column("updates", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("citations", sa.Integer(), nullable=True),
        sa.Column("references_count", sa.Integer(), nullable=True),
        sa.Column("crossref_checked_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.CheckConstraint(
            "population IS NULL OR population IN ('human', 'animal')", name=op.f("ck_studies_population")
        ),
        sa.CheckConstraint(
            "source IN ('seed', 'manual', 'import', 'crossref')", name=op.f("ck_studies_source")
        ),
        sa.CheckConstraint(
            "level IS NULL OR (level >= 1 AND level <= 5)", name=op.f("ck_studies_level_range")
        ),
        sa.CheckConstraint(
            "pedro IS NULL OR (pedro >= 0 AND pedro <= 10)", name=op.f("ck_studies_pedro_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("citekey", name=op.f("uq_studies_citekey")),
        sa.UniqueConstraint("doi", name=op.f("uq_studies_doi")),
        sa.UniqueConstraint("pmid", name=op.f("uq_studies_pmid")),
        sa.UniqueConstraint("seed_key", name=op.f("uq_studies_seed_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_studies_design"), ["design"], unique=False)
        batch_op.create_index("ix_studies_level_year", ["level", "year"], unique=False)
        batch_op.create_index(batch_op.f("ix_studies_pmcid"), ["pmcid"], unique=False)
        batch_op.create_index(batch_op.f("ix_studies_population"), ["population"], unique=False)
        batch_op.create_index(batch_op.f("ix_studies_status"), ["status"], unique=False)
        batch_op.create_index("ix_studies_year", ["year"], unique=False)

    op.create_table(
        "authors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(length=255), nullable=True),
        sa.Column("given", sa.String(length=255), nullable=True),
        sa.Column("orcid", sa.String(length=32), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.CheckConstraint("family IS NOT NULL OR name IS NOT NULL", name=op.f("ck_authors_family_or_name")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_authors_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authors")),
    )
    with op.batch_alter_table("authors", schema=None) as batch_op:
        batch_op.create_index("ix_authors_family", ["family"], unique=False)
        batch_op.create_index("ix_authors_study_position", ["study_id", "position"], unique=True)

    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("mechanism_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mechanism_id"], ["mechanisms.id"], name=op.f("fk_claims_mechanism_id_mechanisms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("name", name=op.f("uq_claims_name")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_mechanism_id"), ["mechanism_id"], unique=False)

    op.create_table(
        "study_tags",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_tags_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", "tag", name=op.f("pk_study_tags")),
    )
    with op.batch_alter_table("study_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_tags_tag"), ["tag"], unique=False)

    op.create_table(
        "study_claims",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("stance", sa.String(length=16), nullable=False),
        sa.Column("finding", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "stance IN ('supports', 'contradicts', 'mixed', 'no-effect')", name=op.f("ck_study_claims_stance")
        ),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_study_claims_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_claims_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", "claim_id", name=op.f("pk_study_claims")),
    )
    with op.batch_alter_table("study_claims", schema=None) as batch_op:
        batch_op.create_index(
            "ix_study_claims_claim_stance", ["claim_id", "stance", "study_id"], unique=False
        )

    # Full-text search over title, abstract and notes, kept in step by the database (see evidence.query).
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": FTS_SQLITE, "postgresql": FTS_POSTGRESQL}.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_studies_search")
        op.execute("ALTER TABLE studies DROP COLUMN IF EXISTS search")
    if op.get_bind().dialect.name == "sqlite":
        for name in ("studies_fts_ai", "studies_fts_ad", "studies_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS studies_fts")
    with op.batch_alter_table("study_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_study_claims_claim_stance")

    op.drop_table("study_claims")
    with op.batch_alter_table("study_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_tags_tag"))

    op.drop_table("study_tags")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_mechanism_id"))

    op.drop_table("claims")
    with op.batch_alter_table("authors", schema=None) as batch_op:
        batch_op.drop_index("ix_authors_study_position")
        batch_op.drop_index("ix_authors_family")

    op.drop_table("authors")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index("ix_studies_year")
        batch_op.drop_index(batch_op.f("ix_studies_status"))
        batch_op.drop_index(batch_op.f("ix_studies_population"))
        batch_op.drop_index(batch_op.f("ix_studies_pmcid"))
        batch_op.drop_index("ix_studies_level_year")
        batch_op.drop_index(batch_op.f("ix_studies_design"))

    op.drop_table("studies")
    op.drop_table("meta")
    op.drop_table("mechanisms")
    op.drop_table("crossref_cache")
