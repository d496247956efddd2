"""Keeping a long-running daemon's resident memory from creeping (issue 10, finding 6).

Two soaks (docs/benchmarks.md section 7) showed RSS growing ~16 MiB/h while
syncd's Python heap stayed nearly flat. The suspects are below Python:

* glibc gives each thread that calls ``malloc`` under contention an arena of its
  own (up to 8 per core), reserved 64 MiB at a time; the daemon has ~40 threads
  (workers, pollers, uvicorn/anyio's thread pool), and an arena keeps the pages
  it once touched. ``mallopt(M_ARENA_MAX, 2)`` caps them, ``malloc_trim(0)`` after
  each housekeeping pass hands free pages of every arena back to the kernel.
* SQLite keeps a page cache per connection (default 2 MiB); the pool holds
  several. ``SQLITE_CACHE_KIB`` bounds each.

``SYNCD_MEMORY_REMEDY=off`` turns all of it off: for the soak that measures the
difference (bench/soak.py ``--remedy off``), not an admin setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from functools import lru_cache
from typing import Any

import structlog

log = structlog.get_logger(__name__)

M_ARENA_MAX = -8          # glibc malloc.h
ARENA_MAX = 2             # the main arena plus one for all other threads' contention
SQLITE_CACHE_KIB = 1024   # per connection; SQLite's default is 2000 KiB
SWITCH = "SYNCD_MEMORY_REMEDY"


def remedy_enabled() -> bool:
    """On unless ``SYNCD_MEMORY_REMEDY`` says off (0/off/no/false)."""
    return os.environ.get(SWITCH, "on").strip().lower() not in {"0", "off", "no", "false"}


@lru_cache(maxsize=1)
def _libc() -> Any | None:
    """glibc, or None elsewhere (musl, macOS): mallopt/malloc_trim are glibc's."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas. Call before the daemon starts its threads: an arena
    already created stays. True when applied."""
    libc = _libc()
    if libc is None or not remedy_enabled():
        return False
    applied = bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))
    log.info("malloc_arenas_limited", arena_max=arenas, applied=applied)
    return applied


def trim() -> bool:
    """Give free heap pages back to the kernel (all arenas). True when some were."""
    libc = _libc()
    if libc is None or not remedy_enabled():
        return False
    return bool(libc.malloc_trim(ctypes.c_size_t(0)))


def sqlite_cache_pragma() -> str | None:
    """The ``PRAGMA`` bounding a SQLite connection's page cache, or None (remedy off)."""
    return f"cache_size=-{SQLITE_CACHE_KIB}" if remedy_enabled() else None
