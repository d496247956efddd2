"""Crash-test fixtures: a simulated world, the daemon as a killable subprocess, and
the daemon's store opened from the test (read-only use) to watch the queue."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # --import-mode=importlib: make `harness` importable

from harness import Daemon, crash_world

from syncd.sandbox import World
from syncd.store import Store


@dataclass
class Rig:
    world: World
    daemon: Daemon
    url: str
    _store: Store | None = None

    @property
    def store(self) -> Store:
        # Opened lazily: the daemon creates the schema on its first start.
        if self._store is None:
            self._store = Store.open(self.url)
        return self._store

    def close(self) -> None:
        self.daemon.kill()
        if self._store is not None:
            self._store.close()
        self.world.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'syncd.db'}"


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(url: str, **world_options: float) -> Rig:
        world = crash_world(tmp_path / f"world{len(rigs)}", url, **world_options)
        rig = Rig(world, Daemon(world), url)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
