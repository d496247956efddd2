"""Indexes for housekeeping (syncd/retention.py).

Settled intents are found by the time they were finished, audit rows and dead letters
by their age, without a scan of tables that grow with every mirrored comment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_intents_done_at", "intents", ["done_at"])
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_failed_at", table_name="dead_letters")
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_index("ix_intents_done_at", table_name="intents")
