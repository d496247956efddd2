"""``syncd reconcile``: the drift audit of many links (``--dry-run``), or their
reconcile queued for the running daemon, followed until done (registered on the
main group by :mod:`syncd.cli`, which passes its helpers in)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

import click

RECONCILE_HELP = (
    "Reconcile many links: --all, --desk zendesk (or a desk item zendesk:12), or --issue KEY. "
    "With --dry-run: a drift report per link (fields that differ, comments missing on either side, "
    "what the next reconcile would write), writing nothing; exit 0 only when no drift remains, 3 when "
    "there is drift, 1 when an issue could not be read. Without --dry-run: the items are queued for "
    "the running daemon (reason \"manual\"), which owns the budget, and followed until done; exit 0 "
    "when all were reconciled, 3 when some went to the dead letters, 4 on --timeout.")
EXIT_DRIFT, EXIT_TIMEOUT = 3, 4


def reconcile_command(app_of: Callable[[str | None], Any], store_of: Callable[[str | None], Any]) -> click.Command:
    """``app_of(config)``: an App (connectors paced by the account budget, schema checked);
    ``store_of(config)``: the store, schema checked."""

    @click.command(name="reconcile", help=RECONCILE_HELP)
    @click.option("--all", "everything", is_flag=True, help="Every link.")
    @click.option("--desk", default=None, help="The links of a desk (zendesk, intercom) or of one desk item.")
    @click.option("--issue", default=None, help="The links of one issue key (SUP-1).")
    @click.option("--dry-run", is_flag=True, help="Report drift, write nothing.")
    @click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
                  help="Without --dry-run: stop following the queue after this many seconds.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.option("--config", "config", default=None, help="Config file (as for every command).")
    def reconcile(everything: bool, desk: str | None, issue: str | None, dry_run: bool, timeout: float,
                  as_json: bool, config: str | None) -> None:
        from . import drift
        from .domain import ItemRef
        chosen = [n for n, v in (("--all", everything), ("--desk", desk), ("--issue", issue)) if v]
        if len(chosen) != 1:
            raise click.UsageError("choose exactly one of --all, --desk D, --issue KEY")
        scope, value = ("all", None) if everything else ("desk", desk) if desk else ("issue", issue)
        if scope == "desk" and value and ":" not in value and value not in ("zendesk", "intercom"):
            raise click.BadParameter("a desk (zendesk, intercom) or a desk item (zendesk:12)", param_hint="--desk")
        if scope == "desk" and value and ":" in value:
            try:
                ItemRef.parse(value)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--desk")
        if dry_run:
            app = app_of(config)
            try:
                _dry_run(app, drift.select_links(app.store, scope, value), as_json)
            finally:
                app.store.close()
        else:
            store = store_of(config)
            try:
                _follow(store, drift.select_links(store, scope, value), timeout, as_json)
            finally:
                store.close()

    return reconcile


def _progress(line: str) -> None:
    # A progress line only for a person at a terminal; scripts read --json.
    if sys.stderr.isatty():
        click.echo(f"\r{line}", err=True, nl=False)


def _dry_run(app: Any, links: list[Any], as_json: bool) -> None:
    from . import drift
    rate = drift.Rate(len(drift.by_issue(links)))
    audits = drift.audit(app.engine, links, on_issue=lambda a, done, total: _progress(rate.line(done)))
    if sys.stderr.isatty():
        click.echo("", err=True)
    drifted = [a for a in audits if a.drifted]
    failed = [a for a in audits if a.error]
    if as_json:
        click.echo(json.dumps({"links": len(links), "issues": len(audits), "drifted": [a.doc() for a in drifted],
                               "errors": [a.doc() for a in failed]}, indent=2))
    else:
        _print_audits(drifted, failed, len(links))
    if failed:
        sys.exit(1)
    if drifted:
        sys.exit(EXIT_DRIFT)


def _print_audits(drifted: list[Any], failed: list[Any], total: int) -> None:
    for a in drifted:
        for l in a.links:
            for d in l.drift:
                click.echo(f"{l.desk} ↔ {l.issue_key}: {_describe(d)}")
        for d in a.shared:
            click.echo(f"{a.issue_key} (several links): {_describe(d)}")
    for a in failed:
        click.echo(f"{a.issue_key}: not checked: {a.error}")
    links = sum(1 for a in drifted for l in a.links if l.drift)
    click.echo(f"{total} links checked: {links} drifted" + (f", {len(failed)} issues not readable" if failed else ""))


def _describe(d: Any) -> str:
    where = "Jira" if d.side == "jira" else "the desk"
    if d.kind == "field":
        return f"{d.what[len('field:'):]} differs: would write {d.detail} to {where}"
    if d.kind == "comment":
        return f"comment missing on {where}: {d.detail}"
    if d.kind == "gone":
        return d.detail
    if d.kind == "note":
        return f"note not posted on {where}: {d.detail}"
    return f"would write {d.what} on {where}: {d.detail}"


def _follow(store: Any, links: list[Any], timeout: float, as_json: bool) -> None:
    """Queue the links' issues (one reconcile covers every link of an issue) for the
    daemon and wait until each left the queue, or ``timeout``."""
    from . import drift, queue_watch
    from .domain import ItemRef
    refs = sorted({str(ItemRef("jira", l.issue_id)) for l in links})
    since = time.time()
    store.mark_dirty([ItemRef.parse(r) for r in refs], "manual")
    rate = drift.Rate(len(refs))
    deadline = time.monotonic() + timeout
    left = set(refs)
    while left and time.monotonic() < deadline:
        left = queue_watch.still_queued(store, refs)
        _progress(rate.line(len(refs) - len(left)))
        if left:
            time.sleep(0.5)
    if sys.stderr.isatty():
        click.echo("", err=True)
    dead = queue_watch.dead_since(store, refs, since)
    doc = {"queued": len(refs), "done": len(refs) - len(left) - len(dead), "dead": dead, "still_queued": sorted(left)}
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"{doc['done']}/{len(refs)} issues reconciled" + (f"; {len(dead)} dead letters" if dead else "")
                   + (f"; {len(left)} still queued after {timeout:.0f}s (is the daemon running?)" if left else ""))
    if left:
        sys.exit(EXIT_TIMEOUT)
    if dead:
        sys.exit(EXIT_DRIFT)
