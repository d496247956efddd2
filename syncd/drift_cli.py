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
    "Reconcile many links: --all, --desk zendesk (or a desk item zendesk:12), or --issue KEY; "
    "with --since DATE only those whose desk item or issue changed since then. "
    "With --dry-run: a drift report per link (fields that differ, comments missing on either side, "
    "a stale issue key, what the next reconcile would write), writing nothing to the vendors; exit 0 "
    "only when no drift remains, 3 when there is drift, 1 when an issue could not be read. A dry run cut "
    "short (Ctrl-C) carries on where it stopped when run again with the same scope (--restart: from the "
    "start), and reports the whole pass. Without --dry-run: the items are queued for "
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
    @click.option("--since", default=None,
                  help="Only links whose desk item or issue changed since DATE (2026-11-30, or an ISO time).")
    @click.option("--dry-run", is_flag=True, help="Report drift, write nothing.")
    @click.option("--restart", is_flag=True, help="With --dry-run: start a new pass, not where the last one stopped.")
    @click.option("--threads", type=click.IntRange(1, 32), default=8, show_default=True,
                  help="With --dry-run: issues audited at once (the account budget still paces the reads).")
    @click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
                  help="Without --dry-run: stop following the queue after this many seconds.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.option("--config", "config", default=None, help="Config file (as for every command).")
    def reconcile(everything: bool, desk: str | None, issue: str | None, since: str | None, dry_run: bool,
                  restart: bool, threads: int, timeout: float, as_json: bool, config: str | None) -> None:
        from . import audit_progress, changed_since, drift
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
        when = None
        if since is not None:
            try:
                when = changed_since.parse_date(since)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--since")
        if dry_run or when is not None:
            app = app_of(config)
            try:
                links = drift.select_links(app.store, scope, value)
                if when is not None:
                    links = _changed(app, links, when)
                if dry_run:
                    _dry_run(app, links, audit_progress.scope_key(scope, value, since), restart, threads, as_json)
                else:
                    _follow(app.store, links, timeout, as_json)
            finally:
                for budget in app.budgets.values():
                    budget.close()
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


def _changed(app: Any, links: list[Any], when: Any) -> list[Any]:
    """The links whose desk item or issue changed since ``when`` (asked of the vendors)."""
    from . import changed_since
    from .domain import ItemRef
    found = changed_since.changed_everywhere(app.engine.desks, app.engine.tracker, when)
    return [l for l in links if l.desk in found or ItemRef("jira", l.issue_id) in found]


def _dry_run(app: Any, links: list[Any], scope: str, restart: bool, threads: int, as_json: bool) -> None:
    from . import drift, drift_pass
    rate = drift.Rate(len(drift.by_issue(links)))
    try:
        report = drift_pass.run(app.engine, links, scope, restart=restart, threads=threads,
                                on_issue=lambda a, done, total: _progress(rate.line(done)))
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the issues done are stored; run the same command again to carry on", err=True)
        sys.exit(130)
    if sys.stderr.isatty():
        click.echo("", err=True)
    drifted, failed = report.drifted, report.errors
    if as_json:
        click.echo(json.dumps({"links": len(links), "issues": report.issues, "audited_now": report.audited_now,
                               "resumed": report.progress.resumed, "drifted": drifted, "errors": failed}, indent=2))
    else:
        _print_audits(drifted, failed, len(links))
        if report.progress.resumed:
            click.echo(f"(a resumed pass: {report.audited_now} of {report.issues} issues audited by this run)")
    if failed:
        sys.exit(1)
    if drifted:
        sys.exit(EXIT_DRIFT)


def _print_audits(drifted: list[dict[str, Any]], failed: list[dict[str, Any]], total: int) -> None:
    for a in drifted:
        for l in a["links"]:
            for d in l["drift"]:
                click.echo(f"{l['desk']} ↔ {l['issue_key']}: {_describe(d)}")
        for d in a["issue_drift"]:
            click.echo(f"{a['issue_key']} (several links): {_describe(d)}")
    for a in failed:
        click.echo(f"{a['issue_key']}: not checked: {a['error']}")
    links = sum(1 for a in drifted for l in a["links"] if l["drift"])
    click.echo(f"{total} links checked: {links} drifted" + (f", {len(failed)} issues not readable" if failed else ""))


def _describe(d: dict[str, str]) -> str:
    where = "Jira" if d["side"] == "jira" else "the desk"
    kind, what, detail = d["kind"], d["what"], d["detail"]
    if kind == "field":
        return f"{what[len('field:'):]} differs: would write {detail} to {where}"
    if kind == "comment":
        return f"comment missing on {where}: {detail}"
    if kind == "gone":
        return detail
    if kind == "key":
        return f"stored issue key is stale: {detail} (the issue moved)"
    if kind == "note":
        return f"note not posted on {where}: {detail}"
    return f"would write {what} on {where}: {detail}"


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
