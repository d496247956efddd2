"""Secrets: where they come from, and a type that will not print them.

A config file only ever holds a *reference* to a secret:

* ``env:NAME`` — the environment variable ``NAME``;
* ``file:/path`` — the content of a file (one trailing newline dropped; a
  relative path is relative to the config file);
* ``credential:NAME`` — ``$CREDENTIALS_DIRECTORY/NAME``, which systemd fills
  from ``LoadCredential=``/``SetCredentialEncrypted=``.

A literal secret in the config file is refused: config files get copied into
tickets, chats and backups, and a secret there is a secret leaked. Secrets are
never taken from the command line either (argv is visible to every user in
``ps``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import ConfigError
from .logs import register_secret

SCHEMES = ("env", "file", "credential")
EXPECTED_REF = ("a secret reference: env:NAME, file:/path or credential:NAME "
                "(literal secrets are refused in config files)")


@dataclass(frozen=True)
class Secret:
    """A secret value. ``repr``/``str`` never show it; ``reveal()`` does, at the
    one place that hands it to a vendor client."""

    _value: str = field(repr=False)
    source: str = ""      # the reference it came from, e.g. ``env:JIRA_API_TOKEN``: safe to show

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def as_secret(value: "str | Secret") -> Secret:
    """``value`` held as a :class:`Secret` (a plain string from a simulator or a test is wrapped),
    so that whatever holds it (the connectors' access records) never prints it."""
    if isinstance(value, Secret):
        return value
    register_secret(value)
    return Secret(value)


def is_reference(text: str) -> bool:
    scheme, sep, rest = text.partition(":")
    return bool(sep) and scheme in SCHEMES and bool(rest.strip())


def resolve(reference: str, *, config_path: str, key: str,
            environ: Mapping[str, str] | None = None) -> Secret:
    """The secret ``reference`` points at, registered with the log redactor.

    Raises :class:`ConfigError` naming ``config_path``, ``key`` and what is
    missing (the environment variable, the file). The message never quotes a
    literal value: it might be the secret itself."""
    env = os.environ if environ is None else environ
    if not is_reference(reference):
        raise ConfigError(config_path, key, EXPECTED_REF)
    scheme, _, name = reference.partition(":")
    name = name.strip()
    if scheme == "env":
        value = _from_env(name, env, config_path, key)
    elif scheme == "file":
        value = _from_file(_relative_to(name, config_path), config_path, key)
    else:
        value = _from_credential(name, env, config_path, key)
    if not value:
        raise ConfigError(config_path, key, f"a non-empty secret, but {reference} is empty")
    register_secret(value)
    return Secret(value, source=reference)


def _relative_to(name: str, config_path: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else Path(config_path).parent / path


def _from_env(name: str, env: Mapping[str, str], config_path: str, key: str) -> str:
    if name not in env:
        raise ConfigError(config_path, key, f"environment variable {name} to be set (from env:{name})")
    return env[name]


def _read_secret_file(path: Path, config_path: str, key: str, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(config_path, key, f"{what} {path} to exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(config_path, key, f"{what} {path} to be readable UTF-8 ({exc.__class__.__name__})") from None
    # Editors and `echo` add a final newline that is not part of the secret.
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def _from_file(path: Path, config_path: str, key: str) -> str:
    return _read_secret_file(path, config_path, key, "secret file")


def _from_credential(name: str, env: Mapping[str, str], config_path: str, key: str) -> str:
    if "/" in name or name in (".", ".."):
        raise ConfigError(config_path, key, f"a credential name without '/', got credential:{name}")
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(config_path, key,
                          f"$CREDENTIALS_DIRECTORY to be set for credential:{name} "
                          f"(systemd sets it from LoadCredential={name}:...)")
    return _read_secret_file(Path(directory) / name, config_path, key, "credential file")
