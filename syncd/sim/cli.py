"""``syncd sim``: the three vendor simulators in the foreground, for a person.

Prints what is needed to use each one (base URL, credentials, webhook secrets,
how to point zenpy, jira and python-intercom at it, the control API), then
serves until SIGINT or SIGTERM and stops cleanly (exit 0), so it can run under
a supervisor or in a terminal alike.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable, TextIO

from .core import SimServer
from .intercom import IntercomSim
from .jira import JiraSim
from .zendesk import ZendeskSim

READY = "simulators ready; Ctrl-C or SIGTERM stops them"

CONTROL_API = """\
Control API (on each simulator's own port, no auth, not accounted):
  POST   /_sim/knobs           {"latency": 0.2 | [lo, hi], "rate_limit": 100, "rate_window": 60,
                                "webhooks": {"drop": 0.1, "duplicate": 0.1, "delay": 1.0, "reorder": true,
                                "paused": false}} plus the vendor knobs below
  POST   /_sim/faults          {"kind": "status" | "429" | "timeout" | "reset", "operation": "<operationId>",
                                "fraction": 1.0, "count": 3, "status": 503, "retry_after": 1, "stall": 30}
  DELETE /_sim/faults          clear every injected fault
  GET    /_sim/clock           the simulator's "now" (epoch seconds)
  POST   /_sim/clock           {"advance": 60} or {"set": <epoch seconds>}
  GET    /_sim/requests        every request recorded, and counts per operationId
  POST   /_sim/webhooks/flush  wait until queued webhook deliveries are sent
  vendor knobs: zendesk export_exclusion, incremental_rate_limit, ticket_update_limit, ticket_update_window;
                jira search_lag, issue_write_limit; intercom default_version, client_secret, max_parts"""


def start_all(port_base: int = 0) -> tuple[ZendeskSim, JiraSim, IntercomSim]:
    """Start the simulators on ``port_base``, +1, +2 (0: ephemeral ports)."""
    def port(offset: int) -> int:
        return port_base + offset if port_base else 0
    started: list[SimServer] = []
    try:
        zendesk = ZendeskSim(port=port(0)).start()
        started.append(zendesk)
        jira = JiraSim(port=port(1)).start()
        started.append(jira)
        intercom = IntercomSim(port=port(2)).start()
    except OSError:
        for sim in started:   # a taken port must not leave the others running
            sim.stop()
        raise
    return zendesk, jira, intercom


def describe_zendesk(d: dict[str, Any]) -> list[str]:
    c = d["credentials"]
    secrets = d["webhook_secrets"] or "none yet: Zendesk generates one per webhook " \
        "(GET /api/v2/webhooks/{id}/signing_secret)"
    return [f"Zendesk   {d['base_url']}",
            f"  API root:        {d['api_root']}",
            f"  credentials:     email {c['email']}, API token {c['token']} "
            f"(HTTP basic user {c['basic_auth_user']})",
            f"  other people:    agent {c['agent_email']}, customer {c['customer_email']} (same token)",
            f"  custom fields:   {d['custom_fields']}",
            f"  webhook secrets: {secrets}",
            f"  zenpy:           {d['zenpy']}"]


def describe_jira(d: dict[str, Any]) -> list[str]:
    c, e = d["credentials"], d["engineer"]
    secrets = d["webhook_secrets"] or "none yet: you choose it when registering an admin webhook"
    return [f"Jira      {d['base_url']}",
            f"  credentials:     email {c['email']}, API token {c['api_token']} (HTTP basic)",
            f"  engineer:        email {e['email']}, API token {e['api_token']}",
            f"  projects:        {', '.join(d['projects'])}",
            f"  webhook secrets: {secrets}",
            f"  webhooks:        {d['register_webhook']}",
            f"  jira:            {d['client']}"]


def describe_intercom(d: dict[str, Any]) -> list[str]:
    admins = ", ".join(f"{a['id']} ({a['email']})" for a in d["admins"])
    types = ", ".join(f"{t['id']} ({t['name']})" for t in d["ticket_types"])
    return [f"Intercom  {d['base_url']}",
            f"  credentials:     access token {d['token']} ({d['auth']}), Intercom-Version {d['api_version']}",
            f"  admins:          {admins}",
            f"  ticket types:    {types}",
            f"  webhook secrets: client secret {d['webhook_client_secret']} ({d['webhook_signature']})",
            f"  webhooks:        POST {d['subscriptions_url']} {{\"url\": ..., \"topics\": [...]}}",
            f"  python-intercom: {d['client']}"]


def banner(zendesk: ZendeskSim, jira: JiraSim, intercom: IntercomSim) -> str:
    parts = [describe_zendesk(zendesk.describe()), describe_jira(jira.describe()),
             describe_intercom(intercom.describe())]
    return "\n\n".join("\n".join(p) for p in parts) + "\n\n" + CONTROL_API


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT/SIGTERM; returns a function restoring the old handlers."""
    def handler(signum: int, frame: object) -> None:
        stop.set()
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for signum, previous in old.items():
            signal.signal(signum, previous)
    return restore


Sims = tuple[ZendeskSim, JiraSim, IntercomSim]


def serve(port_base: int = 0, out: TextIO | None = None, stop: threading.Event | None = None,
          setup: Callable[[Sims], str] | None = None) -> None:
    """Run the simulators until SIGINT/SIGTERM (or ``stop`` is set). ``setup`` runs once they
    answer and its text is printed: ``syncd sim --write-config`` passes syncd's own set-up
    (:func:`syncd.sandbox.write_config`), so the simulators never import the product."""
    out = out or sys.stdout
    stop = stop or threading.Event()
    sims = start_all(port_base)
    restore = _stop_on_signals(stop) if threading.current_thread() is threading.main_thread() else None
    try:
        print(banner(*sims), file=out)
        if setup is not None:
            print("\n" + setup(sims), file=out)
        print(f"\n{READY}", file=out, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sim in sims:
            sim.stop()
        if restore is not None:
            restore()
        print("simulators stopped", file=out, flush=True)
