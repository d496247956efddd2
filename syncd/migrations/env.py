"""Alembic environment: always online, always on a connection the store hands over.

:meth:`syncd.store.Store.upgrade` puts an open SQLAlchemy connection into
``config.attributes["connection"]``; there is no URL in any ini file, so a
migration can never run against a database the store did not open.
"""

from __future__ import annotations

from alembic import context

from syncd.failpoints import failpoint
from syncd.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("syncd migrations run through Store.upgrade(), which passes the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables when a later revision needs it.
    render_as_batch=connection.dialect.name == "sqlite",
    on_version_apply=lambda **_: failpoint("during_migration"),  # crash tests: die before the commit
)
with context.begin_transaction():
    context.run_migrations()
