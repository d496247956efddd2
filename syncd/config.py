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
import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping as TMapping
from urllib.parse import urlsplit

from .errors import ConfigError
from .logs import FORMATS, LEVELS
from .mapping import Mapping
from .secrets import EXPECTED_REF, Secret, resolve

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
    instance: str = ""                 # names lease owners in the store; default: host:pid
    replicas: int = 1                  # `syncd run` processes sharing the vendor accounts (splits the budgets)
    # A vendor call with no answer after this long is given up (a write: ambiguous, see docs/architecture.md).
    vendor_timeout_seconds: float = 30.0
    # Database: Postgres connection set-up and statement limits; SQLite's wait for the write lock.
    database_connect_timeout_seconds: float = 5.0
    database_statement_timeout_seconds: float = 30.0
    database_busy_timeout_seconds: float = 10.0


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
    audit_days: float = 90.0                  # audit / history rows
    dead_letter_days: float = 90.0            # dead letters nobody retried


@dataclass(frozen=True)
class ZendeskSettings:
    url: str
    email: str
    token: Secret
    webhook_secret: Secret
    mapping: Mapping
    requests_per_minute: int = 200     # Team plan; the budget is shared with other integrations
    poll_interval_seconds: float = 30.0
    integration_user_id: int | None = None


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

    @property
    def desks(self) -> tuple[str, ...]:
        """The configured desks, e.g. ``("zendesk",)``."""
        return tuple(name for name in ("zendesk", "intercom") if getattr(self, name) is not None)


# ----------------------------------------------------- reading typed TOML values

REQUIRED: Any = object()
Check = Callable[[Any], str | None]   # returns what was expected, or None when fine


class TomlReader:
    """Reads typed values out of parsed TOML, collecting every problem instead of
    stopping at the first, so ``config check`` can report them all at once.
    Shared with :mod:`syncd.mapping_loader`."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.problems: list[ConfigError] = []

    def problem(self, key: str, expected: str) -> None:
        self.problems.append(ConfigError(self.path, key, expected))

    def parse(self) -> dict[str, Any] | None:
        """The file's top table, or ``None`` (and a problem) when unreadable."""
        try:
            with open(self.path, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            self.problem("(file)", "the file to exist")
        except OSError as exc:
            self.problem("(file)", f"a readable file ({exc.strerror})")
        except tomllib.TOMLDecodeError as exc:
            self.problem(_syntax_key(str(exc)), f"valid TOML ({exc})")
        return None

    def keys(self, table: TMapping[str, Any], prefix: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.problem(_join(prefix, key), f"a known key (one of: {', '.join(allowed)}); "
                                                 "unknown keys are refused so typos do not go unnoticed")

    def get(self, table: TMapping[str, Any], prefix: str, key: str, kind: str,
            default: Any = REQUIRED, check: Check | None = None) -> Any:
        """``table[key]`` converted to ``kind`` (see :data:`KINDS`), or ``default``.
        On a problem: records it and returns ``None``."""
        dotted = _join(prefix, key)
        if key not in table:
            if default is REQUIRED:
                self.problem(dotted, f"{KINDS[kind][1]} (the key is missing)")
                return None
            return default
        value = KINDS[kind][0](table[key])
        if value is _BAD:
            self.problem(dotted, f"{KINDS[kind][1]}, got {_describe(table[key])}")
            return None
        if check is not None and (expected := check(value)) is not None:
            self.problem(dotted, f"{expected}, got {_show(value)}")
            return None
        return value

    def table(self, table: TMapping[str, Any], prefix: str, key: str) -> dict[str, Any] | None:
        """A sub-table, ``{}`` when absent, ``None`` (and a problem) when not a table."""
        value = table.get(key, {})
        if not isinstance(value, dict):
            self.problem(_join(prefix, key), f"a table [{_join(prefix, key)}], got {_describe(value)}")
            return None
        return value


_BAD: Any = object()


def _as_str(v: Any) -> Any:
    return v if isinstance(v, str) else _BAD


def _as_int(v: Any) -> Any:
    return v if isinstance(v, int) and not isinstance(v, bool) else _BAD


def _as_float(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _BAD


def _as_bool(v: Any) -> Any:
    return v if isinstance(v, bool) else _BAD


def _as_str_list(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else _BAD


def _as_str_table(v: Any) -> Any:
    ok = isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
    return dict(v) if ok else _BAD


KINDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "str": (_as_str, "a string"),
    "int": (_as_int, "an integer"),
    "float": (_as_float, "a number"),
    "bool": (_as_bool, "true or false"),
    "str_list": (_as_str_list, "a list of strings"),
    "str_table": (_as_str_table, "a table of string = string"),
}


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _describe(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    for kind, name in names.items():
        if type(value) is kind:
            return f"{name} ({_show(value)})" if kind in (bool, int, float) else name
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _syntax_key(message: str) -> str:
    # Python 3.11's TOMLDecodeError carries the position only in its message.
    found = re.search(r"line (\d+), column (\d+)", message)
    return f"line {found.group(1)}, column {found.group(2)}" if found else "(syntax)"


# --------------------------------------------------------------------- checks


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"a value >= {low:g}"


def between(low: int, high: int) -> Check:
    return lambda v: None if low <= v <= high else f"a value from {low} to {high}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"one of {', '.join(choices)}"


def http_url(v: str) -> str | None:
    parts = urlsplit(v)
    ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    return None if ok else "an http:// or https:// URL with a host"


def database_url(v: str) -> str | None:
    ok = v.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://"))
    return None if ok else "a SQLAlchemy URL starting with sqlite:///, postgresql:// or postgresql+psycopg://"


def non_empty(v: str) -> str | None:
    return None if v.strip() else "a non-empty string"


def email(v: str) -> str | None:
    return None if re.fullmatch(r"[^@\s]+@[^@\s]+", v) else "an e-mail address"


def digits(v: str) -> str | None:
    return None if v.isdigit() else "a numeric id as a string, e.g. \"5017691\""


def api_version(v: str) -> str | None:
    return None if re.fullmatch(r"\d+\.\d+|Unstable", v) else "an Intercom API version like \"2.14\""


# ------------------------------------------------------------ reading sections

SECTIONS = ("syncd", "http", "zendesk", "jira", "intercom", "logging", "retention")


class _Loader:
    """Builds :class:`Settings` from one parsed file; problems go to ``reader``."""

    def __init__(self, reader: TomlReader, environ: TMapping[str, str]):
        self.r, self.environ = reader, environ
        self.base = Path(reader.path).parent

    def secret(self, table: TMapping[str, Any], prefix: str, key: str) -> Secret | None:
        if key not in table:
            self.r.problem(_join(prefix, key), f"{EXPECTED_REF} (the key is missing)")
            return None
        ref = self.r.get(table, prefix, key, "str")
        if ref is None:
            return None
        try:
            return resolve(ref, config_path=self.r.path, key=_join(prefix, key), environ=self.environ)
        except ConfigError as exc:
            self.r.problems.append(exc)
            return None

    def mapping(self, table: TMapping[str, Any], prefix: str, desk: str) -> Mapping | None:
        from . import mapping_loader   # it imports TomlReader from here

        ref = self.r.get(table, prefix, "mapping", "str", check=non_empty)
        if ref is None:
            return None
        path = mapping_loader.resolve_mapping_path(ref, self.base)
        if not path.is_file():
            self.r.problem(_join(prefix, "mapping"),
                           f"a mapping file that exists (looked for {path}; a relative path is "
                           "relative to the config file, builtin:NAME names a shipped mapping)")
            return None
        problems, loaded = mapping_loader.read_mapping(path)
        self.r.problems.extend(problems)
        if loaded is not None and loaded.desk != desk:
            self.r.problem(_join(prefix, "mapping"), f"a mapping for desk = \"{desk}\", but {path} is for {loaded.desk}")
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
            # host:pid, so that two replicas on one host never share a lease owner name.
            instance=self.r.get(t, p, "instance", "str", f"{socket.gethostname()}:{os.getpid()}", non_empty),
            replicas=self.r.get(t, p, "replicas", "int", d.replicas, at_least(1)),
            vendor_timeout_seconds=self.r.get(t, p, "vendor_timeout_seconds", "float", d.vendor_timeout_seconds,
                                              between(1, 300)),
            database_connect_timeout_seconds=self.r.get(t, p, "database_connect_timeout_seconds", "float",
                                                        d.database_connect_timeout_seconds, between(1, 60)),
            database_statement_timeout_seconds=self.r.get(t, p, "database_statement_timeout_seconds", "float",
                                                          d.database_statement_timeout_seconds, between(1, 600)),
            database_busy_timeout_seconds=self.r.get(t, p, "database_busy_timeout_seconds", "float",
                                                     d.database_busy_timeout_seconds, between(0.1, 120)),
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
            public_url=self.r.get(t, p, "public_url", "str", None, http_url),
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
        p = "zendesk"
        self.r.keys(t, p, ZendeskSettings.__dataclass_fields__)
        return ZendeskSettings(
            url=self.r.get(t, p, "url", "str", check=http_url),
            email=self.r.get(t, p, "email", "str", check=email),
            token=self.secret(t, p, "token"),
            webhook_secret=self.secret(t, p, "webhook_secret"),
            mapping=self.mapping(t, p, "zendesk"),
            requests_per_minute=self.r.get(t, p, "requests_per_minute", "int", 200, at_least(1)),
            # The incremental export allows 10 calls a minute.
            poll_interval_seconds=self.r.get(t, p, "poll_interval_seconds", "float", 30.0, at_least(10)),
            integration_user_id=self.r.get(t, p, "integration_user_id", "int", None, at_least(1)),
        )

    def jira(self, t: TMapping[str, Any]) -> JiraSettings:
        p = "jira"
        self.r.keys(t, p, JiraSettings.__dataclass_fields__)
        return JiraSettings(
            url=self.r.get(t, p, "url", "str", check=http_url),
            email=self.r.get(t, p, "email", "str", check=email),
            api_token=self.secret(t, p, "api_token"),
            webhook_secret=self.secret(t, p, "webhook_secret"),
            requests_per_minute=self.r.get(t, p, "requests_per_minute", "int", 300, at_least(1)),
            poll_interval_seconds=self.r.get(t, p, "poll_interval_seconds", "float", 30.0, at_least(1)),
            poll_overlap_seconds=self.r.get(t, p, "poll_overlap_seconds", "float", 120.0, at_least(60)),
        )

    def intercom(self, t: TMapping[str, Any]) -> IntercomSettings:
        p = "intercom"
        self.r.keys(t, p, IntercomSettings.__dataclass_fields__)
        return IntercomSettings(
            url=self.r.get(t, p, "url", "str", "https://api.intercom.io", http_url),
            token=self.secret(t, p, "token"),
            client_secret=self.secret(t, p, "client_secret"),
            admin_id=self.r.get(t, p, "admin_id", "str", check=digits),
            api_version=self.r.get(t, p, "api_version", "str", "2.14", api_version),
            requests_per_minute=self.r.get(t, p, "requests_per_minute", "int", 1000, at_least(1)),
            poll_interval_seconds=self.r.get(t, p, "poll_interval_seconds", "float", 30.0, at_least(1)),
            mapping=self.mapping(t, p, "intercom"),
        )

    def logging(self, t: TMapping[str, Any]) -> LoggingSettings:
        p = "logging"
        self.r.keys(t, p, LoggingSettings.__dataclass_fields__)
        return LoggingSettings(
            level=self.r.get(t, p, "level", "str", "info", one_of(*LEVELS)),
            format=self.r.get(t, p, "format", "str", "auto", one_of(*FORMATS)),
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
        )

    def settings(self, data: TMapping[str, Any]) -> Settings:
        self.r.keys(data, "", SECTIONS)
        tables = {name: self.r.table(data, "", name) for name in SECTIONS}
        if "jira" not in data:
            self.r.problem("jira", "a [jira] section (Jira is required)")
        if "zendesk" not in data and "intercom" not in data:
            self.r.problem("zendesk", "a [zendesk] or [intercom] section (at least one desk)")
        return Settings(
            path=Path(self.r.path),
            core=self.core(tables["syncd"] or {}),
            http=self.http(tables["http"] or {}),
            jira=self.jira(tables["jira"]) if tables["jira"] is not None and "jira" in data else None,
            logging=self.logging(tables["logging"] or {}),
            zendesk=self.zendesk(tables["zendesk"]) if tables["zendesk"] is not None and "zendesk" in data else None,
            intercom=self.intercom(tables["intercom"]) if tables["intercom"] is not None and "intercom" in data else None,
            retention=self.retention(tables["retention"] or {}),
        )


# ------------------------------------------------------------------ public API


def _load(path: str | Path, environ: TMapping[str, str]) -> tuple[list[ConfigError], Settings | None]:
    reader = TomlReader(path)
    data = reader.parse()
    if data is None:
        return reader.problems, None
    settings = _Loader(reader, environ).settings(data)
    return reader.problems, (None if reader.problems else settings)


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
