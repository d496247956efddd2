"""SQLite files are private (issue 12, finding 5): the inbox holds raw webhook bodies
(customer messages), so the database, its -wal and -shm are 0600 whatever the umask,
and a file an earlier, laxer run left readable is made private on open."""

from __future__ import annotations

import os
import stat

from syncd.store import Store


def _modes(path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path, path.with_name(path.name + "-wal"),
                                                            path.with_name(path.name + "-shm")) if p.exists()}


def test_sqlite_database_and_its_wal_and_shm_are_private_under_a_lax_umask(tmp_path):
    path = tmp_path / "syncd.db"
    old = os.umask(0o022)
    try:
        store = Store.open(f"sqlite:///{path}")
        store.upgrade()
        store.queue_depth()
        modes = _modes(path)
    finally:
        os.umask(old)
        store.close()
    assert set(modes) == {"syncd.db", "syncd.db-wal", "syncd.db-shm"}, modes
    assert all(m & 0o077 == 0 for m in modes.values()), {k: oct(v) for k, v in modes.items()}


def test_a_readable_database_left_by_an_earlier_run_is_made_private(tmp_path):
    path = tmp_path / "syncd.db"
    first = Store.open(f"sqlite:///{path}")
    first.upgrade()
    first.close()
    os.chmod(path, 0o644)
    store = Store.open(f"sqlite:///{path}")
    try:
        store.queue_depth()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        store.close()
