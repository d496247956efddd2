"""Where a process's resident memory lives, from /proc/<pid>/smaps (Linux, glibc).

Categories (kB of Rss each, reported in MiB):

* ``heap``: the ``[heap]`` mapping, glibc's main arena (brk);
* ``arenas``: the other threads' malloc arenas. glibc reserves each arena heap as a
  64 MiB-aligned anonymous mapping of 64 MiB (HEAP_MAX_SIZE on 64-bit): a read-write
  part and a ``---p`` rest, grown by mprotect; found by that shape;
* ``stacks``: thread stacks (an anonymous read-write mapping right after a one-page
  ``---p`` guard) and ``[stack]``;
* ``anon``: every other anonymous mapping: pymalloc's 256 KiB/1 MiB arenas, large
  ``malloc`` chunks glibc serves by mmap, SQLite's page cache when it is large;
* ``file``: file-backed mappings (the interpreter, shared libraries, SQLite's -shm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ARENA_SPAN = 64 * 2**20   # glibc HEAP_MAX_SIZE on 64-bit
PAGE = 4096


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kib: int

    @property
    def anonymous(self) -> bool:
        return self.path == ""


@dataclass(frozen=True)
class Breakdown:
    heap: float
    arenas: float
    arena_count: int
    stacks: float
    anon: float
    file: float
    threads: int

    @property
    def total(self) -> float:
        return self.heap + self.arenas + self.stacks + self.anon + self.file


def read_mappings(pid: int) -> list[Mapping]:
    out: list[Mapping] = []
    current: list[str] | None = None
    rss = 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            if current is not None:
                out.append(_mapping(current, rss))
            current, rss = head, 0
        elif line.startswith("Rss:"):
            rss = int(line.split()[1])
    if current is not None:
        out.append(_mapping(current, rss))
    return out


def _mapping(head: list[str], rss_kib: int) -> Mapping:
    start, end = (int(x, 16) for x in head[0].split("-"))
    return Mapping(start, end, head[1], head[5].strip() if len(head) > 5 else "", rss_kib)


def breakdown(pid: int) -> Breakdown:
    maps = read_mappings(pid)
    kib = {"heap": 0, "arenas": 0, "stacks": 0, "anon": 0, "file": 0}
    arenas = 0
    for i, m in enumerate(maps):
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        prev = maps[i - 1] if i > 0 else None
        if m.path == "[heap]":
            kind = "heap"
        elif m.path == "[stack]":
            kind = "stacks"
        elif m.path.startswith("/") or (m.path.startswith("[") and not m.anonymous):
            kind = "file"
        elif _arena_part(m, prev, nxt):
            kind = "arenas"
            arenas += m.start % ARENA_SPAN == 0
        elif prev is not None and prev.anonymous and prev.perms.startswith("---") and prev.end == m.start \
                and prev.end - prev.start == PAGE and m.perms.startswith("rw"):
            kind = "stacks"
        else:
            kind = "anon"
        kib[kind] += m.rss_kib
    mib = {k: v / 1024.0 for k, v in kib.items()}
    return Breakdown(mib["heap"], mib["arenas"], arenas, mib["stacks"], mib["anon"], mib["file"], threads(pid))


def _arena_part(m: Mapping, prev: Mapping | None, nxt: Mapping | None) -> bool:
    """``m`` is the read-write part of an arena heap (64 MiB-aligned start, with its
    ``---p`` reserve up to 64 MiB after it) or that reserve itself."""
    if not m.anonymous:
        return False
    if m.start % ARENA_SPAN == 0 and m.perms.startswith("rw"):
        if m.end - m.start == ARENA_SPAN:
            return True
        return (nxt is not None and nxt.anonymous and nxt.perms.startswith("---") and nxt.start == m.end
                and nxt.end - m.start == ARENA_SPAN)
    if m.perms.startswith("---") and prev is not None and prev.end == m.start and prev.start % ARENA_SPAN == 0:
        return m.end - prev.start == ARENA_SPAN
    return False


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, value) points, per hour."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return float("nan")
    return 60.0 * sum((x - mx) * (y - my) for x, y in points) / sxx
