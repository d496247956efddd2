"""The real-world corpus (../shared/realworld, see its PROVENANCE.md) and what
the replay tests share: where it is, its index, signing code written here
independently of syncd.signatures, and the real receiver on loopback.

The corpus is read where it lies, never copied into the repository. Absent
(a checkout without ../shared), the tests skip with the reason; in CI, where
``SYNCD_VENDOR_SPECS`` is set (../shared is required there), its absence fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import uvicorn

CORPUS_ENV = "SYNCD_REALWORLD"
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "realworld"
REQUIRED_ENV = "SYNCD_VENDOR_SPECS"   # set in CI, where ../shared must be present


def corpus_dir() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or DEFAULT_CORPUS_DIR)


def corpus_present() -> bool:
    return (corpus_dir() / "index.json").is_file()


ABSENT_REASON = f"real-world corpus not found in {corpus_dir()} (set {CORPUS_ENV}; see shared/realworld/PROVENANCE.md)"


def index() -> list[dict[str, Any]]:
    """Entries of index.json; ``[]`` when the corpus is absent (and not required)."""
    if not corpus_present():
        if os.environ.get(REQUIRED_ENV):
            raise RuntimeError(f"{REQUIRED_ENV} is set (CI) but {ABSENT_REASON}")
        return []
    return json.loads((corpus_dir() / "index.json").read_text())


def entries(vendor: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
    return [e for e in index() if (vendor is None or e["vendor"] == vendor)
            and (channel is None or e["channel"] == channel)]


def body_of(entry: dict[str, Any]) -> bytes:
    return (corpus_dir() / entry["file"]).read_bytes()


def doc_of(entry: dict[str, Any]) -> Any:
    return json.loads(body_of(entry))


# -- signing, as each vendor documents it (independent of syncd.signatures) ----

ZD_SECRET = b"replay-zendesk-secret"
JIRA_SECRET = b"replay-jira-secret"
IC_SECRET = b"replay-intercom-secret"


def signed_headers(vendor: str, body: bytes, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", **(extra or {})}
    if vendor == "zendesk":
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        mac = hmac.new(ZD_SECRET, stamp.encode() + body, hashlib.sha256).digest()
        headers["x-zendesk-webhook-signature-timestamp"] = stamp
        headers["x-zendesk-webhook-signature"] = base64.b64encode(mac).decode()
    elif vendor == "jira":
        headers["x-hub-signature"] = "sha256=" + hmac.new(JIRA_SECRET, body, hashlib.sha256).hexdigest()
    else:
        headers["x-hub-signature"] = "sha1=" + hmac.new(IC_SECRET, body, hashlib.sha1).hexdigest()
    return headers


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """An ASGI app under uvicorn on an ephemeral loopback port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited during start-up"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
