"""The collector's runtime settings (collectors/runtime_tuning.py):

- the garbage collector's young threshold is raised and what start-up allocated is frozen, so collections
  neither run every 700 allocations nor walk the modules, and cycles are still collected;
- glibc's malloc keeps freed buffers for reuse: a process that keeps making and freeing buffers of a few hundred
  KB in two threads, as the collector does with file reads, frames and bulk bodies, faults in few new pages
  (counted by the kernel, not timed), and an operator's own malloc settings are left in force.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest

from collectors.runtime_tuning import GEN0_THRESHOLD, tune_gc


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


#: In a fresh interpreter: apply the malloc settings (or not), then make 800 buffers of 300 KB to 1.2 MB, each
#: written through, at most five alive at a time per thread, in a worker thread and then in the main one.
_CHURN = """
import json, resource, sys, threading
from collectors.runtime_tuning import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tune" else False
pages = 0
def churn():
    global pages
    alive = []
    for i in range(400):
        size = 300_000 + (i % 7) * 150_000
        pages += size // 4096
        alive.append(b"x" * size)
        if len(alive) > 4:
            alive.pop(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
worker = threading.Thread(target=churn)
worker.start()
worker.join()
churn()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "faults": faults, "pages": pages}))
"""


def _churn(mode: str, **env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], env={**clean, **env}, check=True, capture_output=True, text=True
    )
    figures: dict[str, int] = json.loads(out.stdout)
    return figures


#: The settings are glibc's; on another C library `tune_malloc` must leave the allocator alone.
ON_GLIBC = platform.libc_ver()[0] == "glibc"


def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    tuned = _churn("tune")
    assert tuned["tuned"] is ON_GLIBC
    if ON_GLIBC:
        assert tuned["faults"] < tuned["pages"] // 10, tuned  # without the settings: over half of them


def test_the_operators_own_malloc_settings_stay() -> None:
    assert not _churn("tune", MALLOC_TRIM_THRESHOLD_="1048576")["tuned"]
    assert not _churn("tune", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=262144")["tuned"]
    assert _churn("tune", GLIBC_TUNABLES="glibc.rtld.optional_static_tls=2048")["tuned"] is ON_GLIBC


def test_untuned_churn_faults_in_most_pages_on_glibc_which_is_what_the_settings_are_for() -> None:
    """The baseline the reuse test stands on (glibc's malloc is deterministic for one sequence of calls): if
    glibc ever reuses such buffers on its own, this says so, and the settings may go."""
    plain = _churn("plain")
    if ON_GLIBC:
        assert plain["faults"] > plain["pages"] // 10, plain
