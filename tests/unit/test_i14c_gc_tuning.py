"""The collector's GC settings (collectors/gc_tuning.py): the young generation's threshold is raised and what
start-up allocated is frozen, so collections neither run every 700 allocations nor walk the modules."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from collectors.gc_tuning import GEN0_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_raises_the_young_threshold_and_freezes_start_up() -> None:
    _, gen1, gen2 = gc.get_threshold()
    tune_gc()
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected_after_tuning() -> None:
    tune_gc()

    class Node:
        pass

    first, second = Node(), Node()
    first.other, second.other = second, first  # type: ignore[attr-defined]
    del first, second
    assert gc.collect() >= 2
