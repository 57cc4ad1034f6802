"""Ports handed to processes that will listen on them come from outside the kernel's
ephemeral range: one from inside it can become an outgoing connection's source port before
the process binds it (seen: a service's metrics port, EADDRINUSE, in a make test)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from sagas.process.free_ports import LOWEST, ephemeral_range, free_port


def test_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = ephemeral_range()
    for _ in range(50):
        port = free_port()
        assert LOWEST <= port < low or high < port <= 65535, (port, low, high)
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: a listener can take it


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        # the first candidate tried is the taken port
        monkeypatch.setattr(random, "sample", lambda pool, k: [taken, *pool[:k]])
        port = free_port(ephemeral=(taken + 1, taken + 2) if taken < 65533 else (1025, 1026))
        assert port != taken


def test_the_range_is_read_from_the_kernel_or_assumed(tmp_path: Path) -> None:
    given = tmp_path / "ip_local_port_range"
    given.write_text("40000\t50000\n")
    assert ephemeral_range(given) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 65535)
    given.write_text("garbage\n")
    assert ephemeral_range(given) == (32768, 65535)


def test_with_no_port_outside_the_range_the_kernel_chooses() -> None:
    port = free_port(ephemeral=(1024, 65535))
    assert 0 < port <= 65535
