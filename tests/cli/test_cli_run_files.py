"""`syncd run` creates private files (issue 12, finding 5): its umask is 077, so the
SQLite database, -wal, -shm and anything else it writes are its user's only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from syncd.sandbox import build_world


def _syncd_command() -> list[str]:
    script = Path(sys.executable).with_name("syncd")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from syncd.cli import main; main()"]


def test_syncd_run_sets_umask_077_and_its_database_files_are_private(tmp_path):
    world = build_world(tmp_path / "world", zendesk_poll=3600, jira_poll=3600, intercom_poll=3600)
    old = os.umask(0o022)     # the lax default of an interactive shell
    proc = None
    try:
        with open(tmp_path / "run.log", "wb") as out:
            proc = subprocess.Popen([*_syncd_command(), "run", "--config", str(world.config_path)],
                                    env={**os.environ, **world.env}, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=world.directory)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{world.http_port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "syncd run not ready"
            time.sleep(0.1)
        umask = next(line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                     if line.startswith("Umask:"))
        assert umask == "0077", umask
        db = world.directory / "syncd.db"
        files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert db in files
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files), \
            {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    finally:
        os.umask(old)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(20)
        world.stop()
