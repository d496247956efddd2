"""Where each `syncd links import` source stopped (syncd/import_progress.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "import_progress",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.Text, nullable=True),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("imported", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("wrong", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_progress")
