"""Errors an admin can act on: a vendor failure said with the URL it concerns and
the config keys to look at (``zendesk.url``, ``jira.api_token`` …), for the CLI and
``syncd doctor``."""

from __future__ import annotations

from typing import Any

from .errors import Transient, Unauthorized, VendorError

# The config keys holding each vendor's credentials.
CREDENTIAL_KEYS = {"zendesk": ("email", "token"), "jira": ("email", "api_token"), "intercom": ("token",)}


def vendor_url(settings: Any, vendor: str) -> str | None:
    section = getattr(settings, vendor, None) if settings is not None else None
    return getattr(section, "url", None)


def credential_keys(settings: Any, vendor: str) -> str:
    """``zendesk.email, zendesk.token (env:ZENDESK_TOKEN)``: the keys and where the secret comes from."""
    section = getattr(settings, vendor, None)
    parts = []
    for key in CREDENTIAL_KEYS.get(vendor, ()):
        value = getattr(section, key, None)
        source = getattr(value, "source", "")
        parts.append(f"{vendor}.{key}" + (f" ({source})" if source else ""))
    return ", ".join(parts)


def explain(error: BaseException, settings: Any = None) -> str:
    """``error`` as one line that names where it happened and which config keys matter."""
    if not isinstance(error, VendorError):
        return str(error)
    vendor, text = error.vendor, str(error)
    url = vendor_url(settings, vendor)
    at = f"{vendor}.url = {url}" if url else f"{vendor}.url"
    if isinstance(error, Unauthorized):
        return f"{text}: {url or vendor} refused syncd's credentials; check {credential_keys(settings, vendor)}"
    if isinstance(error, Transient) and "SSLError" in text:
        hint = " (an https:// URL for a server that speaks plain http?)" if (url or "").startswith("https:") else ""
        return f"{text}: TLS failed with {at}{hint}"
    if isinstance(error, Transient) and ("ConnectionError" in text or "ConnectTimeout" in text):
        return f"{text}: cannot reach {at} (host, port, firewall, proxy?)"
    return f"{text} (at {at})"
