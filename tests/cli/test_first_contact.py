"""The README's first-contact path, run as the README writes it (issue 13): install into a
fresh venv, ``syncd sim --write-config``, ``db upgrade``, ``doctor``, ``run``, escalate a
ticket with curl, see the link. The lines are read from README.md (between the
``first-contact`` markers), so the README and this test cannot drift apart; only the
install prefix, the ports (free ones instead of 8100/8080) and the directory change."""

from __future__ import annotations

import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import pytest


REPO = Path(__file__).resolve().parents[2]
PREFIX = "/opt/syncd"


def readme_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text[text.index("<!-- first-contact:start -->"):text.index("<!-- first-contact:end -->")]
    body = block.split("```sh", 1)[1].rsplit("```", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def _free_base(count: int) -> int:
    """A port with ``count`` free consecutive ports from it, below the kernel's ephemeral
    range: the pip install runs a minute between this choice and the bind, and tests on
    other xdist workers take ephemeral ports all the while (one took ours: "Address
    already in use")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) \
        if Path("/proc/sys/net/ipv4/ip_local_port_range").exists() else 32768
    for _ in range(200):
        base = random.randint(10000, max(10001, low - count - 1))
        try:
            for offset in range(count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise AssertionError("no free ports")


def _pump(stream: IO[str]) -> "queue.Queue[str | None]":
    out: queue.Queue[str | None] = queue.Queue()

    def go() -> None:
        for line in stream:
            out.put(line)
        out.put(None)
    threading.Thread(target=go, daemon=True).start()
    return out


def _wait_for_line(lines: "queue.Queue[str | None]", pattern: str, timeout: float, seen: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" + "".join(seen[-40:]))


# pip installs the package into a new venv first (20-60 s, longer on a busy machine).
@pytest.mark.timeout(900)
def test_readme_first_contact_path(tmp_path) -> None:
    lines = readme_lines()
    assert lines[0].startswith(f"python3 -m venv {PREFIX} && {PREFIX}/bin/pip install .")
    prefix = tmp_path / "opt-syncd"
    sims, daemon = _free_base(3), _free_base(1)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "VIRTUAL_ENV"))}
    env["SYNCD_CONTRACT"] = "off"

    def concrete(line: str) -> str:
        line = line.replace(PREFIX, str(prefix)).replace("pip install .", f"pip install -q {REPO}")
        for old, new in (("8100", sims), ("8101", sims + 1), ("8102", sims + 2), ("8080", daemon)):
            line = line.replace(old, str(new))
        return line

    background: list[subprocess.Popen[str]] = []
    timings: dict[str, float] = {}
    try:
        for line in map(concrete, lines):
            started = time.monotonic()
            if line.endswith("&"):
                proc = subprocess.Popen(["bash", "-c", f"exec {line[:-1].strip()}"], cwd=work, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
                background.append(proc)
                out, seen = _pump(proc.stdout), []  # type: ignore[arg-type]
                marker = "simulators ready" if " sim " in line else "syncd_started"
                _wait_for_line(out, marker, 120, seen)
                if " sim " in line:
                    assert f"syncd will listen on 127.0.0.1:{daemon}" in "".join(seen)
            else:
                done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True,
                                      timeout=600)
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                if " doctor " in line:
                    assert "FAIL" not in done.stdout and re.search(r"\d+ checks, 0 failed", done.stdout), done.stdout
                if " links list " in line:   # the escalation lands within moments, not at once
                    deadline = time.monotonic() + 60
                    while "SUP-" not in done.stdout and time.monotonic() < deadline:
                        time.sleep(0.5)
                        done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True,
                                              text=True, timeout=60)
                    assert re.search(r"zendesk:\d+\s+SUP-\d+", done.stdout), done.stdout + done.stderr
            timings[line.split()[0].rsplit("/", 1)[-1] + " " + line.split()[1]] = time.monotonic() - started
    finally:
        for proc in reversed(background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print("first-contact timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert all(p.returncode == 0 for p in background), [p.returncode for p in background]
    shutil.rmtree(prefix, ignore_errors=True)
