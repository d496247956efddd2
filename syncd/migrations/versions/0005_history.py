"""Per-link history of every write syncd makes (syncd/history.py), and links by issue key.

The history is read per link (the admin page, ``syncd links history``) and per item for
writes that belong to an item rather than one of its links; it is pruned by age
(``[retention] history_days``). The admin page searches links by issue key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("link_id", sa.Integer, nullable=True),
        sa.Column("desk_ref", sa.String(200), nullable=True),
        sa.Column("issue_id", sa.String(64), nullable=True),
        sa.Column("issue_key", sa.String(64), nullable=True),
        sa.Column("side", sa.String(16), nullable=True),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("what", sa.String(200), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.Column("source_id", sa.String(300), nullable=True),
        sa.Column("mirrored_id", sa.String(300), nullable=True),
        sa.Column("why", sa.Text, nullable=True),
        sa.Column("trigger", sa.String(300), nullable=True),
    )
    op.create_index("ix_history_link_id", "history", ["link_id", "id"])
    op.create_index("ix_history_desk_ref", "history", ["desk_ref", "id"])
    op.create_index("ix_history_issue_id", "history", ["issue_id", "id"])
    op.create_index("ix_history_at", "history", ["at"])
    op.create_index("ix_links_issue_key", "links", ["issue_key"])


def downgrade() -> None:
    op.drop_index("ix_links_issue_key", table_name="links")
    op.drop_table("history")
