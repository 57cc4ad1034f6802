"""Give freed heap memory back to the operating system (glibc ``malloc_trim``).

A burst of sagas leaves the coordinator with freed but not returned memory:
fetch buffers, batches being decided, states that were rewritten. CPython's
allocator keeps it, and so does glibc for blocks over 512 bytes (a saga's
state is ~0.9 KiB). Trimming when the replica is idle returns it, so RSS
follows what the table holds. A no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("sagas.process.heap_trim")

__all__ = ["trim_heap"]


def _load_trim() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # musl (Alpine) has no malloc_trim
        return None


_MALLOC_TRIM = _load_trim()


def trim_heap() -> bool:
    """Return free heap pages to the OS; False where that is not possible."""
    if _MALLOC_TRIM is None:
        return False
    return bool(_MALLOC_TRIM(0))  # type: ignore[operator]
