"""The collector's settings for CPython's garbage collector and for the C allocator under it: each cost the
collector more CPU than any code path of its own (bench/collector.py, tail to OpenSearch, lines/s per core).
`tune_runtime` applies both, once, at start, once start-up is done.

**The cyclic garbage collector.** The collector allocates millions of small container objects a minute (tailed
lines, records, bulk items, parsed bulk responses) and keeps up to ~150,000 records alive in the buffer's memory
hold. With CPython's default threshold a young collection runs every 700 allocations, and the older ones, which
walk every tracked object still alive, follow from those: a quarter of the process's CPU (about 95,000 lines/s
per core with the defaults, about 125,000 with these settings, peak RSS unchanged). None of that work finds
anything: records, batches and bulk items hold no reference cycles, and the few objects that do (an exception
with its traceback, a closed connection) are still collected, only later. So: collect once and freeze what
start-up left (modules, configuration: never garbage, no longer walked), and let the youngest generation grow to
`GEN0_THRESHOLD` allocations before it is collected. At most that many young container objects wait.

**glibc's malloc.** Every batch passes through buffers of a few hundred KB to a few MB (file reads, buffer
frames, bulk bodies), made and freed in several threads. By default glibc serves such a buffer from a fresh
mapping, or gives the freed top of a heap back to the kernel, so the next buffer's pages fault in and are zeroed
again: about 20% of the collector's CPU went to page faults and zeroing (`perf`: `clear_page_erms`), a third of
it system time. Buffers under `MMAP_THRESHOLD` now come from the heap, and up to `TRIM_THRESHOLD` of freed memory
is kept for the next one: 111,000 -> 132,000 lines/s per core, peak RSS 137 -> 138 MB. Memory stays bounded: what
is kept is what the collector's own bounds already let it hold at once. An operator's own `MALLOC_*_THRESHOLD_`
or `GLIBC_TUNABLES` malloc settings are left in force, and another C library is left alone.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform

#: Allocations (minus deallocations) of container objects between two young collections; CPython's default is
#: 700. 50,000 measured best on the collector's path (100,000 no better; the older generations keep their
#: default ratios of 10).
GEN0_THRESHOLD = 50_000

#: Allocations at least this large get a mapping of their own (returned to the kernel when freed); glibc's own
#: default starts at 128 KiB.
MMAP_THRESHOLD = 8 << 20
#: The most freed memory at the top of a heap kept for reuse instead of returned to the kernel.
TRIM_THRESHOLD = 64 << 20

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_runtime() -> None:
    """Applies the collector's settings for the garbage collector and the allocator."""
    tune_gc()
    tune_malloc()


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def tune_malloc() -> bool:
    """True if glibc's thresholds are now the collector's; False where they are the operator's or not glibc's."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _OPERATOR_SETTINGS):
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
