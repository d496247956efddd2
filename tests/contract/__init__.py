"""The simulators' contract checker (test-side: it needs the ``test`` extra,
openapi-core, so it is not part of the shipped ``syncd`` package; the
simulators only offer the :attr:`SimServer.global_observers` hook it uses).
Importable as ``contract``: ``tests/conftest.py`` puts ``tests/`` on ``sys.path``.

Every answer a simulator gives — and the request that caused it — is checked
against the vendor's own OpenAPI document (``../shared/vendor-specs`` beside the checkout, or
``$SYNCD_VENDOR_SPECS``) with openapi-core. Two reasons: the simulators must
answer the way the real services do, and the daemon must only send requests
the real services accept.

The documents are not the services. Where they disagree with how the real
service behaves, the document copy is corrected *in memory*, one entry per
difference, in :data:`CORRECTIONS` (vendor, target, what is relaxed, why).
Operations the documents do not describe at all are listed in
:data:`UNDOCUMENTED` with a reason; any other unknown path is a violation.

Pieces (this package is the entry point and re-exports the others' names):

* :mod:`contract.corrections` — :data:`CORRECTIONS`,
  :data:`UNDOCUMENTED` and the vendors' error shapes;
* :mod:`contract.loader` — reads and corrects each document once per
  process (:func:`load`) and builds its validators;
* :mod:`contract.checker` — :class:`ContractChecker`,
  ``check(vendor, request, response) -> [Violation]``;
* :class:`ContractRecorder` (here) — a :attr:`SimServer.global_observers` entry
  that runs the checker on every simulator answer and files the violations
  under the test that was running (see ``tests/conftest.py``).

``SYNCD_CONTRACT=off`` disables the whole thing (benchmarks, ``syncd demo``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

import structlog

from .checker import CheckStats, ContractChecker, Violation
from .corrections import (
    CORRECTIONS,
    ERROR_SHAPES,
    UNDOCUMENTED,
    ContractSetupError,
    Correction,
    Undocumented,
    _nullable as _nullable,  # re-exported: tests build a stale correction with it
    corrections_for,
)
from .loader import (
    DEFAULT_SPECS_DIR,
    SPECS_ENV,
    SWITCH_ENV,
    VENDORS,
    VendorDoc,
    load,
    specs_dir,
)
from syncd.sim.core import Request, Response, SimServer

__all__ = [
    "ACTIVE_RECORDER", "CORRECTIONS", "DEFAULT_SPECS_DIR", "ERROR_SHAPES", "SPECS_ENV", "SWITCH_ENV",
    "UNDOCUMENTED", "VENDORS", "CheckStats", "ContractChecker", "ContractRecorder", "ContractSetupError",
    "Correction", "Undocumented", "VendorDoc", "Violation", "contract_enabled", "corrections_for",
    "format_report", "load", "specs_dir",
]

log = structlog.get_logger("syncd.sim.contract")   # the logger name it had in syncd/sim/


def contract_enabled() -> bool:
    """On unless ``SYNCD_CONTRACT`` says off (benchmarks switch it off)."""
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


# ---------------------------------------------------------------------------
# The recorder: an observer of every simulator, filing violations per test
# ---------------------------------------------------------------------------

# The most recently installed recorder (kept after uninstall for the session summary).
ACTIVE_RECORDER: ContractRecorder | None = None


class ContractRecorder:
    """Runs the checker on every simulator answer and files the violations
    under the test that was running when the request was served.

    The observer runs on the simulator's server thread *after* the answer was
    sent, so :meth:`end` waits for checks still in flight before collecting.
    Violations observed while no test (or another test) was running are kept
    as *late* ones and reported with the next test that ends, labelled so.
    """

    def __init__(self, checker: ContractChecker | None = None):
        self.checker = checker or ContractChecker()
        self._cv = threading.Condition()
        self._pending = 0
        self._current: str | None = None
        self._by_test: dict[str, list[Violation]] = defaultdict(list)
        self._late: list[str] = []

    # -- wiring -----------------------------------------------------------
    def install(self) -> ContractRecorder:
        global ACTIVE_RECORDER
        SimServer.global_observers.append(self.observe)
        ACTIVE_RECORDER = self
        return self

    def uninstall(self) -> None:
        if self.observe in SimServer.global_observers:
            SimServer.global_observers.remove(self.observe)

    # -- the observer -----------------------------------------------------
    def observe(self, sim: SimServer, request: Request, response: Response) -> None:
        vendor = getattr(sim, "vendor", "")
        if vendor not in VENDORS:
            return   # a bare SimServer (framework tests): no document to check against
        with self._cv:
            test = self._current
            self._pending += 1
        try:
            found = self.checker.check(vendor, request, response)
        except Exception as e:  # noqa: BLE001 -- never break the simulator's thread; report instead
            found = [Violation(vendor, request.operation or "?", request.method, request.path,
                               response.status, "checker", f"checker failed: {type(e).__name__}: {e}")]
        for v in found:
            log.warning("contract_violation", vendor=v.vendor, operation=v.operation, method=v.method,
                        path=v.path, status=v.status, part=v.part, problem=v.problem)
        with self._cv:
            self._pending -= 1
            if test is not None and test == self._current:
                self._by_test[test].extend(found)
            else:
                self._late.extend(f"(observed after {test or 'no test'} ended) {v}" for v in found)
            self._cv.notify_all()

    # -- per test ---------------------------------------------------------
    def begin(self, test_id: str) -> None:
        with self._cv:
            self._current = test_id

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def take(self, at_least: int = 0, timeout: float = 2.0) -> list[Violation]:
        """The current test's violations so far (cleared). ``at_least`` waits, up to
        ``timeout``, for that many — for tests that provoke violations on purpose."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_idle(max(0.0, deadline - time.monotonic()))
            with self._cv:
                got = self._by_test.get(self._current or "", [])
                if len(got) >= at_least or time.monotonic() >= deadline:
                    return self._by_test.pop(self._current or "", [])
            time.sleep(0.005)

    def end(self, test_id: str) -> list[str]:
        """Every problem to report for ``test_id``, as lines (late ones included)."""
        self.wait_idle()
        with self._cv:
            self._current = None
            lines = [str(v) for v in self._by_test.pop(test_id, [])]
            lines += self._late
            self._late = []
        return lines

    def summary(self) -> str:
        parts = [f"{vendor}: {s.checked} checked, {s.mean_ms:.2f} ms each"
                 + (f", {s.undocumented_allowed} allowlisted" if s.undocumented_allowed else "")
                 for vendor, s in sorted(self.checker.stats.items())]
        return "contract: " + ("; ".join(parts) if parts else "no simulator answers checked")


def format_report(test_id: str, lines: Iterable[str]) -> str:
    lines = list(lines)
    return (f"{len(lines)} vendor contract violation(s) in {test_id} "
            f"(tests/contract/__init__.py; SYNCD_CONTRACT=off disables):\n  " + "\n  ".join(lines))
