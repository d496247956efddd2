"""Typed values out of parsed TOML, collecting every problem instead of stopping at
the first (so ``config check`` reports them all at once), and the small checks
both readers use. Its own module because :mod:`syncd.config` (the settings file)
and :mod:`syncd.mapping_loader` (mapping files) both read TOML this way, and the
config loads mappings: with the reader inside config.py the two imported each
other.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping as TMapping
from urllib.parse import urlsplit

from .errors import ConfigError

REQUIRED: Any = object()
Check = Callable[[Any], str | None]   # returns what was expected, or None when fine


class TomlReader:
    """Reads typed values out of parsed TOML, collecting every problem instead of
    stopping at the first, so ``config check`` can report them all at once.
    Shared by :mod:`syncd.config` and :mod:`syncd.mapping_loader`."""

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
                self.problem(join_key(prefix, key), f"a known key (one of: {', '.join(allowed)}); "
                                                 "unknown keys are refused so typos do not go unnoticed")

    def get(self, table: TMapping[str, Any], prefix: str, key: str, kind: str,
            default: Any = REQUIRED, check: Check | None = None) -> Any:
        """``table[key]`` converted to ``kind`` (see :data:`KINDS`), or ``default``.
        On a problem: records it and returns ``None``."""
        dotted = join_key(prefix, key)
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
            self.problem(join_key(prefix, key), f"a table [{join_key(prefix, key)}], got {_describe(value)}")
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


def join_key(prefix: str, key: str) -> str:
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
