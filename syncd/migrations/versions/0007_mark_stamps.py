"""The newest vendor stamp a dirty item's marks reported (issue 16: reads).

A Jira webhook says *when* the issue changed (``issue.fields.updated``, or the
comment's ``updated``). The row keeps the newest such stamp over all its marks, or
NULL as soon as one mark reported none (a poll, a released version, syncd's own
queueing, an operator): a worker that already holds a read of the issue at least
that new needs no second read (syncd/queue.py, syncd/engine.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("dirty", sa.Column("stamp", sa.Double, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dirty") as batch:
        batch.drop_column("stamp")
