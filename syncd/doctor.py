"""``syncd doctor``: online checks of an installation, one pass/fail line each, naming
the config key and the URL involved, so that what ``config check`` cannot see offline
(a token that is refused, a mapped field that does not exist, a webhook pointing at an
old address, a database not migrated) is found before the daemon runs into it.

Checks: the database (reachable, migrated); each vendor's credentials; every field a
mapping names exists on its side with a compatible type (Zendesk ticket fields, Jira
fields, Intercom attributes); the webhooks are registered and point at
``http.public_url``; the configured budgets are within what the account reports; syncd's
integration account is not also used by a person.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from .config import Settings
from .diagnose import credential_keys, explain
from .errors import SyncdError
from .mapping import Mapping

PASS, FAIL, INFO = "pass", "fail", "info"
# Jira schema types whose values are lists (fixVersions, labels, components, multi-selects).
JIRA_LIST = {"array"}
# Zendesk ticket field types able to hold what syncd writes: one value, or a list
# (fix versions, labels: joined into text, or the options of a multi-select).
ZENDESK_ONE = {"text", "textarea", "tagger", "regexp"}
ZENDESK_LIST = {"text", "textarea", "multiselect"}


@dataclass(frozen=True)
class Check:
    status: str        # pass | fail | info
    name: str
    key: str           # the config key(s) involved
    url: str           # where it was checked
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():<4}  {self.name}: {self.detail}  [{self.key}" + (f" @ {self.url}]" if self.url
                                                                                    else "]")


def run_checks(settings: Settings) -> list[Check]:
    return list(_checks(settings))


def _checks(settings: Settings) -> Iterator[Check]:
    yield from _database(settings)
    connectors: dict[str, Any] = {}
    for vendor in ("jira", *settings.desks):
        check, connector = _credentials(settings, vendor)
        yield check
        if connector is not None:
            connectors[vendor] = connector
    for desk in settings.desks:
        mapping: Mapping = getattr(settings, desk).mapping
        yield from _fields(settings, desk, mapping, connectors)
    yield from _webhooks(settings, connectors)
    yield from _budgets(settings, connectors)
    yield from _people(settings, connectors)


def _guard(name: str, key: str, url: str, settings: Settings, fn: Callable[[], Iterator[Check]]) -> Iterator[Check]:
    try:
        yield from fn()
    except SyncdError as e:
        yield Check(FAIL, name, key, url, explain(e, settings))


# -- database -----------------------------------------------------------------

def _database(settings: Settings) -> Iterator[Check]:
    import sqlalchemy as sa

    from .dbschema import head_revision
    from .store import Store
    url = sa.make_url(settings.core.database_url).render_as_string(hide_password=True)
    key = "syncd.database_url"
    try:
        with Store.open(settings.core.database_url) as store:
            current = store.current_revision()
    except Exception as e:   # any driver error: the line says what the driver said
        yield Check(FAIL, "database reachable", key, url, f"{type(e).__name__}: {e}".splitlines()[0])
        return
    yield Check(PASS, "database reachable", key, url, "connected")
    head = head_revision()
    if current == head:
        yield Check(PASS, "database migrated", key, url, f"at revision {head}")
    else:
        yield Check(FAIL, "database migrated", key, url,
                    f"at revision {current or '(none)'}, syncd needs {head}: run `syncd db upgrade`")


# -- credentials ----------------------------------------------------------------

def _connector(settings: Settings, vendor: str) -> Any:
    from .wiring import Clients
    clients = Clients.of(settings)
    if vendor == "jira":
        return clients.jira()
    if vendor == "zendesk":
        return clients.zendesk(check_statuses=False)   # the credentials alone, apart from the mapping
    connector = clients.intercom()
    connector.app_id()   # its first call: proves the token (building it calls nothing)
    return connector


def _credentials(settings: Settings, vendor: str) -> tuple[Check, Any]:
    url = getattr(settings, vendor).url
    keys = credential_keys(settings, vendor)
    try:
        connector = _connector(settings, vendor)
    except SyncdError as e:
        return Check(FAIL, f"{vendor} credentials", keys, url, explain(e, settings)), None
    who = {"jira": lambda c: f"account {c.account_id}", "zendesk": lambda c: f"user {c.user_id}",
           "intercom": lambda c: f"admin {c.admin_id}"}[vendor](connector)
    return Check(PASS, f"{vendor} credentials", keys, url, f"accepted ({who})"), connector


# -- mapped fields ---------------------------------------------------------------

def _fields(settings: Settings, desk: str, mapping: Mapping, connectors: dict[str, Any]) -> Iterator[Check]:
    key = f"{desk}.mapping ({mapping.source_path})"
    if desk in connectors:
        url = getattr(settings, desk).url
        yield from _guard(f"{desk} fields", key, url, settings,
                          lambda: _desk_fields(desk, mapping, connectors[desk], key, url))
    if "jira" in connectors:
        yield from _guard("jira fields", key, settings.jira.url, settings,
                          lambda: _jira_fields(mapping, connectors["jira"], key, settings.jira.url))


def _desk_locators(mapping: Mapping) -> dict[str, bool]:
    """Desk locators the mapping names → whether their values are lists."""
    found = {r.desk: _is_list_rule(r.tracker) for r in mapping.fields}
    for loc in (mapping.escalation.project_field, mapping.escalation.key_field):
        if loc:
            found.setdefault(loc, False)
    return found


def _is_list_rule(tracker_locator: str) -> bool:
    return tracker_locator in ("fixVersions", "labels", "components")


def _desk_fields(desk: str, mapping: Mapping, connector: Any, key: str, url: str) -> Iterator[Check]:
    wanted = _desk_locators(mapping)
    if desk == "zendesk":
        types = connector.ticket_field_types()
        for loc, is_list in sorted(wanted.items()):
            if not loc.startswith("custom:"):
                continue
            kind = types.get(loc)
            if kind is None:
                yield Check(FAIL, "zendesk field", key, url, f"{loc} does not exist (create the ticket field, or "
                                                              "fix its id in the mapping)")
            elif kind not in (ZENDESK_LIST if is_list else ZENDESK_ONE):
                yield Check(FAIL, "zendesk field", key, url, f"{loc} is a {kind} field; the mapping writes "
                                                              f"{'a list' if is_list else 'one value'}")
            else:
                yield Check(PASS, "zendesk field", key, url, f"{loc} exists ({kind})")
        return
    for loc in sorted(wanted):
        if loc.startswith("attr:"):
            kind = connector.attribute_type(loc.split(":", 1)[1])
            if kind is None:
                yield Check(FAIL, "intercom attribute", key, url, f"{loc}: no conversation data attribute "
                                                                   "of that name (Settings > Data)")
            else:
                yield Check(PASS, "intercom attribute", key, url, f"{loc} exists ({kind})")
        elif loc.startswith("ticket_attr:"):
            yield Check(INFO, "intercom attribute", key, url, f"{loc}: checked per ticket type when written")


def _jira_fields(mapping: Mapping, connector: Any, key: str, url: str) -> Iterator[Check]:
    types = connector.field_types()
    wanted: dict[str, str | None] = {r.tracker: None for r in mapping.fields if r.tracker.startswith("customfield_")}
    for loc, kind in ((mapping.linked_count_field, "number"), (mapping.linked_orgs_field, "number"),
                      (mapping.sla_field, "datetime")):
        if loc:
            wanted[loc] = kind
    for loc, needed in sorted(wanted.items()):
        have = types.get(loc)
        if have is None:
            yield Check(FAIL, "jira field", key, url, f"{loc} does not exist")
        elif needed is not None and have != needed:
            yield Check(FAIL, "jira field", key, url, f"{loc} is {have}; syncd writes a {needed} there")
        else:
            yield Check(PASS, "jira field", key, url, f"{loc} exists ({have})")


# -- webhooks ---------------------------------------------------------------------

def _webhooks(settings: Settings, connectors: dict[str, Any]) -> Iterator[Check]:
    public = (settings.http.public_url or "").rstrip("/")
    if not public:
        yield Check(FAIL, "webhooks", "http.public_url", "", "not set: the vendors cannot be checked to call syncd "
                                                              "(set it, then `syncd webhooks install`)")
        return
    if "zendesk" in connectors:
        z = connectors["zendesk"]
        endpoint = f"{public}/webhooks/zendesk"

        def zendesk() -> Iterator[Check]:
            hooks = z.list_webhooks()
            active = [h for h in hooks if h.get("endpoint") == endpoint and h.get("status") == "active"]
            if active:
                yield Check(PASS, "zendesk webhook", "http.public_url", settings.zendesk.url,  # type: ignore[union-attr]
                            f"active, to {endpoint}")
            else:
                others = sorted({h.get("endpoint", "?") for h in hooks if h.get("name") == "syncd"})
                yield Check(FAIL, "zendesk webhook", "http.public_url", settings.zendesk.url,  # type: ignore[union-attr]
                            f"none active to {endpoint}" + (f" (syncd's goes to {', '.join(others)})" if others else "")
                            + ": run `syncd webhooks install`")
        yield from _guard("zendesk webhook", "http.public_url", settings.zendesk.url, settings, zendesk)  # type: ignore[union-attr]
    if "jira" in connectors:
        j = connectors["jira"]
        endpoint = f"{public}/webhooks/jira"

        def jira() -> Iterator[Check]:
            hooks = j.list_webhooks()
            if any(h.get("url") == endpoint and h.get("enabled", True) for h in hooks):
                yield Check(PASS, "jira webhook", "http.public_url", settings.jira.url, f"registered, to {endpoint}")
            else:
                yield Check(FAIL, "jira webhook", "http.public_url", settings.jira.url,
                            f"none to {endpoint}: run `syncd webhooks install`")
        yield from _guard("jira webhook", "http.public_url", settings.jira.url, settings, jira)
    if settings.intercom is not None:
        yield Check(INFO, "intercom webhook", "http.public_url", settings.intercom.url,
                    f"set in the Developer Hub (not visible to the API): topics to {public}/webhooks/intercom")


# -- budgets ------------------------------------------------------------------------

def _budgets(settings: Settings, connectors: dict[str, Any]) -> Iterator[Check]:
    yield Check(INFO, "jira budget", "jira.requests_per_minute", settings.jira.url,
                f"{settings.jira.requests_per_minute}/min configured; Jira Cloud states no per-plan figure "
                "(cost-based limits: watch syncd_vendor_calls_total{status=\"429\"})")
    if "intercom" in connectors and settings.intercom is not None:
        yield from _guard("intercom budget", "intercom.requests_per_minute", settings.intercom.url, settings,
                          lambda: _intercom_budget(settings, connectors["intercom"]))
    if "zendesk" not in connectors or settings.zendesk is None:
        return
    z, ours = connectors["zendesk"], settings.zendesk.requests_per_minute

    def zendesk() -> Iterator[Check]:
        limit = z.rate_limit()
        key, url = "zendesk.requests_per_minute", settings.zendesk.url  # type: ignore[union-attr]
        if limit is None:
            yield Check(INFO, "zendesk budget", key, url, f"{ours}/min configured; the account reports no limit")
        elif ours > limit:
            yield Check(FAIL, "zendesk budget", key, url, f"{ours}/min configured, the account allows {limit}/min "
                                                          "(shared with every other integration)")
        else:
            yield Check(PASS, "zendesk budget", key, url, f"{ours}/min of the account's {limit}/min")
    yield from _guard("zendesk budget", "zendesk.requests_per_minute", settings.zendesk.url, settings, zendesk)


def _intercom_budget(settings: Settings, connector: Any) -> Iterator[Check]:
    """Intercom reports its limit per 10-second window (X-RateLimit-Limit; 10,000/min ≈ 1,667 per window)."""
    i = settings.intercom
    assert i is not None
    limit = connector.rate_limit()
    key, ours = "intercom.requests_per_minute", i.requests_per_minute
    if limit is None:
        yield Check(INFO, "intercom budget", key, i.url, f"{ours}/min configured; the app reports no limit")
        return
    per_minute = limit * 6
    if ours > per_minute:
        yield Check(FAIL, "intercom budget", key, i.url,
                    f"{ours}/min configured, the app allows {per_minute}/min ({limit} per 10 s)")
    else:
        yield Check(PASS, "intercom budget", key, i.url, f"{ours}/min of the app's {per_minute}/min")


# -- the integration account -----------------------------------------------------------

def _people(settings: Settings, connectors: dict[str, Any]) -> Iterator[Check]:
    """A person signed in to the agent interface with syncd's account would have their
    changes taken for syncd's own (never mirrored). ``last_login_at`` cannot tell (API token
    use counts as a login); web sessions can: an API token opens none."""
    yield Check(INFO, "jira integration account", "jira.email", settings.jira.url,
                f"{settings.jira.email}: Jira's API shows no sign-ins; use an account no person uses")
    if settings.intercom is not None:
        yield Check(INFO, "intercom integration account", "intercom.admin_id", settings.intercom.url,
                    f"admin {settings.intercom.admin_id}: replies by a person as this admin are taken for syncd's")
    if "zendesk" not in connectors or settings.zendesk is None:
        return
    z = connectors["zendesk"]
    key, url, email = "zendesk.email", settings.zendesk.url, settings.zendesk.email

    def zendesk() -> Iterator[Check]:
        sessions = z.web_sessions()
        if sessions:
            yield Check(FAIL, "zendesk integration account", key, url,
                        f"{email} has {len(sessions)} web session(s) (last seen {sessions[-1].get('last_seen_at')}): "
                        "a person signs in with it, and their changes would be taken for syncd's own; "
                        "give syncd an account of its own")
        else:
            yield Check(PASS, "zendesk integration account", key, url, f"{email} has no web sessions")
    yield from _guard("zendesk integration account", key, url, settings, zendesk)


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": not any(c.status == FAIL for c in checks), "checked_at": time.time(),
            "checks": [asdict(c) for c in checks]}
