"""The bounded mapping connectors keep per-record memories in."""

from __future__ import annotations

import threading

import pytest

from syncd.bounded import BoundedDict


def test_the_least_recently_used_entry_goes_first():
    names: BoundedDict[int, str] = BoundedDict(2)
    names[1] = "a"
    names[2] = "b"
    assert names.get(1) == "a"          # 1 is now the most recent
    names[3] = "c"
    assert 2 not in names and names.get(1) == "a" and names.get(3) == "c"
    assert len(names) == 2
    assert names.pop(3) == "c" and names.pop(3) is None and names.get(3, "none") == "none"


def test_threads_never_push_it_past_its_capacity():
    names: BoundedDict[int, int] = BoundedDict(100)

    def fill(base: int) -> None:
        for n in range(2_000):
            names[base + n] = n
            names.get(base + n // 2)

    threads = [threading.Thread(target=fill, args=(b * 10_000,)) for b in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == 100


def test_a_capacity_below_one_is_refused():
    with pytest.raises(ValueError):
        BoundedDict(0)
