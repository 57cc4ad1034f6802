"""Each broker in a network namespace of its own, so that one can really be cut off.

    with BrokerNetwork(nodes=3) as net:        # needs root and iproute2's `ip`
        ApacheKafka(nodes=3, hosts=net.addresses, node_commands=net.commands)
        net.cut(0)                             # node 1 reaches no broker and no client
        net.heal(0)

Layout (names carry a per-run tag, so runs on one machine never meet)::

    root namespace: bridge sg<tag>br 10.218.X.1/24  <- every client of the test
        |-- veth sg<tag>v1 ===== sg<tag>p1 10.218.X.11 in netns sg<tag>n1 (node 1)
        |-- veth sg<tag>v2 ===== sg<tag>p2 10.218.X.12 in netns sg<tag>n2 (node 2)
        '-- veth sg<tag>v3 ===== sg<tag>p3 10.218.X.13 in netns sg<tag>n3 (node 3)

Every packet between two nodes, and between a node and a client, crosses the
node's veth pair and the bridge. `cut` sets the root end of a node's veth down:
its packets are dropped (no reset, no refusal: what a switch failure or a
partitioned rack looks like), the node keeps running and believes itself a
leader until the others fence it. `heal` sets the link up again. `close`
deletes the namespaces (which deletes their veths) and the bridge by name, also
after a failed test; nothing else on the machine is touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

__all__ = ["BrokerNetwork", "NetnsError", "netns_unavailable"]

_SUBNET_BASE = "10.218"


class NetnsError(RuntimeError):
    """A network namespace, veth or bridge could not be set up."""


def netns_unavailable() -> str | None:
    """Why this machine cannot build the network (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not on PATH"
    return None


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed (exit {proc.returncode}): {proc.stderr}")
    return proc.stdout


def _free_subnet() -> str:
    """A 10.218.X.0/24 no interface of this machine uses yet."""
    used = _ip("-o", "-4", "addr", "show")
    taken = {int(p.split(".")[2]) for p in used.split() if p.startswith(_SUBNET_BASE + ".")}
    free = sorted(set(range(1, 255)) - taken)
    if not free:
        raise NetnsError(f"every {_SUBNET_BASE}.X.0/24 subnet is in use on this machine")
    return f"{_SUBNET_BASE}.{secrets.choice(free)}"


class BrokerNetwork:
    def __init__(self, nodes: int = 3) -> None:
        self.nodes = nodes
        self.tag = secrets.token_hex(2)
        self.bridge = f"sg{self.tag}br"
        self.namespaces = [f"sg{self.tag}n{i + 1}" for i in range(nodes)]
        self.veths = [f"sg{self.tag}v{i + 1}" for i in range(nodes)]
        self.peers = [f"sg{self.tag}p{i + 1}" for i in range(nodes)]
        self.subnet = ""
        self.addresses: tuple[str, ...] = ()
        self.cut_nodes: set[int] = set()

    @property
    def commands(self) -> tuple[tuple[str, ...], ...]:
        """What each node's JVM runs under: ``ip netns exec`` execs, so the PID is the JVM's."""
        return tuple(("ip", "netns", "exec", ns) for ns in self.namespaces)

    def __enter__(self) -> BrokerNetwork:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self) -> None:
        self.subnet = _free_subnet()
        self.addresses = tuple(f"{self.subnet}.{11 + i}" for i in range(self.nodes))
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for ns, veth, peer, address in zip(
            self.namespaces, self.veths, self.peers, self.addresses, strict=True
        ):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", peer)
            _ip("-n", ns, "link", "set", peer, "up")

    def cut(self, node: int) -> None:
        """Node ``node`` (0-based) reaches nothing and nothing reaches it."""
        _ip("link", "set", self.veths[node], "down")
        self.cut_nodes.add(node)

    def heal(self, node: int) -> None:
        _ip("link", "set", self.veths[node], "up")
        self.cut_nodes.discard(node)

    def close(self) -> None:
        """Delete what this network created, by name; what is already gone is fine.
        The root ends of the veths first (which takes their peers along), then the
        namespaces, then the bridge."""
        problems = []

        def delete(*args: str) -> None:
            try:
                _ip(*args)
            except NetnsError as exc:
                if "Cannot find device" not in str(exc) and "No such file" not in str(exc):
                    problems.append(str(exc))

        links = _ip("-o", "link", "show")
        for veth in self.veths:
            if f" {veth}:" in links or f" {veth}@" in links:
                delete("link", "del", veth)
        present = set(_ip("netns", "list").split())
        for ns in self.namespaces:
            if ns in present:
                delete("netns", "del", ns)
        if f" {self.bridge}:" in _ip("-o", "link", "show"):
            delete("link", "del", self.bridge)
        if problems:
            raise NetnsError("; ".join(problems))
