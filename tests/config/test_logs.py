"""Logging: one pipeline for structlog and stdlib loggers, and no secret gets out."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from syncd.logs import configure_logging, register_secret
from syncd.secrets import resolve

SECRETS = ("zd-tok-8f1b2c3d4e", "jira-api-77aa99bb", "whsec-intercom-55cc", "nested-deep-0042")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()


def _log_everything(secrets: tuple[str, ...]) -> None:
    zd, jira, intercom, nested = secrets
    log = structlog.get_logger("syncd.test")
    log.info("comment_mirrored", link=7, direction="desk_to_tracker", token=zd)
    log.info("vendor_call", request={"headers": {"X-Api": jira}, "params": [intercom, {"deep": nested}]})
    log.warning("free_text", detail=f"calling https://x.example/api?apikey=1&q={zd} failed")
    try:
        raise RuntimeError(f"401 from jira with token {jira}")
    except RuntimeError:
        log.exception("vendor_call_failed", vendor="jira")
    logging.getLogger("urllib3.connectionpool").warning("Retrying with Authorization: Bearer %s", intercom)
    logging.getLogger("uvicorn.error").error("bad request body %s", {"secret": nested})
    try:
        raise ValueError(zd)
    except ValueError:
        logging.getLogger("httpx").exception("request failed")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_registered_secret_reaches_the_output(fmt, restore_logging):
    buf = io.StringIO()
    configure_logging(level="debug", fmt=fmt, stream=buf)
    for s in SECRETS:
        register_secret(s)
    _log_everything(SECRETS)
    out = buf.getvalue()
    assert "comment_mirrored" in out and "vendor_call_failed" in out and "Retrying with" in out
    assert "RuntimeError" in out and "ValueError" in out     # exceptions are rendered, only scrubbed
    for s in SECRETS:
        assert s not in out, f"{s} leaked in {fmt} output"


def test_unregistered_header_and_token_values_are_scrubbed(restore_logging):
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    log = structlog.get_logger()
    log.info("raw", text="GET /x?token=unregistered-abc123 Authorization: Basic dXNlcjpwYXNz")
    logging.getLogger("urllib3").warning('body {"password": "hunter2-unreg"}')
    out = buf.getvalue()
    for leaked in ("unregistered-abc123", "dXNlcjpwYXNz", "hunter2-unreg"):
        assert leaked not in out


def test_json_lines_keep_event_names_and_fields(restore_logging):
    buf = io.StringIO()
    configure_logging(level="info", fmt="auto", stream=buf)   # a StringIO is not a terminal
    structlog.get_logger("syncd.worker").info("comment_mirrored", link=7, direction="desk_to_tracker")
    structlog.get_logger("syncd.worker").debug("too_detailed", x=1)
    logging.getLogger("uvicorn.access").info("GET /healthz %s", 200)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["comment_mirrored", "GET /healthz 200"]
    first = lines[0]
    assert first["link"] == 7 and first["direction"] == "desk_to_tracker"
    assert first["level"] == "info" and first["logger"] == "syncd.worker" and "timestamp" in first
    assert lines[1]["logger"] == "uvicorn.access"


def test_auto_format_is_readable_on_a_terminal(restore_logging):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    buf = Tty()
    configure_logging(fmt="auto", stream=buf)
    structlog.get_logger().info("poll_done", source="zendesk", items=3)
    out = buf.getvalue()
    assert "poll_done" in out and "source=zendesk" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_resolved_secrets_are_registered_with_the_redactor(restore_logging):
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    secret = resolve("env:SYNCD_TEST_LOG_SECRET", config_path="c.toml", key="jira.api_token",
                     environ={"SYNCD_TEST_LOG_SECRET": "resolved-secret-9911"})
    structlog.get_logger().info("connected", note=f"using {secret.reveal()}", obj=secret)
    out = buf.getvalue()
    assert "resolved-secret-9911" not in out
    assert "Secret('***')" in out


def test_bad_level_or_format_is_refused(restore_logging):
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="loud", stream=io.StringIO())
    with pytest.raises(ValueError, match="format"):
        configure_logging(fmt="xml", stream=io.StringIO())


def test_a_registered_value_that_is_also_a_key_name_does_not_unmask_what_follows_it(restore_logging):
    # Found in the merged suite: a test registered the secret "token" (a simulator's
    # credential); replacing registered values first turned "?token=abc" into
    # "?***=abc", which the key pattern no longer recognised.
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    register_secret("token")
    structlog.get_logger().info("raw", text="GET /x?token=unregistered-abc123")
    assert "unregistered-abc123" not in buf.getvalue()
