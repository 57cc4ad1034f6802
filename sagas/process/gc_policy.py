"""How the long-lived processes run CPython's cyclic garbage collector.

A coordinator or participant allocates thousands of short-lived objects per
batch, few of them in cycles, next to a large heap that lives for the whole
process: its modules, and the state it recovered (saga states, a service's
books). CPython's defaults cost it twice:

* a young collection every 700 allocations, promoting batch objects that are
  still referenced by the batch in hand;
* full collections that walk the whole long-lived heap each time, a pause that
  grows with it. Measured in the reference services at 500 sagas/s: 120 and
  194 ms, in the middle of a run, holding up every saga whose command was
  waiting (the order saga's p95 is that long).

`relax_young_collections` makes young collections rarer; `freeze_long_lived`,
called once what is recovered is in memory, moves everything alive into the
permanent generation, so a full collection walks only what was allocated
since. Frozen objects are still freed by reference counting; only a cycle
among them would stay, and what is frozen there (modules, recovered states)
lives as long as the process or the partitions it owns.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "freeze_long_lived", "relax_young_collections"]

#: allocations between two young-generation collections (CPython's default: 700)
YOUNG_THRESHOLD = 20_000


def relax_young_collections() -> None:
    """Collect the young generation every `YOUNG_THRESHOLD` allocations."""
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def freeze_long_lived() -> int:
    """Collect, then keep what survives out of later collections; how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
