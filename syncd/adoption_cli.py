"""``syncd links import``: the command around :mod:`syncd.adoption` (registered on the
``links`` group by :mod:`syncd.cli`)."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from .errors import SyncdError

IMPORT_HELP = ("Import the links an account already keeps (Zendesk's Jira integration and its V2, the "
               "Zendesk key field or Intercom key attribute, Jira remote links): each one checked against "
               "both vendors, wrong ones reported and not stored. Resumable: a run cut short carries on from its last page. "
               "Exit 0: done; 3: wrong links were found (see the report); 1: an error.")
EXIT_WRONG = 3
# As syncd.adoption.SOURCES (not imported here: registering the command must stay cheap).
SOURCES = ("zendesk-integration", "zendesk-integration-v2", "key-field", "intercom-key-field", "jira-remote-links")


def _line(v: Any) -> str:
    d = v.doc()
    target = d["issue_key"] or f"issue id {d['issue_id']}"
    if v.outcome == "wrong":
        return f"WRONG     {d['desk']} → {target}: {d['reason']} (from {d['origin']})"
    return f"{v.outcome:<9} {d['desk']} → {target} (from {d['origin']})"


def _pages(source: str, settings: Any, desks: Any, tracker: Any, page_size: int, scope: str | None,
           external_id: str | None = None) -> Any:
    from . import adoption, import_sources
    if source == "jira-remote-links":
        return lambda after: adoption.remote_link_pages(tracker, desks, after, page_size, scope)
    if source == "intercom-key-field":
        if "intercom" not in desks:
            raise click.ClickException(f"--from {source} reads Intercom, which is not configured in {settings.path}")
        locator = settings.intercom.mapping.escalation.key_field
        if not locator:
            raise click.ClickException("--from intercom-key-field: the intercom mapping has no [escalation] key_field")
        return lambda after: import_sources.intercom_key_field_pages(desks["intercom"], locator, after, page_size)
    if "zendesk" not in desks:
        raise click.ClickException(f"--from {source} reads Zendesk, which is not configured in {settings.path}")
    if source == "zendesk-integration":
        return lambda after: adoption.zendesk_integration_pages(desks["zendesk"], after, page_size)
    if source == "zendesk-integration-v2":
        assert external_id is not None, "checked by the command"
        return lambda after: import_sources.zendesk_integration_v2_pages(desks["zendesk"], external_id, after,
                                                                         page_size)
    locator = settings.zendesk.mapping.escalation.key_field
    if not locator:
        raise click.ClickException("--from key-field: the zendesk mapping has no [escalation] key_field")
    return lambda after: adoption.key_field_pages(desks["zendesk"], locator, after, page_size)


def import_command(settings_of: Callable[[str | None], Any], store_of: Callable[[str | None, Any], Any],
                   fail: Callable[[SyncdError, Any], click.ClickException]) -> click.Command:
    """The ``import`` command, given the CLI's own ways to load the settings, open the
    store (schema checked, never migrated) and word a vendor error (passed in, so this
    module does not import :mod:`syncd.cli`, which registers it)."""

    @click.command(name="import", help=IMPORT_HELP)
    @click.option("--from", "source", required=True, type=click.Choice(list(SOURCES)),
                  help="zendesk-integration: Zendesk's Jira integration; zendesk-integration-v2: its V2 "
                       "(with --external-id); key-field: Zendesk tickets' key field; intercom-key-field: "
                       "Intercom conversations' key attribute; jira-remote-links: Jira remote links to desk items.")
    @click.option("--external-id", default=None,
                  help="zendesk-integration-v2 only: the integration's external id (Admin Center > "
                       "Integrations > Jira > Edit).")
    @click.option("--dry-run", is_flag=True, help="Check every candidate and report; store nothing (not even progress).")
    @click.option("--restart", is_flag=True, help="Start from the first page, not where the last run stopped.")
    @click.option("--max-pages", type=click.IntRange(min=1), default=None,
                  help="Stop after this many pages; the next run carries on.")
    @click.option("--page-size", type=click.IntRange(1, 100), default=100, show_default=True)
    @click.option("--jql", "scope", default=None,
                  help="jira-remote-links only: look at the issues this JQL selects (e.g. 'project = SUP').")
    @click.option("--threads", type=click.IntRange(1, 32), default=8, show_default=True,
                  help="Candidates checked at once (the account budget still paces every read).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option("--config", "config", default=None, help="Config file (as for every command).")
    def links_import(source: str, external_id: str | None, dry_run: bool, restart: bool, max_pages: int | None,
                     page_size: int, scope: str | None, threads: int, as_json: bool, config: str | None) -> None:
        from . import adoption, import_sources
        from .wiring import Clients, build_budgets
        progress_name = source
        if (source == "zendesk-integration-v2") != (external_id is not None):
            raise click.UsageError("--external-id goes with --from zendesk-integration-v2, and it needs one")
        if external_id is not None:
            try:
                external_id = import_sources.parse_external_id(external_id)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--external-id")
            progress_name = import_sources.v2_progress_name(external_id)
        settings = settings_of(config)
        store = store_of(config, settings)
        # The account budgets shared with the running daemon: the import never makes it hit 429.
        budgets = build_budgets(settings, store, "import")
        try:
            clients = Clients.of(settings, budgets=budgets)
            # Only the desks the source can name (Intercom's SDK alone takes seconds to load).
            tracker = clients.jira()
            zendesk_only = source in ("zendesk-integration", "zendesk-integration-v2", "key-field")
            desks = {"zendesk": clients.zendesk()} if zendesk_only and settings.zendesk is not None \
                else clients.desks()
            importer = adoption.Importer(store, tracker, desks, dry_run=dry_run, source=progress_name,
                                         threads=threads)
            pages = _pages(source, settings, desks, tracker, page_size, scope, external_id)
            report = adoption.run(importer, pages, restart=restart, max_pages=max_pages,
                                  on_verdict=(lambda v: None) if as_json else (lambda v: click.echo(_line(v))))
        except adoption.SourceUnusable as e:
            raise click.ClickException(str(e))
        except SyncdError as e:
            raise fail(e, settings)
        except KeyboardInterrupt:
            click.echo("interrupted: the pages done are stored; run the same command again to carry on", err=True)
            sys.exit(130)
        finally:
            for budget in budgets.values():
                budget.close()
            store.close()
        _print(report, as_json)
        if report.of("wrong"):
            sys.exit(EXIT_WRONG)

    return links_import


def _print(report: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.doc(), indent=2))
        return
    counts = ", ".join(f"{len(report.of(o))} {o}" for o in ("imported", "skipped", "wrong"))
    verb = "(dry run: nothing stored)" if report.dry_run else "this run"
    state = "source read to its end" if report.complete else "stopped early: run again to carry on"
    click.echo(f"{report.source}: {counts} {verb}; {state}")
    if report.totals is not None and report.resumed_from is not None:
        t = report.totals
        click.echo(f"since this pass began: {t.imported} imported, {t.skipped} skipped, {t.wrong} wrong")
