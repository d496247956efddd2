"""``syncd sim`` as a person runs it: a subprocess whose printed credentials
work with the real client libraries, and which exits 0 on SIGTERM."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Iterator

import pytest
from intercom import Intercom
from jira import JIRA
from zenpy.lib.api_objects import Comment, Ticket

from syncd.sim.cli import READY
from syncd.sim.zendesk import zenpy_client


def _lines(stream: IO[str]) -> "queue.Queue[str | None]":
    out: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)
        out.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return out


def _read_until(lines: "queue.Queue[str | None]", marker: str, timeout: float = 15.0) -> str:
    seen, deadline = [], time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if line is None:
            raise AssertionError("syncd sim ended early:\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return "".join(seen)


@pytest.fixture
def sim_process() -> Iterator[tuple[subprocess.Popen[str], str, "queue.Queue[str | None]"]]:
    proc = subprocess.Popen([sys.executable, "-m", "syncd.cli", "sim"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = _lines(proc.stdout)  # type: ignore[arg-type]
    try:
        yield proc, _read_until(lines, READY), lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _grab(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.MULTILINE)
    assert m, f"{pattern!r} not in output:\n{text}"
    return m.group(1)


def test_printed_credentials_work_with_the_client_libraries_and_sigterm_exits_0(sim_process) -> None:
    proc, banner, lines = sim_process
    zendesk_url = _grab(r"^Zendesk\s+(http://\S+)", banner)
    zendesk_email = _grab(r"^Zendesk.*\n.*\n\s+credentials:\s+email (\S+),", banner)
    zendesk_token = _grab(r"^Zendesk(?:.*\n)+?\s+credentials:.*API token (\S+)", banner)
    jira_url = _grab(r"^Jira\s+(http://\S+)", banner)
    jira_email, jira_token = re.search(r"^Jira(?:.*\n)+?\s+credentials:\s+email (\S+), API token (\S+)",
                                       banner, re.MULTILINE).groups()  # type: ignore[union-attr]
    intercom_url = _grab(r"^Intercom\s+(http://\S+)", banner)
    intercom_token = _grab(r"^Intercom(?:.*\n)+?\s+credentials:\s+access token (\S+)", banner)
    for api in ("/_sim/knobs", "/_sim/faults", "/_sim/clock", "/_sim/requests"):
        assert api in banner

    ticket = zenpy_client(zendesk_url, email=zendesk_email, token=zendesk_token).tickets.create(
        Ticket(subject="hello", comment=Comment(body="from a test")))
    assert ticket.ticket.id > 0
    jira = JIRA(server=jira_url, basic_auth=(jira_email, jira_token), max_retries=0, get_server_info=True)
    assert jira.server_info()["deploymentType"] == "Cloud"
    assert "ENG" in {p.key for p in jira.projects()}
    admins = Intercom(token=intercom_token, base_url=intercom_url).admins.list()
    assert admins.admins

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "simulators stopped" in _read_until(lines, "simulators stopped")


def test_port_base_puts_the_simulators_on_consecutive_ports() -> None:
    from syncd.sim.cli import start_all
    from syncd.sandbox import free_port

    base = free_port()
    try:
        sims = start_all(base)
    except OSError:
        pytest.skip(f"port {base}..{base + 2} taken meanwhile")
    try:
        assert [s.port for s in sims] == [base, base + 1, base + 2]
    finally:
        for s in sims:
            s.stop()
