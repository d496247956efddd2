"""The ``syncd`` command: what an admin types to run and keep the daemon healthy.

Secrets never come from argv: the config names where each one lives.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from .domain import ItemRef
from .errors import SyncdError

CONFIG_HELP = "Config file (default: $SYNCD_CONFIG, else ./config.toml, else /etc/syncd/config.toml)."
RUN_HELP = "Run the daemon: webhook receiver, pollers and workers, until SIGTERM."
CHECK_HELP = "Check the config and mapping files and resolve every secret; exit 78 on any problem."
LINK_HELP = "Link a desk item (zendesk:123, intercom:conversation:9, intercom:ticket:7) to a Jira issue key."
RESYNC_HELP = "Reconcile one item (zendesk:123, intercom:conversation:9, an issue key SUP-1) now; print what was written."
PLAN_HELP = "Print what reconciling one item (as for resync) would write, writing nothing."
EX_CONFIG = 78   # sysexits.h: the unit's RestartPreventExitStatus=78 stops systemd retrying a bad config
ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")


class ConfigProblem(click.ClickException):
    """The config cannot be used: exit 78 (EX_CONFIG), never a silent fallback."""

    exit_code = EX_CONFIG


def _config_path(given: str | None) -> Path:
    """The config file to use, announced on stderr. A file named by ``--config``
    or ``$SYNCD_CONFIG`` must exist: no falling back to ./config.toml."""
    if given is None and os.environ.get("SYNCD_CONFIG"):
        given, source = os.environ["SYNCD_CONFIG"], "$SYNCD_CONFIG"
    else:
        source = "--config"
    if given is not None:
        path = Path(given)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ConfigProblem(f"config file {path} (from {source}) {what}")
    else:
        found = next((Path(c) for c in ("config.toml", "/etc/syncd/config.toml") if Path(c).is_file()), None)
        if found is None:
            raise ConfigProblem("no config file: none given (--config or $SYNCD_CONFIG) and neither "
                                "./config.toml nor /etc/syncd/config.toml exists")
        path, source = found, "default"
    click.echo(f"syncd: config {path.absolute()} ({source})", err=True)
    return path


def _load(path: Path, strict: bool) -> Any:
    """The settings of ``path``; every problem printed and exit 78. ``strict=False``
    (every command but ``run``) lets the deferrable secrets be missing, with a warning."""
    from .config import DEFERRABLE, load
    loaded = load(path, defer=() if strict else DEFERRABLE)
    for w in loaded.warnings:
        click.echo(f"warning: {w} (not needed by this command; `syncd run` needs it: "
                   "`syncd webhooks install` prints it)", err=True)
    if loaded.problems:
        for p in loaded.problems:
            click.echo(f"error: {p}", err=True)
        raise ConfigProblem(f"{path}: {len(loaded.problems)} problem(s); `syncd config check` lists them")
    return loaded.settings


def _settings(config: str | None, strict: bool = False, quiet: bool = True) -> Any:
    from .logs import configure_logging
    settings = _load(_config_path(config), strict)
    configure_logging(settings.logging.level, settings.logging.format)
    if quiet:
        # A command's output is its own lines: no per-request lines of the HTTP client or
        # Alembic's "Context impl" under them (the daemon, `run`, keeps them in its log).
        for chatty in ("httpx", "alembic"):
            logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    return settings


def _fail(error: SyncdError, settings: Any = None) -> click.ClickException:
    """A SyncdError as a one-line CLI error that names the URL and config key involved."""
    from .diagnose import explain
    return click.ClickException(explain(error, settings))


def _app(config: str | None) -> Any:
    from .runtime import App
    settings = _settings(config)
    _check_schema(settings)
    try:
        return App.build(settings, migrate=False, role="command")
    except SyncdError as e:   # building the connectors calls the vendors (who am I)
        raise _fail(e, settings)


def _check_schema(settings: Any, store: Any = None) -> None:
    """Read-only commands never migrate: a database behind the code is an error saying what to run."""
    from .store import Store
    from .dbschema import head_revision
    own = store is None
    store = store or Store.open(settings.core.database_url)
    try:
        current, head = store.current_revision(), head_revision()
    finally:
        if own:
            store.close()
    if current != head:
        state = "has no syncd schema" if current is None else f"is at revision {current}, syncd needs {head}"
        raise click.ClickException(f"the database {_shown_url(settings.core.database_url)} {state}: "
                                   f"run `syncd db upgrade --config {settings.path}`")


def _store(config: str | None, settings: Any = None) -> Any:
    from .store import Store
    settings = settings or _settings(config)
    store = Store.open(settings.core.database_url)
    _check_schema(settings, store)
    return store


def _ref(text: str) -> ItemRef:
    try:
        ref = ItemRef.parse(text)
    except ValueError as e:
        raise click.BadParameter(f"{e}; or an issue key like SUP-1")
    return ref


def _item(app: Any, text: str) -> ItemRef:
    """``text`` as an item the app can reach: a desk ref of a configured desk, ``jira:<id>``
    or an issue key (``SUP-1``); unknown items and unconfigured desks are errors (exit 1)."""
    settings = app.settings
    if ISSUE_KEY.match(text.strip()):
        key = text.strip().upper()
        try:
            issue = app.engine.tracker.resolve_key(key)
        except SyncdError as e:
            raise _fail(e, settings)
        if issue is None:
            raise click.ClickException(f"no Jira issue {key} at {settings.jira.url} (jira.url)")
        return issue.ref
    ref = _ref(text)
    try:
        if ref.is_desk:
            desk = app.engine.desks.get(ref.system)
            if desk is None:
                raise click.ClickException(f"{ref}: {ref.system} is not configured in {settings.path} "
                                           f"(no [{ref.system}] section)")
            found = desk.fetch(ref)
            where = f"{getattr(settings, ref.system).url} ({ref.system}.url)"
        elif ref.kind == "jira":
            found = app.engine.tracker.fetch(ref.id)
            where = f"{settings.jira.url} (jira.url)"
        else:
            return ref
    except SyncdError as e:
        raise _fail(e, settings)
    if found is None:
        raise click.ClickException(f"no {ref} at {where}")
    return ref


config_option = click.option("--config", "config", default=None, help=CONFIG_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group()
@click.version_option(package_name="syncd")
def main() -> None:
    """syncd keeps Zendesk/Intercom and Jira in sync, both ways."""


@main.command(help=RUN_HELP)
@config_option
def run(config: str | None) -> None:
    from .runtime import App, BindFailed
    from .store import StoreUnavailable
    # Every file the daemon creates (the SQLite database and its -wal/-shm, logs it opens)
    # is its user's only: the inbox holds customer messages (issue 12, finding 5).
    os.umask(0o077)
    settings = _settings(config, strict=True, quiet=False)
    from .memory import limit_arenas
    limit_arenas()   # before any thread of the daemon starts: an arena once made stays (syncd/memory.py)
    try:
        App.build(settings).run_forever()
    except StoreUnavailable as e:
        # Raised only before the daemon is up (migrations, the daemon lock): once running, an
        # outage is waited out. systemd restarts the unit; the message says what to fix.
        raise click.ClickException(f"the database {_shown_url(settings.core.database_url)} cannot be used "
                                   f"({e.reason}): {e}")
    except BindFailed as e:
        raise click.ClickException(str(e))
    except SyncdError as e:
        raise _fail(e, settings)


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
@json_option
def config_check(config: str | None, as_json: bool) -> None:
    from .config import DEFERRABLE, load
    path = _config_path(config)
    loaded = load(path, defer=DEFERRABLE)
    if as_json:
        click.echo(json.dumps({"config": str(path), "ok": not loaded.problems,
                               "problems": [_problem_doc(p) for p in loaded.problems],
                               "warnings": [_problem_doc(w) for w in loaded.warnings]}, indent=2))
    for w in loaded.warnings:
        click.echo(f"warning: {w} (`syncd run` needs it; `syncd webhooks install` prints the Zendesk one)",
                   err=True)
    for p in loaded.problems:
        click.echo(f"error: {p}", err=True)
    if loaded.problems:
        sys.exit(EX_CONFIG)
    if not as_json:
        click.echo(f"{path}: ok")


def _problem_doc(p: Any) -> dict[str, str]:
    return {"file": p.path, "key": p.key, "expected": p.expected}


@main.group()
def db() -> None:
    """Database schema."""


@db.command(name="upgrade")
@config_option
def db_upgrade(config: str | None) -> None:
    """Apply migrations up to the newest (safe to run twice). Only this and `run` migrate."""
    from .store import Store, StoreUnavailable
    settings = _settings(config)
    try:
        with Store.open(settings.core.database_url) as store:
            store.upgrade()
            click.echo(f"database at revision {store.current_revision()}")
    except StoreUnavailable as e:
        raise click.ClickException(f"the database {_shown_url(settings.core.database_url)} cannot be used "
                                   f"({e.reason}): {e}")


@db.command(name="current")
@config_option
def db_current(config: str | None) -> None:
    """The database's schema revision and the newest one; exit 1 unless up to date."""
    from .dbschema import head_revision
    from .store import Store
    settings = _settings(config)
    with Store.open(settings.core.database_url) as store:
        current = store.current_revision()
    head = head_revision()
    click.echo(f"database: {_shown_url(settings.core.database_url)}")
    click.echo(f"current:  {current or '(empty: no syncd schema)'}")
    click.echo(f"head:     {head}")
    if current != head:
        click.echo(f"not up to date: run `syncd db upgrade --config {settings.path}`", err=True)
        sys.exit(1)
    click.echo("up to date")


@db.command(name="history")
def db_history() -> None:
    """Every migration shipped with this syncd, newest first."""
    from .dbschema import history
    for rev in history():
        click.echo(f"{rev.revision}  {rev.doc or ''}".rstrip() + ("  (head)" if rev.is_head else ""))


@main.group()
def webhooks() -> None:
    """Webhook registration with the vendors."""


ZENDESK_SECRET_KEY = "zendesk.webhook_secret"


def _install_zendesk(settings: Any, clients: Any, endpoint: str) -> None:
    from .install import install_zendesk
    from .logs import register_secret
    z = settings.zendesk
    hook = install_zendesk(clients.zendesk(), endpoint)
    register_secret(hook.signing_secret)   # redacted should anything ever log it
    click.echo(f"zendesk: webhook {hook.webhook_id} and trigger {hook.trigger_id} -> {endpoint}")
    # The reference as written in the config (env:NAME...), safe to show; the loader keeps it
    # when the secret does not resolve yet (this command is what produces it).
    where = z.webhook_secret.source if z.webhook_secret is not None else settings.deferred.get(ZENDESK_SECRET_KEY, "?")
    if z.webhook_secret is not None and z.webhook_secret.reveal() == hook.signing_secret:
        click.echo(f"zendesk: the signing secret is already stored where {ZENDESK_SECRET_KEY} points ({where})")
        return
    click.echo(f"zendesk: signing secret (printed here only, never logged): {hook.signing_secret}")
    click.echo(f"zendesk: store it where {ZENDESK_SECRET_KEY} points ({where}), then restart syncd")


def _install_jira(settings: Any, clients: Any, endpoint: str) -> None:
    from .install import install_jira
    hook = install_jira(clients.jira(), endpoint, settings.jira.webhook_secret.reveal())
    click.echo(f"jira: admin webhook {hook} -> {endpoint} (signed with jira.webhook_secret, "
               f"{settings.jira.webhook_secret.source})")


@webhooks.command(name="install")
@config_option
@click.option("--public-url", default=None, help="How the vendors reach this daemon, e.g. https://syncd.example.com "
              "(default: http.public_url from the config).")
def webhooks_install(config: str | None, public_url: str | None) -> None:
    """Register the Zendesk webhook + trigger and the Jira admin webhook (safe to run twice)."""
    from .toml_reader import http_url
    from .wiring import Clients
    settings = _settings(config)   # zendesk.webhook_secret may be missing: this command makes it
    url = (public_url or settings.http.public_url or "").rstrip("/")
    if not url or http_url(url) is not None:
        raise click.BadParameter("an http(s) URL (or set http.public_url in the config)", param_hint="--public-url")
    clients = Clients.of(settings)
    try:
        if settings.zendesk is not None:
            _install_zendesk(settings, clients, f"{url}/webhooks/zendesk")
        _install_jira(settings, clients, f"{url}/webhooks/jira")
    except SyncdError as e:
        raise _fail(e, settings)
    if settings.intercom is not None:
        click.echo(f"intercom: in the Developer Hub, send webhook topics to {url}/webhooks/intercom "
                   "(the app's client secret signs them: intercom.client_secret)")


@main.command(help=LINK_HELP)
@click.argument("item")
@click.argument("key")
@config_option
def link(item: str, key: str, config: str | None) -> None:
    app = _app(config)
    ref = _item(app, item)
    if not ref.is_desk:
        raise click.BadParameter("a desk item such as zendesk:123", param_hint="ITEM")
    from .engine import Write
    from .history import record
    try:
        made = app.engine.link(ref, key.upper())
        record(app.store, [Write(str(made.desk), "link", made.issue_key, link=made.id,
                                 why="an operator linked them (syncd link)")], made.desk, "syncd link")
        outcome = app.engine.reconcile(made.desk)
    except SyncdError as e:
        raise _fail(e, app.settings)
    record(app.store, outcome.writes, made.desk, "syncd link")
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
@json_option
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


def _links_of(store: Any, text: str) -> tuple[str, list[Any]]:
    """The links of a desk item, of ``jira:<id>`` or of an issue key (from the store: no vendor call)."""
    if ISSUE_KEY.match(text.strip()):
        from .admin_queries import search_links
        key = text.strip().upper()
        with store.reading() as conn:   # on ix_links_issue_key
            return key, list(search_links(conn, key, limit=10_000).links)
    ref = _ref(text)
    if ref.kind == "jira:version":
        raise click.BadParameter("a desk item (zendesk:123), an issue (jira:10001) or an issue key (SUP-1)",
                                 param_hint="ITEM")
    return str(ref), store.links_for_desk(ref) if ref.is_desk else store.links_for_issue(ref.id)


@links.command(name="show")
@click.argument("item")
@json_option
@config_option
def links_show(item: str, as_json: bool, config: str | None) -> None:
    """Links of a desk item (zendesk:123), of an issue (jira:10001 or its key SUP-1), with their last-synced values."""
    store = _store(config)
    name, found = _links_of(store, item)
    docs = []
    for l in found:
        base, revision = store.get_base(l.id)
        doc = _link_doc(l)
        # Keys starting with "__" are the engine's own bookkeeping (generation, intents): not field values.
        doc["base"] = {k: asdict(v) for k, v in base.items() if not k.startswith("__")}
        doc["revision"] = revision
        docs.append(doc)
    if as_json:
        click.echo(json.dumps(docs, indent=2, default=str))
        return
    if not docs:
        raise click.ClickException(f"{name} has no links")
    for d in docs:
        click.echo(f"{d['desk']} ↔ {d['issue_key']} (issue id {d['issue_id']}, link {d['id']}, since {d['created_at']})")
        for field_name, entry in d["base"].items():
            click.echo(f"    {field_name}: desk={entry['desk']!r} jira={entry['tracker']!r}")


HISTORY_HELP = ("What syncd wrote for the links of a desk item (zendesk:123, intercom:conversation:9) or of an "
                "issue (jira:10001 or its key SUP-1), newest first: when, which side, what (field old → new, "
                "comment ↔ mirrored id, note, create), why and what triggered it.")


@links.command(name="history", help=HISTORY_HELP)
@click.argument("item")
@json_option
@click.option("--limit", default=100, type=click.IntRange(1, 10_000), help="At most this many entries.")
@config_option
def links_history(item: str, as_json: bool, limit: int, config: str | None) -> None:
    from . import history
    store = _store(config)
    name, found = _links_of(store, item)
    # By item, not by link: its own entries (e.g. aggregates) and those of removed links too.
    ref = None if ISSUE_KEY.match(name) else ItemRef.parse(name)
    issue_id = ref.id if ref is not None and not ref.is_desk else (found[0].issue_id if found else None)
    with store.reading() as conn:
        if ref is not None and ref.is_desk:
            entries = history.read(conn, desk_ref=str(ref), limit=limit)
        else:
            entries = history.read(conn, issue_id=issue_id, limit=limit) if issue_id else []
    if as_json:
        click.echo(json.dumps({"item": name, "links": [_link_doc(l) for l in found],
                               "history": [e.as_doc() for e in entries]}, indent=2))
        return
    if not found and not entries:
        raise click.ClickException(f"{name} has no links and no history")
    for l in found:
        click.echo(f"link {l.id}: {l.desk} ↔ {l.issue_key} (issue id {l.issue_id})")
    for e in entries:
        click.echo(_history_line(e))
    click.echo(f"{len(entries)} entries" + (f" (the newest {limit}; --limit for more)" if len(entries) == limit else ""))


def _history_line(e: Any) -> str:
    if e.what.startswith("field:"):
        change = f"{e.what} {e.old if e.old is not None else '?'} → {e.new}"
    elif e.what in ("comment", "note"):
        ids = f"{e.source_id} → {e.mirrored_id}" if e.what == "comment" else f"id {e.mirrored_id}"
        change = f"{e.what} {ids}: {e.new}"
    else:
        change = f"{e.what} {e.new}"
    link = f"link {e.link_id}" if e.link_id is not None else "item"
    return (f"{e.at.strftime('%Y-%m-%d %H:%M:%S')}Z  {link:<9} {e.side or '?':<7} {e.target}  {change}\n"
            f"    why: {e.why or '-'}; trigger: {e.trigger or '-'}")


def _outcome_doc(outcome: Any, ref: ItemRef, dry_run: bool) -> dict[str, Any]:
    return {"item": str(ref), "dry_run": dry_run,
            "writes": [{"target": str(w.target), "what": w.what, "value": w.detail} for w in outcome.writes],
            "decisions": [str(d) for d in outcome.decisions]}


def _print_outcome(outcome: Any, verb: str) -> None:
    for w in outcome.writes:
        click.echo(f"{verb} {w.target} {w.what} = {w.detail}")
    for d in outcome.decisions:
        click.echo(f"decision: {d}")
    if not outcome.writes:
        click.echo("in sync: nothing to write")


def _reconcile(item: str, config: str | None, dry_run: bool, as_json: bool) -> None:
    app = _app(config)
    ref = _item(app, item)
    from .engine import Outcome
    from .history import record, record_failed
    outcome = Outcome(ref)
    try:
        app.engine.reconcile(ref, dry_run=dry_run, outcome=outcome)
    except SyncdError as e:
        if not dry_run:
            record_failed(app.store, outcome.writes, ref, f"{ref} (syncd resync)", e)
        raise _fail(e, app.settings)
    if not dry_run:
        record(app.store, outcome.writes, ref, f"{ref} (syncd resync)")
    if as_json:
        click.echo(json.dumps(_outcome_doc(outcome, ref, dry_run), indent=2, default=str))
    else:
        _print_outcome(outcome, "would write" if dry_run else "wrote")


@main.command(help=RESYNC_HELP)
@click.argument("item")
@json_option
@config_option
def resync(item: str, as_json: bool, config: str | None) -> None:
    _reconcile(item, config, dry_run=False, as_json=as_json)


@main.command(help=PLAN_HELP)
@click.argument("item")
@json_option
@config_option
def plan(item: str, as_json: bool, config: str | None) -> None:
    _reconcile(item, config, dry_run=True, as_json=as_json)


@main.group()
def dlq() -> None:
    """Dead letters: items that kept failing."""


def _dead_doc(r: Any) -> dict[str, Any]:
    return {"id": r.id, "ref": str(r.ref), "error": r.error, "attempts": r.attempts,
            "failed_at": r.failed_at.isoformat(), "reason": r.reason}


@dlq.command(name="list")
@json_option
@config_option
def dlq_list(as_json: bool, config: str | None) -> None:
    """Items that kept failing, with their last error."""
    rows = _store(config).dead_letters()
    if as_json:
        click.echo(json.dumps([_dead_doc(r) for r in rows], indent=2))
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
@json_option
@config_option
def status(config: str | None, check: bool, as_json: bool) -> None:
    """Queue depth, oldest dirty item, dead letters, links, and what the running daemon reports."""
    settings = _settings(config)
    store = _store(config, settings)
    age = store.oldest_dirty_age()
    url, ready = _readiness(settings)
    doc = {"config": str(settings.path), "links": store.count_links(), "queue_depth": store.queue_depth(),
           "oldest_dirty_age_seconds": None if age is None else round(age, 1),
           "dead_letters": len(store.dead_letters()), "daemon_url": url, "daemon": ready}
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        click.echo(f"links:          {doc['links']}")
        click.echo(f"queue depth:    {doc['queue_depth']}")
        click.echo(f"oldest dirty:   {'-' if age is None else f'{age:.1f}s'}")
        click.echo(f"dead letters:   {doc['dead_letters']}")
        if ready is None:
            click.echo(f"daemon:         not reachable at {url}")
        else:
            _print_readiness(ready)
    if check and (ready is None or ready.get("status") != "ready"):
        sys.exit(1)


@main.command()
@json_option
@config_option
def doctor(config: str | None, as_json: bool) -> None:
    """Check the installation online: database, credentials, mapped fields, webhooks, budgets; exit 1 on any failure."""
    from .doctor import FAIL, as_json as doctor_json, run_checks
    settings = _settings(config, strict=True)
    checks = run_checks(settings)
    if as_json:
        click.echo(json.dumps(doctor_json(checks), indent=2))
    else:
        for c in checks:
            click.echo(c.line())
        failed = sum(c.status == FAIL for c in checks)
        click.echo(f"{len(checks)} checks, {failed} failed")
    if any(c.status == FAIL for c in checks):
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
@click.option("--write-config", "write_config", default=None, type=click.Path(file_okay=False),
              help="Also set the simulators up for syncd and write a working config.toml, mappings and "
                   "secrets into this directory.")
@click.option("--daemon-port", default=0, help="With --write-config: the port syncd will listen on (0: a free one).")
def sim(port_base: int, write_config: str | None, daemon_port: int) -> None:
    """Run the Zendesk, Jira and Intercom simulators until Ctrl-C."""
    from .sim.cli import serve
    setup = None
    if write_config:
        from .sandbox import write_config as write_sandbox_config
        setup = functools.partial(write_sandbox_config, directory=Path(write_config), daemon_port=daemon_port)
    serve(port_base, setup=setup)


@main.command()
@click.option("--keep", is_flag=True, help="Keep the temporary directory (SQLite, config) for inspection.")
def demo(keep: bool) -> None:
    """Play a short story against the simulators; exit 0 when it checks out."""
    from .demo import run_demo
    sys.exit(run_demo(keep=keep))


def _register_adoption() -> None:
    # The adoption commands (import, reconcile) live in their own modules (syncd.adoption_cli), given this
    # module's helpers, so that they need not import it back.
    from .adoption_cli import import_command
    links.add_command(import_command(_settings, _store, _fail))
    from .drift_cli import reconcile_command
    main.add_command(reconcile_command(_app, _store))
    from .backfill_cli import backfill_command
    main.add_command(backfill_command(_settings, _store, _fail))


_register_adoption()


if __name__ == "__main__":
    main()
