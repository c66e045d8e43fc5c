"""The garbage collector in a long-running process: what start-up builds stays for the process's
life, so it is moved out of the collector's sight.

CPython's cyclic collector walks every object of the oldest generation on each full collection;
in ``hub serve`` that is everything start-up built (modules, SQLAlchemy's metadata and compiled
statements, the schemas, the templates and catalogues, the registry), and one full collection
took 60-90 ms: a stall of the event loop, of every package in flight and every page being
answered, a few times a second under load (README, Performance). :func:`settle` collects once
and then freezes what is left (``gc.freeze``): later full collections walk only what was
created since. Frozen objects are still freed when their last reference goes (reference
counting); only cyclic garbage among them would stay, and start-up's objects live as long as
the process. What start-up built and the process later replaces (the first registry snapshot,
the first pool of check processes, connections reopened after an outage) is freed by reference
counting too; were some of it held in a cycle, it would stay until the process exits: one
start-up's worth at most, not a growth. ``HUB_GC_FREEZE=off`` leaves the collector as Python sets it.
"""

from __future__ import annotations

import gc


def settle(*, collect: bool = True) -> int:
    """Collect, then freeze every object left; the number frozen. ``collect`` False: freeze only,
    for a forked child (a check process), whose collection would walk, and so copy, every page of
    the heap it shares with its parent."""
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
