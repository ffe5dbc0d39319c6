"""Holds (offboarding and other retention holds) move into the catalog.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Frozen DDL: later schema changes get their own revision; never edit this one after release.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dingvault.catalog.types import UTCDateTime, id_type, json_type

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", id_type(), autoincrement=True, nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("snapshot_ids", json_type(), nullable=False),
        sa.Column("summary", json_type(), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
    )
    op.create_index("ix_holds_label_subject", "holds", ["label", "subject"])
    op.create_index("ix_holds_released_at_until", "holds", ["released_at", "until"])


def downgrade() -> None:
    op.drop_table("holds")
