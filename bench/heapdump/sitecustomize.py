"""Bench only (bench/soak.py ``--heap-snapshots``): put on a daemon's PYTHONPATH, this
makes SIGUSR2 start tracemalloc (the first time) and then write a snapshot to
``$SYNCD_HEAP_DUMP_DIR/heap-<n>.snap`` (each later time), so a soak can tell which
Python code holds the memory that grew between two moments. Tracing starts only when
the soak says (after its set-up): traced from the start, the daemon missed the soak's
set-up deadlines on a loaded machine.
Each snapshot comes with CPython's own allocator statistics (``sys._debugmallocstats``,
``mallocstats-<n>.txt``): the object arenas allocated against the bytes in use in them,
which tracemalloc does not show.
Never shipped: syncd itself neither imports nor needs it."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import tracemalloc

_DIR = os.environ.get("SYNCD_HEAP_DUMP_DIR")
if _DIR:
    _count = itertools.count(1)

    def _on_signal(*_: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("SYNCD_HEAP_FRAMES", "1")))
            return
        n = next(_count)
        _mallocstats(os.path.join(_DIR, f"mallocstats-{n}.txt"))
        path = os.path.join(_DIR, f"heap-{n}.snap")
        tracemalloc.take_snapshot().dump(path + ".part")
        os.replace(path + ".part", path)   # the soak reads it only once whole

    def _mallocstats(path: str) -> None:
        """sys._debugmallocstats() writes to the C stderr: point fd 2 at a file meanwhile."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(fd, 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(fd)

    signal.signal(signal.SIGUSR2, _on_signal)
