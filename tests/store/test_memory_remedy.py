"""syncd/memory.py's remedy (issue 10, finding 6): on by default, off by its switch, and
what it changes is visible -- each SQLite connection's page cache is bounded, glibc
takes the arena cap. The soak that shows the effect on RSS is bench/soak.py."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from syncd import memory
from syncd.store import Store


def cache_size(store: Store) -> int:
    with store._engine.connect() as conn:   # what the daemon's own pooled connections get
        return int(conn.exec_driver_sql("PRAGMA cache_size").scalar())


def test_sqlite_connections_get_a_bounded_page_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory.SWITCH, raising=False)
    store = Store.open(f"sqlite:///{tmp_path / 'on.db'}")
    try:
        assert cache_size(store) == -memory.SQLITE_CACHE_KIB
    finally:
        store.close()


def test_the_switch_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.SWITCH, "off")
    store = Store.open(f"sqlite:///{tmp_path / 'off.db'}")
    try:
        assert cache_size(store) == -2000   # SQLite's default
    finally:
        store.close()
    assert memory.limit_arenas() is False and memory.trim() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt/malloc_trim are glibc's")
def test_glibc_takes_the_arena_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory.SWITCH, raising=False)
    assert memory.limit_arenas(8) is True   # 8 (glibc's own per-core factor), not to squeeze the test process
    memory.trim()   # returns whether pages were released: either is right, it must not fail
