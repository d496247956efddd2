"""Issue 3, behaviour 7: attachments on comments, both ways.

Files within the mapping's limit (``[attachments] max_bytes``, 10 MiB in the
shipped mapping) are copied — downloaded with the source side's credentials and
uploaded to the other side; a larger one becomes a line with its link and the
reason it was not copied."""

from __future__ import annotations

import base64
import json
import urllib.request

import requests

from syncd.runtime import App
from syncd.sandbox import World
from syncd.testing import Observer, quiet, ticket_key, wait_for

MAX = 10 * 1024 * 1024


def zendesk_upload(world: World, name: str, data: bytes) -> str:
    """As the customer's mail client would: an upload token for the next comment."""
    creds = world.zendesk.describe()["credentials"]
    auth = base64.b64encode(f"{creds['email']}/token:{creds['token']}".encode()).decode()
    req = urllib.request.Request(f"{world.zendesk.base_url}/api/v2/uploads.json?filename={name}", data=data,
                                 method="POST", headers={"Authorization": f"Basic {auth}",
                                                         "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["upload"]["token"]


def customer_reply_with_files(world: World, ticket: int, body: str, tokens: list[str]) -> None:
    z = world.zendesk
    with z.lock:
        requester = z.users[z.tickets[ticket].requester_id]
        z.update_ticket_from(ticket, {"comment": {"body": body, "public": True, "uploads": tokens}}, requester,
                             via="web")


def jira_files(world: World, key: str) -> dict[str, bytes]:
    rec = world.jira.issue(key)
    return {world.jira.attachments[a].filename: world.jira.attachments[a].content for a in rec.attachment_ids}


def test_files_cross_both_ways_and_a_too_large_one_becomes_a_link(world: World, daemon: App, look: Observer):
    z, j = world.zendesk, world.jira
    ticket = z.create_ticket("Import crashes", "Importing our CSV crashes the app.")
    z.agent_set(ticket, add_tags=["jira_escalate"])
    key = wait_for(lambda: ticket_key(look, world, ticket))
    assert key

    small = b"line 1: NullPointerException\n" * 40
    big = b"\0" * (MAX + 1)
    customer_reply_with_files(world, ticket, "Here is the log and the file.",
                              [zendesk_upload(world, "crash.log", small), zendesk_upload(world, "data.csv", big)])
    comment = wait_for(lambda: next((c for c in look.issue(key).comments if "Here is the log" in c.body), None))
    assert comment
    assert jira_files(world, key) == {"crash.log": small}           # copied byte for byte; the big one not
    assert "[^crash.log]" in comment.body
    assert "Attachment data.csv, 10,485,761 bytes: " in comment.body and "not copied" in comment.body

    # An engineer attaches a patch to the issue and refers to it in a comment.
    patch = b"--- a/import.py\n+++ b/import.py\n"
    creds = j.describe()["engineer"]
    r = requests.post(f"{j.base_url}/rest/api/2/issue/{key}/attachments", auth=(creds["email"], creds["api_token"]),
                      headers={"X-Atlassian-Token": "no-check"}, files={"file": ("fix.patch", patch)}, timeout=10)
    assert r.status_code == 200, r.text
    j.engineer_comment(key, "Patch for review: [^fix.patch]")
    note = wait_for(lambda: next((c for c in look.ticket(ticket).comments if "Patch for review" in c.body), None))
    assert note and not note.public
    assert [a.name for a in note.attachments] == ["fix.patch"]
    assert look.zendesk.download(note.attachments[0]) == patch
    quiet(world, daemon)
    assert sum("Here is the log" in c.body for c in look.issue(key).comments) == 1
    assert sum("Patch for review" in c.body for c in look.ticket(ticket).comments) == 1
