"""Settings: the typed, frozen form of ``config.toml`` (see ``config.example.toml``
and docs/configuration.md), loaded and validated once at start.

Every problem is a :class:`~syncd.errors.ConfigError` naming the file, the
dotted key (``zendesk.requests_per_minute``) and what was expected. Unknown
keys are problems too: a typo that is silently ignored is a setting that
silently does not apply. :func:`load_settings` raises the first problem;
:func:`check` returns all of them (settings, secrets, every mapping file) for
``syncd config check``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping as TMapping

from .errors import ConfigError
from .logs import FORMATS, LEVELS
from .mapping import Mapping
from .secrets import EXPECTED_REF, Secret, resolve
from .toml_reader import (TomlReader, api_version, at_least, between, database_url, digits, email, http_url, join_key,
                          non_empty, one_of)

# ---------------------------------------------------------------- the settings

@dataclass(frozen=True)
class CoreSettings:
    """``[syncd]``"""

    database_url: str = "sqlite:///./syncd.db"
    workers: int = 4
    lease_seconds: int = 60            # a crashed worker's claim is taken over after this
    max_attempts: int = 10             # then the item goes to dead letters
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 900.0
    # Names lease owners in the store: host:pid, so two replicas on one host never share one.
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    replicas: int = 1                  # `syncd run` processes sharing the vendor accounts (splits the budgets)
    # A vendor call with no answer after this long is given up (a write: ambiguous, see docs/architecture.md).
    vendor_timeout_seconds: float = 30.0
    # Database: Postgres connection set-up and statement limits; SQLite's wait for the write lock.
    database_connect_timeout_seconds: float = 5.0
    database_statement_timeout_seconds: float = 30.0
    database_busy_timeout_seconds: float = 10.0
    # Comments the engine's memory of linked items may hold across all links (syncd/snapshots.py):
    # a bound on that memory (about 1 KiB a comment with its body); fewer means more reads.
    snapshot_max_comments: int = 100_000
    # Bytes of Jira deliveries kept to stand in for issue reads (syncd/issue_hints.py); Python
    # holds a few times that. Fewer means more getIssue reads when deliveries queue up.
    issue_hints_max_bytes: int = 8 * 2**20
    # Items whose last reconciled stamp is remembered, so a poll finding them unchanged queues
    # nothing (syncd/poll_stamps.py, ~200 bytes each); fewer means more reads after polls.
    poll_stamps_max_items: int = 100_000

@dataclass(frozen=True)
class HttpSettings:
    """``[http]``: the webhook receiver, health and metrics."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    public_url: str | None = None      # how the vendors reach us, for webhook registration
    # Limits against slow or hostile clients (docs/configuration.md, [http]).
    header_timeout_seconds: float = 10.0    # a request's headers must have arrived by then
    body_timeout_seconds: float = 10.0      # ... and its body this long after them
    max_header_bytes: int = 16 * 1024       # the whole header block
    max_headers: int = 100                  # header lines
    max_connections: int = 200              # open at once; more are answered 503
    keep_alive_seconds: float = 5.0         # an idle kept-alive connection is closed after this


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: what housekeeping forgets, and when (docs/operations.md, "Retention")."""

    every_seconds: float = 300.0              # how often housekeeping runs
    inbox_body_seconds: float = 3600.0        # a processed delivery's body (customer text) is emptied after this
    inbox_ids_hours: float = 48.0             # its id is kept this long to recognise a redelivery
    audit_days: float = 90.0                  # audit rows (link added / removed, duplicates repaired)
    dead_letter_days: float = 90.0            # dead letters nobody retried
    history_days: float = 90.0                # per-link history of syncd's writes (syncd/history.py)

@dataclass(frozen=True)
class AdminSettings:
    """``[admin]``: the read-only admin page (syncd/admin.py), off unless ``listen`` is set."""

    listen: str | None = None      # "127.0.0.1:8081": its own port, never the vendors' webhook port
    token: Secret | None = None    # bearer token, or the password of basic credentials
    user: str = "admin"            # the user name of basic credentials (browsers ask for both)

    @property
    def host(self) -> str:
        return (self.listen or "").rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int((self.listen or ":0").rpartition(":")[2])

ADMIN_TOKEN_MIN = 16   # characters: a guessable token guards nothing

def listen_address(v: str) -> str | None:
    host, sep, port = v.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 1 <= int(port) <= 65535:
        return "host:port, e.g. \"127.0.0.1:8081\" (IPv6: \"[::1]:8081\")"
    return None

@dataclass(frozen=True)
class ZendeskSettings:
    url: str
    email: str
    token: Secret
    # None only when loaded with ``defer=DEFERRABLE`` before ``webhooks install`` has produced it;
    # ``syncd run`` loads without deferring, so the daemon always has it.
    webhook_secret: Secret | None
    mapping: Mapping
    requests_per_minute: int = 200     # Team plan; the budget is shared with other integrations
    poll_interval_seconds: float = 30.0

@dataclass(frozen=True)
class JiraSettings:
    url: str
    email: str
    api_token: Secret
    webhook_secret: Secret
    requests_per_minute: int = 300
    poll_interval_seconds: float = 30.0
    poll_overlap_seconds: float = 120.0   # JQL has minute resolution, in the user's time zone

@dataclass(frozen=True)
class IntercomSettings:
    token: Secret
    client_secret: Secret
    admin_id: str
    mapping: Mapping
    url: str = "https://api.intercom.io"
    api_version: str = "2.14"
    requests_per_minute: int = 1000
    poll_interval_seconds: float = 30.0

@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "auto"

@dataclass(frozen=True)
class Settings:
    path: Path
    core: CoreSettings
    http: HttpSettings
    jira: JiraSettings
    logging: LoggingSettings
    zendesk: ZendeskSettings | None = None
    intercom: IntercomSettings | None = None
    retention: RetentionSettings = RetentionSettings()
    admin: AdminSettings = AdminSettings()
    # Deferred secrets (:data:`DEFERRABLE`) that did not resolve: dotted key → the reference
    # the config gives (``env:NAME``...), safe to show, e.g. where to store the secret.
    deferred: TMapping[str, str] = field(default_factory=dict)

    @property
    def desks(self) -> tuple[str, ...]:
        """The configured desks, e.g. ``("zendesk",)``."""
        return tuple(name for name in ("zendesk", "intercom") if getattr(self, name) is not None)

# ------------------------------------------------------------ reading sections

SECTIONS = ("syncd", "http", "zendesk", "jira", "intercom", "logging", "retention", "admin")
# Secrets that may be missing for every command but ``syncd run``: Zendesk generates
# its webhook signing secret during ``syncd webhooks install``, which itself needs a
# config that checks (README order: config check, db upgrade, webhooks install, run).
DEFERRABLE = frozenset({"zendesk.webhook_secret"})

def _default(fields: TMapping[str, Any], name: str) -> Any:
    """The dataclass default of ``name``: defaults are written once, on the settings classes."""
    return fields[name].default

class _Loader:
    """Builds :class:`Settings` from one parsed file; problems go to ``reader``."""

    def __init__(self, reader: TomlReader, environ: TMapping[str, str], defer: frozenset[str] = frozenset()):
        self.r, self.environ, self.defer = reader, environ, defer
        self.warnings: list[ConfigError] = []
        self.deferred: dict[str, str] = {}
        self.base = Path(reader.path).parent

    def secret(self, table: TMapping[str, Any], prefix: str, key: str) -> Secret | None:
        if key not in table:
            self.r.problem(join_key(prefix, key), f"{EXPECTED_REF} (the key is missing)")
            return None
        ref = self.r.get(table, prefix, key, "str")
        if ref is None:
            return None
        try:
            return resolve(ref, config_path=self.r.path, key=join_key(prefix, key), environ=self.environ)
        except ConfigError as exc:
            if exc.key in self.defer:
                self.warnings.append(exc)
                self.deferred[exc.key] = ref
            else:
                self.r.problems.append(exc)
            return None

    def mapping(self, table: TMapping[str, Any], prefix: str, desk: str) -> Mapping | None:
        from . import mapping_loader   # it imports TomlReader from here

        ref = self.r.get(table, prefix, "mapping", "str", check=non_empty)
        if ref is None:
            return None
        path = mapping_loader.resolve_mapping_path(ref, self.base)
        if not path.is_file():
            self.r.problem(join_key(prefix, "mapping"),
                           f"a mapping file that exists (looked for {path}; a relative path is "
                           "relative to the config file, builtin:NAME names a shipped mapping)")
            return None
        problems, loaded = mapping_loader.read_mapping(path)
        self.r.problems.extend(problems)
        if loaded is not None and loaded.desk != desk:
            self.r.problem(join_key(prefix, "mapping"), f"a mapping for desk = \"{desk}\", but {path} is for {loaded.desk}")
            return None
        return loaded

    def core(self, t: TMapping[str, Any]) -> CoreSettings:
        d, p = CoreSettings(), "syncd"
        self.r.keys(t, p, CoreSettings.__dataclass_fields__)
        values = dict(
            database_url=self.r.get(t, p, "database_url", "str", d.database_url, database_url),
            workers=self.r.get(t, p, "workers", "int", d.workers, between(1, 256)),
            lease_seconds=self.r.get(t, p, "lease_seconds", "int", d.lease_seconds, at_least(5)),
            max_attempts=self.r.get(t, p, "max_attempts", "int", d.max_attempts, at_least(1)),
            backoff_base_seconds=self.r.get(t, p, "backoff_base_seconds", "float", d.backoff_base_seconds, at_least(0.1)),
            backoff_max_seconds=self.r.get(t, p, "backoff_max_seconds", "float", d.backoff_max_seconds, at_least(1)),
            instance=self.r.get(t, p, "instance", "str", d.instance, non_empty),
            replicas=self.r.get(t, p, "replicas", "int", d.replicas, at_least(1)),
            vendor_timeout_seconds=self.r.get(t, p, "vendor_timeout_seconds", "float", d.vendor_timeout_seconds,
                                              between(1, 300)),
            database_connect_timeout_seconds=self.r.get(t, p, "database_connect_timeout_seconds", "float",
                                                        d.database_connect_timeout_seconds, between(1, 60)),
            database_statement_timeout_seconds=self.r.get(t, p, "database_statement_timeout_seconds", "float",
                                                          d.database_statement_timeout_seconds, between(1, 600)),
            database_busy_timeout_seconds=self.r.get(t, p, "database_busy_timeout_seconds", "float",
                                                     d.database_busy_timeout_seconds, between(0.1, 120)),
            snapshot_max_comments=self.r.get(t, p, "snapshot_max_comments", "int", d.snapshot_max_comments,
                                             between(0, 10_000_000)),
            issue_hints_max_bytes=self.r.get(t, p, "issue_hints_max_bytes", "int", d.issue_hints_max_bytes,
                                             between(0, 2**31)),
            poll_stamps_max_items=self.r.get(t, p, "poll_stamps_max_items", "int", d.poll_stamps_max_items,
                                             between(0, 10_000_000)),
        )
        base, top = values["backoff_base_seconds"], values["backoff_max_seconds"]
        if base is not None and top is not None and top < base:
            self.r.problem("syncd.backoff_max_seconds", f"a value >= syncd.backoff_base_seconds ({base:g}), got {top:g}")
        return CoreSettings(**values)

    def http(self, t: TMapping[str, Any]) -> HttpSettings:
        d, p = HttpSettings(), "http"
        self.r.keys(t, p, HttpSettings.__dataclass_fields__)
        return HttpSettings(
            host=self.r.get(t, p, "host", "str", d.host, non_empty),
            port=self.r.get(t, p, "port", "int", d.port, between(1, 65535)),
            max_body_bytes=self.r.get(t, p, "max_body_bytes", "int", d.max_body_bytes, at_least(1024)),
            public_url=self.r.get(t, p, "public_url", "str", d.public_url, http_url),
            header_timeout_seconds=self.r.get(t, p, "header_timeout_seconds", "float", d.header_timeout_seconds,
                                              between(1, 300)),
            body_timeout_seconds=self.r.get(t, p, "body_timeout_seconds", "float", d.body_timeout_seconds,
                                            between(1, 300)),
            max_header_bytes=self.r.get(t, p, "max_header_bytes", "int", d.max_header_bytes, between(4096, 1 << 20)),
            max_headers=self.r.get(t, p, "max_headers", "int", d.max_headers, between(16, 10_000)),
            max_connections=self.r.get(t, p, "max_connections", "int", d.max_connections, between(8, 100_000)),
            keep_alive_seconds=self.r.get(t, p, "keep_alive_seconds", "float", d.keep_alive_seconds, between(1, 300)),
        )

    def zendesk(self, t: TMapping[str, Any]) -> ZendeskSettings:
        p, d = "zendesk", ZendeskSettings.__dataclass_fields__
        self.r.keys(t, p, d)
        return ZendeskSettings(
            url=self.r.get(t, p, "url", "str", check=http_url),
            email=self.r.get(t, p, "email", "str", check=email),
            token=self.secret(t, p, "token"),
            webhook_secret=self.secret(t, p, "webhook_secret"),
            mapping=self.mapping(t, p, "zendesk"),
            requests_per_minute=self.r.get(t, p, "requests_per_minute", "int", _default(d, "requests_per_minute"),
                                           at_least(1)),
            # The incremental export allows 10 calls a minute.
            poll_interval_seconds=self.r.get(t, p, "poll_interval_seconds", "float",
                                             _default(d, "poll_interval_seconds"), at_least(10)),
        )

    def jira(self, t: TMapping[str, Any]) -> JiraSettings:
        p, d = "jira", JiraSettings.__dataclass_fields__
        self.r.keys(t, p, d)
        return JiraSettings(
            url=self.r.get(t, p, "url", "str", check=http_url),
            email=self.r.get(t, p, "email", "str", check=email),
            api_token=self.secret(t, p, "api_token"),
            webhook_secret=self.secret(t, p, "webhook_secret"),
            requests_per_minute=self.r.get(t, p, "requests_per_minute", "int", _default(d, "requests_per_minute"),
                                           at_least(1)),
            poll_interval_seconds=self.r.get(t, p, "poll_interval_seconds", "float",
                                             _default(d, "poll_interval_seconds"), at_least(1)),
            poll_overlap_seconds=self.r.get(t, p, "poll_overlap_seconds", "float",
                                            _default(d, "poll_overlap_seconds"), at_least(60)),
        )

    def intercom(self, t: TMapping[str, Any]) -> IntercomSettings:
        p, d = "intercom", IntercomSettings.__dataclass_fields__
        self.r.keys(t, p, d)
        return IntercomSettings(
            url=self.r.get(t, p, "url", "str", _default(d, "url"), http_url),
            token=self.secret(t, p, "token"),
            client_secret=self.secret(t, p, "client_secret"),
            admin_id=self.r.get(t, p, "admin_id", "str", check=digits),
            api_version=self.r.get(t, p, "api_version", "str", _default(d, "api_version"), api_version),
            requests_per_minute=self.r.get(t, p, "requests_per_minute", "int", _default(d, "requests_per_minute"),
                                           at_least(1)),
            poll_interval_seconds=self.r.get(t, p, "poll_interval_seconds", "float",
                                             _default(d, "poll_interval_seconds"), at_least(1)),
            mapping=self.mapping(t, p, "intercom"),
        )

    def logging(self, t: TMapping[str, Any]) -> LoggingSettings:
        p = "logging"
        self.r.keys(t, p, LoggingSettings.__dataclass_fields__)
        return LoggingSettings(
            level=self.r.get(t, p, "level", "str", LoggingSettings.level, one_of(*LEVELS)),
            format=self.r.get(t, p, "format", "str", LoggingSettings.format, one_of(*FORMATS)),
        )

    def retention(self, t: TMapping[str, Any]) -> RetentionSettings:
        d, p = RetentionSettings(), "retention"
        self.r.keys(t, p, RetentionSettings.__dataclass_fields__)
        return RetentionSettings(
            every_seconds=self.r.get(t, p, "every_seconds", "float", d.every_seconds, at_least(1)),
            inbox_body_seconds=self.r.get(t, p, "inbox_body_seconds", "float", d.inbox_body_seconds, at_least(0)),
            # Jira redelivers up to ~30 min late; Zendesk and Intercom retry for hours at most.
            inbox_ids_hours=self.r.get(t, p, "inbox_ids_hours", "float", d.inbox_ids_hours, at_least(0.05)),
            audit_days=self.r.get(t, p, "audit_days", "float", d.audit_days, at_least(1)),
            dead_letter_days=self.r.get(t, p, "dead_letter_days", "float", d.dead_letter_days, at_least(1)),
            history_days=self.r.get(t, p, "history_days", "float", d.history_days, at_least(1)),
        )

    def admin(self, t: TMapping[str, Any], http: HttpSettings) -> AdminSettings:
        p = "admin"
        self.r.keys(t, p, AdminSettings.__dataclass_fields__)
        listen = self.r.get(t, p, "listen", "str", None, listen_address)
        user = self.r.get(t, p, "user", "str", AdminSettings.user, non_empty)
        if listen is None:
            if "listen" not in t and ("token" in t or "user" in t):
                self.r.problem("admin.listen", "host:port where the admin page listens (admin.token is set, "
                                                "but the page is off without admin.listen)")
            return AdminSettings()
        token = self.secret(t, p, "token")
        if token is not None and len(token.reveal()) < ADMIN_TOKEN_MIN:
            self.r.problem("admin.token", f"a secret of at least {ADMIN_TOKEN_MIN} characters "
                                          f"(from {token.source}, {len(token.reveal())} characters)")
        admin = AdminSettings(listen=listen, token=token, user=user or AdminSettings.user)
        if http.host is not None and http.port is not None and (admin.host, admin.port) == (http.host, http.port):
            self.r.problem("admin.listen", f"a port of its own, not the webhook receiver's ({http.host}:{http.port}, "
                                           "http.host / http.port)")
        return admin

    def settings(self, data: TMapping[str, Any]) -> Settings:
        self.r.keys(data, "", SECTIONS)
        tables = {name: self.r.table(data, "", name) for name in SECTIONS}
        if "jira" not in data:
            self.r.problem("jira", "a [jira] section (Jira is required)")
        if "zendesk" not in data and "intercom" not in data:
            self.r.problem("zendesk", "a [zendesk] or [intercom] section (at least one desk)")
        http = self.http(tables["http"] or {})
        return Settings(
            path=Path(self.r.path),
            core=self.core(tables["syncd"] or {}),
            http=http,
            jira=self.jira(tables["jira"]) if tables["jira"] is not None and "jira" in data else None,
            logging=self.logging(tables["logging"] or {}),
            zendesk=self.zendesk(tables["zendesk"]) if tables["zendesk"] is not None and "zendesk" in data else None,
            intercom=self.intercom(tables["intercom"]) if tables["intercom"] is not None and "intercom" in data else None,
            retention=self.retention(tables["retention"] or {}),
            admin=self.admin(tables["admin"] or {}, http),
            deferred=dict(self.deferred),   # after the sections above: they fill it
        )

# ------------------------------------------------------------------ public API

@dataclass(frozen=True)
class Loaded:
    """What reading a config gave: ``settings`` (None on any problem), the
    ``problems`` and the ``warnings`` (deferred secrets that do not resolve yet)."""

    settings: Settings | None
    problems: list[ConfigError]
    warnings: list[ConfigError]

def load(path: str | Path, environ: TMapping[str, str] = os.environ, defer: Iterable[str] = ()) -> Loaded:
    """Read and check ``path``; secrets named in ``defer`` (see :data:`DEFERRABLE`)
    that do not resolve are warnings (their value is None), not problems."""
    reader = TomlReader(path)
    data = reader.parse()
    if data is None:
        return Loaded(None, reader.problems, [])
    loader = _Loader(reader, environ, frozenset(defer))
    settings = loader.settings(data)
    return Loaded(None if reader.problems else settings, reader.problems, loader.warnings)

def _load(path: str | Path, environ: TMapping[str, str]) -> tuple[list[ConfigError], Settings | None]:
    loaded = load(path, environ)
    return loaded.problems, loaded.settings

def load_settings(path: str | Path, environ: TMapping[str, str] = os.environ) -> Settings:
    """The validated settings of ``path``; secrets resolved from ``environ``
    (and ``$CREDENTIALS_DIRECTORY``), mapping files loaded. Raises the first
    :class:`ConfigError`; use :func:`check` to see them all."""
    problems, settings = _load(path, environ)
    if problems:
        raise problems[0]
    assert settings is not None
    return settings

def check(path: str | Path, environ: TMapping[str, str] = os.environ) -> list[ConfigError]:
    """Every problem of ``path``: settings, secret resolution and each referenced
    mapping file. Empty means :func:`load_settings` will succeed."""
    return _load(path, environ)[0]
