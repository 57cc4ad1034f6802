"""The optional compiled build: which modules it compiles, and which ones this process runs.

The coordinator's pure hot path (the batch step, the state machine, the values they
build per record) can be compiled with mypyc into C extension modules, issue 19's
"optional compiled build with the pure-Python modules as the fallback". The build
(`scripts/build_compiled.py`, ``make compiled``) copies the checkout and compiles these
modules in the copy; the checkout itself stays pure Python, so an edited ``.py`` is
never shadowed by a stale extension. A process runs compiled when the copy is first on
its path (``PYTHONPATH=.compiled``); `loaded` says which modules it got compiled.

Not in the list, and why: `sagas.state` (mypyc erases the types of a native class's
annotations, which pydantic needs to load a stored state, and pydantic-core serialises
native classes slower than the interpreted dataclasses: measured 1.2x the engine's CPU
with it), the codecs and `events.envelope` (pydantic models, which mypyc does not
compile), `sagas.table_codec`, `sagas.live_cache` and `sagas.timers` (compiled, they
measured no faster).
"""

from __future__ import annotations

import importlib
import importlib.machinery

#: compiled together (one mypyc group: calls between them are native calls)
COMPILED_MODULES: tuple[str, ...] = (
    "events.records",
    "sagas.backward",
    "sagas.batch",
    "sagas.batch_values",
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
    """One line for a process's start: ``compiled (9 of 9 modules)`` or ``pure Python``."""
    n = len(loaded())
    if n == 0:
        return "pure Python"
    return f"compiled ({n} of {len(COMPILED_MODULES)} modules)"
