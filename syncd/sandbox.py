"""A whole simulated installation: the three vendor simulators, set up the way
an admin would set up real accounts (custom fields created through the API,
webhooks registered through the vendors' own APIs), plus a config file and
mapping files pointing syncd at them. Used by ``syncd demo``, ``syncd sim
--write-config``, the end-to-end tests and the benchmarks.

It lives on the product side, not in :mod:`syncd.sim`: it renders syncd's mappings,
installs webhooks with syncd's own installer and writes syncd's config, so it
depends on the product. The simulators depend on nothing of syncd's (the arrows
run one way: this module uses them, never the reverse).
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import socket
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .mapping_loader import resolve_mapping_path
from .sim.intercom import IntercomSim
from .sim.jira import JiraSim
from .sim.zendesk import ZendeskSim

# Placeholder ticket-field ids in the shipped Zendesk mapping → (title, type) to create.
ZENDESK_FIELDS = {
    9001: ("Jira issue", "text"),
    9002: ("Jira status", "text"),
    9003: ("Jira resolution", "text"),
    9004: ("Jira fix versions", "text"),
    9005: ("Jira project", "tagger"),
    9006: ("Customer impact", "text"),
}
# Attributes the shipped Intercom mapping names (attr:...), defined on
# conversations and on the "Bug" ticket type, as an admin would in Settings.
INTERCOM_ATTRIBUTES = ("jira_issue", "jira_status", "jira_resolution", "jira_fix_versions",
                       "customer_impact", "jira_project")
INTERCOM_TOPICS = ["conversation.user.created", "conversation.user.replied", "conversation.admin.replied",
                   "conversation.admin.noted", "conversation.admin.closed", "conversation.admin.opened",
                   "conversation_part.tag.created", "ticket.created", "ticket.state.updated", "ticket.attribute.updated",
                   "ticket.note.created", "ticket.admin.replied", "ticket.contact.replied"]
JIRA_PROJECT_OPTIONS = [{"name": "Support", "value": "jira_project_sup"},
                        {"name": "Engineering", "value": "jira_project_eng"}]


def free_port() -> int:
    """A free port on 127.0.0.1 *outside* the kernel's ephemeral range. A port the OS picks
    (bind to 0) comes from that range, so once the daemon holding it is killed, any
    outgoing connection of any process may be given it as its local port, and the restart
    fails with "Address already in use" (seen in the crash loop on a busy machine, and a
    daemon's health probe answered by a simulator that got its port)."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(10000, 30000) if not low <= p <= high]
    for port in random.sample(candidates, 50) if candidates else ():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999   # Linux's default


@dataclass
class World:
    zendesk: ZendeskSim
    jira: JiraSim
    intercom: IntercomSim
    directory: Path
    config_path: Path
    env: dict[str, str]
    http_port: int
    zendesk_fields: dict[int, int] = field(default_factory=dict)   # placeholder id → real id

    def field_id(self, placeholder: int) -> int:
        return self.zendesk_fields[placeholder]

    def stop(self) -> None:
        for sim in (self.zendesk, self.jira, self.intercom):
            sim.stop()

    def settings(self) -> Any:
        from .config import load_settings
        return load_settings(self.config_path, environ={**os.environ, **self.env})


def _zendesk_api(sim: ZendeskSim, method: str, path: str, body: Any = None) -> Any:
    creds = sim.describe()["credentials"]
    auth = b64encode(f"{creds['email']}/token:{creds['token']}".encode()).decode()
    req = urllib.request.Request(f"{sim.base_url}/api/v2/{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def _create_zendesk_fields(sim: ZendeskSim) -> dict[int, int]:
    ids: dict[int, int] = {}
    for placeholder, (title, kind) in ZENDESK_FIELDS.items():
        body: dict[str, Any] = {"type": kind, "title": title}
        if kind == "tagger":
            body["custom_field_options"] = JIRA_PROJECT_OPTIONS
        ids[placeholder] = _zendesk_api(sim, "POST", "ticket_fields.json", {"ticket_field": body})["ticket_field"]["id"]
    return ids


def _set_up_intercom(sim: IntercomSim) -> None:
    """Conversation data attributes (Settings > Data; API 2.14 cannot create them)
    and the same names on every ticket type (through the API)."""
    info = sim.describe()
    for name in INTERCOM_ATTRIBUTES:
        sim.define_conversation_attribute(name, "string")
    for tt in info["ticket_types"]:
        for name in INTERCOM_ATTRIBUTES:
            body = {"name": name, "description": name.replace("_", " "), "data_type": "string"}
            req = urllib.request.Request(
                f"{sim.base_url}/ticket_types/{tt['id']}/attributes", method="POST", data=json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {info['token']}", "Content-Type": "application/json",
                         "Intercom-Version": info["api_version"]})
            urllib.request.urlopen(req, timeout=10).close()


def _render_mapping(name: str, substitutions: dict[str, str]) -> str:
    text = resolve_mapping_path(f"builtin:{name}", Path(".")).read_text()
    for old, new in substitutions.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return text


def build_world(directory: Path, database_url: str | None = None, *, workers: int = 4,
                zendesk_poll: float = 10.0, jira_poll: float = 10.0, intercom_poll: float = 10.0,
                export_exclusion: float = 0.0, log_level: str = "warning",
                extra: str = "") -> World:
    """Start the simulators and write ``config.toml`` + mappings into ``directory``.

    Webhooks are registered towards ``http://127.0.0.1:<http_port>`` where the
    daemon built from this config will listen. Secrets are ``env:`` references,
    their values in :attr:`World.env`.
    """
    zendesk, jira, intercom = ZendeskSim().start(), JiraSim().start(), IntercomSim().start()
    zendesk.configure({"export_exclusion": export_exclusion})
    return furnish(zendesk, jira, intercom, directory, database_url, workers=workers, zendesk_poll=zendesk_poll,
                   jira_poll=jira_poll, intercom_poll=intercom_poll, log_level=log_level, extra=extra)


SECRET_NAMES = {   # environment variable (env:) -> file name (file:secrets/...)
    "SYNCD_ZENDESK_TOKEN": "zendesk_token", "SYNCD_ZENDESK_WEBHOOK_SECRET": "zendesk_webhook_secret",
    "SYNCD_JIRA_API_TOKEN": "jira_api_token", "SYNCD_JIRA_WEBHOOK_SECRET": "jira_webhook_secret",
    "SYNCD_INTERCOM_TOKEN": "intercom_token", "SYNCD_INTERCOM_CLIENT_SECRET": "intercom_client_secret",
}


def furnish(zendesk: ZendeskSim, jira: JiraSim, intercom: IntercomSim, directory: Path,
            database_url: str | None = None, *, port: int | None = None, secrets_in_files: bool = False,
            public_url: bool = False,
            workers: int = 4, zendesk_poll: float = 10.0, jira_poll: float = 10.0, intercom_poll: float = 10.0,
            log_level: str = "warning", log_format: str = "json", extra: str = "") -> World:
    """Set running simulators up as an admin sets up real accounts (the fields the shipped
    mappings use, webhooks towards ``http://127.0.0.1:<port>``) and write a config and
    mappings that work against them into ``directory``: the mappings name the field ids the
    simulators actually gave. ``secrets_in_files``: the secrets go to ``directory/secrets/``
    (mode 0600) as ``file:`` references, so the config works without any environment."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    fields = _create_zendesk_fields(zendesk)
    subs = {f"custom:{p}": f"custom:{real}" for p, real in fields.items()}
    (directory / "zendesk-jira.toml").write_text(_render_mapping("zendesk-jira", subs))
    (directory / "intercom-jira.toml").write_text(_render_mapping("intercom-jira", {}))

    zc, jc = zendesk.describe()["credentials"], jira.describe()["credentials"]
    ic = intercom.describe()
    intercom_admin = ic["admins"][0]["id"]
    _set_up_intercom(intercom)
    intercom.subscribe(f"http://127.0.0.1:{port}/webhooks/intercom", INTERCOM_TOPICS)
    # The Zendesk signing secret exists only once its webhook does: as for an admin, the
    # config comes first, then `syncd webhooks install` (below), which produces it.
    env = {
        "SYNCD_ZENDESK_TOKEN": zc["token"],
        "SYNCD_JIRA_API_TOKEN": jc["api_token"], "SYNCD_JIRA_WEBHOOK_SECRET": secrets.token_hex(16),
        "SYNCD_INTERCOM_TOKEN": ic["token"], "SYNCD_INTERCOM_CLIENT_SECRET": ic["webhook_client_secret"],
    }
    refs = {name: f"file:secrets/{SECRET_NAMES[name]}" if secrets_in_files else f"env:{name}"
            for name in SECRET_NAMES}
    db = database_url or f"sqlite:///{directory.absolute() / 'syncd.db'}"
    public = f'public_url = "http://127.0.0.1:{port}"   # where the simulators send webhooks' if public_url else ""
    config = f"""
[syncd]
database_url = "{db}"
workers = {workers}
lease_seconds = 30
max_attempts = 5
backoff_base_seconds = 0.5
backoff_max_seconds = 5.0

[http]
host = "127.0.0.1"
port = {port}
{public}

[zendesk]
url = "{zendesk.base_url}"
email = "{zc['email']}"
token = "{refs['SYNCD_ZENDESK_TOKEN']}"
webhook_secret = "{refs['SYNCD_ZENDESK_WEBHOOK_SECRET']}"
requests_per_minute = 6000
poll_interval_seconds = {zendesk_poll}
mapping = "zendesk-jira.toml"

[jira]
url = "{jira.base_url}"
email = "{jc['email']}"
api_token = "{refs['SYNCD_JIRA_API_TOKEN']}"
webhook_secret = "{refs['SYNCD_JIRA_WEBHOOK_SECRET']}"
requests_per_minute = 6000
poll_interval_seconds = {jira_poll}
poll_overlap_seconds = 120

[intercom]
url = "{intercom.base_url}"
token = "{refs['SYNCD_INTERCOM_TOKEN']}"
client_secret = "{refs['SYNCD_INTERCOM_CLIENT_SECRET']}"
admin_id = "{intercom_admin}"
requests_per_minute = 6000
poll_interval_seconds = {intercom_poll}
mapping = "intercom-jira.toml"

[logging]
level = "{log_level}"
format = "{log_format}"
{extra}
"""
    config_path = directory / "config.toml"
    config_path.write_text(config)
    if secrets_in_files:
        _write_secret_files(directory / "secrets", env)
    signing = {"SYNCD_ZENDESK_WEBHOOK_SECRET": _install_webhooks(config_path, env, port)}
    if secrets_in_files:
        _write_secret_files(directory / "secrets", signing)
    env = {} if secrets_in_files else {**env, **signing}
    return World(zendesk, jira, intercom, directory, config_path, env, port, fields)


def _install_webhooks(config_path: Path, env: dict[str, str], port: int) -> str:
    """What ``syncd webhooks install`` does, with the clients syncd builds from this
    config (:mod:`syncd.wiring`); the Zendesk signing secret it produced."""
    from .config import DEFERRABLE, load
    from .install import install_jira, install_zendesk
    from .wiring import Clients
    loaded = load(config_path, environ={**os.environ, **env}, defer=DEFERRABLE)
    if loaded.settings is None:
        raise ValueError(f"the sandbox's own config does not load: {'; '.join(map(str, loaded.problems))}")
    settings = loaded.settings
    clients = Clients.of(settings)
    hook = install_zendesk(clients.zendesk(), f"http://127.0.0.1:{port}/webhooks/zendesk")
    install_jira(clients.jira(), f"http://127.0.0.1:{port}/webhooks/jira", settings.jira.webhook_secret.reveal())
    return hook.signing_secret


def _write_secret_files(folder: Path, env: dict[str, str]) -> None:
    """Each secret in its own file (mode 0600), as the ``file:`` references name them."""
    folder.mkdir(mode=0o700, exist_ok=True)
    for name, value in env.items():
        path = folder / SECRET_NAMES[name]
        path.touch(mode=0o600)
        path.write_text(value + "\n")


def write_config(sims: tuple[ZendeskSim, JiraSim, IntercomSim], directory: Path, daemon_port: int = 0) -> str:
    """Set running simulators up for syncd and write ``directory/config.toml``, the two mappings
    (with the field ids the simulators gave) and ``directory/secrets/``; what to run next."""
    world = furnish(*sims, directory, port=daemon_port or None, secrets_in_files=True, public_url=True,
                    log_level="info", log_format="auto")
    config = world.config_path.absolute()
    return (f"wrote {config} (mappings and secrets/ beside it); syncd will listen on 127.0.0.1:{world.http_port}\n"
            f"next:\n  syncd doctor --config {config}\n  syncd run --config {config}")
