"""A loopback port to give a process that will listen on it, chosen so nothing else takes it.

`socket.bind(("127.0.0.1", 0))` hands out a port from the kernel's ephemeral range, the
range it also draws the source ports of outgoing connections from. Between that check and
the child's own bind (seconds later: a service first connects to Kafka, then serves its
metrics) any outgoing connection on the machine, the child's own among them, can take the
port, and the child's listener then fails with EADDRINUSE (seen in a `make test`: a
service's metrics port, which failed every fault scenario run on that system). So ports are
drawn from outside that range, where the kernel never picks a source port by itself, and
checked with a bind as before.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: where Linux keeps the ephemeral range ("32768\t60999" by default)
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: assumed where that file is missing (it covers macOS's 49152-65535 and Linux's default)
DEFAULT_EPHEMERAL = (32768, 65535)
#: the lowest port handed out: above the registered ports services commonly use
LOWEST = 20000
ATTEMPTS = 200


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def free_port(host: str = "127.0.0.1", *, ephemeral: tuple[int, int] | None = None) -> int:
    """A port on ``host`` nothing listens on or is bound to, outside the ephemeral range
    (a port from the kernel's choice only if no such port is found)."""
    low, high = ephemeral or ephemeral_range()
    candidates = [*range(LOWEST, min(low, 65536)), *range(max(high + 1, LOWEST), 65536)]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in random.sample(candidates, min(ATTEMPTS, len(candidates))):
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on, or None. Checked before a broker starts
    on a port that was asked for: whatever listens there would answer the readiness
    probe, and the broker's own failure to bind would come only after a success."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Tansu binds
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None
