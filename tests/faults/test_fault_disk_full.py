"""The disk under the SQLite database fills up while the daemon works, then is freed.

The database lives on a small tmpfs of its own (we are root here and in CI); once
the daemon runs, a filler file takes every free byte, so the WAL cannot grow and
every commit fails with SQLITE_FULL ("database or disk is full"). Then the filler
is removed, as an admin freeing space would.

What must hold: the daemon keeps running; a delivery it could not store is
answered 5xx (the vendor retries) rather than acknowledged and lost; /readyz and
the log name the cause (``database_disk_full``); a full disk is an outage, not
the item's fault, so nothing goes to the dead letters; after space is freed it
recovers by itself, every change lands exactly once, and the file is intact.
The pollers are off (one hour): the changes reach the daemon only by webhook.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from syncd.domain import ItemRef
from syncd.store import Store, StoreUnavailable, outage_reason

from .conftest import get, wait_for
from .test_fault_budget import _escalate_many
from .test_fault_postgres_restart import (ReadyWatch, Traffic, _alive, _delivery_figures, _patient_vendors,
                                          _settle_and_check, _slow_vendors, _worker_figures)

TMPFS_SIZE = "16m"


def _mount_tmpfs(where: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the disk-full test mounts a small tmpfs, which needs root (CI runs as root)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip()
        if any(s in text.lower() for s in ("permission denied", "operation not permitted", "must be superuser")):
            pytest.skip(f"mounting a tmpfs is not permitted here (EPERM): {text}")
        pytest.fail(f"mount -t tmpfs failed: {text}")


def _unmount(where: Path) -> None:
    done = subprocess.run(["umount", str(where)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:   # something still holds a file open: detach it now, freed when closed
        subprocess.run(["umount", "-l", str(where)], capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="syncd-tmpfs-"))
    try:
        _mount_tmpfs(where)
        try:
            yield where
        finally:
            _unmount(where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def db_url(small_disk: Path) -> str:
    """The daemon's SQLite file on the small disk (overrides the shared ``db_url``)."""
    return f"sqlite:///{small_disk / 'syncd.db'}"


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 64 << 10, 4 << 10, 512, 1):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def _free_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the database and cut it to zero bytes, so that the next commit
    has to grow it (otherwise commits could reuse the WAL's old space for a while)."""
    db = sqlite3.connect(path, timeout=10)
    try:
        for _ in range(50):
            busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.1)
        raise AssertionError("could not checkpoint the WAL: the daemon keeps it busy")
    finally:
        db.close()


def _integrity(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def test_fault_disk_full_under_sqlite_refuses_deliveries_and_recovers(small_disk, make_world, start_daemon, logs):
    path = small_disk / "syncd.db"
    world = make_world(workers=4)
    _patient_vendors(world)
    daemon = start_daemon(world)
    pairs = _escalate_many(world, 3)
    assert wait_for(lambda: daemon.store.queue_depth() == 0, timeout=10)
    _slow_vendors(world)
    watch = ReadyWatch(daemon)
    traffic = Traffic(world, pairs).start()
    try:
        time.sleep(1.0)                                     # work is flowing
        _checkpoint(path)
        filler = _fill(small_disk)
        full_at = time.monotonic()
        filler_bytes = filler.stat().st_size
        sent_before = len(traffic.desk) + len(traffic.tracker)
        ready = wait_for(lambda: (r := get(daemon, "/readyz")).status == 503
                         and any("database_disk_full" in p for p in r.body["problems"]) and r, timeout=10)
        time.sleep(max(0.0, 4.0 - (time.monotonic() - full_at)))   # full for 4 s, traffic going on
        sent_during = len(traffic.desk) + len(traffic.tracker) - sent_before
        refused_while_full = [e for e in logs.named("webhook_refused") if e["reason"] == "store_unavailable"]
        filler.unlink()                                     # the admin frees space
        full_seconds = time.monotonic() - full_at
        time.sleep(1.0)
    finally:
        traffic.stop()
        watch.stop()

    assert ready, f"/readyz never named the full disk; it answered {watch.unready[-3:]}"
    assert ready.body["status"] == "unready" and ready.body["reason"] == "database_disk_full", ready.body
    assert "database: database_disk_full: sqlite: database or disk is full" in ready.body["problems"], ready.body
    said = logs.named("database_unavailable")
    assert said and said[0]["reason"] == "database_disk_full" and "disk is full" in said[0]["error"], said[:2]
    assert refused_while_full and all(e["status"] == 503 for e in refused_while_full), refused_while_full[:3]

    _alive(daemon)
    landed, total = _settle_and_check(world, daemon, traffic)   # exactly once, no dead letters, ready again
    assert not logs.named("item_dead_lettered")
    recovered = logs.named("database_recovered")
    assert recovered and recovered[0]["reason"] == "database_disk_full", recovered
    assert _integrity(path) == "ok"
    figures = _delivery_figures(world)
    assert figures["gave_up"] == 0 and figures["no_answer"] == 0, figures
    assert figures["503"] >= len(refused_while_full) > 0, figures
    print(f"\nfull for {full_seconds:.1f}s (filler {filler_bytes} bytes, {_free_bytes(small_disk)} free after); "
          f"changes made while full: {sent_during}; landed once: {landed}/{total}; deliveries: {figures}; "
          f"store failures: {len(logs.named('store_unavailable'))}; {_worker_figures(logs)}; "
          f"/readyz unready {len(watch.unready)}x of {watch.asked}")


def test_fault_disk_full_on_an_idle_daemon_is_reported_until_space_is_freed(small_disk, make_world, start_daemon,
                                                                            logs):
    """Nothing but the health check writes after the failure: /readyz proves the disk
    writable again by itself (a probe write) instead of staying unready forever."""
    path = small_disk / "syncd.db"
    world = make_world()
    daemon = start_daemon(world)
    assert get(daemon, "/readyz").status == 200
    _checkpoint(path)
    filler = _fill(small_disk)
    with pytest.raises(StoreUnavailable) as failed:      # a delivery's transaction, as the receiver runs it
        daemon.store.accept_delivery("zendesk", "probe-1", b"{}" * 4096, [ItemRef("zendesk", "1")])
    assert failed.value.reason == "database_disk_full"
    time.sleep(2.5)                                      # no failure for a while: /readyz probes, still full
    r = get(daemon, "/readyz")
    assert r.status == 503 and r.body["reason"] == "database_disk_full", r.body
    filler.unlink()
    freed_at = time.monotonic()
    assert wait_for(lambda: get(daemon, "/readyz").status == 200, timeout=10), get(daemon, "/readyz").body
    print(f"\nready again {time.monotonic() - freed_at:.1f}s after the space was freed")
    assert [e["reason"] for e in logs.named("database_recovered")] == ["database_disk_full"]
    assert daemon.store.accept_delivery("zendesk", "probe-1", b"{}", [ItemRef("zendesk", "1")]), \
        "the refused delivery was stored after all: its retry would be dropped as a duplicate"
    assert _integrity(path) == "ok"


@pytest.mark.parametrize("database", ["new", "existing"])
def test_fault_disk_full_at_start_is_refused_with_the_cause_until_space_is_freed(small_disk, make_world, database):
    """``syncd run`` on a disk that is already full: it exits (systemd restarts it) with a
    message naming the database and the cause, the existing data is untouched, and the
    next start after space is freed just works. SQLite says "disk I/O error" when it is
    the -shm/-wal file that cannot be created; the cause must still read as a full disk."""
    path = small_disk / "syncd.db"
    world = make_world()
    if database == "existing":
        store = Store.open(f"sqlite:///{path}")
        store.upgrade()
        store.add_link(ItemRef("zendesk", "41"), "10041", "SUP-41")
        store.close()
    filler = _fill(small_disk)
    first = _run_syncd(world, timeout=60)
    assert first.returncode == 1, f"daemon did not refuse to start (rc {first.returncode}):\n{first.stdout[-2000:]}"
    last_line = first.stdout.strip().splitlines()[-1]
    assert last_line.startswith(f"Error: the database sqlite:///{path} cannot be used (database_disk_full): "), \
        last_line
    assert "Traceback" not in first.stdout, first.stdout[-2000:]
    filler.unlink()                                   # the admin frees space; systemd starts it again
    second = _start_syncd(world)
    try:
        assert wait_for(lambda: get_status(world) == 200 or second.poll() is not None, timeout=30)
        assert second.poll() is None, f"daemon exited ({second.returncode}) after space was freed"
    finally:
        second.terminate()
        second.wait(timeout=60)
    assert _integrity(path) == "ok"
    store = Store.open(f"sqlite:///{path}")
    try:
        links = [(str(link.desk), link.issue_key) for link in store.list_links()]
    finally:
        store.close()
    assert links == ([("zendesk:41", "SUP-41")] if database == "existing" else []), links
    print(f"\nrefused with: {last_line}")


def _syncd_command() -> list[str]:
    script = Path(sys.executable).with_name("syncd")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from syncd.cli import main; main()"]


def _start_syncd(world) -> subprocess.Popen:
    return subprocess.Popen([*_syncd_command(), "run", "--config", str(world.config_path)],
                            env={**os.environ, **world.env}, cwd=world.directory,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_syncd(world, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([*_syncd_command(), "run", "--config", str(world.config_path)],
                          env={**os.environ, **world.env}, cwd=world.directory, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def get_status(world) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{world.http_port}/readyz", timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_fault_database_outage_never_dead_letters_an_item(tmp_path):
    """A reconcile that failed because the database did (StoreUnavailable) gives the item
    back without counting an attempt; any other error counts toward the dead letters."""
    store = Store.open(f"sqlite:///{tmp_path / 'unit.db'}")
    try:
        store.upgrade()
        ref = ItemRef("zendesk", "7")
        store.mark_dirty([ref], "webhook:zendesk")
        outage = f"StoreUnavailable: {StoreUnavailable('sqlite: database or disk is full')}"
        for _ in range(6):   # more than max_attempts
            [claim] = _claim_now(store)
            assert store.fail(claim, outage, max_attempts=3, backoff=lambda n: 0.0) is False
        assert store.count_dead_letters() == 0 and store.queue_depth() == 1
        [claim] = _claim_now(store)
        assert claim.attempts == 0, "an outage counted as an attempt"
        for attempt in range(3):   # a real failure of the item still ends in the dead letters
            dead = store.fail(claim, "Refused: jira editIssue: bad value", max_attempts=3, backoff=lambda n: 0.0)
            assert dead is (attempt == 2)
            if not dead:
                [claim] = _claim_now(store)
        assert store.count_dead_letters() == 1
    finally:
        store.close()


def _claim_now(store: Store) -> list:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if claims := store.claim("w", 1, 30):
            return claims
        time.sleep(0.05)
    return []


@pytest.mark.parametrize(("error", "reason"), [
    ("database or disk is full", "database_disk_full"),
    ('could not extend file "base/16384/2619": No space left on device', "database_disk_full"),
    ("database is locked", "database_locked"),
    ("attempt to write a readonly database", "database_read_only"),
    ('connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused',
     "database_unreachable"),
    ("terminating connection due to administrator command", "database_unreachable"),
    ("the database system is starting up", "database_unreachable"),
    ("server closed the connection unexpectedly", "database_unreachable"),
    ("disk I/O error", "database_io_error"),
])
def test_fault_outage_reason_names_the_cause(error, reason):
    assert outage_reason(error) == reason
    assert outage_reason(sqlite3.OperationalError(error)) == reason
