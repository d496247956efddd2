"""The store's tables, as SQLAlchemy Core metadata.

This module is what the queries in :mod:`syncd.store` are written against; the
schema itself is created only by the Alembic migrations in
``syncd/migrations/versions`` (a test checks the two never drift apart).

Portable on purpose (SQLite and Postgres): times are UTC epoch seconds in
DOUBLE columns (from the store's clock, Python's ``time.time()`` by default),
JSON is text we encode ourselves, item references are their ``str()`` form.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

Epoch = sa.Double  # UTC seconds since 1970: portable and cheap to compare in the queue's SQL

links = sa.Table(
    "links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("desk_ref", sa.String(200), nullable=False),
    sa.Column("issue_id", sa.String(64), nullable=False),
    sa.Column("issue_key", sa.String(64), nullable=False),
    sa.Column("created_at", Epoch, nullable=False),
    # The unique index also serves every lookup by desk ref (leftmost column).
    sa.UniqueConstraint("desk_ref", "issue_id", name="uq_links_desk_issue"),
    sa.Index("ix_links_issue_id", "issue_id"),
    sa.Index("ix_links_issue_key", "issue_key"),   # the admin page's search by key (migration 0005)
)

link_base = sa.Table(
    "link_base",
    metadata,
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("fields", sa.Text, nullable=False),  # {"field": {"desk": v, "tracker": v}}
    sa.Column("updated_at", Epoch, nullable=False),
)

intents = sa.Table(
    "intents",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done
    sa.Column("result", sa.Text, nullable=True),  # the vendor id once done
    # SET NULL, not CASCADE: an intent must outlive its link, or a retry could write twice.
    sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id", ondelete="SET NULL"), nullable=True),
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("created_at", Epoch, nullable=False),
    sa.Column("done_at", Epoch, nullable=True),
    # The claim (item ref + fencing token) that recorded or took over the intent: only
    # its holder may make the write (see syncd.queue, "fenced claims").
    sa.Column("claim_ref", sa.String(200), nullable=True),
    sa.Column("claim_fence", sa.BigInteger, nullable=True),
    sa.Index("ix_intents_link_id", "link_id"),
    sa.Index("ix_intents_done_at", "done_at"),   # housekeeping (migration 0003)
)

dirty = sa.Table(
    "dirty",
    metadata,
    sa.Column("ref", sa.String(200), primary_key=True),  # one row per item: repeated events coalesce
    sa.Column("version", sa.Integer, nullable=False),  # bumped on every mark; complete() compares it
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("due_at", Epoch, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires", Epoch, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("dirty_since", Epoch, nullable=False),
    sa.Column("fence", sa.BigInteger, nullable=True),  # fencing token of the current (or last) claim
    # The newest vendor stamp (epoch seconds) every mark of the row reported; NULL once one
    # reported none (migration 0007; syncd.queue.mark_dirty).
    sa.Column("stamp", Epoch, nullable=True),
    sa.Index("ix_dirty_due_at", "due_at"),
)

claim_fences = sa.Table(
    "claim_fences",
    metadata,
    # One counter per item, +1 at each claim and at least the claim's time in ms: a
    # claim's token stays unique for its item after the queue row is deleted and made
    # again, and after housekeeping forgot a long-idle item's row (syncd.queue).
    sa.Column("ref", sa.String(200), primary_key=True),
    sa.Column("fence", sa.BigInteger, nullable=False),
    sa.Column("claimed_at", Epoch, nullable=False),
    sa.Index("ix_claim_fences_claimed_at", "claimed_at"),   # pruned by age (migration 0006)
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ref", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failed_at", Epoch, nullable=False),
    sa.Index("ix_dead_letters_failed_at", "failed_at"),   # housekeeping (migration 0003)
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("delivery_id", sa.String(200), primary_key=True),  # the unique key is what dedupes
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("received_at", Epoch, nullable=False),
    sa.Index("ix_inbox_received_at", "received_at"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.Text, nullable=False),
    sa.Column("fence", sa.BigInteger, nullable=True),  # highest fencing token that wrote it
    sa.Column("updated_at", Epoch, nullable=False),
)

import_progress = sa.Table(
    # Where each `syncd links import` source stopped (syncd.import_progress), so a
    # run cut short carries on from its last stored page (migration 0004).
    "import_progress",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.Text, nullable=True),       # None: start from the first page
    sa.Column("done", sa.Boolean, nullable=False),    # the last page was read
    sa.Column("imported", sa.Integer, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),
    sa.Column("wrong", sa.Integer, nullable=False),
    sa.Column("started_at", Epoch, nullable=False),
    sa.Column("updated_at", Epoch, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("fence", sa.BigInteger, nullable=False),  # +1 on every change of owner, never down
    sa.Column("expires_at", Epoch, nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    # BIGINT on Postgres (the trail only grows); SQLite needs INTEGER for its rowid alias.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", Epoch, nullable=False),
    sa.Column("event", sa.String(100), nullable=False),
    # No foreign key: the audit trail of a removed link must stay readable.
    sa.Column("link_id", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_link_id", "link_id", "id"),
    sa.Index("ix_audit_at", "at"),   # housekeeping (migration 0003)
)

history = sa.Table(
    "history",
    metadata,
    # Every write syncd made, per link (syncd/history.py; migration 0005).
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", Epoch, nullable=False),
    # No foreign key, like audit: what syncd did to a link stays readable after it is removed.
    sa.Column("link_id", sa.Integer, nullable=True),
    sa.Column("desk_ref", sa.String(200), nullable=True),
    sa.Column("issue_id", sa.String(64), nullable=True),
    sa.Column("issue_key", sa.String(64), nullable=True),
    sa.Column("side", sa.String(16), nullable=True),       # desk | tracker
    sa.Column("target", sa.String(200), nullable=False),   # the item ref or issue key written to
    sa.Column("what", sa.String(200), nullable=False),     # field:<locator> | comment | note | create | link
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sa.Column("source_id", sa.String(300), nullable=True),   # the comment mirrored (a note: its intent key)
    sa.Column("mirrored_id", sa.String(300), nullable=True),  # the id it got on the target side
    sa.Column("why", sa.Text, nullable=True),
    sa.Column("trigger", sa.String(300), nullable=True),   # the item reconciled and what marked it dirty
    sa.Index("ix_history_link_id", "link_id", "id"),
    sa.Index("ix_history_desk_ref", "desk_ref", "id"),
    sa.Index("ix_history_issue_id", "issue_id", "id"),
    sa.Index("ix_history_at", "at"),   # retention
)


def insert_for(conn: sa.Connection, table: sa.Table):
    """An INSERT that knows ``ON CONFLICT`` on this connection's dialect.

    SQLite and Postgres spell upserts the same way, and SQLAlchemy gives both
    the same ``on_conflict_do_nothing/on_conflict_do_update`` API; only the
    import differs.
    """
    return insert_on(conn.dialect.name, table)


def insert_on(dialect: str, table: sa.Table):
    """:func:`insert_for` by dialect name (for statements built once and cached)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def greatest(a: sa.ColumnElement, b: sa.ColumnElement) -> sa.ColumnElement:
    """max(a, b) in SQL that both backends read (SQLite has no GREATEST, Postgres no 2-arg MAX)."""
    return sa.case((a >= b, a), else_=b)


def least(a: sa.ColumnElement, b: sa.ColumnElement) -> sa.ColumnElement:
    """min(a, b) in SQL that both backends read (SQLite has no LEAST, Postgres no 2-arg MIN)."""
    return sa.case((a <= b, a), else_=b)

budget_claims = sa.Table(
    # Calls each budget holder (a daemon replica, a CLI command) took from an account's
    # shared budget, in blocks (syncd.shared_budget, migration 0008): the sum over the
    # last window is what the account has used, whoever used it.
    "budget_claims",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(32), nullable=False),    # zendesk | jira | intercom
    sa.Column("holder", sa.String(200), nullable=False),    # instance and role, e.g. host:123/import
    sa.Column("at", Epoch, nullable=False),                 # when the block was claimed
    sa.Column("calls", sa.Integer, nullable=False),         # lowered to the calls made when the block ends
    sa.Column("last_at", Epoch, nullable=True),             # the block's last call (None: still in use)
    sa.Index("ix_budget_claims_account_at", "account", "at"),
)

audit_runs = sa.Table(
    # Where each `syncd reconcile --dry-run` pass stopped (syncd.audit_progress, migration 0008).
    "audit_runs",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),   # all | desk:zendesk | issue:SUP-1, plus since:<date>
    sa.Column("cursor", sa.BigInteger, nullable=True),      # the last issue id audited (ascending); None: none yet
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("checked", sa.Integer, nullable=False),       # issues audited in this pass
    sa.Column("started_at", Epoch, nullable=False),
    sa.Column("updated_at", Epoch, nullable=False),
)

audit_findings = sa.Table(
    # The drifted or unreadable issues a pass found so far (JSON of drift.IssueAudit.doc()).
    "audit_findings",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("issue_id", sa.BigInteger, primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)
