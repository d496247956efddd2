"""The account budget shared by every holder, and resumable drift audits.

Tables ``budget_claims`` (syncd/shared_budget.py), ``audit_runs`` and ``audit_findings``
(syncd/audit_progress.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "budget_claims",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("last_at", sa.Double, nullable=True),
    )
    op.create_index("ix_budget_claims_account_at", "budget_claims", ["account", "at"])
    op.create_table(
        "audit_runs",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("cursor", sa.BigInteger, nullable=True),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("checked", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "audit_findings",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("issue_id", sa.BigInteger, primary_key=True),
        sa.Column("doc", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_findings")
    op.drop_table("audit_runs")
    op.drop_index("ix_budget_claims_account_at", table_name="budget_claims")
    op.drop_table("budget_claims")
