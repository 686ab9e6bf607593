"""A daily run keeps the cyclic garbage collector off its chunks' objects (frozen) while it
runs, and hands everything back to it when the last run of the process ends, however runs
overlap or fail."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from activity_service.evaluation.daily_run import collector_paused, collector_spared


class Node:
    """A tracked object that can take part in a cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def collector_as_usual() -> Iterator[None]:
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def test_a_deciding_stretch_of_a_run_is_frozen_when_it_ends() -> None:
    with collector_spared():
        before = gc.get_freeze_count()
        with collector_paused():
            assert not gc.isenabled()
            made = [Node() for _ in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made)
    assert gc.get_freeze_count() == 0


def test_a_deciding_stretch_outside_a_run_is_not_frozen() -> None:
    with collector_paused():
        made = [Node() for _ in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert len(made) == 1000


def test_overlapping_runs_hand_back_when_the_last_is_done() -> None:
    first, second = collector_spared(), collector_spared()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_freeze_count() > 0  # the second still runs
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0


def test_everything_is_handed_back_when_a_run_fails() -> None:
    with pytest.raises(RuntimeError), collector_spared():
        with collector_paused():
            Node()
        raise RuntimeError("the chunk failed")
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_a_cycle_dropped_during_a_run_is_collected_after_it() -> None:
    with collector_spared():
        with collector_paused():
            a, b = Node(), Node()
            a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is not None  # frozen: not walked while the run goes on
    gc.collect()
    assert ref() is None
