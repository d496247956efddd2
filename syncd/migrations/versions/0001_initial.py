"""Initial store: links, base, intents, dirty queue, inbox, cursors, leases, dead letters, audit.

Written out by hand rather than imported from :mod:`syncd.schema`, so that this
revision keeps meaning the same thing after the schema module moves on; a test
compares the migrated database with the schema module.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("desk_ref", sa.String(200), nullable=False),
        sa.Column("issue_id", sa.String(64), nullable=False),
        sa.Column("issue_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("desk_ref", "issue_id", name="uq_links_desk_issue"),
    )
    op.create_index("ix_links_issue_id", "links", ["issue_id"])

    op.create_table(
        "link_base",
        sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )

    op.create_table(
        "intents",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id", ondelete="SET NULL"), nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("done_at", sa.Double, nullable=True),
    )
    op.create_index("ix_intents_link_id", "intents", ["link_id"])

    op.create_table(
        "dirty",
        sa.Column("ref", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("due_at", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires", sa.Double, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("dirty_since", sa.Double, nullable=False),
    )
    op.create_index("ix_dirty_due_at", "dirty", ["due_at"])

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ref", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failed_at", sa.Double, nullable=False),
    )

    op.create_table(
        "inbox",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])

    op.create_table(
        "cursors",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.Text, nullable=False),
        sa.Column("fence", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.Double, nullable=False),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    )

    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("link_id", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_link_id", "audit", ["link_id", "id"])


def downgrade() -> None:
    for index, table in (
        ("ix_audit_link_id", "audit"),
        ("ix_inbox_received_at", "inbox"),
        ("ix_dirty_due_at", "dirty"),
        ("ix_intents_link_id", "intents"),
        ("ix_links_issue_id", "links"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("audit", "leases", "cursors", "inbox", "dead_letters", "dirty", "intents", "link_base", "links"):
        op.drop_table(table)
