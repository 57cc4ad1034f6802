"""Which asyncio event loop a long-lived process runs on: uvloop when installed, else asyncio's.

uvloop (libuv, in C) runs the same asyncio programs with less CPU per callback,
socket read and timer: the coordinator's fetch, produce and commit tasks are
mostly that. It is an optional dependency (``pip install 'sagastream[uvloop]'``);
without it, or with ``SAGAS_EVENT_LOOP=asyncio``, the standard loop runs and
nothing else changes.

    run(main, "auto")   # uvloop if importable, else asyncio
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["EventLoopChoice", "EventLoopError", "chosen_loop", "loop_factory", "run"]

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
T = TypeVar("T")


class EventLoopError(RuntimeError):
    """The event loop asked for cannot run here."""


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def chosen_loop(choice: EventLoopChoice) -> Literal["uvloop", "asyncio"]:
    """The loop ``choice`` runs on; `EventLoopError` if uvloop is asked for and missing."""
    if choice == "asyncio":
        return "asyncio"
    if uvloop_installed():
        return "uvloop"
    if choice == "uvloop":
        raise EventLoopError(
            "SAGAS_EVENT_LOOP=uvloop but uvloop is not installed: "
            "pip install 'sagastream[uvloop]', or set SAGAS_EVENT_LOOP=auto or asyncio"
        )
    return "asyncio"


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory of new loops for `asyncio.Runner` (None: asyncio's own)."""
    if chosen_loop(choice) == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop  # type: ignore[no-any-return]


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """`asyncio.run` on the loop ``choice`` names."""
    try:
        factory = loop_factory(choice)
    except EventLoopError:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
