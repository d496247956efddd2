"""Claim counters are pruned by age: an index on ``claim_fences.claimed_at``.

Housekeeping forgets the counter of an item claimed last a week ago (syncd.queue,
``prune_fences``); without the index each pass would scan the whole table, which holds
a row for every item that ever got a webhook.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_claim_fences_claimed_at", "claim_fences", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_claim_fences_claimed_at", table_name="claim_fences")
