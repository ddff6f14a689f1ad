"""Crossref cache remembers DOIs Crossref does not know: a ``status`` column, ``message`` nullable.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:30:00.000000

Existing rows are all answers with a work, so they become ``status = 'found'`` (the server default).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crossref_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="found", nullable=False))
        batch_op.alter_column("message", existing_type=sa.JSON(), nullable=True)
        batch_op.create_check_constraint("status", "status IN ('found', 'not-found')")
        batch_op.create_check_constraint("found_has_message", "status = 'not-found' OR message IS NOT NULL")


def downgrade() -> None:
    # A not-found answer has no message to keep: forget it (the next run asks Crossref again).
    op.execute("DELETE FROM crossref_cache WHERE status = 'not-found'")
    with op.batch_alter_table("crossref_cache", schema=None) as batch_op:
        batch_op.drop_constraint("found_has_message", type_="check")
        batch_op.drop_constraint("status", type_="check")
        batch_op.alter_column("message", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("status")
