"""The optional compiled build: which modules it compiles, and which ones this process runs.

The coordinator's pure hot path (the batch step, the router, the state machine and the
messages and decisions it works with) can be compiled with mypyc into C extension modules, issue 19's
"optional compiled build with the pure-Python modules as the fallback". The build
(`scripts/build_compiled.py`, ``make compiled``) copies the checkout and compiles these
modules in the copy; the checkout itself stays pure Python, so an edited ``.py`` is
never shadowed by a stale extension. A process runs compiled when the copy is first on
its path (``PYTHONPATH=.compiled``); `loaded` says which modules it got compiled.

Not in the list, and why:
- `sagas.state`: mypyc erases the types of a native class's annotations, which pydantic
  needs to load a stored state, and pydantic-core serialises native classes slower than
  the interpreted dataclasses (the engine measured 1.2x the CPU with it);
- the codecs, `events.envelope` and `sagas.control`: pydantic models, which mypyc does not
  compile;
- `events.records` and `sagas.batch_values`, the values the interpreted runtime builds and
  reads per record (aiokafka's glue, the persister, the participants): a native class is
  slower to build and read from interpreted code (an `InRecord` 1.2-1.7x to build and
  1.5-1.7x to read there), and with them the coordinator measured no faster;
- `sagas.table_codec`, `sagas.live_cache`, `sagas.timers`: compiled, no faster.
"""

from __future__ import annotations

import importlib
import importlib.machinery

#: compiled together (one mypyc group: calls between them are native calls)
COMPILED_MODULES: tuple[str, ...] = (
    "sagas.backward",
    "sagas.batch",
    "sagas.branching",
    "sagas.machine",
    "sagas.messages",
    "sagas.routing",
    "sagas.run_output",
)


def loaded() -> tuple[str, ...]:
    """The modules of `COMPILED_MODULES` this process imports as compiled extensions."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return tuple(
        name
        for name in COMPILED_MODULES
        if (getattr(importlib.import_module(name), "__file__", None) or "").endswith(suffixes)
    )


def describe() -> str:
    """One line for a process's start: ``compiled (7 of 7 modules)`` or ``pure Python``."""
    n = len(loaded())
    if n == 0:
        return "pure Python"
    return f"compiled ({n} of {len(COMPILED_MODULES)} modules)"
