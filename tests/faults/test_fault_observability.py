"""What an operator sees: /metrics (Prometheus text), /healthz, /readyz, and
``syncd status`` printing the same to a person — healthy, then during a vendor
fault, then recovered."""

from __future__ import annotations

import re

from click.testing import CliRunner

from syncd.cli import main
from syncd.sim.core import Fault

from .conftest import SQLITE_ONLY, comments_with, escalate, get, wait_for

pytestmark = SQLITE_ONLY

SAMPLE = re.compile(r'^[a-z_][a-z0-9_]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+-]+|[+-]Inf|NaN)$')


def _status(world, *args: str):
    return CliRunner(env=world.env).invoke(main, ["status", "--config", str(world.config_path), *args])


def _item_failures(text: str) -> float:
    found = re.search(r"(?m)^syncd_item_failures_total (\S+)$", text)
    assert found, "syncd_item_failures_total is not exported"
    return float(found.group(1))


def test_fault_observability_metrics_health_readiness_and_status(make_world, start_daemon, look_at):
    world = make_world()
    daemon = start_daemon(world)
    # The counters are the process's: an earlier test on the same xdist worker may have
    # counted failures. What this one proves is that its own run added none.
    failures_before = _item_failures(get(daemon, "/metrics").text)
    look = look_at(world)
    ticket, key = escalate(world, look)
    world.zendesk.customer_reply(ticket, "Observed.")
    assert wait_for(lambda: comments_with(world, key, "Observed.") == 1)
    assert wait_for(lambda: daemon.store.queue_depth() == 0)

    metrics = get(daemon, "/metrics")
    assert metrics.status == 200
    lines = [line for line in metrics.text.splitlines() if line and not line.startswith("#")]
    assert all(SAMPLE.match(line) for line in lines), [line for line in lines if not SAMPLE.match(line)]
    text = metrics.text
    # prometheus_client writes labels in alphabetical order and values as floats.
    for expected in ("syncd_queue_depth 0.0", "syncd_oldest_dirty_age_seconds 0.0", "syncd_dead_letters 0.0",
                     'syncd_vendor_calls_total{operation="showTicket",status="200",vendor="zendesk"}',
                     'syncd_vendor_calls_total{operation="addComment",status="200",vendor="jira"}',
                     'syncd_budget_requests_per_minute{vendor="jira"} 6000',
                     'syncd_budget_used_requests_total{vendor="zendesk"}', "syncd_webhooks_stored_total",
                     "syncd_propagation_lag_seconds_count", 'syncd_item_failures_total '):
        assert expected in text, expected
    assert _item_failures(text) == failures_before

    assert get(daemon, "/healthz").body == {"status": "ok"}
    ready = get(daemon, "/readyz")
    assert ready.status == 200 and ready.body["status"] == "ready" and ready.body["problems"] == []
    assert ready.body["queue_depth"] == 0 and ready.body["last_webhook_age_seconds"] is not None
    assert set(ready.body["pollers"]) == {"jira", "zendesk", "intercom"}

    healthy = _status(world, "--check")
    assert healthy.exit_code == 0, healthy.output
    assert "daemon:         ready" in healthy.output and "queue depth:    0" in healthy.output
    assert "poller jira:" in healthy.output and "last webhook:" in healthy.output

    # A vendor outage: the queue grows, /readyz and status say what is wrong.
    world.jira.inject(Fault("status", operation="addComment", status=503))
    world.zendesk.customer_reply(ticket, "During the outage.")
    assert wait_for(lambda: get(daemon, "/readyz").status == 503, timeout=10)
    degraded = _status(world, "--check")
    assert degraded.exit_code == 1
    assert "daemon:         degraded" in degraded.output
    assert re.search(r"problem: +worker: .*jira addComment.*503", degraded.output), degraded.output
    assert get(daemon, "/readyz").body["queue_depth"] >= 1
    assert 'status="503"' in get(daemon, "/metrics").text

    world.jira.clear_faults()
    assert wait_for(lambda: comments_with(world, key, "During the outage.") == 1, timeout=15)
    assert wait_for(lambda: _status(world, "--check").exit_code == 0, timeout=10)
