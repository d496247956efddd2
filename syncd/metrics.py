"""Process-wide counters and gauges, rendered in Prometheus text format at /metrics.

Kept dependency-free on purpose: a handful of counters does not justify a
client library, and the text format is stable and simple.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Callable, Mapping


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[tuple[str, str, str], int] = defaultdict(int)
        self.call_seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.retries: dict[str, int] = defaultdict(int)
        self.counters: dict[str, int] = defaultdict(int)
        self.lags: list[float] = []
        self.gauges: dict[str, Callable[[], float | None]] = {}
        self.labelled: dict[str, tuple[str, Callable[[], Mapping[str, float]]]] = {}

    def vendor_call(self, vendor: str, operation: str, status: int, seconds: float) -> None:
        with self._lock:
            self.calls[(vendor, operation, str(status))] += 1
            self.call_seconds[(vendor, operation)] += seconds

    def retry(self, vendor: str) -> None:
        with self._lock:
            self.retries[vendor] += 1

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counters[name] += by

    def lag(self, seconds: float) -> None:
        with self._lock:
            self.lags.append(seconds)
            del self.lags[:-1000]   # keep the newest 1000 for the quantiles

    def gauge(self, name: str, fn: Callable[[], float | None]) -> None:
        self.gauges[name] = fn

    def labelled_gauge(self, name: str, label: str, fn: Callable[[], Mapping[str, float]]) -> None:
        """One gauge per label value, e.g. ``syncd_budget_used_requests{vendor="jira"}``."""
        self.labelled[name] = (label, fn)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines.append("# TYPE syncd_vendor_calls_total counter")
            for (vendor, op, status), n in sorted(self.calls.items()):
                lines.append(f'syncd_vendor_calls_total{{vendor="{vendor}",operation="{op}",status="{status}"}} {n}')
            lines.append("# TYPE syncd_vendor_retries_total counter")
            for vendor, n in sorted(self.retries.items()):
                lines.append(f'syncd_vendor_retries_total{{vendor="{vendor}"}} {n}')
            for name, n in sorted(self.counters.items()):
                lines.append(f"# TYPE syncd_{name}_total counter")
                lines.append(f"syncd_{name}_total {n}")
            lags = sorted(self.lags)
        if lags:
            lines.append("# TYPE syncd_propagation_lag_seconds summary")
            for q in (0.5, 0.99):
                lines.append(f'syncd_propagation_lag_seconds{{quantile="{q}"}} {lags[min(len(lags) - 1, int(q * len(lags)))]:.3f}')
        for name, fn in sorted(self.gauges.items()):
            try:
                value = fn()
            except Exception:   # a gauge whose source is down must not break /metrics
                value = None
            if value is not None:
                lines.append(f"# TYPE syncd_{name} gauge")
                lines.append(f"syncd_{name} {value}")
        for name, (label, values) in sorted(self.labelled.items()):
            try:
                rows = values()
            except Exception:
                continue
            lines.append(f"# TYPE syncd_{name} gauge")
            lines.extend(f'syncd_{name}{{{label}="{key}"}} {value}' for key, value in sorted(rows.items()))
        return "\n".join(lines) + "\n"


METRICS = Metrics()
