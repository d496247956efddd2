"""Process metrics at ``/metrics``, in the Prometheus text format, with prometheus_client.

The library gives what a hand-written renderer did not: ``# HELP`` on every
family, histograms with ``_bucket``/``_sum``/``_count`` that aggregate across
replicas, escaping, and the standard ``process_*``/``python_*`` families.
Every family syncd exports is declared here, with its help text, so that a
failure counter reads 0 before the first failure (a rate over a missing
series alerts on nothing). docs/operations.md lists them;
docs/prometheus-alerts.yml and docs/grafana-dashboard.json are built on them.

The method names (``vendor_call``, ``retry``, ``inc``, ``lag``, ``gauge``,
``labelled_gauge``) are what the rest of syncd calls; values read from the
store or the budgets at scrape time go through :meth:`Metrics.gauge` and
friends (a callback per scrape, never a background thread).
"""

from __future__ import annotations

import platform
import threading
from importlib import metadata
from typing import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 -- for the HTTP route
from prometheus_client import disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# ``*_created`` samples double every counter's series for nothing an alert uses.
disable_created_metrics()

PREFIX = "syncd_"
VENDORS = ("jira", "zendesk", "intercom")

# Counters incremented through :meth:`Metrics.inc` (name without prefix/suffix → help).
COUNTERS: dict[str, str] = {
    "webhooks_stored": "Webhook deliveries stored (before the 2xx answer).",
    "issues_created": "Jira issues created by escalation.",
    "field_writes": "Field values written to either side.",
    "comments_mirrored": "Comments and notes copied between desk and Jira.",
    "snapshot_refreshed": "Desk snapshots read again because they were stale.",
    "snapshot_used": "Reconciles served from a fresh desk snapshot.",
    "snapshot_settled_by_poll": "Desk snapshots a poll's view proved unchanged (no read needed to plan from them).",
    "issue_read_delivered": "Jira issue reconciles whose read a webhook delivery's issue stood in for.",
    "echo_proven": "Echoes of syncd's Jira writes whose delivery showed the issue as expected (the poll need not read them).",
    "issue_read_skipped": "Jira issue reconciles that needed no read: every event queueing it was older than the issue as last read.",
    "write_conflicts": "Safe updates refused because the item changed meanwhile (read again).",
    "item_failures": "Reconciles that failed and were scheduled again.",
    "dead_letters": "Items moved to dead letters after max_attempts failures.",
}

# Known refusal reasons of the webhook receiver (syncd/webhooks.py), present at 0.
# Others (missing_timestamp, unknown_path, a malformed payload's reason...) appear when they happen.
WEBHOOK_REFUSALS = ("bad_signature", "stale_timestamp", "missing_signature", "body_too_large", "store_unavailable")

# Seconds. Propagation: webhook-fast (< 1 s) up to a poll interval and backlogs.
LAG_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _version() -> str:
    try:
        return metadata.version("syncd")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Callbacks:
    """A collector whose values are read at scrape time (queue depth, budgets)."""

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, Callable[[], float | None]]] = {}
        self.labelled: dict[str, tuple[str, str, str, Callable[[], Mapping[str, float]]]] = {}

    def describe(self) -> Iterable[Metric]:
        return []   # families appear and go with the App that registers them

    def collect(self) -> Iterable[Metric]:
        for name, (help_text, fn) in sorted(self.gauges.items()):
            try:
                value = fn()
            except Exception:   # a gauge whose source is down must not break /metrics
                value = None
            if value is not None:
                family = GaugeMetricFamily(PREFIX + name, help_text)
                family.add_metric([], float(value))
                yield family
        for name, (kind, help_text, label, values) in sorted(self.labelled.items()):
            try:
                rows = values()
            except Exception:
                continue
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(PREFIX + name, help_text, labels=[label])
            else:
                family = GaugeMetricFamily(PREFIX + name, help_text, labels=[label])
            for key, value in sorted(rows.items()):
                family.add_metric([str(key)], float(value))
            yield family


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._lock = threading.Lock()
        Gauge(PREFIX + "build_info", "syncd's version and the Python running it (always 1).",
              ["version", "python"], registry=r).labels(_version(), platform.python_version()).set(1)
        self._calls = Counter(PREFIX + "vendor_calls", "Vendor API calls by outcome; status 0: no HTTP answer "
                              "(timeout, reset).", ["vendor", "operation", "status"], registry=r)
        self._call_seconds = Histogram(PREFIX + "vendor_call_duration_seconds",
                                       "Duration of vendor API calls (each attempt).", ["vendor", "operation"],
                                       buckets=CALL_BUCKETS, registry=r)
        self._retries = Counter(PREFIX + "vendor_retries", "Retries inside a vendor call (429, 5xx, no answer).",
                                ["vendor"], registry=r)
        self._lag = Histogram(PREFIX + "propagation_lag_seconds",
                              "From an item marked dirty to its reconcile finishing.", buckets=LAG_BUCKETS, registry=r)
        self._refused = Counter(PREFIX + "webhooks_refused", "Webhook deliveries refused, by vendor and reason.",
                                ["vendor", "reason"], registry=r)
        self._poll_failures = Counter(PREFIX + "poll_failures", "Polls of a vendor that failed (retried with backoff).",
                                      ["source"], registry=r)
        self._db_outages = Counter(PREFIX + "database_outages", "Database outages begun (or changed reason), "
                                   "by reason.", ["reason"], registry=r)
        self._counters = {name: Counter(PREFIX + name, help_text, registry=r) for name, help_text in COUNTERS.items()}
        for vendor in VENDORS:   # failure series exist at 0 before the first failure
            self._retries.labels(vendor)
            self._poll_failures.labels(vendor)
            for reason in WEBHOOK_REFUSALS:
                self._refused.labels(vendor, reason)
        for reason in ("database_unavailable", "database_io_error", "database_disk_full", "database_locked",
                       "database_read_only"):
            self._db_outages.labels(reason)
        self._callbacks = _Callbacks()
        r.register(self._callbacks)  # type: ignore[arg-type]

    # -- what the rest of syncd calls ---------------------------------------
    def vendor_call(self, vendor: str, operation: str, status: int, seconds: float) -> None:
        self._calls.labels(vendor, operation, str(status)).inc()
        self._call_seconds.labels(vendor, operation).observe(max(0.0, seconds))

    def retry(self, vendor: str) -> None:
        self._retries.labels(vendor).inc()

    def inc(self, name: str, by: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:   # a counter added elsewhere without a line in COUNTERS: still exported
            with self._lock:
                counter = self._counters.get(name)
                if counter is None:
                    counter = self._counters[name] = Counter(PREFIX + name, f"syncd {name.replace('_', ' ')}.",
                                                             registry=self.registry)
        counter.inc(by)

    def lag(self, seconds: float) -> None:
        self._lag.observe(max(0.0, seconds))

    def webhook_refused(self, vendor: str | None, reason: str) -> None:
        self._refused.labels(vendor or "unknown", reason).inc()

    def poll_failed(self, source: str) -> None:
        self._poll_failures.labels(source).inc()

    def database_outage(self, reason: str) -> None:
        self._db_outages.labels(reason).inc()

    def gauge(self, name: str, fn: Callable[[], float | None], help_text: str | None = None) -> None:
        """``syncd_<name>``, read from ``fn`` at every scrape (``None``: not exported)."""
        self._callbacks.gauges[name] = (help_text or GAUGE_HELP.get(name, f"syncd {name.replace('_', ' ')}."), fn)

    def labelled_gauge(self, name: str, label: str, fn: Callable[[], Mapping[str, float]],
                       help_text: str | None = None) -> None:
        """One gauge per label value, e.g. ``syncd_budget_requests_per_minute{vendor="jira"}``."""
        self._callbacks.labelled[name] = ("gauge", help_text or GAUGE_HELP.get(name, f"syncd {name}."), label, fn)

    def labelled_counter(self, name: str, label: str, fn: Callable[[], Mapping[str, float]],
                         help_text: str | None = None) -> None:
        """Like :meth:`labelled_gauge` for a value that only grows (exported as ``syncd_<name>_total``)."""
        self._callbacks.labelled[name] = ("counter", help_text or GAUGE_HELP.get(name, f"syncd {name}."), label, fn)

    # -- the scrape -----------------------------------------------------------
    def render(self) -> str:
        return generate_latest(self.registry).decode()


GAUGE_HELP: dict[str, str] = {
    "queue_depth": "Dirty items waiting or in work.",
    "oldest_dirty_age_seconds": "How long the oldest dirty item has waited (0: none waits).",
    "dead_letters": "Items in dead letters now.",
    "workers_busy": "Worker threads reconciling right now.",
    "snapshot_comments": "Comments held by the engine's copies of linked items (bound: [syncd] snapshot_max_comments).",
    "poll_stamps": "Items whose reconciled stamp is kept for the pollers (bound: [syncd] poll_stamps_max_items).",
    "issue_hints_bytes": "Bytes of Jira deliveries kept to stand in for issue reads (bound: [syncd] issue_hints_max_bytes).",
    "budget_requests_per_minute": "This process's share of the vendor account's request budget.",
    "budget_used_requests": "Requests taken from the vendor budget since start.",
    "budget_wait_seconds": "Seconds spent waiting for the vendor budget since start.",
}

METRICS = Metrics()
