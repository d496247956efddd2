"""Zendesk triggers and webhooks: the admin API that wires ticket changes to
webhook deliveries, and the firing of matching triggers after every write.

The rules (conditions, placeholders) are in :mod:`syncd.sim.zendesk_triggers`;
signing is :meth:`syncd.sim.zendesk.ZendeskSim.sign_webhook`.
"""

from __future__ import annotations

import secrets

import structlog

from syncd.sim import zendesk_http
from syncd.sim.core import JSON, Request, Response, SimError, iso
from syncd.sim.zendesk_state import ZendeskState
from syncd.sim.zendesk_triggers import UpdateContext, placeholder_values, render_template, trigger_matches

# Logged under the simulator's module name, as before the split.
log = structlog.get_logger("syncd.sim.zendesk")

ACCOUNT_ID = "9000001"
SUBDOMAIN_HOST = "https://syncd-sim.zendesk.com"   # what {{ticket.url}} shows, like the real one


def fire_triggers(sim: ZendeskState, ctx: UpdateContext) -> None:
    for trigger in sorted(sim.triggers.values(), key=lambda x: (x["position"], x["id"])):
        if not trigger.get("active", True) or not trigger_matches(trigger, ctx):
            continue
        for action in trigger.get("actions") or []:
            if action.get("field") == "notification_webhook":
                invoke_webhook(sim, action.get("value") or [], ctx)


def invoke_webhook(sim: ZendeskState, value: list[JSON], ctx: UpdateContext) -> None:
    if not value:
        return
    hook = sim.webhook_defs.get(str(value[0]))
    if hook is None or hook["status"] != "active" or "conditional_ticket_events" not in hook["subscriptions"]:
        return
    template = value[1] if len(value) > 1 and isinstance(value[1], str) else ""
    values = placeholder_values(ctx, host=SUBDOMAIN_HOST.removeprefix("https://"),
                                updated_at_iso=iso(sim.tickets[ctx.ticket["id"]].updated))
    body = render_template(template, values).encode()
    headers = {"X-Zendesk-Account-Id": ACCOUNT_ID, "X-Zendesk-Webhook-Id": hook["id"],
               "X-Zendesk-Webhook-Invocation-Id": str(sim.next_id("invocation"))}
    sim.webhooks.send(hook["endpoint"], body, headers)
    log.debug("zendesk_sim_webhook_queued", webhook=hook["id"], ticket=ctx.ticket["id"])


def trigger_json(sim: ZendeskState, trig: dict[str, JSON]) -> dict[str, JSON]:
    return {**trig, "url": sim.url(f"triggers/{trig['id']}.json")}


def store_trigger(sim: ZendeskState, trig: dict[str, JSON], data: dict[str, JSON]) -> dict[str, JSON]:
    for name in ("title", "description", "active", "position", "category_id"):
        if name in data:
            trig[name] = data[name]
    if "conditions" in data:
        trig["conditions"] = {"all": list((data["conditions"] or {}).get("all") or []),
                              "any": list((data["conditions"] or {}).get("any") or [])}
    if "actions" in data:
        trig["actions"] = list(data["actions"] or [])
    trig["raw_title"] = trig["title"]
    trig["updated_at"] = iso(sim.clock.now())
    return trig


def list_triggers(sim: ZendeskState, request: Request) -> Response:
    items = [trigger_json(sim, x) for x in sorted(sim.triggers.values(), key=lambda x: x["position"])]
    active = request.arg("active")
    if active is not None:
        items = [x for x in items if x["active"] == (active == "true")]
    return Response(200, zendesk_http.page(request, "triggers", items, sim.url("triggers.json")))


def create_trigger(sim: ZendeskState, request: Request) -> Response:
    data = zendesk_http.body(request, "trigger")
    if not data.get("title") or not data.get("actions") or "conditions" not in data:
        raise zendesk_http.invalid("base", "Title, conditions and actions are required", "BlankValue")
    tid, now = sim.next_id("trigger"), iso(sim.clock.now())
    trig = {"id": tid, "title": "", "description": "", "active": True, "position": len(sim.triggers) + 1,
            "default": False, "category_id": "1", "created_at": now, "conditions": {"all": [], "any": []},
            "actions": []}
    sim.triggers[tid] = store_trigger(sim, trig, data)
    return Response(201, {"trigger": trigger_json(sim, trig)})


def get_trigger(sim: ZendeskState, request: Request) -> dict[str, JSON]:
    trig = sim.triggers.get(zendesk_http.int_param(request, "trigger_id"))
    if trig is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return trig


def show_trigger(sim: ZendeskState, request: Request) -> Response:
    return Response(200, {"trigger": trigger_json(sim, get_trigger(sim, request))})


def update_trigger(sim: ZendeskState, request: Request) -> Response:
    trig = store_trigger(sim, get_trigger(sim, request), zendesk_http.body(request, "trigger"))
    return Response(200, {"trigger": trigger_json(sim, trig)})


def delete_trigger(sim: ZendeskState, request: Request) -> Response:
    del sim.triggers[get_trigger(sim, request)["id"]]
    return Response(204)


def webhook_error(status: int, code: str, title: str, detail: str = "") -> SimError:
    return SimError(status, {"errors": [{"code": code, "title": title, "detail": detail}]})


def webhook_json(sim: ZendeskState, hook: dict[str, JSON]) -> dict[str, JSON]:
    return dict(hook)


def list_webhooks(sim: ZendeskState, request: Request) -> Response:
    hooks = [webhook_json(sim, h) for h in sim.webhook_defs.values()]
    return Response(200, {"webhooks": hooks, "meta": {"has_more": False, "after_cursor": None,
                                                        "before_cursor": None},
                          "links": {"next": None, "prev": None}})


def create_webhook(sim: ZendeskState, request: Request) -> Response:
    data = zendesk_http.body(request, "webhook")
    for name in ("name", "endpoint", "http_method", "request_format", "status"):
        if not data.get(name):
            raise webhook_error(400, "InvalidInput", "Invalid input", f"{name} is required")
    if not str(data["endpoint"]).startswith(("http://", "https://")):
        raise webhook_error(400, "InvalidInput", "Invalid input", "endpoint must be a URL")
    caller, now = sim.caller(request), iso(sim.clock.now())
    hid = _ulid(sim.clock.now())
    hook = {"id": hid, "name": data["name"], "description": data.get("description"),
            "status": data["status"], "endpoint": data["endpoint"], "http_method": data["http_method"],
            "request_format": data["request_format"], "subscriptions": list(data.get("subscriptions") or []),
            "created_at": now, "created_by": str(caller["id"]), "updated_at": now, "updated_by": str(caller["id"])}
    sim.webhook_defs[hid] = hook
    given = (data.get("signing_secret") or {}).get("secret")
    sim.webhook_secrets[hid] = given or secrets.token_urlsafe(32)
    return Response(201, {"webhook": webhook_json(sim, hook)})


def get_webhook(sim: ZendeskState, request: Request) -> dict[str, JSON]:
    hook = sim.webhook_defs.get(request.params["webhook_id"])
    if hook is None:
        raise webhook_error(404, "WebhookNotFound", "Webhook not found")
    return hook


def show_webhook(sim: ZendeskState, request: Request) -> Response:
    return Response(200, {"webhook": webhook_json(sim, get_webhook(sim, request))})


def delete_webhook(sim: ZendeskState, request: Request) -> Response:
    hook = get_webhook(sim, request)
    del sim.webhook_defs[hook["id"]]
    return Response(204)


def signing_secret(sim: ZendeskState, request: Request) -> Response:
    hook = get_webhook(sim, request)
    return Response(200, {"signing_secret": {"algorithm": "SHA256", "secret": sim.webhook_secrets[hook["id"]]}})


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(now: float) -> str:
    """Zendesk webhook ids are ULIDs (``01F1KRFQ6BG29CNWFR60NK5FNY``)."""
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))
