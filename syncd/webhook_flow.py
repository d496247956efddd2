"""Whether each vendor's webhooks still get through: the receiver's own view.

The common way webhooks stop working is not silence but refusal: an admin
rotates the signing secret on one side only, or the vendor changes a payload
shape, and from then on every delivery is answered 401 or 400. Each refusal is
logged, but a log line per delivery is easy to miss; this keeps, per vendor,
when a delivery was last accepted (signature and shape good: stored, a
duplicate, syncd's own echo or an ignored event) and how many were refused
since, so that ``/readyz`` and ``syncd status`` can say it in one line.

It is a *warning*, not a readiness problem: anyone who can reach the port can
send unsigned requests, and a forger must not be able to take the daemon out of
a load balancer. Per process, like the receiver: with several replicas behind a
balancer each reports what it received.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

# Refusals in a row (no accepted delivery between) before the warning shows: one
# forged or truncated request is noise, a run of them is a broken configuration.
REFUSAL_STREAK = 3


@dataclass(frozen=True)
class VendorFlow:
    last_accepted: float | None = None    # epoch seconds
    refused_since: int = 0                # refusals since the last accepted delivery
    last_refusal: str | None = None       # its reason, e.g. "bad_signature"
    last_refused: float | None = None


class WebhookFlow:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._vendors: dict[str, VendorFlow] = {}
        self._lock = threading.Lock()

    def accepted(self, vendor: str) -> None:
        with self._lock:
            self._vendors[vendor] = VendorFlow(last_accepted=self._clock())

    def refused(self, vendor: str, reason: str) -> None:
        with self._lock:
            old = self._vendors.get(vendor, VendorFlow())
            self._vendors[vendor] = replace(old, refused_since=old.refused_since + 1, last_refusal=reason,
                                            last_refused=self._clock())

    def snapshot(self) -> dict[str, VendorFlow]:
        with self._lock:
            return dict(self._vendors)

    def warnings(self) -> list[str]:
        now = self._clock()
        out = []
        for vendor, flow in sorted(self.snapshot().items()):
            if flow.refused_since < REFUSAL_STREAK:
                continue
            since = "never since start" if flow.last_accepted is None else f"{now - flow.last_accepted:.0f}s ago"
            out.append(f"webhooks {vendor}: {flow.refused_since} deliveries refused in a row "
                       f"(last: {flow.last_refusal}, {now - (flow.last_refused or now):.0f}s ago), last accepted "
                       f"{since}; if they are the vendor's, its webhook secret or payload no longer matches "
                       f"syncd's configuration (the pollers still catch the changes, late)")
        return out

    def report(self) -> dict[str, dict[str, object]]:
        """Per vendor, for /readyz: ages in seconds."""
        now = self._clock()
        return {vendor: {"last_accepted_age_seconds": None if f.last_accepted is None
                         else round(now - f.last_accepted, 1),
                         "refused_since_last_accepted": f.refused_since, "last_refusal": f.last_refusal}
                for vendor, f in sorted(self.snapshot().items())}
