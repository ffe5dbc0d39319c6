"""Initial catalog: runs, run families, items, versions, snapshots, cursors, run errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Frozen DDL: later schema changes get their own revision; never edit this one after release.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dingvault.catalog.types import UTCDateTime, id_type, json_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", id_type(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("stats", json_type(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('full', 'incremental', 'event')", name="ck_runs_kind"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted')", name="ck_runs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_status_kind_finished_at", "runs", ["status", "kind", "finished_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "run_families",
        sa.Column("run_id", id_type(), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_families_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "family", name="pk_run_families"),
    )
    op.create_index("ix_run_families_family", "run_families", ["family"])

    op.create_table(
        "items",
        sa.Column("id", id_type(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(512), nullable=False),
        sa.Column("container", sa.String(512), nullable=True),
        sa.Column("latest_version_id", id_type(), nullable=True),
        sa.Column("version_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deleted_at_source", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_run_id", id_type(), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_run_id", id_type(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.UniqueConstraint("kind", "source_id", name="uq_items_kind_source_id"),
    )
    op.create_index("ix_items_kind_container_source_id", "items", ["kind", "container", "source_id"])
    op.create_index("ix_items_kind_deleted_at_source", "items", ["kind", "deleted_at_source"])

    op.create_table(
        "versions",
        sa.Column("id", id_type(), autoincrement=True, nullable=False),
        sa.Column("item_id", id_type(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("version_key", sa.String(256), nullable=True),
        sa.Column("captured_at", UTCDateTime(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("level", sa.String(16), nullable=False, server_default="internal"),
        sa.Column("attachments", json_type(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("owner_userid", sa.String(128), nullable=True),
        sa.Column("department", sa.String(128), nullable=True),
        sa.Column("source_created_at", UTCDateTime(), nullable=True),
        sa.Column("source_modified_at", UTCDateTime(), nullable=True),
        sa.Column("extra", json_type(), nullable=True),
        sa.Column("run_id", id_type(), nullable=True),
        sa.CheckConstraint("level IN ('public', 'internal', 'confidential')", name="ck_versions_level"),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name="fk_versions_item_id_items", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_versions_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.UniqueConstraint("item_id", "seq", name="uq_versions_item_id_seq"),
    )
    op.create_index("ix_versions_content_hash", "versions", ["content_hash"])
    op.create_index("ix_versions_run_id", "versions", ["run_id"])
    op.create_index("ix_versions_owner_userid", "versions", ["owner_userid"])
    op.create_index("ix_versions_source_modified_at", "versions", ["source_modified_at"])
    op.create_index("ix_versions_captured_at", "versions", ["captured_at"])

    op.create_table(
        "snapshots",
        sa.Column("id", id_type(), autoincrement=True, nullable=False),
        sa.Column("vault_snapshot_id", sa.String(128), nullable=False),
        sa.Column("run_id", id_type(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.Column("counts", json_type(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_snapshots_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.UniqueConstraint("vault_snapshot_id", name="uq_snapshots_vault_snapshot_id"),
    )
    op.create_index("ix_snapshots_created_at", "snapshots", ["created_at"])
    op.create_index("ix_snapshots_run_id", "snapshots", ["run_id"])

    op.create_table(
        "cursors",
        sa.Column("collector", sa.String(128), nullable=False),
        sa.Column("container_key", sa.String(512), nullable=False),
        sa.Column("state", json_type(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("run_id", id_type(), nullable=True),
        sa.PrimaryKeyConstraint("collector", "container_key", name="pk_cursors"),
    )

    op.create_table(
        "run_errors",
        sa.Column("id", id_type(), autoincrement=True, nullable=False),
        sa.Column("run_id", id_type(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=True),
        sa.Column("source_id", sa.String(512), nullable=True),
        sa.Column("error_class", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_errors_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run_errors"),
    )
    op.create_index("ix_run_errors_run_id_id", "run_errors", ["run_id", "id"])


def downgrade() -> None:
    for table in ("run_errors", "cursors", "snapshots", "versions", "items", "run_families", "runs"):
        op.drop_table(table)
