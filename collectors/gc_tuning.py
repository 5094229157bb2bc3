"""The collector's settings for CPython's cyclic garbage collector, which cost it more CPU than any code path.

Why: the collector allocates millions of small container objects a minute (tailed lines, records, bulk items,
parsed bulk responses) and keeps up to ~150,000 records alive in the buffer's memory hold. With CPython's
default threshold a young collection runs every 700 allocations, and the older ones, which walk every tracked
object still alive, follow from those: on the tail-to-OpenSearch path that was a quarter of the process's CPU
(bench/collector.py: about 95,000 lines/s per core with the defaults, about 125,000 with these settings, peak RSS
unchanged). None of that work finds anything: records, batches and bulk items hold no reference cycles, and the
few objects that do (an exception with its traceback, a closed connection) are still collected, only later.

So: collect once and freeze what start-up left (modules, configuration: never garbage, no longer walked), and
let the youngest generation grow to `GEN0_THRESHOLD` allocations before it is collected. Memory cannot run
away: at most that many young container objects wait for a collection.
"""

from __future__ import annotations

import gc

#: Allocations (minus deallocations) of container objects between two young collections; CPython's default is
#: 700. 50,000 measured best on the collector's path (100,000 no better; the older generations keep their
#: default ratios of 10).
GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Applies the collector's GC settings; call once, at start, once start-up is done."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
