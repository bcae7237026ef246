"""The garbage collector settings of the worker and of replay (streams/worker/gctuning.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.worker.gctuning import THRESHOLDS, tuned_gc


@pytest.fixture
def default_thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield (700, 10, 10)
    gc.set_threshold(*before)


def test_tuned_gc_sets_the_thresholds_and_restores_the_callers(default_thresholds: tuple[int, int, int]) -> None:
    with tuned_gc():
        assert gc.get_threshold() == THRESHOLDS
    assert gc.get_threshold() == default_thresholds


def test_tuned_gc_restores_the_thresholds_after_an_error(default_thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), tuned_gc():
        raise RuntimeError("a replay that fails")
    assert gc.get_threshold() == default_thresholds


def test_cycles_are_still_collected_under_the_tuned_thresholds(default_thresholds: tuple[int, int, int]) -> None:
    class Node:
        other: Node

    def cycle() -> weakref.ref[Node]:
        a, b = Node(), Node()
        a.other, b.other = b, a  # unreachable once this returns: only the cyclic collector frees them
        return weakref.ref(a)

    with tuned_gc():
        gc.collect()
        first = cycle()
        for _ in range(THRESHOLDS[0]):  # more net container allocations than the young threshold
            cycle()
        assert first() is None, "a young collection ran without being asked for and freed the cycle"
