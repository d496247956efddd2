"""Alembic migrations of the store, shipped inside the package and run
programmatically by :meth:`syncd.store.Store.upgrade` (no alembic.ini needed).

To write a new revision during development::

    .venv/bin/python -m syncd.migrations revision -m "what changes"
"""
