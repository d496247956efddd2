"""``syncd run`` with ``[admin]``: the page on its own port, and a port that cannot be bound
stops the start (exit 1 naming admin.listen) like the webhook server's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Iterator

import pytest

from syncd.runtime import App
from syncd.sandbox import World, build_world, free_port

from .conftest import enable_admin


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world")
    yield w
    w.stop()


def _status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_daemon_serves_the_page_on_its_own_port_and_stops_it(world: World) -> None:
    _, token = enable_admin(world)
    app = App.build(world.settings())
    app.start()
    try:
        page = f"http://127.0.0.1:{app.admin_port}/links"
        assert app.admin_port != app.http_port
        assert _status(page, None) == 401 and _status(page, token) == 200
        # The vendors' port does not serve it.
        assert _status(f"http://127.0.0.1:{app.http_port}/links", token) == 404
    finally:
        app.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(page, timeout=2)


def test_run_exits_1_when_the_admin_port_cannot_be_bound(world: World) -> None:
    port = free_port()
    enable_admin(world, port)
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        proc = subprocess.run([sys.executable, "-m", "syncd", "run", "--config", str(world.config_path)],
                              env={**os.environ, **world.env}, capture_output=True, text=True, timeout=120)
    finally:
        taken.close()
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port} (admin.listen in {world.config_path})" in proc.stderr
    assert "syncd_started" not in proc.stderr
    assert world.env["SYNCD_ADMIN_TOKEN"] not in proc.stderr + proc.stdout
    # Nothing half-alive: the webhook port was let go too.
    probe = socket.socket()
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", world.http_port))
    finally:
        probe.close()
