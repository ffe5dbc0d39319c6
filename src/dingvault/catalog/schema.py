"""The catalog's tables (SQLAlchemy Core), the single description the code queries against.

The migration scripts in ``migrations/versions/`` create the same tables with frozen DDL; a test
compares the migrated database against this module so the two can never drift apart.

Why ``items.latest_version_id`` carries no foreign key: items and versions would reference each
other, which forces deferred constraints or two-step inserts on every write; the catalog writes
both in one transaction instead and the export/rebuild test checks the link.
"""

from __future__ import annotations

import sqlalchemy as sa

from dingvault.catalog.types import UTCDateTime, id_type, json_type

LEVELS = ("public", "internal", "confidential")
RUN_KINDS = ("full", "incremental", "event")
RUN_STATUSES = ("running", "succeeded", "partial", "failed", "interrupted")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    # {"items": {"new", "changed", "unchanged", "deleted", "failed"}, "api_calls": {endpoint: n},
    #  "bytes": n, "errors": n} -- nested counters, merged by Catalog.add_run_stats.
    sa.Column("stats", json_type(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    sa.Index(None, "status", "kind", "finished_at"),
    sa.Index(None, "started_at"),
)

# The data families (approvals, files, contacts...) a run covered; "last successful run per family".
run_families = sa.Table(
    "run_families",
    metadata,
    sa.Column("run_id", id_type(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Index(None, "family"),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("source_id", sa.String(512), nullable=False),
    # The listing container the item was last seen in (space, department, calendar...): full runs
    # detect deletions per container, so a container that failed to list deletes nothing.
    sa.Column("container", sa.String(512), nullable=True),
    sa.Column("latest_version_id", id_type(), nullable=True),
    sa.Column("version_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("deleted_at_source", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    sa.Column("deleted_run_id", id_type(), nullable=True),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_run_id", id_type(), nullable=True),
    sa.UniqueConstraint("kind", "source_id"),
    sa.Index(None, "kind", "container", "source_id"),
    sa.Index(None, "kind", "deleted_at_source"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("item_id", id_type(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    # 1, 2, 3... per item; unique, so two writers racing on one item cannot both add "version n+1".
    sa.Column("seq", sa.Integer(), nullable=False),
    # The vault blob id of the canonical payload: the version's identity and its legal original.
    sa.Column("content_hash", sa.String(128), nullable=False),
    # The API's own change marker (modifiedTime, version, gmtModified...), as text.
    sa.Column("version_key", sa.String(256), nullable=True),
    sa.Column("captured_at", UTCDateTime(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("level", sa.String(16), nullable=False, server_default="internal"),
    # [{"blob_id": ..., "name": ..., "size": ...}, ...] -- vault blobs of attached files.
    sa.Column("attachments", json_type(), nullable=False),
    # Normalised fields the console lists and filters on.
    sa.Column("title", sa.Text(), nullable=True),
    sa.Column("owner_userid", sa.String(128), nullable=True),
    sa.Column("department", sa.String(128), nullable=True),
    sa.Column("source_created_at", UTCDateTime(), nullable=True),
    sa.Column("source_modified_at", UTCDateTime(), nullable=True),
    sa.Column("extra", json_type(), nullable=True),
    sa.Column("run_id", id_type(), sa.ForeignKey("runs.id"), nullable=True),
    sa.UniqueConstraint("item_id", "seq"),
    sa.CheckConstraint(_in("level", LEVELS), name="level"),
    sa.Index(None, "content_hash"),
    sa.Index(None, "run_id"),
    sa.Index(None, "owner_userid"),
    sa.Index(None, "source_modified_at"),
    sa.Index(None, "captured_at"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("vault_snapshot_id", sa.String(128), nullable=False),
    sa.Column("run_id", id_type(), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("item_count", sa.BigInteger(), nullable=False),
    sa.Column("counts", json_type(), nullable=False),  # {kind: number of items in the snapshot}
    sa.UniqueConstraint("vault_snapshot_id"),
    sa.Index(None, "created_at"),
    sa.Index(None, "run_id"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("collector", sa.String(128), primary_key=True),
    sa.Column("container_key", sa.String(512), primary_key=True),
    sa.Column("state", json_type(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("run_id", id_type(), nullable=True),
)

run_errors = sa.Table(
    "run_errors",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("run_id", id_type(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(64), nullable=True),
    sa.Column("source_id", sa.String(512), nullable=True),
    sa.Column("error_class", sa.String(128), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Index(None, "run_id", "id"),
)

# Holds: snapshots that prune must keep (offboarding, later legal holds), in the catalog rather than
# in the service's local state so that a rebuilt catalog (from the export in the vault) still has
# them. A released hold is kept (``released_at`` set) as the record of what was held and when.
holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(512), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("until", UTCDateTime(), nullable=True),  # NULL: until released
    sa.Column("snapshot_ids", json_type(), nullable=False),  # ["<vault snapshot id>", ...]
    sa.Column("summary", json_type(), nullable=False),  # e.g. the offboarding hand-over summary
    sa.Column("released_at", UTCDateTime(), nullable=True),
    sa.Index(None, "label", "subject"),
    sa.Index(None, "released_at", "until"),
)

# Export and rebuild walk the tables in this order (parents before children).
EXPORT_ORDER: tuple[sa.Table, ...] = (
    runs,
    run_families,
    items,
    versions,
    snapshots,
    cursors,
    run_errors,
    holds,
)
