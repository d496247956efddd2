"""Fenced claims: a fencing token per dirty-item claim, and the token that owns each intent.

* ``claim_fences``: one counter per item ref, +1 at every claim and never reset, so a
  token stays unique for the item even after its queue row was deleted and made again
  (a holder frozen across that must not find "its" token on the new row);
* ``dirty.fence``: the token of the row's current (or last) claim;
* ``intents.claim_ref`` / ``intents.claim_fence``: the claim that recorded (or took over)
  a pending intent; only that claim's holder may make its write.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "claim_fences",
        sa.Column("ref", sa.String(200), primary_key=True),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("claimed_at", sa.Double, nullable=False),
    )
    op.add_column("dirty", sa.Column("fence", sa.BigInteger, nullable=True))
    op.add_column("intents", sa.Column("claim_ref", sa.String(200), nullable=True))
    op.add_column("intents", sa.Column("claim_fence", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("intents", "claim_fence")
    op.drop_column("intents", "claim_ref")
    op.drop_column("dirty", "fence")
    op.drop_table("claim_fences")
