"""A short seeded crash loop for CI (``make crash-loop`` runs a long one)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash_loop.py"
# A whole loop of daemon restarts takes 60-130 s at load ~20 on 2 cores; the 120 s default
# cut one off mid-round (a timeout of the harness, not a finding).
pytestmark = pytest.mark.timeout(400)
# The daemons' vendor timeout: a kill between an intent and its request holds the write back
# for the intent's settle window (the retry budget + 2 timeouts: 80 s at the default 30 s,
# which made one 3-round loop take 94 s), and the simulators answer in milliseconds.
SHORT_TIMEOUT = 5.0


def _crash_loop():
    spec = importlib.util.spec_from_file_location("crash_loop", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_loop"] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_crash_loop_short(tmp_path, sqlite_url):
    loop = _crash_loop()
    result = loop.run_loop(tmp_path / "world", sqlite_url, seed=5, rounds=3, echo=lambda _: None,
                           vendor_timeout=SHORT_TIMEOUT)
    print(result.summary())
    assert result.kills + result.clean_stops == 3
    assert result.kills >= 1, "the loop never killed the daemon: it proves nothing"
    assert result.verdict.ok, str(result.verdict)


def test_crash_loop_with_chaos_short(tmp_path, sqlite_url):
    """Kills while the vendors misbehave (5xx, resets, 429s, stalls, duplicated, reordered
    and dropped webhooks): still nothing lost, nothing doubled."""
    loop = _crash_loop()
    lines: list[str] = []
    result = loop.run_loop(tmp_path / "world", sqlite_url, seed=11, rounds=3, echo=lines.append, chaos=True)
    print(result.summary(), *lines, sep="\n")
    assert result.kills + result.clean_stops == 3
    assert all("5xx=" in line and "drop=" in line for line in lines), lines   # the vendors did misbehave
    assert result.verdict.ok, str(result.verdict)


@pytest.mark.postgres
def test_crash_loop_replica_short(tmp_path, pg_base_url):
    """Two replicas on Postgres share the work; each round one of them (in turn) runs
    with the failpoint while the other keeps going."""
    loop = _crash_loop()
    lines: list[str] = []
    with loop._database(pg_base_url, tmp_path) as url:
        result = loop.run_loop(tmp_path / "world", url, seed=3, rounds=3, echo=lines.append, replicas=2,
                               vendor_timeout=SHORT_TIMEOUT)
    print(result.summary(), *lines, sep="\n")
    assert result.kills + result.clean_stops == 3
    assert {line.split(": ")[1] for line in lines} == {"replica-0", "replica-1"}, lines
    assert result.kills >= 1, "no replica was ever killed: the loop proves nothing"
    assert result.verdict.ok, str(result.verdict)


def test_crash_loop_stall_short(tmp_path, sqlite_url):
    """Freezes instead of kills: the daemon stops (SIGSTOP) at the failpoint, stays frozen
    past its lease, and carries on after SIGCONT. Nothing lost, nothing doubled."""
    loop = _crash_loop()
    lines: list[str] = []
    result = loop.run_loop(tmp_path / "world", sqlite_url, seed=4, rounds=3, echo=lines.append, mode="stall",
                           vendor_timeout=SHORT_TIMEOUT)
    print(result.summary(), *lines, sep="\n")
    assert result.stalls + result.clean_stops == 3 and result.kills == 0
    assert result.stalls >= 1, "the loop never froze the daemon: it proves nothing"
    assert result.verdict.ok, str(result.verdict)
