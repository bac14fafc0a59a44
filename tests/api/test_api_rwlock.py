"""The readers-writer lock guarding the planner's in-memory catalog."""

from __future__ import annotations

import threading

from kt.api.world import RWLock


def test_readers_share_writer_excludes():
    lock = RWLock()
    inside = []
    release = threading.Event()
    both_in = threading.Barrier(3)

    def reader(name: str) -> None:
        with lock.read():
            inside.append(name)
            both_in.wait(5)  # two readers hold the lock at the same time
            release.wait(5)

    readers = [threading.Thread(target=reader, args=(f"r{i}",)) for i in range(2)]
    for t in readers:
        t.start()
    both_in.wait(5)
    wrote = threading.Event()

    def writer() -> None:
        with lock.write():
            wrote.set()

    w = threading.Thread(target=writer)
    w.start()
    assert not wrote.wait(0.2)  # the writer waits for the readers
    late = threading.Event()

    def late_reader() -> None:
        with lock.read():
            late.set()

    lr = threading.Thread(target=late_reader)
    lr.start()
    assert not late.wait(0.2)  # a waiting writer blocks new readers (no starvation)
    release.set()
    for t in (*readers, w, lr):
        t.join(5)
    assert wrote.is_set() and late.is_set() and sorted(inside) == ["r0", "r1"]
