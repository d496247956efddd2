"""Soak: does a long-running daemon level off? (issue 10, finding 6)

One ``syncd run`` on SQLite against the in-process simulators; a generator makes
``--rate`` changes a second (customer replies, engineer comments, field and status
edits on both sides, round-robin over ``--links`` escalated pairs) for ``--minutes``.
Every ``--sample-every`` seconds it samples the database size (file + -wal + -shm),
the row counts of every table, the daemon's RSS, where that RSS lives (bench/smaps.py:
glibc's main heap, the other threads' malloc arenas, thread stacks, other anonymous
memory, file-backed), its thread count and the dirty queue, and appends a row to the
table printed (and written to ``--out``). At the end it reports changes that never
landed (lost), mirrored comments found twice (doubled) and, from minute ``--warmup``
on, the least-squares slope of RSS and of each memory category in MiB/h.

``--retire-after K`` ends conversations, as a real desk does: a pair that took K
changes is replaced by a ticket escalated in the background. Without it the same
``--links`` conversations grow all hour, and every read of an issue (and the Jira
poll's answer, which carries the comments of every changed issue) grows with them:
memory that follows the data, which a flat-RSS check must tell from a leak.

``--remedy off`` runs the daemon with syncd/memory.py's remedy off
(``SYNCD_MEMORY_REMEDY=off``, ``MALLOC_ARENA_MAX`` unset) to compare with ``on``.
``--pymalloc off`` runs it with ``PYTHONMALLOC=malloc`` (Python's objects in glibc's
heap instead of CPython's own 1 MiB arenas). ``--malloc-stats`` adds CPython's object
allocator to each sample, from an untraced daemon (bench/heapdump): arenas allocated,
MiB in blocks in use, MiB free inside those arenas.

Retention runs as configured in ``[retention]``; the defaults keep delivery ids 48 h,
which a one-hour soak cannot reach, so the soak compresses the windows (``--ids-hours``,
``--body-seconds``, ``--every``) to show the steady state within the hour.

    .venv/bin/python bench/soak.py --minutes 2          # a quick look
    nohup .venv/bin/python bench/soak.py --minutes 65 --out soak.md > soak.log 2>&1 &

Never run by CI or the tests (they would need ``--minutes``); figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import Change, Pair, ZendeskDesk, say  # noqa: E402
from smaps import breakdown, slope_per_hour  # noqa: E402
from throughput import cpu_seconds, replicas_for  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from syncd.sandbox import build_world  # noqa: E402

SERIES = ("RSS", "heap", "arenas", "stacks", "anon", "file", "DB")
TABLES = ("links", "link_base", "intents", "dirty", "dead_letters", "inbox", "audit")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def db_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()) / 2**20


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() or 0) for t in TABLES}


def inbox_bodies(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM inbox WHERE length(body) > 0")).scalar() or 0)


def retention_section(every: float, body_seconds: float, ids_hours: float) -> str:
    return (f"\n[retention]\nevery_seconds = {every}\ninbox_body_seconds = {body_seconds}\n"
            f"inbox_ids_hours = {ids_hours}\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, required=True, help="how long to drive changes")
    ap.add_argument("--rate", type=float, default=5.0, help="changes per second")
    ap.add_argument("--links", type=int, default=50)
    ap.add_argument("--sample-every", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=60.0, help="[retention] every_seconds")
    ap.add_argument("--body-seconds", type=float, default=300.0, help="[retention] inbox_body_seconds")
    ap.add_argument("--ids-hours", type=float, default=0.25, help="[retention] inbox_ids_hours")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--remedy", choices=("on", "off"), default="on",
                    help="syncd/memory.py's remedy (arena cap, malloc_trim, SQLite cache bound) in the daemon")
    ap.add_argument("--snapshot-comments", type=int, default=None,
                    help="[syncd] snapshot_max_comments (default: the daemon's, 100,000)")
    ap.add_argument("--hint-bytes", type=int, default=None,
                    help="[syncd] issue_hints_max_bytes (default: the daemon's, 8 MiB)")
    ap.add_argument("--stamps", type=int, default=None,
                    help="[syncd] poll_stamps_max_items (default: the daemon's, 100,000)")
    ap.add_argument("--warmup", type=float, default=15.0, help="slopes are fitted from this minute on")
    ap.add_argument("--retire-after", type=int, default=None,
                    help="a pair takes this many changes, then a freshly escalated ticket takes its place "
                         "(conversations end); default: the same pairs all run")
    ap.add_argument("--pymalloc", choices=("on", "off"), default="on",
                    help="off: the daemon runs with PYTHONMALLOC=malloc")
    ap.add_argument("--malloc-stats", action="store_true",
                    help="diagnosis: CPython's arena figures (sys._debugmallocstats) at every sample, untraced")
    ap.add_argument("--heap-snapshots", action="store_true",
                    help="diagnosis: tracemalloc in the daemon (bench/heapdump), snapshots at --warmup and at the "
                         "end, the Python code whose memory grew in between printed (its RSS is not comparable)")
    args = ap.parse_args(argv)
    if args.malloc_stats and (args.heap_snapshots or args.pymalloc == "off"):
        ap.error("--malloc-stats needs pymalloc and no tracemalloc (it would print no arena figures)")
    from syncd.logs import configure_logging
    configure_logging("error", "console")   # the simulators log every request at debug

    # The daemon inherits this environment (Replica.start): the switch, and no arena cap from outside.
    os.environ["SYNCD_MEMORY_REMEDY"] = args.remedy
    os.environ.pop("MALLOC_ARENA_MAX", None)
    if args.pymalloc == "off":
        os.environ["PYTHONMALLOC"] = "malloc"
    directory = Path(tempfile.mkdtemp(prefix="syncd-soak-"))
    heap_dir = directory / "heap"
    if args.heap_snapshots or args.malloc_stats:
        heap_dir.mkdir()
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parent / "heapdump"), *filter(None, [os.environ.get("PYTHONPATH")])])
        os.environ["SYNCD_HEAP_DUMP_DIR" if args.heap_snapshots else "SYNCD_MALLOC_STATS_DIR"] = str(heap_dir)
    world = build_world(directory, workers=4, zendesk_poll=30, jira_poll=30, intercom_poll=3600, log_level="warning")
    world.zendesk.configure({"ticket_update_limit": None})   # 30/ticket/10 min would throttle a busy pair
    config = world.config_path.read_text()
    for key, value in (("snapshot_max_comments", args.snapshot_comments), ("issue_hints_max_bytes", args.hint_bytes),
                       ("poll_stamps_max_items", args.stamps)):
        if value is not None:
            config = config.replace("[syncd]\n", f"[syncd]\n{key} = {value}\n", 1)
    world.config_path.write_text(config + retention_section(args.every, args.body_seconds, args.ids_hours))
    replica = replicas_for(world, 1, None)[0]
    db_path = directory / "syncd.db"
    lines: list[str] = []

    def emit(line: str) -> None:
        say(line)
        lines.append(line)
        if args.out is not None:
            args.out.write_text("\n".join(lines) + "\n")

    engine: sa.Engine | None = None
    try:
        replica.start(world)
        deadline = time.monotonic() + 60
        while not replica.ready():
            if time.monotonic() > deadline:
                raise SystemExit("syncd run not ready in 60 s")
            time.sleep(0.2)
        assert replica.proc is not None
        pid = replica.proc.pid
        desk = ZendeskDesk(world)
        say(f"soak: escalating {args.links} tickets …")
        pairs = desk.create_pairs(None, args.links)  # type: ignore[arg-type]
        if args.heap_snapshots:
            # tracemalloc starts now (bench/heapdump): traced, the escalations missed their time under load.
            os.kill(pid, signal.SIGUSR2)
        engine = sa.create_engine(f"sqlite:///{db_path}", connect_args={"timeout": 5})

        emit(f"soak: one `syncd run` on SQLite, {args.links} links, {args.rate:g} changes/s for "
             f"{args.minutes:g} min; retention every {args.every:g} s, bodies {args.body_seconds:g} s, "
             f"ids {args.ids_hours:g} h; memory remedy {args.remedy}; pymalloc {args.pymalloc}; snapshot comments "
             f"{'default' if args.snapshot_comments is None else args.snapshot_comments}; hint bytes "
             f"{'default' if args.hint_bytes is None else args.hint_bytes}; poll stamps "
             f"{'default' if args.stamps is None else args.stamps}")
        emit("")
        emit("| min | changes | landed | DB MiB | RSS MiB | heap | arenas (n) | stacks | anon | file | threads "
             "| CPU s | " + " | ".join(TABLES) + " | inbox bodies | queue |"
             + (" py arenas | py used | py free |" if args.malloc_stats else ""))
        emit("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(TABLES) + "---:|---:|"
             + ("---:|---:|---:|" if args.malloc_stats else ""))
        series: dict[str, list[tuple[float, float]]] = {
            k: [] for k in SERIES + (("py arenas", "py used") if args.malloc_stats else ())}
        stats_taken = typed = 0

        flights: list[tuple[Pair, Change, float]] = []
        fresh = FreshPairs(desk) if args.retire_after else None
        if fresh is not None:
            # Staggered, as on a desk: pair i starts part-way through its conversation, so one
            # conversation ends every few seconds rather than all of them in the same minute.
            for i, pair in enumerate(pairs):
                pair.n = i * args.retire_after // len(pairs)
        retired = 0
        snapped = False
        made = landed = 0
        kinds = desk.kinds
        started = time.monotonic()
        next_change, next_sample = started, started
        end = started + args.minutes * 60
        while True:
            now = time.monotonic()
            if now >= next_sample:
                c = counts(engine)
                minute, rss, b, db = (now - started) / 60, rss_mib(pid), breakdown(pid), db_mib(db_path)
                for key, value in (("RSS", rss), ("heap", b.heap), ("arenas", b.arenas), ("stacks", b.stacks),
                                   ("anon", b.anon), ("file", b.file), ("DB", db)):
                    series[key].append((minute, value))
                py = ""
                if args.malloc_stats:
                    stats_taken += 1
                    full = minute >= args.warmup and not typed   # the warm-up's dump: with types
                    m = malloc_stats(pid, heap_dir, stats_taken, full)
                    if full:
                        typed = stats_taken
                    series["py arenas"].append((minute, m.arenas_mib))
                    series["py used"].append((minute, m.used_mib))
                    py = f" {m.arenas_mib:.0f} | {m.used_mib:.1f} | {m.free_mib:.1f} |"
                emit(f"| {minute:.0f} | {made} | {landed} | {db:.1f} | {rss:.1f} | {b.heap:.1f} "
                     f"| {b.arenas:.1f} ({b.arena_count}) | {b.stacks:.1f} | {b.anon:.1f} | {b.file:.1f} "
                     f"| {b.threads} | {cpu_seconds(pid):.0f} | " + " | ".join(str(c[t]) for t in TABLES)
                     + f" | {inbox_bodies(engine)} | {c['dirty']} |" + py)
                next_sample += args.sample_every
                if args.heap_snapshots and not snapped and minute >= args.warmup:
                    snapped = snapshot(pid, heap_dir, 1)
            if now >= end:
                break
            if now >= next_change:
                pair = pairs[made % len(pairs)]
                if fresh is not None and pair.n >= args.retire_after:
                    replacement = fresh.take()
                    if replacement is not None:
                        pairs[made % len(pairs)] = pair = replacement
                        retired += 1
                pair.n += 1
                change = desk.change(pair, kinds[(made // len(pairs)) % len(kinds)], f"{pair.desk}#{pair.n}")
                if change is not None:
                    change.act()
                    flights.append((pair, change, now))
                made += 1
                next_change += 1.0 / args.rate
            if len(flights) > 200 or (flights and now - flights[0][2] > 5):
                still = []
                for f in flights:
                    if f[1].landed():
                        landed += 1
                    else:
                        still.append(f)
                flights = still
            time.sleep(0.01)

        if fresh is not None:
            fresh.close()
        if typed:
            stats_taken += 1
            last = malloc_stats(pid, heap_dir, stats_taken, True)
            for line in type_growth(heap_dir, typed, stats_taken, last):
                emit(line)
        if snapped:
            snapshot(pid, heap_dir, 2)
            for line in heap_growth(heap_dir):
                emit(line)
        # Let the last changes land, then count what never did and what landed twice.
        give_up = time.monotonic() + 180
        while flights and time.monotonic() < give_up:
            flights = [f for f in flights if not f[1].landed()]
            time.sleep(0.5)
        lost = len(flights)
        landed = made - lost
        for pair, change, _ in flights:
            emit(f"not landed: {change.kind} on {pair.desk} / {pair.issue_key}")
        doubled = _doubled_comments(world)
        emit("")
        emit(f"soak done: {made} changes, {landed} landed, {lost} lost (or overwritten by a later change "
             f"of the same field before landing), {doubled} mirrored comments found twice; "
             f"RSS {rss_mib(pid):.1f} MiB, DB {db_mib(db_path):.1f} MiB"
             + (f"; {retired} conversations ended and replaced by new escalations" if fresh is not None else ""))
        emit(f"slopes from minute {args.warmup:g} (least squares, MiB/h): " + ", ".join(
            f"{k} {slope_per_hour([p for p in v if p[0] >= args.warmup]):+.1f}" for k, v in series.items()))
        return 1 if doubled else 0
    finally:
        if engine is not None:
            engine.dispose()
        replica.stop()
        world.stop()
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


class FreshPairs:
    """Tickets escalated in the background, ready to take a retired pair's place, so the
    change schedule never waits for an escalation."""

    def __init__(self, desk: ZendeskDesk, ready: int = 4):
        self._desk, self._keep = desk, ready
        self._ready: queue.Queue[Pair] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fresh-pairs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._ready.qsize() >= self._keep:
                self._stop.wait(0.5)
                continue
            try:
                self._ready.put(self._desk.create_pairs(None, 1)[0])  # type: ignore[arg-type]
            except SystemExit as e:   # not escalated in time: the soak goes on with the pairs it has
                say(f"soak: a replacement escalation failed ({e})")

    def take(self) -> Pair | None:
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def _ask(pid: int, sig: signal.Signals, path: Path, what: str, seconds: float) -> Path:
    """Signal the daemon (bench/heapdump) and wait until it has written ``path`` whole."""
    os.kill(pid, sig)
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the daemon wrote no {what} in {seconds:g} s")
        time.sleep(0.1)
    return path


def snapshot(pid: int, heap_dir: Path, n: int) -> bool:
    """Ask the daemon for tracemalloc snapshot ``n`` (bench/heapdump) and wait until it is written."""
    _ask(pid, signal.SIGUSR2, heap_dir / f"heap-{n}.snap", f"heap snapshot {n}", 120)
    return True


@dataclass(frozen=True)
class MallocStats:
    """CPython's object allocator at one moment (``sys._debugmallocstats``), in MiB."""

    arenas_mib: float   # arenas allocated now (1 MiB each on 3.10+): what pymalloc holds from the OS
    used_mib: float     # bytes in allocated blocks: live small objects
    free_mib: float     # the rest of those arenas: free blocks, free pools, headers


def malloc_stats(pid: int, heap_dir: Path, n: int, full: bool = False) -> MallocStats:
    """Ask the daemon for allocator statistics ``n`` (bench/heapdump) and read them; ``full``:
    also a collection and the live objects by type."""
    path = _ask(pid, signal.SIGUSR1 if full else signal.SIGUSR2, heap_dir / f"malloc-{n}.txt",
                f"allocator statistics {n}", 60)
    return parse_malloc_stats(path.read_text())


AFTER_GC = "=== after gc.collect() ==="


def malloc_stats_after_gc(heap_dir: Path, n: int) -> MallocStats:
    return parse_malloc_stats(heap_dir.joinpath(f"malloc-{n}.txt").read_text().split(AFTER_GC)[1])


def type_growth(heap_dir: Path, first: int, last: int, end: MallocStats, top: int = 20) -> list[str]:
    """Live objects by type at the warm-up's dump and at the end, both after a full collection;
    ``end``: the statistics of the last dump before its collection."""
    before, after = malloc_stats_after_gc(heap_dir, first), malloc_stats_after_gc(heap_dir, last)
    a, b = (json.loads(heap_dir.joinpath(f"types-{n}.json").read_text()) for n in (first, last))
    grown = sorted(((b.get(t, 0) - a.get(t, 0), t) for t in set(a) | set(b)), reverse=True)
    lines = ["", f"CPython's allocator, warm-up dump to the end: arenas {before.arenas_mib:.0f} -> {end.arenas_mib:.0f} "
             f"MiB; in use {before.used_mib:.1f} -> {after.used_mib:.1f} MiB after a full collection "
             f"({end.used_mib:.1f} before it: {end.used_mib - after.used_mib:.1f} MiB was cyclic garbage)",
             "", "| type | objects at warm-up | at end | grown |", "|---|---:|---:|---:|"]
    lines += [f"| {t} | {a.get(t, 0)} | {b.get(t, 0)} | {d:+d} |" for d, t in grown[:top]]
    return lines


def parse_malloc_stats(text: str) -> MallocStats:
    text = text.split(AFTER_GC)[0]
    figures: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("# ") and "=" in line:
            name, _, value = line[2:].partition("=")
            figures[name.strip()] = int(value.strip().replace(",", ""))
        elif line.startswith("Total") and "total" not in figures:
            figures["total"] = int(line.partition("=")[2].strip().replace(",", ""))
    mib = 2**20
    total = figures["total"]
    return MallocStats(total / mib, figures["bytes in allocated blocks"] / mib,
                       (total - figures["bytes in allocated blocks"]) / mib)


def heap_growth(heap_dir: Path, top: int = 15) -> list[str]:
    """Where the Python heap grew between the two snapshots, by file and by line."""
    import tracemalloc
    first, last = (tracemalloc.Snapshot.load(str(heap_dir / f"heap-{n}.snap")) for n in (1, 2))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    first, last = first.filter_traces(ignore), last.filter_traces(ignore)
    total = sum(s.size for s in last.statistics("filename")) - sum(s.size for s in first.statistics("filename"))
    lines = ["", f"Python heap (tracemalloc), warm-up to end: {total / 2**20:+.2f} MiB; grew most, by file:", "",
             "| file | KiB now | KiB grown | blocks grown |", "|---|---:|---:|---:|"]
    for stat in last.compare_to(first, "filename")[:top]:
        lines.append(f"| {_short_path(stat.traceback[0].filename)} | {stat.size / 1024:.0f} "
                     f"| {stat.size_diff / 1024:+.0f} | {stat.count_diff:+d} |")
    lines += ["", "by line:", "", "| line | KiB now | KiB grown | blocks grown |", "|---|---:|---:|---:|"]
    for stat in last.compare_to(first, "lineno")[:top]:
        frame = stat.traceback[0]
        lines.append(f"| {_short_path(frame.filename)}:{frame.lineno} | {stat.size / 1024:.0f} "
                     f"| {stat.size_diff / 1024:+.0f} | {stat.count_diff:+d} |")
    return lines


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/syncd/", "/lib/python3"):
        if marker in path:
            return ("syncd/" if marker == "/syncd/" else "") + path.split(marker, 1)[1]
    return path


def _doubled_comments(world) -> int:  # type: ignore[no-untyped-def]
    """Texts the generator made unique that appear more than once on one issue or ticket."""
    doubled = 0
    with world.jira.lock:
        for rec in world.jira.issues.values():
            texts = [json.dumps(c.body) for c in rec.comments]
            doubled += len(texts) - len(set(texts))
    with world.zendesk.lock:
        for t in world.zendesk.tickets.values():
            texts = [c.get("plain_body") or "" for c in t.comments if "says" in (c.get("plain_body") or "")
                     or "engineer note" in (c.get("plain_body") or "")]
            doubled += len(texts) - len(set(texts))
    return doubled


if __name__ == "__main__":
    raise SystemExit(main())
