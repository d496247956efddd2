"""Bench only (bench/soak.py ``--heap-snapshots`` and ``--malloc-stats``): put on a
daemon's PYTHONPATH, this makes SIGUSR2 write what the soak asks for into a directory:

* ``SYNCD_HEAP_DUMP_DIR``: the first signal starts tracemalloc, each later one writes a
  snapshot to ``heap-<n>.snap``, so a soak can tell which Python code holds the memory
  that grew between two moments. Tracing starts only when the soak says (after its
  set-up): traced from the start, the daemon missed the soak's set-up deadlines on a
  loaded machine.
* ``SYNCD_MALLOC_STATS_DIR``: SIGUSR2 writes ``sys._debugmallocstats()`` (CPython's
  object allocator: arenas allocated, bytes in blocks in use, free pools) to
  ``malloc-<n>.txt``; SIGUSR1 does that, then runs a full garbage collection, writes the
  statistics again (the difference was cyclic garbage waiting for the collector) and
  the count of live objects the collector tracks, by type, to ``types-<n>.json``. The
  soak sends SIGUSR1 twice only (a collection each sample would change what it
  measures). Untraced on purpose: while tracemalloc hooks the allocator, CPython
  prints no arena figures.

Never shipped: syncd itself neither imports nor needs it."""

from __future__ import annotations

import collections
import gc
import itertools
import json
import os
import signal
import sys
import tracemalloc

_count = itertools.count(1)


def _write_whole(path: str, write: object) -> None:
    """Write through ``write(path_part)``, then rename: the soak reads only whole files."""
    write(path + ".part")  # type: ignore[operator]
    os.replace(path + ".part", path)


def _stats_and_types(part: str) -> None:
    _malloc_stats(part)
    gc.collect()
    with open(part, "a") as out:
        out.write("\n=== after gc.collect() ===\n")
    _malloc_stats(part, mode="a")
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    with open(part.replace("malloc-", "types-").replace(".txt.part", ".json"), "w") as out:
        json.dump(types, out)


def _malloc_stats(part: str, mode: str = "w") -> None:
    # _debugmallocstats prints to the C stderr (fd 2) only: point fd 2 at the file for
    # the call. Another thread's log line in that instant lands in the file; bench only.
    with open(part, mode) as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_HEAP = os.environ.get("SYNCD_HEAP_DUMP_DIR")
_STATS = os.environ.get("SYNCD_MALLOC_STATS_DIR")
if _HEAP:
    def _on_heap_signal(*_: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("SYNCD_HEAP_FRAMES", "1")))
            return
        _write_whole(os.path.join(_HEAP, f"heap-{next(_count)}.snap"),
                     lambda part: tracemalloc.take_snapshot().dump(part))

    signal.signal(signal.SIGUSR2, _on_heap_signal)
elif _STATS:
    def _on_stats_signal(signum: int, _frame: object) -> None:
        _write_whole(os.path.join(_STATS, f"malloc-{next(_count)}.txt"),
                     _stats_and_types if signum == signal.SIGUSR1 else _malloc_stats)

    signal.signal(signal.SIGUSR2, _on_stats_signal)
    signal.signal(signal.SIGUSR1, _on_stats_signal)
