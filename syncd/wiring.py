"""Where vendor clients are built: the typed settings in, connectors out, each with
its account's budget and the vendor timeout.

Nothing else in syncd constructs a connector or an SDK client. The daemon
(:meth:`syncd.runtime.App.build`), the CLI commands that call a vendor (``plan``,
``resync``, ``link``, ``webhooks install``, ``doctor``), the simulated world
(:mod:`syncd.sandbox`, which installs webhooks as ``syncd webhooks install`` does)
and the demo's and tests' :class:`~syncd.testing.Observer` all come here, so a
setting such as ``vendor_timeout_seconds`` or ``requests_per_minute`` cannot be
honoured on one path and forgotten on another.

The vendor SDKs are imported only when a connector of theirs is built: ``syncd
config check`` and the other offline commands do not pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping as TMapping

from .budget import Budget
from .config import Settings
from .mapping import Mapping

if TYPE_CHECKING:
    from .connectors.base import DeskConnector, TrackerConnector
    from .connectors.intercom import IntercomConnector
    from .connectors.jira import JiraConnector
    from .connectors.zendesk import ZendeskConnector
    from .store import Store


def build_budgets(settings: Settings, store: "Store | None" = None, role: str = "daemon") -> dict[str, Budget]:
    """One budget per vendor account, shared by every thread of the process.

    The vendor limits the account, not the process. With the ``store``, each
    account's budget is shared through the database with every other holder (the
    other replicas, a command running beside the daemon) by use
    (:mod:`syncd.shared_budget`); ``role`` names this holder there (``daemon``,
    ``import``...). Without a store (``doctor``, ``webhooks install``: a few calls
    and no database needed), ``replicas`` processes share the account, so each
    takes an equal share."""
    rpms = {"jira": settings.jira.requests_per_minute}
    if settings.zendesk is not None:
        rpms["zendesk"] = settings.zendesk.requests_per_minute
    if settings.intercom is not None:
        rpms["intercom"] = settings.intercom.requests_per_minute
    if store is not None:
        from .shared_budget import shared_budget
        holder = f"{settings.core.instance}/{role}"
        return {account: shared_budget(store, account, rpm, holder, settings.core.replicas)
                for account, rpm in rpms.items()}
    return {account: Budget(rpm / settings.core.replicas) for account, rpm in rpms.items()}


def mappings(settings: Settings) -> dict[str, Mapping]:
    """The mapping of each configured desk."""
    out: dict[str, Mapping] = {}
    if settings.zendesk is not None:
        out["zendesk"] = settings.zendesk.mapping
    if settings.intercom is not None:
        out["intercom"] = settings.intercom.mapping
    return out


def field_locators(settings: Settings) -> list[str]:
    """Every Jira field a mapping reads or writes (the connector asks Jira for these)."""
    found = {r.tracker for m in mappings(settings).values() for r in m.fields}
    found |= {f for m in mappings(settings).values()
              for f in (m.linked_count_field, m.linked_orgs_field, m.sla_field) if f}
    return sorted(found)


def custom_status_values(mapping: Mapping) -> list[str] | None:
    """The Zendesk custom statuses a mapping may write (checked by the connector at
    start), or None when it does not use the ``custom_status`` locator."""
    rules = [r for r in mapping.fields if r.desk == "custom_status"]
    fanout = mapping.fanout.desk_status_field == "custom_status" and mapping.fanout.desk_status
    if not rules and not fanout:
        return None
    values = {v for r in rules for v in r.to_desk.values()}
    values |= {r.default_to_desk for r in rules if r.default_to_desk}
    if fanout:
        values.add(str(mapping.fanout.desk_status))
    return sorted(values)


@dataclass(frozen=True)
class Clients:
    """Builds the connectors of one set of settings. ``timeout``: seconds a vendor call
    may take before it counts as a (retryable) failure. ``budgets``: the account
    budgets the connectors pace themselves by; a vendor missing there is not paced."""

    settings: Settings
    timeout: float
    budgets: TMapping[str, Budget] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, timeout: float | None = None,
           budgets: TMapping[str, Budget] | None = None) -> "Clients":
        """``timeout`` None: ``[syncd] vendor_timeout_seconds``; ``budgets`` None: a new
        set from the settings (:func:`build_budgets`)."""
        return cls(settings, settings.core.vendor_timeout_seconds if timeout is None else timeout,
                   build_budgets(settings) if budgets is None else budgets)

    @classmethod
    def unpaced(cls, settings: Settings) -> "Clients":
        """Connectors for someone who is not syncd (the tests' and the demo's observer, a
        person looking at the vendors' pages): the config's accounts and timeout, but
        not syncd's budgets, so looking never slows the daemon's own calls down."""
        return cls(settings, settings.core.vendor_timeout_seconds, {})

    def jira(self) -> "JiraConnector":
        from .connectors.jira import JiraAccess, JiraConnector
        j = self.settings.jira
        return JiraConnector(JiraAccess(j.url, j.email, j.api_token, self.timeout), budget=self.budgets.get("jira"),
                             field_locators=field_locators(self.settings), poll_overlap=j.poll_overlap_seconds)

    def zendesk(self, check_statuses: bool = True) -> "ZendeskConnector":
        """``check_statuses``: the custom statuses the mapping writes are checked against
        the account as the connector is built (:class:`CustomStatusError`); ``syncd
        doctor`` turns it off to check the credentials on their own."""
        from .connectors.zendesk import ZendeskAccess, ZendeskConnector
        z = self.settings.zendesk
        if z is None:
            raise ValueError(f"{self.settings.path} has no [zendesk] section")
        return ZendeskConnector(ZendeskAccess(z.url, z.email, z.token, self.timeout),
                                budget=self.budgets.get("zendesk"),
                                custom_status_values=custom_status_values(z.mapping) if check_statuses else None)

    def intercom(self) -> "IntercomConnector":
        from .connectors.intercom import IntercomAccess, IntercomConnector
        i = self.settings.intercom
        if i is None:
            raise ValueError(f"{self.settings.path} has no [intercom] section")
        return IntercomConnector(IntercomAccess(i.url, i.token, i.admin_id, i.api_version, self.timeout),
                                 budget=self.budgets.get("intercom"))

    def desk(self, name: str) -> "DeskConnector":
        """The connector of the desk ``name`` (``zendesk`` or ``intercom``)."""
        builders = {"zendesk": self.zendesk, "intercom": self.intercom}
        if name not in builders:
            raise ValueError(f"no desk called {name!r} (zendesk, intercom)")
        return builders[name]()

    def desks(self) -> dict[str, "DeskConnector"]:
        """A connector for every configured desk."""
        return {name: self.desk(name) for name in self.settings.desks}

    def connectors(self) -> tuple[dict[str, "DeskConnector"], "TrackerConnector"]:
        """Every configured desk, and Jira (built first: its errors come first, as they always did)."""
        tracker = self.jira()
        return self.desks(), tracker
