"""systemd's notify protocol, spoken directly: one datagram per message to the unix
socket named by ``$NOTIFY_SOCKET`` (sd_notify(3)). A few lines, so no dependency.

``syncd run`` under ``Type=notify`` sends ``READY=1`` once the HTTP port is bound and
migrations are done, ``WATCHDOG=1`` while its workers make progress (``WatchdogSec=``:
a stuck daemon is killed and restarted), and ``STOPPING=1`` when it drains. Outside
systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable, Mapping

import structlog

log = structlog.get_logger("syncd.sdnotify")


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` (``READY=1``, ``WATCHDOG=1``…); False when not under systemd or it failed."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):   # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
        return True
    except OSError as e:   # systemd gone or a wrong path: say so, never stop the daemon for it
        log.warning("sd_notify_failed", message=message.split("=", 1)[0], error=str(e))
        return False


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """How often to send ``WATCHDOG=1`` (half of ``WatchdogSec=``), or None when no watchdog is set."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None   # meant for another process (sd_watchdog_enabled(3))
    return int(usec) / 1e6 / 2


def feed_watchdog(stop: threading.Event, interval: float, stalled_for: Callable[[], float], stuck_after: float,
                  send: Callable[[str], bool] = notify) -> None:
    """Until ``stop``: send ``WATCHDOG=1`` every ``interval`` s while the workers' loop has
    turned within ``stuck_after`` s; stop feeding (systemd then restarts us) when it has not."""
    starving = False
    while not stop.wait(interval):
        stalled = stalled_for()
        if stalled < stuck_after:
            send("WATCHDOG=1")
            if starving:
                log.info("watchdog_fed_again")
            starving = False
        elif not starving:
            starving = True
            log.error("watchdog_starved", stalled_seconds=round(stalled, 1), stuck_after=stuck_after)
