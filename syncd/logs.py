"""Logging: structlog events with stable names and fields, one pipeline for our
own events *and* stdlib loggers (uvicorn, urllib3, httpx, alembic), and a
redactor in that pipeline so that no secret reaches a log line.

Usage::

    from syncd.logs import configure_logging, register_secret
    configure_logging(level="info", fmt="auto")   # once, at start
    log = structlog.get_logger(__name__)
    log.info("comment_mirrored", link=7, direction="desk_to_tracker")

Why redact at the end of the pipeline rather than trusting call sites: secrets
arrive in places nobody chose to log — an exception message that quotes a URL
with ``?token=``, an SDK's debug line with the request headers. Every
resolved secret is registered (:mod:`syncd.secrets` does it) and replaced
wherever it appears, in any field, nested or not, after exceptions have been
rendered to text.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Any, TextIO

import structlog

REDACTED = "***"
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("auto", "json", "console")

# A registered value shorter than this is not redacted: replacing every "a" in
# every line would make logs useless, and so short a value is not a credential.
MIN_SECRET_LENGTH = 4

# Field names whose whole value is a credential, whatever it contains.
_SENSITIVE_KEY = re.compile(
    r"(authorization|password|passwd|secret|token|api[_-]?key|cookie|signature)", re.I)

# Credentials in free text that were never registered (an SDK echoing a header,
# a URL with a token in its query string).
_TEXT_PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"',}]+"),
    re.compile(r"(?i)((?:token|secret|password|passwd|api_?key)(?:=|[\"']\s*:\s*[\"']))[^\s\"'&,}]+"),
)

_HANDLER_NAME = "syncd"
# Loggers that install handlers of their own; cleared so they propagate to ours.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "urllib3", "httpx",
                    "httpcore", "alembic", "sqlalchemy")


class _Registry:
    """The secret values to redact, with one compiled pattern rebuilt on change."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            # Longest first so a secret that contains another is replaced whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def scrub(self, text: str) -> str:
        # Known shapes first: a registered value that is also a key name ("token" from
        # a test or a simulator) would otherwise be replaced first and hide the key
        # from the pattern, leaving the unregistered value after it in the clear.
        for known in _TEXT_PATTERNS:
            text = known.sub(lambda m: m.group(1) + REDACTED, text)
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return text


_registry = _Registry()


def register_secret(value: str) -> None:
    """Make ``value`` unprintable: every later log line shows ``***`` instead."""
    if value:
        _registry.add(value)


def redact(value: Any) -> Any:
    """``value`` with every secret replaced, recursively through dicts, lists,
    tuples and sets. Other objects become their ``str()`` first, because the
    renderer would print their repr anyway, secrets included."""
    if isinstance(value, str):
        return _registry.scrub(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    return _registry.scrub(str(value))


def _redact_item(key: Any, value: Any) -> Any:
    if isinstance(key, str) and _SENSITIVE_KEY.search(key) and isinstance(value, (str, bytes)):
        return REDACTED
    return redact(value)


def redact_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: run last before rendering, after exceptions are text."""
    return {k: (v if k.startswith("_") else _redact_item(k, v)) for k, v in event_dict.items()}


def _choose_format(fmt: str, stream: TextIO) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {FORMATS}")
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def _renderer(fmt: str) -> Any:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(sort_keys=False)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            # Exceptions become text *before* redaction, so their messages are scrubbed.
            structlog.processors.format_exc_info,
            redact_processor,
            _renderer(fmt),
        ],
    )


def _install_handler(handler: logging.Handler, level: int) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        for old in list(foreign.handlers):
            foreign.removeHandler(old)
        foreign.propagate = True
        foreign.setLevel(logging.NOTSET)
    # SQLAlchemy echoes every statement *with its parameters* (webhook bodies) at INFO.
    logging.getLogger("sqlalchemy").setLevel(max(level, logging.WARNING))


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr by default):
    JSON lines when ``stream`` is not a terminal, readable lines when it is
    (``fmt="auto"``), or as forced by ``fmt="json"|"console"``. Can be called
    again (tests do); the last call wins."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {LEVELS}")
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_formatter(_choose_format(fmt, out)))
    numeric = logging.getLevelName(level.upper())
    _install_handler(handler, numeric)
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared_processors(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging() must reach loggers made at import.
        cache_logger_on_first_use=False,
    )
