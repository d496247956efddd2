"""Webhook signature checks for Zendesk, Jira and Intercom.

Pure functions over the *raw* body bytes (any re-encoding of the JSON would
change the digest). Every comparison goes through :func:`hmac.compare_digest`
so the time taken says nothing about how much of a forged signature matched.

A failed check raises :class:`SignatureInvalid` whose ``reason`` is a short,
stable code meant for logs; it never contains the secret or the signature.
The ``sign_*`` functions are the inverse, for the simulators.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone

from .errors import SyncdError

DEFAULT_ZENDESK_TOLERANCE = timedelta(minutes=5)


class SignatureInvalid(SyncdError):
    """The delivery cannot be trusted. ``reason`` is one of ``missing_signature``,
    ``missing_timestamp``, ``bad_timestamp``, ``wrong_algorithm``,
    ``bad_signature``, ``stale_timestamp``."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# -- Zendesk ------------------------------------------------------------------

def sign_zendesk(secret: bytes, body: bytes, timestamp: str) -> str:
    """``base64(HMAC-SHA256(secret, timestamp + body))``, the
    ``X-Zendesk-Webhook-Signature`` value."""
    digest = hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_zendesk(secret: bytes, body: bytes, signature: str | None, timestamp: str | None,
                   now: datetime, tolerance: timedelta = DEFAULT_ZENDESK_TOLERANCE) -> None:
    """Check ``X-Zendesk-Webhook-Signature`` against ``X-Zendesk-Webhook-Signature-Timestamp``.

    The timestamp is signed, and Zendesk re-signs every retry, so a delivery
    whose timestamp is further than ``tolerance`` from ``now`` (either way) is a
    replay or a badly skewed clock: refused. The signature is checked first so
    that ``stale_timestamp`` in a log always means "authentic but old".
    """
    if not signature:
        raise SignatureInvalid("missing_signature")
    if not timestamp:
        raise SignatureInvalid("missing_timestamp")
    expected = sign_zendesk(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
        raise SignatureInvalid("bad_signature")
    signed_at = _parse_iso8601(timestamp)
    if abs(now - signed_at) > tolerance:
        raise SignatureInvalid("stale_timestamp")


def _parse_iso8601(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SignatureInvalid("bad_timestamp") from None
    # Zendesk sends UTC with a trailing Z; a zone-less stamp is read as UTC
    # rather than the host's local time, which would shift it by hours.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- Jira and Intercom: "X-Hub-Signature: <algo>=<hex>" -----------------------

def sign_jira(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, body)>``, the ``X-Hub-Signature`` value."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def sign_intercom(secret: bytes, body: bytes) -> str:
    """``sha1=<hex HMAC-SHA1(client_secret, body)>``, the ``X-Hub-Signature`` value."""
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def verify_jira(secret: bytes, body: bytes, header: str | None) -> None:
    """Jira admin webhooks sign the body only; there is no timestamp to check,
    so replays are harmless only because deliveries are deduplicated."""
    _verify_hub_signature(secret, body, header, "sha256", hashlib.sha256)


def verify_intercom(secret: bytes, body: bytes, header: str | None) -> None:
    """Intercom signs with the app's client secret and SHA-1, without a timestamp."""
    _verify_hub_signature(secret, body, header, "sha1", hashlib.sha1)


def _verify_hub_signature(secret: bytes, body: bytes, header: str | None,
                          algorithm: str, digestmod: object) -> None:
    if not header:
        raise SignatureInvalid("missing_signature")
    prefix, sep, given = header.strip().partition("=")
    # Only the algorithm the vendor is known to use is accepted: a header naming
    # a weaker one must not downgrade the check.
    if not sep or prefix.lower() != algorithm:
        raise SignatureInvalid("wrong_algorithm")
    expected = hmac.new(secret, body, digestmod).hexdigest()  # type: ignore[arg-type]
    if not hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace")):
        raise SignatureInvalid("bad_signature")
