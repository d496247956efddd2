"""Bench only (bench/soak.py ``--heap-snapshots``): put on a daemon's PYTHONPATH, this
starts tracemalloc at interpreter start and writes a snapshot to
``$SYNCD_HEAP_DUMP_DIR/heap-<n>.snap`` on each SIGUSR2, so a soak can tell which
Python code holds the memory that grew between two moments. Never shipped: syncd
itself neither imports nor needs it."""

from __future__ import annotations

import itertools
import os
import signal
import tracemalloc

_DIR = os.environ.get("SYNCD_HEAP_DUMP_DIR")
if _DIR:
    tracemalloc.start(int(os.environ.get("SYNCD_HEAP_FRAMES", "1")))
    _count = itertools.count(1)

    def _dump(*_: object) -> None:
        path = os.path.join(_DIR, f"heap-{next(_count)}.snap")
        tracemalloc.take_snapshot().dump(path + ".part")
        os.replace(path + ".part", path)   # the soak reads it only once whole

    signal.signal(signal.SIGUSR2, _dump)
