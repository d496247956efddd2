"""Bench only (bench/soak.py ``--heap-snapshots``): put on a daemon's PYTHONPATH, this
makes SIGUSR2 start tracemalloc (the first time) and then write a snapshot to
``$SYNCD_HEAP_DUMP_DIR/heap-<n>.snap`` (each later time), so a soak can tell which
Python code holds the memory that grew between two moments. Tracing starts only when
the soak says (after its set-up): traced from the start, the daemon missed the soak's
set-up deadlines on a loaded machine.
Never shipped: syncd itself neither imports nor needs it."""

from __future__ import annotations

import itertools
import os
import signal
import tracemalloc

_DIR = os.environ.get("SYNCD_HEAP_DUMP_DIR")
if _DIR:
    _count = itertools.count(1)

    def _on_signal(*_: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("SYNCD_HEAP_FRAMES", "1")))
            return
        path = os.path.join(_DIR, f"heap-{next(_count)}.snap")
        tracemalloc.take_snapshot().dump(path + ".part")
        os.replace(path + ".part", path)   # the soak reads it only once whole

    signal.signal(signal.SIGUSR2, _on_signal)
