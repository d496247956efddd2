"""Signature checks against vectors computed here with hashlib/hmac directly,
the way each vendor documents them (not with syncd's own sign_* helpers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest

from syncd.signatures import (
    SignatureInvalid,
    sign_intercom,
    sign_jira,
    sign_zendesk,
    verify_intercom,
    verify_jira,
    verify_zendesk,
)

SECRET = b"dGhpcyBpcyBhIHRlc3Qgc2VjcmV0"
BODY = b'{"ticket_id": "42", "updated_at": "2024-05-01T10:00:00Z", "event": "ticket_changed"}'
NOW = datetime(2024, 5, 1, 10, 0, 30, tzinfo=timezone.utc)
STAMP = "2024-05-01T10:00:00Z"


def zendesk_vector(secret: bytes, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()).decode()


def jira_vector(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def intercom_vector(secret: bytes, body: bytes) -> str:
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def reason_of(call) -> str:
    with pytest.raises(SignatureInvalid) as caught:
        call()
    return caught.value.reason


# -- Zendesk -------------------------------------------------------------------

def test_zendesk_good_signature_passes():
    verify_zendesk(SECRET, BODY, zendesk_vector(SECRET, STAMP, BODY), STAMP, NOW)


def test_zendesk_sign_matches_documented_formula():
    assert sign_zendesk(SECRET, BODY, STAMP) == zendesk_vector(SECRET, STAMP, BODY)


@pytest.mark.parametrize("signature, timestamp, body, expected", [
    (None, STAMP, BODY, "missing_signature"),
    ("", STAMP, BODY, "missing_signature"),
    ("SIG", None, BODY, "missing_timestamp"),
    (zendesk_vector(b"other secret", STAMP, BODY), STAMP, BODY, "bad_signature"),
    (zendesk_vector(SECRET, STAMP, BODY), STAMP, BODY.replace(b"42", b"43"), "bad_signature"),
    # the timestamp is signed: changing it breaks the signature
    (zendesk_vector(SECRET, STAMP, BODY), "2024-05-01T10:00:01Z", BODY, "bad_signature"),
    # signed over the body alone (missing the timestamp prefix) is not Zendesk's scheme
    (base64.b64encode(hmac.new(SECRET, BODY, hashlib.sha256).digest()).decode(), STAMP, BODY, "bad_signature"),
    # hex instead of base64
    (hmac.new(SECRET, STAMP.encode() + BODY, hashlib.sha256).hexdigest(), STAMP, BODY, "bad_signature"),
])
def test_zendesk_refusals(signature, timestamp, body, expected):
    assert reason_of(lambda: verify_zendesk(SECRET, body, signature, timestamp, NOW)) == expected


@pytest.mark.parametrize("age", [timedelta(minutes=6), -timedelta(minutes=6), timedelta(days=1)])
def test_zendesk_stale_or_future_timestamp_refused_even_when_signed(age):
    stamp = (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = zendesk_vector(SECRET, stamp, BODY)
    assert reason_of(lambda: verify_zendesk(SECRET, BODY, signature, stamp, NOW)) == "stale_timestamp"


def test_zendesk_tolerance_is_configurable():
    stamp = (NOW - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    verify_zendesk(SECRET, BODY, zendesk_vector(SECRET, stamp, BODY), stamp, NOW, tolerance=timedelta(minutes=10))


def test_zendesk_unparseable_timestamp_refused():
    stamp = "yesterday"
    signature = zendesk_vector(SECRET, stamp, BODY)
    assert reason_of(lambda: verify_zendesk(SECRET, BODY, signature, stamp, NOW)) == "bad_timestamp"


def test_zendesk_offset_timestamp_is_compared_in_utc():
    stamp = "2024-05-01T12:00:00+02:00"   # the same instant as STAMP
    verify_zendesk(SECRET, BODY, zendesk_vector(SECRET, stamp, BODY), stamp, NOW)


# -- Jira ----------------------------------------------------------------------

JIRA_BODY = b'{"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "ENG-1"}}'


def test_jira_good_signature_passes():
    verify_jira(SECRET, JIRA_BODY, jira_vector(SECRET, JIRA_BODY))


def test_jira_sign_matches_documented_formula():
    assert sign_jira(SECRET, JIRA_BODY) == jira_vector(SECRET, JIRA_BODY)


def test_jira_hex_case_is_not_significant():
    verify_jira(SECRET, JIRA_BODY, jira_vector(SECRET, JIRA_BODY).upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize("header, body, expected", [
    (None, JIRA_BODY, "missing_signature"),
    ("", JIRA_BODY, "missing_signature"),
    (jira_vector(b"wrong", JIRA_BODY), JIRA_BODY, "bad_signature"),
    (jira_vector(SECRET, JIRA_BODY), JIRA_BODY + b" ", "bad_signature"),
    (intercom_vector(SECRET, JIRA_BODY), JIRA_BODY, "wrong_algorithm"),
    (jira_vector(SECRET, JIRA_BODY).removeprefix("sha256="), JIRA_BODY, "wrong_algorithm"),
    ("md5=" + hashlib.md5(JIRA_BODY).hexdigest(), JIRA_BODY, "wrong_algorithm"),
])
def test_jira_refusals(header, body, expected):
    assert reason_of(lambda: verify_jira(SECRET, body, header)) == expected


# -- Intercom ------------------------------------------------------------------

INTERCOM_BODY = b'{"type": "notification_event", "id": "notif_1", "topic": "conversation.user.replied"}'


def test_intercom_good_signature_passes():
    verify_intercom(SECRET, INTERCOM_BODY, intercom_vector(SECRET, INTERCOM_BODY))


def test_intercom_sign_matches_documented_formula():
    assert sign_intercom(SECRET, INTERCOM_BODY) == intercom_vector(SECRET, INTERCOM_BODY)


@pytest.mark.parametrize("header, body, expected", [
    (None, INTERCOM_BODY, "missing_signature"),
    (intercom_vector(b"wrong", INTERCOM_BODY), INTERCOM_BODY, "bad_signature"),
    (intercom_vector(SECRET, INTERCOM_BODY), INTERCOM_BODY.replace(b"notif_1", b"notif_2"), "bad_signature"),
    # a SHA-256 signature (Jira's scheme) is not accepted for Intercom, even if valid
    (jira_vector(SECRET, INTERCOM_BODY), INTERCOM_BODY, "wrong_algorithm"),
    ("sha1" + intercom_vector(SECRET, INTERCOM_BODY).removeprefix("sha1="), INTERCOM_BODY, "wrong_algorithm"),
])
def test_intercom_refusals(header, body, expected):
    assert reason_of(lambda: verify_intercom(SECRET, body, header)) == expected


def test_refusal_message_never_carries_the_secret_or_signature():
    signature = intercom_vector(b"wrong", INTERCOM_BODY)
    with pytest.raises(SignatureInvalid) as caught:
        verify_intercom(SECRET, INTERCOM_BODY, signature)
    text = repr(caught.value) + str(caught.value)
    assert SECRET.decode() not in text
    assert signature not in text
