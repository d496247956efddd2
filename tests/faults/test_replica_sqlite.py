"""SQLite serves one daemon: a second one on the same file is refused with a
clear message (in-process and as a real ``syncd run``), commands still work,
and the file is free again once the first daemon stops."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syncd.runtime import App
from syncd.store import DaemonRunning

from .conftest import SQLITE_ONLY, escalate, get

pytestmark = SQLITE_ONLY


def test_replica_second_daemon_on_one_sqlite_file_is_refused(make_world, start_daemon, look_at):
    world = make_world()
    first = start_daemon(world)

    second = App.build(world.settings())
    with pytest.raises(DaemonRunning, match=r"another syncd daemon \(pid \d+ on .+\) already runs on .*syncd.db"):
        second.start(serve_http=False)
    assert not second.workers._threads, "the refused daemon started workers anyway"
    second.stop()

    env = {**os.environ, **world.env}
    run = subprocess.run([sys.executable, "-m", "syncd.cli", "run", "--config", str(world.config_path)],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "another syncd daemon" in run.stderr and "use Postgres to run several replicas" in run.stderr
    command = App.build(world.settings())   # commands (link, resync, status) are not daemons: never refused
    assert command.store.count_links() == 0
    command.store.close()

    # The first daemon was not disturbed, and once it stops the file is free.
    ticket, key = escalate(world, look_at(world))
    assert get(first, "/readyz").status == 200
    first.stop()
    third = start_daemon(world)
    assert get(third, "/healthz").status == 200
