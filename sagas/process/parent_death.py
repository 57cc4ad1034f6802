"""Child processes that do not outlive the process that started them.

The embedded broker and the processes of a demo, benchmark or test are started
in a session of their own (so Ctrl-C reaches only the parent, which stops them
in order). The price: when the parent itself dies without cleaning up --
SIGKILL, a CI timeout, ``timeout(1)`` sending SIGTERM to a Python process that
runs no ``finally`` -- nothing stops them, and an orphaned Tansu keeps a core
busy for good (seen: two orphans at 33-80% CPU skewing every later
measurement). Linux can tie a child's life to its parent's:
``prctl(PR_SET_PDEATHSIG)`` delivers a signal to the child when the parent
exits, however it exits.

Use ``subprocess.Popen(..., preexec_fn=die_with_parent())``. Elsewhere than
Linux it returns None and changes nothing.

One caveat of the kernel feature: "parent" is the *thread* that forked. Start
long-lived children from a thread that lives as long as they should (the main
thread or the event loop's thread), not from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1

__all__ = ["die_with_parent"]


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Resolved once in the parent: after fork, the child only calls it.
_prctl = _load_prctl()


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies."""
    if _prctl is None:
        return None
    prctl = _prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        # The parent may have died between fork() and prctl(): then no signal comes.
        if os.getppid() != parent:
            os._exit(1)

    return preexec
