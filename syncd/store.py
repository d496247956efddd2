"""The store: links, base state, intents, dirty queue, inbox, cursors, leases, dead letters, audit.

SQLite (WAL) for one process, Postgres for several replicas; the same SQL runs
on both (SQLAlchemy Core, upserts via ``ON CONFLICT``). Every public method is
one transaction, and driver errors become :class:`StoreError` /
:class:`StoreUnavailable` here, at the edge.

Clock: all times are UTC epoch seconds from *Python's* clock (``time.time()``,
or the ``clock`` given to :meth:`Store.open`), never the database's — so on
Postgres the replicas' clocks must agree to well within a lease length (NTP).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from . import queue
from .domain import BaseEntry, ItemRef, Link, Value
from .errors import ConfigError, SyncdError
from .locks import SHARED_WAIT, LinkBusy
from .memory import sqlite_cache_pragma
from .metrics import METRICS
from .queue import DeadLetter
from .schema import audit as audit_t
from .schema import cursors, dirty, history, inbox, insert_for, insert_on, intents, leases, link_base, links
# The records and errors of the store's ports (re-exported: ``from syncd.store import Intent``).
from .store_ports import (Begun, Claim, Fenced, Intent, Linked, LinkNotFound, LinkState, StaleBase, StoreError,
                          StoreUnavailable)

__all__ = [
    "AuditRow", "BaseEntry", "Begun", "Claim", "DaemonRunning", "DeadLetter", "Fenced", "Intent", "Linked", "LinkNotFound",
    "LinkState", "Outage", "StaleBase", "Store", "StoreError", "StoreUnavailable", "alembic_config", "is_outage_error",
    "outage_reason",
]

log = structlog.get_logger(__name__)

UPGRADE_LOCK_KEY = 0x73796E6364  # "syncd": one advisory lock id for every syncd schema migration
# Advisory locks belong to the whole database, not to a schema: two syncd installations
# (or test runs) in one database, each in its own schema, have links numbered from 1.
# The first half of the two-int key is therefore a hash of "syncd:<schema>", the link
# id the second (found when the test suite ran Postgres tests side by side: every
# link 1 was "held by another replica").
LINK_LOCK_SPACE_SQL = "hashtext('syncd:' || current_schema())"
# The same space as pg_locks shows it (classid is an unsigned oid), for operators' queries.
LINK_LOCK_CLASSID_SQL = f"({LINK_LOCK_SPACE_SQL}::bigint & 4294967295)"
# Alembic keeps its running context in module globals (alembic.context, alembic.op), so two
# upgrades in one process must not overlap; across processes the database lock decides.
_UPGRADE_IN_PROCESS = threading.Lock()


@dataclass(frozen=True)
class Outage:
    """The database outage this process is seeing now (:attr:`Store.outage`)."""

    reason: str          # as in StoreUnavailable.reason
    error: str           # the driver's first line, e.g. "sqlite: database or disk is full"
    since: float         # epoch seconds of the first failure
    last_seen: float     # time.monotonic() of the latest failure
    failures: int        # failures since it began


# Below this much free space a SQLite I/O failure is taken for a full disk: the WAL grows
# by pages and checkpoints, and the -shm file by 32 KiB blocks.
FULL_DISK_BYTES = 1 << 20


def outage_reason(err: BaseException | str) -> str:
    """Classify a driver error that made the database unusable (never a problem of the item)."""
    code = str(getattr(err, "sqlstate", None) or "")   # psycopg 3 errors carry the SQLSTATE
    text = str(err).lower()
    if code == "53100" or "disk is full" in text or "no space left" in text or "could not extend file" in text:
        return "database_disk_full"
    if "database is locked" in text or "database table is locked" in text or "busy" in text:
        return "database_locked"
    if "readonly database" in text or "read-only" in text or code == "25006":
        return "database_read_only"
    if code.startswith("08") or code.startswith("57P") or any(s in text for s in (
            "connection", "connect to server", "server closed", "shutting down", "starting up",
            "terminating", "unable to open database")):
        return "database_unreachable"
    if "disk i/o error" in text or code.startswith("58"):
        return "database_io_error"
    return "database_unavailable"


def is_outage_error(error: str) -> bool:
    """Whether an item's error text (``"<ExceptionType>: <message>"``, as the worker records it)
    is a database outage rather than a failure of the item itself."""
    return error.startswith(f"{StoreUnavailable.__name__}: ")


class DaemonRunning(StoreError):
    """Another syncd daemon already holds this SQLite database (SQLite serves one daemon)."""


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    event: str
    link_id: int | None
    detail: Mapping[str, Any]


def alembic_config() -> Config:
    """Alembic config pointing at the migrations shipped in the package (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return cfg


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _value(raw: Any) -> Value:
    """JSON gives lists back; canonical multi-values are tuples."""
    return tuple(raw) if isinstance(raw, list) else raw


def _encode_base(base: Mapping[str, BaseEntry]) -> str:
    return json.dumps({name: {"desk": e.desk, "tracker": e.tracker} for name, e in base.items()}, sort_keys=True)


def _decode_base(text: str) -> dict[str, BaseEntry]:
    return {name: BaseEntry(_value(e["desk"]), _value(e["tracker"])) for name, e in json.loads(text).items()}


# Run several times per reconcile: built once (building a statement costs about what running it does).
_LINKS_BY_DESK = sa.select(links).where(links.c.desk_ref == sa.bindparam("ref")).order_by(links.c.id)
_LINKS_BY_ISSUE = sa.select(links).where(links.c.issue_id == sa.bindparam("issue")).order_by(links.c.id)
# The links with their base revisions (0: no base yet), as every reconcile starts: one statement.
_WITH_REVISION = (sa.select(links, sa.func.coalesce(link_base.c.revision, 0).label("base_revision"))
                  .select_from(links.outerjoin(link_base, link_base.c.link_id == links.c.id)).order_by(links.c.id))
_LINKED_TO_DESK = _WITH_REVISION.where(links.c.desk_ref == sa.bindparam("ref"))
_LINKED_TO_ISSUE = _WITH_REVISION.where(links.c.issue_id == sa.bindparam("issue"))


_BASE_OF_LINK = sa.select(link_base.c.fields, link_base.c.revision).where(link_base.c.link_id == sa.bindparam("link"))
_INTENTS_OF_LINK = (sa.select(intents)
                    .where(sa.or_(intents.c.link_id == sa.bindparam("link"),
                                  intents.c.key.in_(sa.bindparam("keys", expanding=True))))
                    .order_by(intents.c.created_at, intents.c.key))
_INTENT_BY_KEY = sa.select(intents).where(intents.c.key == sa.bindparam("key_v"))


@functools.lru_cache(maxsize=None)
def _inbox_insert(dialect: str) -> sa.Insert:
    """Store a delivery unless seen: built once per dialect (it runs for every webhook)."""
    return insert_on(dialect, inbox).on_conflict_do_nothing(index_elements=[inbox.c.source, inbox.c.delivery_id])


def _link(row: sa.Row) -> Link:
    return Link(row.id, ItemRef.parse(row.desk_ref), row.issue_id, row.issue_key, _utc(row.created_at))


def _intent(row: sa.Row) -> Intent:
    payload = None if row.payload is None else json.loads(row.payload)
    return Intent(row.key, row.kind, row.state, row.result, row.link_id, payload, _utc(row.created_at),
                  row.claim_ref, row.claim_fence)


def _normalise_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # psycopg 3 is the driver we ship; a bare postgresql:// would ask for psycopg2.
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigError("store", "url", f"sqlite:///PATH or postgresql+psycopg://..., not {parsed.drivername}://")


def _ensure_wal(dbapi_conn: Any, busy_timeout: float) -> None:
    """WAL is a property of the file: set once, it stays. Switching needs an
    exclusive lock and SQLite answers "locked" at once, without the busy handler,
    when two processes open a new file together, so retry for a while."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _postgres_connect_args(url: sa.URL, connect_timeout: float, statement_timeout: float) -> dict[str, Any]:
    """Every Postgres connection gives up instead of hanging (issue 10, finding 4):

    * ``connect_timeout``: the whole connection set-up, TCP and authentication;
    * ``statement_timeout`` (server side): a statement running longer is cancelled;
    * TCP keepalives (probe after 10 s idle, every 5 s, 3 lost = dead) and
      ``tcp_user_timeout`` (data unacknowledged for 20 s = dead): a connection whose
      peer vanished -- a silent network partition: no FIN, no RST -- fails within
      about 25 s instead of waiting for the kernel's default of two hours or more.
    The same keepalives are asked of the server (``-c tcp_keepalives_*``, ``tcp_user_timeout``).
    The URL's own query parameters win (``?connect_timeout=…``); its ``options`` are kept,
    ours appended unless it sets the same setting itself."""
    args: dict[str, Any] = {
        "connect_timeout": max(1, round(connect_timeout)),
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
        "tcp_user_timeout": 20_000,
    }
    for key in url.query:
        args.pop(key, None)
    given = url.query.get("options", "")
    given = " ".join(given) if isinstance(given, tuple) else given
    ours = [] if "statement_timeout" in given else [f"-c statement_timeout={int(statement_timeout * 1000)}"]
    # The same keepalives on the server's side of the connection: a replica whose host
    # vanished (or a partition that left the server's socket half-open) has its session
    # ended within ~25 s, and with it the link locks it held (session advisory locks live
    # as long as the session; the kernel default would keep them for two hours or more).
    ours += [f"-c {name}={value}" for name, value in SERVER_KEEPALIVES if name not in given]
    if ours:
        args["options"] = " ".join([given, *ours]).strip()
    return args


SERVER_KEEPALIVES = (("tcp_keepalives_idle", 10), ("tcp_keepalives_interval", 5), ("tcp_keepalives_count", 3),
                     ("tcp_user_timeout", 20_000))


def _make_private(database: str | None) -> None:
    """The database, its -wal and -shm readable by syncd's user only: the inbox holds raw
    webhook bodies (customer messages). ``syncd run`` also sets umask 077; this covers a
    file created by an earlier, laxer run and any other caller (SQLite gives -wal and -shm
    the database file's mode when it creates them)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    for path in (database, f"{database}-wal", f"{database}-shm"):
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError as e:   # not our file (a shared -shm of another user): say so, go on
            log.warning("database_file_not_private", path=path, error=str(e))


def _sqlite_engine(url: sa.URL, busy_timeout: float) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below); pysqlite's own implicit BEGIN would be DEFERRED.
        dbapi_conn.isolation_level = None
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _ensure_wal(dbapi_conn, busy_timeout)
        _make_private(url.database)
        cache = sqlite_cache_pragma()   # each pooled connection's page cache, bounded (syncd/memory.py)
        for pragma in ("foreign_keys=ON", "synchronous=NORMAL", *([cache] if cache else [])):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A writer takes the write lock up front: a DEFERRED transaction that reads and then
        # writes can fail with SQLITE_BUSY at once, without the busy timeout helping.
        immediate = conn.get_execution_options().get("syncd_write", False)
        # Straight to the driver: through SQLAlchemy's execute this one statement cost
        # as much CPU as the transaction's own query.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """One per process; thread-safe (each call takes its own pooled connection)."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], float] = time.time,
                 busy_timeout: float = 10.0) -> None:
        self._engine = engine
        self.clock = clock
        self._daemon_lock: Any = None   # the open lock file while this process is the daemon
        # SQLite has one writer. Threads of this process queue for it here rather than in
        # SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and so leaves
        # the lock idle long after it was freed; other processes still meet the busy handler.
        # Reentrant so a nested write fails by SQLite's timeout as before instead of hanging.
        self._writer = threading.RLock() if engine.dialect.name == "sqlite" else None
        self._busy_timeout = busy_timeout
        self._outage: Outage | None = None   # the database outage under way, if any (health checks)
        self._outage_lock = threading.Lock()
        self._probing = threading.Lock()     # one health probe at a time (check_outage)

    @classmethod
    def open(
        cls, url: str, *, clock: Callable[[], float] = time.time, busy_timeout: float = 10.0, pool_size: int = 10,
        connect_timeout: float = 5.0, statement_timeout: float = 30.0,
    ) -> "Store":
        """``sqlite:///path`` or ``postgresql+psycopg://user@host/db``. Does not migrate: call :meth:`upgrade`.

        ``busy_timeout`` (SQLite): how long a writer waits for another one before StoreUnavailable.
        ``pool_size`` (Postgres): connections kept; up to twice as many more under load.
        ``connect_timeout`` / ``statement_timeout`` (Postgres): see :func:`_postgres_connect_args`.
        """
        parsed = _normalise_url(url)
        if parsed.get_backend_name() == "sqlite":
            return cls(_sqlite_engine(parsed, busy_timeout), clock, busy_timeout)
        else:
            # Room for every worker to hold a link lock (one connection each) and still run queries.
            engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=pool_size, max_overflow=2 * pool_size,
                                      pool_timeout=max(connect_timeout, 5.0),
                                      connect_args=_postgres_connect_args(parsed, connect_timeout, statement_timeout))
        return cls(engine, clock)

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        self.release_daemon_lock()
        self._engine.dispose()

    def acquire_daemon_lock(self) -> None:
        """Become *the* daemon of a SQLite database, or raise :class:`DaemonRunning`.

        Two daemons on one SQLite file would both poll and claim, and SQLite's
        write lock would make them take turns at best; so the second is refused.
        An ``flock`` on ``<db>.daemon.lock`` rather than a row with a heartbeat:
        the kernel drops it when the process dies, even by SIGKILL, so a crashed
        daemon never blocks its restart. Commands (``syncd status``, ``link``…)
        do not take it. Postgres needs none: replicas share the work there.
        """
        database = self._engine.url.database if self.backend == "sqlite" else None
        if not database or database == ":memory:" or self._daemon_lock is not None:
            return
        path = Path(database).with_name(Path(database).name + ".daemon.lock")
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise DaemonRunning(
                f"another syncd daemon ({holder}) already runs on {database}: SQLite serves one daemon; "
                "stop it first, or use Postgres to run several replicas") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._daemon_lock = handle
        log.info("daemon_lock_held", path=str(path))

    @property
    def holds_daemon_lock(self) -> bool:
        return self._daemon_lock is not None

    def release_daemon_lock(self) -> None:
        handle, self._daemon_lock = self._daemon_lock, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SyncdError:
            raise
        except sa_exc.DBAPIError as err:
            # OperationalError: server gone, disk full, locked. A connection that broke under
            # us (InterfaceError "the connection is closed", anything SQLAlchemy invalidated
            # as a disconnect) is the same outage, not a bad statement.
            if isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError)) or err.connection_invalidated:
                raise self._unavailable(err.orig if err.orig is not None else err) from err
            raise StoreError(f"{self.backend}: {_first_line(err.orig)}") from err
        except (sqlite3.OperationalError, sqlite3.InterfaceError) as err:   # our own BEGIN (_on_begin)
            raise self._unavailable(err) from err

    def _unavailable(self, err: BaseException, reason: str | None = None) -> StoreUnavailable:
        """Log and remember the outage; the StoreUnavailable to raise."""
        reason = reason or outage_reason(err)
        error = f"{self.backend}: {_first_line(err)}"
        if reason in ("database_io_error", "database_unavailable") and (free := self._sqlite_free_bytes()) is not None \
                and free < FULL_DISK_BYTES:
            # SQLite reports a full disk as SQLITE_FULL only when a page write fails; when it is
            # the -wal or -shm file that cannot grow (e.g. at start), it says "disk I/O error",
            # which would send an admin looking at the hardware.
            reason, error = "database_disk_full", f"{error} ({free} bytes free on the database's filesystem)"
        log.warning("store_unavailable", backend=self.backend, reason=reason, error=_first_line(err))
        now = time.monotonic()
        with self._outage_lock:
            old = self._outage
            self._outage = Outage(reason, error, old.since if old else time.time(), now,
                                  (old.failures if old else 0) + 1)
        if old is None or old.reason != reason:
            log.error("database_unavailable", backend=self.backend, reason=reason, error=error)
            METRICS.database_outage(reason)
        return StoreUnavailable(error, reason)

    def _sqlite_free_bytes(self) -> int | None:
        """Free bytes on the filesystem of the SQLite file (None for Postgres or in-memory)."""
        path = self._engine.url.database if self.backend == "sqlite" else None
        if not path or path == ":memory:":
            return None
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(path)))
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _worked(self, write: bool, started: float) -> None:
        """A transaction that began at ``started`` (monotonic) committed: the outage is over.
        A read proves only that the server answers, not that a full disk has room again."""
        outage = self._outage
        if outage is None or outage.last_seen >= started:
            return
        if not write and outage.reason != "database_unreachable":
            return
        with self._outage_lock:
            if self._outage is not outage:
                return
            self._outage = None
        log.info("database_recovered", backend=self.backend, reason=outage.reason, failures=outage.failures,
                 seconds=round(time.time() - outage.since, 1))

    @property
    def outage(self) -> Outage | None:
        """The outage under way (None while the database works): what /readyz reports."""
        return self._outage

    def check_outage(self, quiet_for: float = 2.0, wait: float = 1.0) -> Outage | None:
        """:attr:`outage`, after proving it over or not with a probe write once no failure
        was seen for ``quiet_for`` seconds (an idle daemon makes no writes to prove it).
        The probe runs on a thread of its own, waited for ``wait`` seconds at most: on a
        locked SQLite file it could wait out the busy timeout, and a health check must not."""
        outage = self._outage
        if outage is None or time.monotonic() - outage.last_seen < quiet_for:
            return outage
        if self._probing.acquire(blocking=False):
            probe = threading.Thread(target=self._probe, name="store-probe", daemon=True)
            probe.start()
            probe.join(wait)
        return self._outage

    def _probe(self) -> None:
        name = "syncd:health-probe"
        try:
            with self._tx() as conn:   # written and removed in one commit: the WAL/disk is used, no row stays
                conn.execute(sa.insert(leases).values(name=name, owner=name, fence=0, expires_at=0.0))
                conn.execute(sa.delete(leases).where(leases.c.name == name))
        except StoreError:
            pass
        finally:
            self._probing.release()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sa.Connection]:
        started = time.monotonic()
        with self._writer_turn(write), self._translated(), self._engine.connect() as conn:
            # preserve_rowcount: SQLAlchemy only keeps rowcount for UPDATE/DELETE by default, and our
            # upserts report "inserted or not" through it.
            conn.execution_options(syncd_write=write, preserve_rowcount=True)
            with conn.begin():
                yield conn
        self._worked(write, started)

    @contextmanager
    def _writer_turn(self, write: bool) -> Iterator[None]:
        """SQLite: one writing thread of this process at a time (see ``__init__``)."""
        if not write or self._writer is None:
            yield
            return
        if not self._writer.acquire(timeout=self._busy_timeout):
            raise self._unavailable(RuntimeError("database is locked (another writer of this process)"),
                                    "database_locked")
        try:
            yield
        finally:
            self._writer.release()

    @contextmanager
    def link_lock(self, link_id: int, wait: float = SHARED_WAIT) -> Iterator[None]:
        """Hold the link across replicas (Postgres advisory lock on a connection of its own).

        A try-lock, tried for ``wait`` seconds: a replica frozen while holding it (its session,
        and so the lock, stays open) must not stall the others, so :class:`LinkBusy` is raised
        and the worker requeues its item. On SQLite there is one process, whose in-process lock
        (:class:`syncd.locks.LinkLocks`) is enough, so this holds nothing.
        """
        if self.backend != "postgresql":
            yield
            return
        key = {"link": link_id}
        with self._translated():
            conn = self._engine.connect()
            try:
                deadline = time.monotonic() + wait
                while True:
                    got = conn.scalar(sa.text(f"SELECT pg_try_advisory_lock({LINK_LOCK_SPACE_SQL}, :link)"), key)
                    conn.commit()
                    if got:
                        break
                    if time.monotonic() >= deadline:
                        raise LinkBusy(link_id, "another replica")
                    time.sleep(0.05)
            except BaseException:
                conn.close()
                raise
        try:
            yield
        finally:
            try:
                with self._translated():
                    conn.execute(sa.text(f"SELECT pg_advisory_unlock({LINK_LOCK_SPACE_SQL}, :link)"), key)
                    conn.commit()
            except StoreError:
                conn.invalidate()  # a closed session releases its advisory locks; never pool it still locked
                raise
            finally:
                conn.close()

    # -- schema ---------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Migrate to head. Idempotent. Racing processes queue on an advisory lock (Postgres) or on
        SQLite's write lock (the migration runs in one BEGIN IMMEDIATE transaction)."""
        with _UPGRADE_IN_PROCESS, self._translated(), self._engine.connect() as conn:
            conn.execution_options(syncd_write=True)
            postgres = self.backend == "postgresql"
            if postgres:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": UPGRADE_LOCK_KEY})
                conn.commit()
            try:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if postgres:
                    conn.rollback()
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": UPGRADE_LOCK_KEY})
                    conn.commit()
        log.info("store_upgraded", backend=self.backend, revision=self.current_revision())

    def current_revision(self) -> str | None:
        with self._tx(write=False) as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # -- links ----------------------------------------------------------------------------------

    def add_link(self, desk: ItemRef, issue_id: str, issue_key: str) -> Link:
        c = links.c
        with self._tx() as conn:
            stmt = insert_for(conn, links).values(
                desk_ref=str(desk), issue_id=issue_id, issue_key=issue_key, created_at=self.clock()
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[c.desk_ref, c.issue_id]))
            row = conn.execute(sa.select(links).where(c.desk_ref == str(desk), c.issue_id == issue_id)).one()
            return _link(row)

    def remove_link(self, desk: ItemRef, issue_id: str) -> bool:
        c = links.c
        with self._tx() as conn:
            return bool(conn.execute(sa.delete(links).where(c.desk_ref == str(desk), c.issue_id == issue_id)).rowcount)

    def get_link(self, link_id: int) -> Link | None:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(links).where(links.c.id == link_id)).first()
            return None if row is None else _link(row)

    def links_for_desk(self, desk: ItemRef) -> list[Link]:
        with self._tx(write=False) as conn:
            return [_link(r) for r in conn.execute(_LINKS_BY_DESK, {"ref": str(desk)})]

    def links_for_issue(self, issue_id: str) -> list[Link]:
        with self._tx(write=False) as conn:
            return [_link(r) for r in conn.execute(_LINKS_BY_ISSUE, {"issue": issue_id})]

    def linked(self, ref: ItemRef) -> Linked:
        """The links of a desk item or of an issue (a ``jira`` ref) and their base revisions,
        in one read: a reconcile needs both, and each transaction costs."""
        query, params = (_LINKED_TO_DESK, {"ref": str(ref)}) if ref.is_desk else (_LINKED_TO_ISSUE, {"issue": ref.id})
        with self._tx(write=False) as conn:
            rows = conn.execute(query, params).all()
        return Linked(tuple(_link(r) for r in rows), {r.id: r.base_revision for r in rows})

    def list_links(self, limit: int = 100, offset: int = 0) -> list[Link]:
        return self._links(sa.true(), limit, offset)

    def _links(self, where: sa.ColumnElement[bool], limit: int | None = None, offset: int = 0) -> list[Link]:
        with self._tx(write=False) as conn:
            query = sa.select(links).where(where).order_by(links.c.id).limit(limit).offset(offset)
            return [_link(r) for r in conn.execute(query)]

    def count_links(self) -> int:
        with self._tx(write=False) as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(links)) or 0

    def update_issue_key(self, issue_id: str, key: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(links).where(links.c.issue_id == issue_id).values(issue_key=key))

    # -- base -----------------------------------------------------------------------------------

    def get_base(self, link_id: int) -> tuple[dict[str, BaseEntry], int]:
        c = link_base.c
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(c.fields, c.revision).where(c.link_id == link_id)).first()
            return ({}, 0) if row is None else (_decode_base(row.fields), row.revision)

    def revisions(self, link_ids: Sequence[int]) -> dict[int, int]:
        """Base revision of each link (0: no base yet), in one transaction."""
        c = link_base.c
        if not link_ids:
            return {}
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(c.link_id, c.revision).where(c.link_id.in_(link_ids)))
            found = {r.link_id: r.revision for r in rows}
        return {i: found.get(i, 0) for i in link_ids}

    def link_state(self, link_id: int, extra_keys: Sequence[str] = ()) -> LinkState:
        """Base, revision and intents of the link (plus the intents named in ``extra_keys``),
        in one read transaction: a reconcile needs them all, and each transaction costs."""
        with self._tx(write=False) as conn:
            row = conn.execute(_BASE_OF_LINK, {"link": link_id}).first()
            rows = conn.execute(_INTENTS_OF_LINK, {"link": link_id, "keys": list(extra_keys)}).all()
        base, revision = ({}, 0) if row is None else (_decode_base(row.fields), row.revision)
        return LinkState(base, revision, tuple(_intent(r) for r in rows))

    def put_base(self, link_id: int, base: Mapping[str, BaseEntry], expected_revision: int) -> int:
        """Write the base if nobody else did since ``expected_revision`` was read; returns the new revision."""
        c = link_base.c
        fields, now, new_revision = _encode_base(base), self.clock(), expected_revision + 1
        with self._tx() as conn:
            if conn.scalar(sa.select(links.c.id).where(links.c.id == link_id)) is None:
                raise LinkNotFound(f"link {link_id} does not exist")
            if expected_revision == 0:
                stmt = insert_for(conn, link_base).values(
                    link_id=link_id, revision=new_revision, fields=fields, updated_at=now
                )
                written = conn.execute(stmt.on_conflict_do_nothing(index_elements=[c.link_id])).rowcount
            else:
                stmt = (
                    sa.update(link_base)
                    .where(c.link_id == link_id, c.revision == expected_revision)
                    .values(revision=new_revision, fields=fields, updated_at=now)
                )
                written = conn.execute(stmt).rowcount
            if not written:
                raise StaleBase(f"link {link_id}: base moved past revision {expected_revision}")
        return new_revision

    # -- intents --------------------------------------------------------------------------------

    def begin_intent(
        self, key: str, kind: str, link_id: int | None = None, payload: Mapping | None = None,
        claim: Claim | None = None,
    ) -> Begun:
        """Record a write before making it, owned by ``claim`` (the caller's claim on its item).
        An existing row (pending or done) is returned as it is, not owned: pending means another
        attempt may or may not have reached the vendor — look for its marker, and make the write
        only after :meth:`take_intent` gave it to you."""
        with self._tx() as conn:
            stmt = insert_for(conn, intents).values(
                key=key,
                kind=kind,
                state="pending",
                link_id=link_id,
                payload=None if payload is None else json.dumps(payload, sort_keys=True, default=str),
                created_at=self.clock(),
                claim_ref=None if claim is None else str(claim.ref),
                claim_fence=None if claim is None else claim.fence,
            )
            inserted = conn.execute(stmt.on_conflict_do_nothing(index_elements=[intents.c.key])).rowcount
            row = _intent(conn.execute(sa.select(intents).where(intents.c.key == key)).one())
            return Begun(row, bool(inserted))

    def take_intent(self, seen: Intent, claim: Claim | None) -> bool:
        """Take over a pending intent another attempt recorded (it died, or its claim was taken,
        and its write was looked for and not found): compare-and-set on the owner seen, so of
        two takers one wins. The intent's age restarts: the new write is in flight from now."""
        c = intents.c
        with self._tx() as conn:
            return bool(conn.execute(
                sa.update(intents)
                .where(c.key == seen.key, c.state == "pending",
                       c.claim_ref.is_(None) if seen.claim_ref is None else c.claim_ref == seen.claim_ref,
                       c.claim_fence.is_(None) if seen.claim_fence is None else c.claim_fence == seen.claim_fence)
                .values(claim_ref=None if claim is None else str(claim.ref),
                        claim_fence=None if claim is None else claim.fence, created_at=self.clock())).rowcount)

    def drop_intent(self, key: str, claim: Claim | None = None) -> bool:
        """Forget a *pending* intent whose write certainly did not happen (the vendor
        refused it, or its holder stopped before sending), so the next try writes at once
        instead of looking first. With ``claim``: only while that claim owns it."""
        c = intents.c
        where = [c.key == key, c.state == "pending"]
        if claim is not None:
            where += [c.claim_ref == str(claim.ref), c.claim_fence == claim.fence]
        with self._tx() as conn:
            return bool(conn.execute(sa.delete(intents).where(*where)).rowcount)

    def finish_intent(self, key: str, result: str) -> None:
        with self._tx() as conn:
            done = conn.execute(
                sa.update(intents).where(intents.c.key == key).values(state="done", result=result, done_at=self.clock())
            ).rowcount
            if not done:
                raise StoreError(f"no intent {key!r} to finish")

    def get_intent(self, key: str) -> Intent | None:
        with self._tx(write=False) as conn:
            row = conn.execute(_INTENT_BY_KEY, {"key_v": key}).first()
            return None if row is None else _intent(row)

    def intents_for_link(self, link_id: int, kind: str | None = None) -> list[Intent]:
        c = intents.c
        query = sa.select(intents).where(c.link_id == link_id).order_by(c.created_at, c.key)
        if kind is not None:
            query = query.where(c.kind == kind)
        with self._tx(write=False) as conn:
            return [_intent(r) for r in conn.execute(query)]

    # -- dirty queue (SQL in syncd.queue) -------------------------------------------------------

    def mark_dirty(self, refs: Iterable[ItemRef], reason: str, delay: float = 0.0) -> None:
        """Coalescing upsert. A row under backoff keeps its due time and attempts, unless
        ``reason == "manual"`` and ``delay == 0`` (an operator's "sync now")."""
        with self._tx() as conn:
            queue.mark_dirty(conn, refs, reason, delay, self.clock())

    def claim(self, owner: str, limit: int, lease_seconds: float, look_first: bool = True) -> list[Claim]:
        """Lease up to ``limit`` due items. ``owner`` must be unique per worker (e.g. host:pid:thread).

        ``look_first``: find out with a read whether anything is due before taking the
        write lock. Every webhook wakes every idle worker, and most of them find nothing;
        a worker whose last claim found work (a busy queue) claims at once instead."""
        if look_first:
            with self._tx(write=False) as conn:
                if not queue.any_due(conn, self.clock()):
                    return []
        with self._tx() as conn:
            return queue.claim(conn, owner, limit, lease_seconds, self.clock())

    def claim_current(self, claim: Claim) -> bool:
        """Whether ``claim`` still stands (its token on the row, its lease not run out):
        asked right before a non-idempotent vendor write."""
        with self._tx(write=False) as conn:
            return queue.current(conn, claim, self.clock())

    def renew(self, claim: Claim, lease_seconds: float) -> float | None:
        """Heartbeat: the claim's new lease expiry, or None when it was taken meanwhile."""
        with self._tx() as conn:
            return queue.renew(conn, claim, lease_seconds, self.clock())

    def take_over_dead_process(self) -> tuple[int, int]:
        """SQLite at start, once the daemon lock is held: no other process can be working,
        so the leases and poll leadership of the one before (killed) are freed at once
        instead of waited out. Returns (claims freed, poll leases freed)."""
        with self._tx() as conn:
            claims = queue.release_all(conn)
            polls = conn.execute(sa.update(leases).where(leases.c.expires_at > self.clock())
                                 .values(expires_at=self.clock())).rowcount
        return claims, polls

    def complete(self, claim: Claim, history_rows: Sequence[Mapping[str, Any]] = ()) -> None:
        """Settle a reconcile that succeeded, with its history entries (:func:`syncd.history.rows`)
        in the same commit: one write transaction per reconcile instead of two."""
        with self._tx() as conn:
            if history_rows:
                conn.execute(sa.insert(history), list(history_rows))
            if not queue.complete(conn, claim, self.clock()):
                log.info("dirty_kept", ref=str(claim.ref), owner=claim.owner)

    def defer(self, claim: Claim, delay: float, error: str | None = None) -> None:
        """Give the item back for later without counting an attempt (rate limited, budget spent)."""
        with self._tx() as conn:
            if not queue.defer(conn, claim, delay, error, self.clock()):
                log.warning("claim_lost", ref=str(claim.ref), owner=claim.owner, action="defer")

    def fail(self, claim: Claim, error: str, max_attempts: int, backoff: Callable[[int], float]) -> bool:
        """Count an attempt; True when the item moved to the dead letters.

        A database outage (``error`` from a :class:`StoreUnavailable`) is not the item's
        failure: the item is given back after the first backoff step without counting an
        attempt, so a full disk or a restarting server never sends good items to the dead
        letters however long it lasts."""
        if is_outage_error(error):
            with self._tx() as conn:
                kept = queue.defer(conn, claim, backoff(1), error, self.clock())
            log.warning("item_deferred", item=str(claim.ref), reason=outage_reason(error), error=error,
                        **({} if kept else {"claim_lost": True}))
            return False
        with self._tx() as conn:
            dead = queue.fail(conn, claim, error, max_attempts, backoff, self.clock())
        if dead:
            log.warning("dead_lettered", ref=str(claim.ref), attempts=max_attempts)
        return dead

    def queue_depth(self) -> int:
        with self._tx(write=False) as conn:
            return queue.depth(conn)

    def oldest_dirty_age(self) -> float | None:
        with self._tx(write=False) as conn:
            return queue.oldest_age(conn, self.clock())

    # -- webhook inbox and poll cursors -----------------------------------------------------------

    def accept_delivery(
        self, source: str, delivery_id: str, body: bytes, refs: Sequence[ItemRef], delay: float = 0.0,
        stamp: float | None = None,
    ) -> bool:
        """Store the delivery and mark its items dirty, all or nothing. False = seen before.
        ``stamp``: when the delivery says its item changed (see :func:`syncd.queue.mark_dirty`)."""
        with self._tx() as conn:
            now = self.clock()
            row = {"source": source, "delivery_id": delivery_id, "body": body, "received_at": now}
            if not conn.execute(_inbox_insert(conn.dialect.name), row).rowcount:
                return False
            queue.mark_dirty(conn, refs, f"webhook:{source}", delay, now, stamp)
            return True

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One write transaction, for housekeeping (:mod:`syncd.retention`)."""
        with self._tx() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """One read transaction, for the read-only views (:mod:`syncd.history`, the admin page)."""
        with self._tx(write=False) as conn:
            yield conn

    def prune_inbox(self, older_than: float) -> int:
        """Forget deliveries received more than ``older_than`` seconds ago (vendors stop redelivering)."""
        with self._tx() as conn:
            cutoff = self.clock() - older_than
            return conn.execute(sa.delete(inbox).where(inbox.c.received_at < cutoff)).rowcount

    def get_cursor(self, source: str) -> str | None:
        with self._tx(write=False) as conn:
            return conn.scalar(sa.select(cursors.c.cursor).where(cursors.c.source == source))

    def advance_cursor(self, source: str, cursor: str, refs: Sequence[ItemRef], fence: int | None = None) -> None:
        """Move the cursor and mark the polled items dirty, all or nothing.

        Raises :class:`Fenced` when ``fence`` is lower than the fence that last wrote this
        cursor. ``fence=None`` (single process, no lease) is never refused and keeps the stored fence.
        """
        c = cursors.c
        with self._tx() as conn:
            now = self.clock()
            stmt = insert_for(conn, cursors).values(source=source, cursor=cursor, fence=fence, updated_at=now)
            new = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.source],
                set_={"cursor": new.cursor, "fence": sa.func.coalesce(new.fence, c.fence), "updated_at": new.updated_at},
                where=sa.or_(new.fence.is_(None), c.fence.is_(None), c.fence <= new.fence),
            )
            if not conn.execute(stmt).rowcount:
                raise Fenced(f"cursor {source!r}: fence {fence} is older than the stored one")
            queue.mark_dirty(conn, refs, f"poll:{source}", 0.0, now)

    # -- leader leases --------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl: float) -> int | None:
        """Take or renew the lease; returns its fencing token, or None while someone else holds it.
        The token goes up by one each time the lease changes hands, never down."""
        c = leases.c
        with self._tx() as conn:
            now = self.clock()
            stmt = insert_for(conn, leases).values(name=name, owner=owner, fence=1, expires_at=now + ttl)
            new = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.name],
                set_={
                    "owner": new.owner,
                    "expires_at": new.expires_at,
                    "fence": sa.case((c.owner == new.owner, c.fence), else_=c.fence + 1),
                },
                where=sa.or_(c.owner == new.owner, c.expires_at <= now),
            ).returning(c.fence)
            fence = conn.scalar(stmt)
        if fence is not None:
            log.debug("lease_held", name=name, owner=owner, fence=fence)
        return fence

    def release_lease(self, name: str, owner: str) -> bool:
        """Let the lease go at once (clean shutdown) so another replica need not wait for the ttl."""
        c = leases.c
        with self._tx() as conn:
            stmt = sa.update(leases).where(c.name == name, c.owner == owner).values(expires_at=self.clock())
            return bool(conn.execute(stmt).rowcount)

    # -- dead letters ---------------------------------------------------------------------------

    def count_dead_letters(self) -> int:
        with self._tx(write=False) as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(queue.dead_letters)) or 0

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._tx(write=False) as conn:
            return queue.list_dead(conn, limit)

    def retry_dead(self, dead_id: int) -> bool:
        with self._tx() as conn:
            return queue.retry_dead(conn, dead_id, self.clock())

    def drop_dead(self, dead_id: int) -> bool:
        with self._tx() as conn:
            return queue.drop_dead(conn, dead_id)

    # -- audit ----------------------------------------------------------------------------------

    def audit(self, event: str, link_id: int | None = None, **detail: Any) -> None:
        with self._tx() as conn:
            conn.execute(
                sa.insert(audit_t).values(
                    at=self.clock(),
                    event=event,
                    link_id=link_id,
                    detail=json.dumps(detail, sort_keys=True, default=str),
                )
            )

    def audit_log(self, link_id: int | None = None, limit: int = 100) -> list[AuditRow]:
        """Newest first."""
        c = audit_t.c
        query = sa.select(audit_t).order_by(c.id.desc()).limit(limit)
        if link_id is not None:
            query = query.where(c.link_id == link_id)
        with self._tx(write=False) as conn:
            return [AuditRow(r.id, _utc(r.at), r.event, r.link_id, json.loads(r.detail)) for r in conn.execute(query)]

    # -- inspection: read-only views for operators' tools and tests (no raw SQL outside) ---------

    def inbox_count(self, source: str | None = None) -> int:
        """Webhook deliveries stored (of ``source`` alone, when given)."""
        query = sa.select(sa.func.count()).select_from(inbox)
        if source is not None:
            query = query.where(inbox.c.source == source)
        with self._tx(write=False) as conn:
            return conn.scalar(query) or 0

    def pending_intents(self) -> list[str]:
        """Keys of the intents recorded and not finished (a clean stop leaves none)."""
        with self._tx(write=False) as conn:
            return list(conn.scalars(sa.select(intents.c.key).where(intents.c.state == "pending")
                                     .order_by(intents.c.created_at, intents.c.key)))

    def lease_owners(self, refs: Iterable[ItemRef]) -> dict[ItemRef, str | None]:
        """The lease owner of each of ``refs`` still in the queue (None: dirty, not claimed);
        refs not in the queue are left out."""
        wanted = {str(r): r for r in refs}
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(dirty.c.ref, dirty.c.lease_owner).where(dirty.c.ref.in_(list(wanted))))
            return {wanted[r.ref]: r.lease_owner for r in rows}


def _first_line(err: BaseException | None) -> str:
    return str(err).strip().splitlines()[0] if err is not None and str(err).strip() else type(err).__name__
