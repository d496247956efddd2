"""The ``syncd`` command: what an admin types to run and keep the daemon healthy.

Secrets never come from argv: the config names where each one lives.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from .domain import ItemRef
from .errors import ConfigError, SyncdError

CONFIG_HELP = "Config file (default: $SYNCD_CONFIG, ./config.toml, /etc/syncd/config.toml)."
RUN_HELP = "Run the daemon: webhook receiver, pollers and workers, until SIGTERM."
CHECK_HELP = "Check the config and mapping files and resolve every secret; exit 1 on any problem."
LINK_HELP = "Link a desk item (zendesk:123, intercom:conversation:9, intercom:ticket:7) to a Jira issue key."
RESYNC_HELP = "Reconcile one item now and print what was written."
PLAN_HELP = "Print what reconciling one item would write, writing nothing."


def _config_path(given: str | None) -> Path:
    for candidate in (given, os.environ.get("SYNCD_CONFIG"), "config.toml", "/etc/syncd/config.toml"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise click.ClickException(f"no config file found (tried {given or '$SYNCD_CONFIG, ./config.toml, /etc/syncd/config.toml'})")


def _settings(config: str | None) -> Any:
    from .config import load_settings
    from .logs import configure_logging
    try:
        settings = load_settings(_config_path(config))
    except ConfigError as e:
        raise click.ClickException(f"bad config: {e}")
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


def _app(config: str | None) -> Any:
    from .runtime import App
    return App.build(_settings(config))


def _store(config: str | None) -> Any:
    from .store import Store
    settings = _settings(config)
    store = Store.open(settings.core.database_url)
    store.upgrade()
    return store


def _ref(text: str) -> ItemRef:
    try:
        ref = ItemRef.parse(text)
    except ValueError as e:
        raise click.BadParameter(str(e))
    return ref


config_option = click.option("--config", "config", default=None, help=CONFIG_HELP)


@click.group()
@click.version_option(package_name="syncd")
def main() -> None:
    """syncd keeps Zendesk/Intercom and Jira in sync, both ways."""


@main.command(help=RUN_HELP)
@config_option
def run(config: str | None) -> None:
    from .runtime import App
    from .store import StoreUnavailable
    # Every file the daemon creates (the SQLite database and its -wal/-shm, logs it opens)
    # is its user's only: the inbox holds customer messages (issue 12, finding 5).
    os.umask(0o077)
    settings = _settings(config)
    try:
        App.build(settings).run_forever()
    except StoreUnavailable as e:
        # Raised only before the daemon is up (migrations, the daemon lock): once running, an
        # outage is waited out. systemd restarts the unit; the message says what to fix.
        raise click.ClickException(f"the database {_shown_url(settings.core.database_url)} cannot be used "
                                   f"({e.reason}): {e}")
    except SyncdError as e:
        raise click.ClickException(str(e))


def _shown_url(url: str) -> str:
    """A database URL fit for a message: without its password."""
    import sqlalchemy as sa
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable URL)"


@main.group(name="config")
def config_group() -> None:
    """Configuration."""


@config_group.command(name="check", help=CHECK_HELP)
@config_option
def config_check(config: str | None) -> None:
    from .config import check
    path = _config_path(config)
    problems = check(path)
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{path}: ok")


@main.group()
def db() -> None:
    """Database schema."""


@db.command(name="upgrade")
@config_option
def db_upgrade(config: str | None) -> None:
    """Apply migrations up to the newest (safe to run twice)."""
    store = _store(config)
    click.echo(f"database at revision {store.current_revision()}")


@main.group()
def webhooks() -> None:
    """Webhook registration with the vendors."""


ZENDESK_SECRET_KEY = "zendesk.webhook_secret"


def _install_config(path: Path) -> dict[str, Any]:
    """The parsed config, with every secret ``webhooks install`` needs resolved.

    Before the first install ``zendesk.webhook_secret`` cannot resolve yet:
    Zendesk generates it during the install. So that one problem is allowed
    here (the value is then ``None``); any other problem stops the command."""
    import tomllib

    from .config import check
    from .secrets import resolve
    problems = [p for p in check(path) if p.key != ZENDESK_SECRET_KEY]
    if problems:
        raise click.ClickException("bad config:\n" + "\n".join(str(p) for p in problems))
    data = tomllib.loads(path.read_text())

    def secret(section: str, key: str) -> str | None:
        try:
            return resolve(data[section][key], config_path=str(path), key=f"{section}.{key}").reveal()
        except ConfigError:
            return None
    for section, keys in (("zendesk", ("token", "webhook_secret")), ("jira", ("api_token", "webhook_secret"))):
        if section in data:
            data[section] = {**data[section], **{f"{k}_value": secret(section, k) for k in keys}}
    return data


def _install_zendesk(z: dict[str, Any], endpoint: str) -> None:
    from .connectors.zendesk import ZendeskAccess, ZendeskConnector
    from .install import install_zendesk
    from .logs import register_secret
    hook = install_zendesk(ZendeskConnector(ZendeskAccess(z["url"], z["email"], z["token_value"])), endpoint)
    register_secret(hook.signing_secret)   # redacted should anything ever log it
    click.echo(f"zendesk: webhook {hook.webhook_id} and trigger {hook.trigger_id} -> {endpoint}")
    where = z["webhook_secret"]
    if z["webhook_secret_value"] == hook.signing_secret:
        click.echo(f"zendesk: the signing secret is already stored where {ZENDESK_SECRET_KEY} points ({where})")
        return
    click.echo(f"zendesk: signing secret (printed here only, never logged): {hook.signing_secret}")
    click.echo(f"zendesk: store it where {ZENDESK_SECRET_KEY} points ({where}), then restart syncd")


def _install_jira(j: dict[str, Any], endpoint: str) -> None:
    from .connectors.jira import JiraAccess, JiraConnector
    from .install import install_jira
    if j["webhook_secret_value"] is None:
        raise click.ClickException(f"jira.webhook_secret ({j['webhook_secret']}) does not resolve: "
                                   "choose a random secret and store it there first")
    hook = install_jira(JiraConnector(JiraAccess(j["url"], j["email"], j["api_token_value"])),
                        endpoint, j["webhook_secret_value"])
    click.echo(f"jira: admin webhook {hook} -> {endpoint} (signed with jira.webhook_secret, {j['webhook_secret']})")


@webhooks.command(name="install")
@config_option
@click.option("--public-url", default=None, help="How the vendors reach this daemon, e.g. https://syncd.example.com "
              "(default: http.public_url from the config).")
def webhooks_install(config: str | None, public_url: str | None) -> None:
    """Register the Zendesk webhook + trigger and the Jira admin webhook (safe to run twice)."""
    from .config import http_url
    from .logs import configure_logging
    data = _install_config(_config_path(config))
    log_settings = data.get("logging", {})
    configure_logging(log_settings.get("level", "info"), log_settings.get("format", "auto"))
    url = (public_url or data.get("http", {}).get("public_url") or "").rstrip("/")
    if not url or http_url(url) is not None:
        raise click.BadParameter("an http(s) URL (or set http.public_url in the config)", param_hint="--public-url")
    try:
        if "zendesk" in data:
            _install_zendesk(data["zendesk"], f"{url}/webhooks/zendesk")
        _install_jira(data["jira"], f"{url}/webhooks/jira")
    except SyncdError as e:
        raise click.ClickException(str(e))
    if "intercom" in data:
        click.echo(f"intercom: in the Developer Hub, send webhook topics to {url}/webhooks/intercom "
                   "(the app's client secret signs them: intercom.client_secret)")


@main.command(help=LINK_HELP)
@click.argument("item")
@click.argument("key")
@config_option
def link(item: str, key: str, config: str | None) -> None:
    app = _app(config)
    try:
        made = app.engine.link(_ref(item), key.upper())
    except SyncdError as e:
        raise click.ClickException(str(e))
    outcome = app.engine.reconcile(made.desk)
    click.echo(f"linked {made.desk} to {made.issue_key} (issue id {made.issue_id}); {len(outcome.writes)} writes")


@main.command()
@click.argument("item")
@click.argument("key")
@config_option
def unlink(item: str, key: str, config: str | None) -> None:
    """Remove the link between a desk item and a Jira issue key."""
    store = _store(config)
    ref = _ref(item)
    for l in store.links_for_desk(ref):
        if l.issue_key == key.upper():
            store.remove_link(ref, l.issue_id)
            store.audit("link_removed", l.id, desk=str(ref), issue=l.issue_key)
            click.echo(f"unlinked {ref} from {l.issue_key}")
            return
    raise click.ClickException(f"{ref} is not linked to {key}")


@main.group()
def links() -> None:
    """Inspect links."""


def _link_doc(l: Any) -> dict[str, Any]:
    return {"id": l.id, "desk": str(l.desk), "issue_id": l.issue_id, "issue_key": l.issue_key,
            "created_at": l.created_at.isoformat()}


@links.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=100)
@config_option
def links_list(as_json: bool, limit: int, config: str | None) -> None:
    """Every link: desk item, Jira issue key and id."""
    store = _store(config)
    rows = [_link_doc(l) for l in store.list_links(limit=limit)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['id']:>6}  {r['desk']:<32} {r['issue_key']:<12} (id {r['issue_id']})")
    click.echo(f"{store.count_links()} links")


@links.command(name="show")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@config_option
def links_show(item: str, as_json: bool, config: str | None) -> None:
    """Links of a desk item (zendesk:123) or of an issue (jira:10001)."""
    store = _store(config)
    ref = _ref(item)
    found = store.links_for_desk(ref) if ref.is_desk else store.links_for_issue(ref.id)
    docs = []
    for l in found:
        base, revision = store.get_base(l.id)
        doc = _link_doc(l)
        doc["base"] = {k: asdict(v) for k, v in base.items()}
        doc["revision"] = revision
        docs.append(doc)
    if as_json:
        click.echo(json.dumps(docs, indent=2, default=str))
        return
    if not docs:
        raise click.ClickException(f"{ref} has no links")
    for d in docs:
        click.echo(f"{d['desk']} ↔ {d['issue_key']} (issue id {d['issue_id']}, link {d['id']}, since {d['created_at']})")
        for name, entry in d["base"].items():
            click.echo(f"    {name}: desk={entry['desk']!r} jira={entry['tracker']!r}")


def _print_outcome(outcome: Any, verb: str) -> None:
    for w in outcome.writes:
        click.echo(f"{verb} {w.target} {w.what} = {w.detail}")
    for d in outcome.decisions:
        click.echo(f"decision: {d}")
    if not outcome.writes:
        click.echo("in sync: nothing to write")


@main.command(help=RESYNC_HELP)
@click.argument("item")
@config_option
def resync(item: str, config: str | None) -> None:
    app = _app(config)
    _print_outcome(app.engine.reconcile(_ref(item)), "wrote")


@main.command(help=PLAN_HELP)
@click.argument("item")
@config_option
def plan(item: str, config: str | None) -> None:
    app = _app(config)
    _print_outcome(app.engine.reconcile(_ref(item), dry_run=True), "would write")


@main.group()
def dlq() -> None:
    """Dead letters: items that kept failing."""


@dlq.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@config_option
def dlq_list(as_json: bool, config: str | None) -> None:
    """Items that kept failing, with their last error."""
    rows = _store(config).dead_letters()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return
    for r in rows:
        click.echo(f"{r.id:>6}  {str(r.ref):<32} attempts={r.attempts}  {r.error}")
    click.echo(f"{len(rows)} dead letters")


@dlq.command(name="retry")
@click.argument("dead_id", type=int)
@config_option
def dlq_retry(dead_id: int, config: str | None) -> None:
    """Put a dead letter back in the queue (attempts start again)."""
    if not _store(config).retry_dead(dead_id):
        raise click.ClickException(f"no dead letter {dead_id}")
    click.echo(f"dead letter {dead_id} is queued again")


@dlq.command(name="drop")
@click.argument("dead_id", type=int)
@config_option
def dlq_drop(dead_id: int, config: str | None) -> None:
    """Forget a dead letter (the item syncs again on its next change)."""
    if not _store(config).drop_dead(dead_id):
        raise click.ClickException(f"no dead letter {dead_id}")
    click.echo(f"dead letter {dead_id} dropped")


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 unless the running daemon reports ready (for supervisors).")
@config_option
def status(config: str | None, check: bool) -> None:
    """Queue depth, oldest dirty item, dead letters, links, and what the running daemon reports."""
    settings = _settings(config)
    store = _store(config)
    age = store.oldest_dirty_age()
    click.echo(f"links:          {store.count_links()}")
    click.echo(f"queue depth:    {store.queue_depth()}")
    click.echo(f"oldest dirty:   {'-' if age is None else f'{age:.1f}s'}")
    click.echo(f"dead letters:   {len(store.dead_letters())}")
    url, ready = _readiness(settings)
    if ready is None:
        click.echo(f"daemon:         not reachable at {url}")
    else:
        _print_readiness(ready)
    if check and (ready is None or ready.get("status") != "ready"):
        sys.exit(1)


def _readiness(settings: Any) -> tuple[str, dict[str, Any] | None]:
    """The running daemon's own /readyz answer (503 bodies included), or None when nobody answers."""
    import urllib.error
    import urllib.request
    host = settings.http.host if settings.http.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{settings.http.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return url, json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return url, json.loads(e.read())
        except ValueError:
            return url, None
    except (OSError, ValueError):
        return url, None


def _print_readiness(ready: dict[str, Any]) -> None:
    click.echo(f"daemon:         {ready.get('status')}")
    for problem in ready.get("problems", []):
        click.echo(f"problem:        {problem}")
    for warning in ready.get("warnings", []):
        click.echo(f"warning:        {warning}")
    webhook = ready.get("last_webhook_age_seconds")
    click.echo(f"last webhook:   {'-' if webhook is None else f'{webhook:.1f}s ago'}")
    for name, p in sorted((ready.get("pollers") or {}).items()):
        click.echo(f"poller {name + ':':<9}{'leader' if p.get('leader') else 'standby'}")


@main.command()
@click.option("--port-base", default=0, help="First port (0: ephemeral ports).")
def sim(port_base: int) -> None:
    """Run the Zendesk, Jira and Intercom simulators until Ctrl-C."""
    from .sim.cli import serve
    serve(port_base)


@main.command()
@click.option("--keep", is_flag=True, help="Keep the temporary directory (SQLite, config) for inspection.")
def demo(keep: bool) -> None:
    """Play a short story against the simulators; exit 0 when it checks out."""
    from .demo import run_demo
    sys.exit(run_demo(keep=keep))


if __name__ == "__main__":
    main()
