"""Saved Crossref searches, the works they found, and the triage queue of candidates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:00:00.000000

New tables only (`watch_searches`, `candidates`, `watch_records`): no existing row changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("since", sa.String(length=10), nullable=True),
        sa.Column("work_type", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("next_from", sa.String(length=10), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("run_from", sa.String(length=10), nullable=True),
        sa.Column("run_started_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_searches")),
        sa.UniqueConstraint("name", name=op.f("uq_watch_searches_name")),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("doi", sa.String(length=255), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("first_author", sa.Text(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("journal", sa.Text(), nullable=True),
        sa.Column("abstract", sa.Text(), nullable=True),
        sa.Column("work_type", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="ok", nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("found_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state != 'excluded' OR reason IS NOT NULL", name=op.f("ck_candidates_excluded_has_reason")
        ),
        sa.CheckConstraint("state IN ('pending', 'included', 'excluded')", name=op.f("ck_candidates_state")),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["watch_searches.id"],
            name=op.f("fk_candidates_search_id_watch_searches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_candidates_study_id_studies"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("doi", name=op.f("uq_candidates_doi")),
    )
    op.create_index(op.f("ix_candidates_search_id"), "candidates", ["search_id"], unique=False)
    op.create_index("ix_candidates_state_id", "candidates", ["state", "id"], unique=False)
    op.create_index(op.f("ix_candidates_study_id"), "candidates", ["study_id"], unique=False)
    op.create_table(
        "watch_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("doi", sa.String(length=255), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('candidate', 'in-library', 'earlier-candidate')",
            name=op.f("ck_watch_records_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_watch_records_candidate_id_candidates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["watch_searches.id"],
            name=op.f("fk_watch_records_search_id_watch_searches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_watch_records_study_id_studies"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_records")),
    )
    op.create_index("ix_watch_records_search_doi", "watch_records", ["search_id", "doi"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_watch_records_search_doi", table_name="watch_records")
    op.drop_table("watch_records")
    op.drop_index(op.f("ix_candidates_study_id"), table_name="candidates")
    op.drop_index("ix_candidates_state_id", table_name="candidates")
    op.drop_index(op.f("ix_candidates_search_id"), table_name="candidates")
    op.drop_table("candidates")
    op.drop_table("watch_searches")
