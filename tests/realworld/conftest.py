"""Replay fixtures: the real receiver with a real store behind it, swapped per test."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))   # --import-mode=importlib: make `realworld_corpus` importable

from realworld_corpus import IC_SECRET, JIRA_SECRET, ZD_SECRET, serve

from syncd.domain import ItemRef
from syncd.store import Store
from syncd.webhooks import WebhookConfig, make_app


class SwappableStore:
    """The receiver's DeliverySink: forwards to the current test's real Store."""

    def __init__(self) -> None:
        self.target: Store | None = None

    def accept_delivery(self, source: str, delivery_id: str, body: bytes, refs: Sequence[ItemRef],
                        stamp: float | None = None) -> bool:
        assert self.target is not None
        return self.target.accept_delivery(source, delivery_id, body, refs, stamp=stamp)


class Receiver:
    def __init__(self, url: str, sink: SwappableStore, own_actors: dict[str, str]) -> None:
        self.url, self.sink, self.own_actors = url, sink, own_actors
        self.db_url = ""

    @property
    def store(self) -> Store:
        assert self.sink.target is not None
        return self.sink.target

    def dirty(self) -> set[str]:
        return {str(c.ref) for c in self.store.claim("replay-test", 1000, 60)}

    def stored_deliveries(self) -> list[tuple[str, str]]:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text("SELECT source, delivery_id FROM inbox"))]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def _receiver_server() -> Iterator[Receiver]:
    sink = SwappableStore()
    own: dict[str, str] = {}   # mutated per test: which actor is "syncd itself"
    config = WebhookConfig(zendesk_secret=ZD_SECRET, jira_secret=JIRA_SECRET, intercom_secret=IC_SECRET, own_actors=own)
    with serve(make_app(sink, config)) as url:
        yield Receiver(url, sink, own)


@pytest.fixture
def receiver(_receiver_server: Receiver, tmp_path: Path) -> Iterator[Receiver]:
    """The module's receiver with a fresh, migrated SQLite store and no own actor."""
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    store = Store.open(url)
    store.upgrade()
    _receiver_server.sink.target = store
    _receiver_server.db_url = url
    _receiver_server.own_actors.clear()
    yield _receiver_server
    _receiver_server.sink.target = None
    store.close()


def pytest_report_header(config: Any) -> str:
    from realworld_corpus import corpus_dir, corpus_present
    return f"real-world corpus: {corpus_dir()} ({'present' if corpus_present() else 'ABSENT: replay tests skip'})"


@pytest.fixture
def replay() -> Iterator[Any]:
    from realworld_corpus import ReplayServer
    server = ReplayServer()
    server.url = server.start()   # type: ignore[attr-defined]
    yield server
    server.stop()
