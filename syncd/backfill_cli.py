"""``syncd backfill``: the command around :mod:`syncd.backfill` (registered on the main
group by :mod:`syncd.cli`, which passes its helpers in)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any, Callable

import click

from .errors import SyncdError

BACKFILL_HELP = (
    "Find desk items changed since DATE that the mapping wants escalated or linked (the escalation "
    "tag, the project field, issue keys in the key field) but syncd never saw, and queue them for "
    "the running daemon (reason \"backfill\"), which does the work within its budget. Items syncd "
    "already holds are not queued again; running it twice escalates nothing twice. Reads the "
    "Zendesk incremental export and Intercom search, paced by the account budget. "
    "Exit 0: done (see the report); 1: an error.")


def _line(v: Any) -> str:
    return f"{v.outcome:<14} {v.wanted.ref} ({v.wanted.why})"


def backfill_command(settings_of: Callable[[str | None], Any], store_of: Callable[[str | None, Any], Any],
                     fail: Callable[[SyncdError, Any], click.ClickException]) -> click.Command:
    """``settings_of(config)``, ``store_of(config, settings)`` (schema checked, never
    migrated) and ``fail`` (a vendor error worded for the CLI): the CLI's own helpers."""

    @click.command(name="backfill", help=BACKFILL_HELP)
    @click.option("--since", "since_text", required=True, metavar="DATE",
                  help="Items changed at or after this date (2026-11-30, midnight UTC) or time "
                       "(2026-11-30T08:00:00Z).")
    @click.option("--desk", type=click.Choice(["zendesk", "intercom"]), default=None,
                  help="One desk; default: every configured desk.")
    @click.option("--dry-run", is_flag=True, help="Report what would be queued; queue nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option("--config", "config", default=None, help="Config file (as for every command).")
    def backfill(since_text: str, desk: str | None, dry_run: bool, as_json: bool, config: str | None) -> None:
        from . import backfill as bf
        from .budget import Budget
        from .wiring import Clients, mappings
        try:
            since = bf.parse_since(since_text, datetime.now(timezone.utc))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--since")
        settings = settings_of(config)
        names = [desk] if desk else list(settings.desks)
        if desk and desk not in settings.desks:
            raise click.UsageError(f"--desk {desk}: {desk} is not configured in {settings.path}")
        store = store_of(config, settings)
        try:
            clients = Clients.of(settings)
            rules = {name: mapping.escalation for name, mapping in mappings(settings).items()}

            def pages() -> Any:
                for name in names:
                    connector = clients.desk(name)
                    if name == "zendesk":
                        yield from bf.zendesk_records(connector, since, Budget(bf.EXPORT_PER_MINUTE))
                    else:
                        yield from bf.intercom_records(connector, since)

            report = bf.run(store, pages(), lambda ref: rules[ref.system], since=since,
                            desks=names, dry_run=dry_run,
                            on_verdict=(lambda v: None) if as_json else (lambda v: click.echo(_line(v))))
        except bf.BackfillError as e:
            raise click.ClickException(str(e))
        except SyncdError as e:
            raise fail(e, settings)
        except KeyboardInterrupt:
            click.echo("interrupted: the items found so far are queued; run the same command again "
                       "(nothing is queued twice)", err=True)
            sys.exit(130)
        finally:
            store.close()
        if as_json:
            click.echo(json.dumps(report.doc(), indent=2))
            return
        verb = "would be queued (dry run)" if dry_run else "queued for the daemon"
        click.echo(f"{', '.join(names)} since {since.isoformat()}: {report.read} items read, "
                   f"{len(report.verdicts)} want escalation or a link: {len(report.of(bf.QUEUED, bf.WOULD_QUEUE))} "
                   f"{verb}, {len(report.of(bf.ALREADY_LINKED))} already linked"
                   + (f", {len(report.of(bf.CLOSED))} closed (not queued)" if report.of(bf.CLOSED) else ""))

    return backfill
