"""A real Apache Kafka (KRaft) on loopback, started and stopped by PID: 1 or 3 nodes.

    with ApacheKafka() as kafka:                      # or: async with ApacheKafka(nodes=3)
        settings = kafka.settings()                   # KafkaSettings pointed at it

Each node is a combined broker + controller (``kafka.Kafka``) run with Java 17
from the jars ``sagas.kafka.apache_kafka.jars`` fetched with Maven. Start-up formats
KRaft storage (``kafka.tools.StorageTool format``) in a temporary folder,
starts every node on free loopback ports, and waits until a metadata request
lists every broker. Nodes run in a session of their own and die with the
process that started them (``sagas.process.parent_death``); ``stop`` sends SIGTERM
by PID, then SIGKILL. For fault tests a single node can be killed, paused and
started again on its own data (``kill_node``, ``pause_node``, ``start_node``).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sagas.kafka.apache_kafka.config import (
    ClientListener,
    ClusterLayout,
    NodePorts,
    node_properties,
    scram_arguments,
)
from sagas.kafka.apache_kafka.jars import KAFKA_VERSION, ApacheKafkaError, ensure_jars, require_java
from sagas.kafka.broker_probe import run_blocking, tcp_refused_async
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.process.free_ports import free_port
from sagas.process.parent_death import die_with_parent

__all__ = ["ApacheKafka", "ApacheKafkaError"]

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
#: Kafka's own defaults from kafka-run-class.sh, with a heap sized for a laptop or CI box.
_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


@dataclass
class _Node:
    index: int
    properties: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None


class ApacheKafka:
    """``nodes`` Apache Kafka nodes on ``host``; a sync and async context manager."""

    def __init__(
        self,
        *,
        nodes: int = 1,
        host: str = "127.0.0.1",
        listener: ClientListener | None = None,
        version: str = KAFKA_VERSION,
        heap: str | None = None,
        startup_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        work_dir: str | os.PathLike[str] | None = None,
        probe_settings: KafkaSettings | None = None,
        port: int | None = None,
        hosts: Sequence[str] = (),
        node_commands: Sequence[Sequence[str]] = (),
    ) -> None:
        """``listener`` sets the client listener's security (PLAINTEXT by default);
        ``probe_settings`` are the client settings the readiness probe uses on an
        authenticating listener (by default it logs in as the first SASL user, with
        no client certificate). ``work_dir`` keeps data and logs there instead of in
        a temporary folder removed on stop. ``port`` fixes the first node's client port.
        ``hosts`` gives each node its own address instead of ``host``, and
        ``node_commands`` a command each node's JVM runs under (e.g. ``ip netns exec NAME``,
        which execs, so the PID stays the JVM's): the broker-fault tests put every node in
        a network namespace of its own to cut one off (tests/faults/netns.py)."""
        if nodes not in (1, 3):
            raise ApacheKafkaError(f"nodes must be 1 or 3 (a KRaft quorum), got {nodes}")
        self.nodes = nodes
        self.host = host
        self.listener = listener or ClientListener()
        try:
            self.listener.check()
        except ValueError as exc:
            raise ApacheKafkaError(str(exc)) from None
        self.version = version
        self.heap = heap or ("1g" if nodes == 1 else "512m")
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.requested_port = port
        for what, given in (("hosts", hosts), ("node_commands", node_commands)):
            if given and len(given) != nodes:
                raise ApacheKafkaError(f"{what}: expected one per node ({nodes}), got {len(given)}")
        self.hosts = tuple(hosts)
        self.node_commands = tuple(tuple(c) for c in node_commands)
        self.probe_settings = probe_settings
        self._keep_dir = work_dir is not None
        self._work_dir = Path(work_dir) if work_dir is not None else None
        self._layout: ClusterLayout | None = None
        self._nodes: list[_Node] = []
        self._classpath: str | None = None
        self._last_probe_error: BaseException | None = None

    # -- what callers use -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self._layout is None or not self._nodes:
            raise ApacheKafkaError("Apache Kafka is not running; start() it first")
        return self._layout.bootstrap_servers()

    @property
    def pids(self) -> list[int | None]:
        return [n.proc.pid if n.proc is not None else None for n in self._nodes]

    @property
    def pid(self) -> int | None:
        return self.pids[0] if self._nodes else None

    @property
    def running(self) -> bool:
        return bool(self._nodes) and all(
            n.proc is not None and n.proc.poll() is None for n in self._nodes
        )

    @property
    def work_dir(self) -> Path | None:
        return self._work_dir

    def node_address(self, node: int) -> str:
        assert self._layout is not None
        return f"{self._layout.host_of(node)}:{self._layout.ports[node].client}"

    def settings(self, base: KafkaSettings | None = None) -> KafkaSettings:
        """``base`` (or settings from the environment) pointed at this cluster."""
        return (base or KafkaSettings()).with_bootstrap(self.bootstrap_servers)

    def start(self) -> ApacheKafka:
        """Fetch the jars if needed, format, start every node, wait for metadata."""
        self._prepare()
        try:
            for node in self._nodes:
                self._spawn(node)
            self._wait_ready_sync()
        except BaseException:
            self.stop()
            raise
        return self

    async def astart(self) -> ApacheKafka:
        """``start`` for async code: the blocking parts run in a thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._prepare)
        try:
            for node in self._nodes:
                self._spawn(node)  # from the loop's thread: see sagas.process.parent_death
            deadline = loop.time() + self.startup_timeout
            while not await self._ready():
                self._check_alive()
                if loop.time() >= deadline:
                    raise self._startup_timeout()
                await asyncio.sleep(0.2)
        except BaseException:
            await self.astop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every node by PID, SIGKILL what is left after ``stop_timeout``."""
        nodes, self._nodes = self._nodes, []
        if not nodes:
            return
        atexit.unregister(self.stop)
        try:
            for node in nodes:
                _signal(node, signal.SIGCONT)  # a paused node cannot exit
                _signal(node, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            for node in nodes:
                if node.proc is None:
                    continue
                try:
                    node.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _kill(node)
                except BaseException:
                    _kill(node)
                    raise
        finally:
            for node in nodes:
                _kill(node)
                _close(node)
            if not self._keep_dir and self._work_dir is not None:
                shutil.rmtree(self._work_dir, ignore_errors=True)
                self._work_dir = None
            self._layout = None

    async def astop(self) -> None:
        """``stop`` without blocking the event loop while the nodes exit."""
        for node in self._nodes:
            _signal(node, signal.SIGCONT)
            _signal(node, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout
        try:
            while loop.time() < deadline and any(
                n.proc is not None and n.proc.poll() is None for n in self._nodes
            ):
                await asyncio.sleep(0.05)
        finally:
            self.stop()

    # -- one node at a time (fault tests) ----------------------------------------------

    def kill_node(self, node: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node (SIGKILL by default) and, for a kill, reap it."""
        target = self._nodes[node]
        _signal(target, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM) and target.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                target.proc.wait(self.stop_timeout)
            _kill(target)

    def pause_node(self, node: int) -> None:
        _signal(self._nodes[node], signal.SIGSTOP)

    def resume_node(self, node: int) -> None:
        _signal(self._nodes[node], signal.SIGCONT)

    def start_node(self, node: int) -> None:
        """Start a node that was killed again, on its own data and ports."""
        target = self._nodes[node]
        if target.proc is not None and target.proc.poll() is None:
            raise ApacheKafkaError(f"node {node + 1} is still running")
        _close(target)
        target.proc = None
        self._spawn(target)

    def wait_any(self, poll: float = 0.5) -> int:
        """Block until a node exits by itself; returns its index."""
        while True:
            for node in self._nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    return node.index
            time.sleep(poll)

    def log_tail(self, node: int = 0, lines: int = 40) -> str:
        if node >= len(self._nodes) or not self._nodes[node].log_path.exists():
            return ""
        text = self._nodes[node].log_path.read_bytes().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> ApacheKafka:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        if not self._nodes:
            return f"<ApacheKafka {self.version} stopped>"
        return f"<ApacheKafka {self.version} pids={self.pids} at {self.bootstrap_servers}>"

    # -- start-up ----------------------------------------------------------------------

    def _prepare(self) -> None:
        """Jars, ports, folders, properties and formatted storage for every node."""
        if self._nodes:
            raise ApacheKafkaError(f"already running: {self!r}")
        self._classpath = ensure_jars(self.version)
        java = require_java()
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="sagastream-kafka-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        ports = tuple(
            NodePorts(
                client=(self.requested_port if i == 0 and self.requested_port else free_port()),
                internal=free_port(),
                controller=free_port(),
            )
            for i in range(self.nodes)
        )
        data_dirs = tuple(self._work_dir / f"node-{i + 1}" / "data" for i in range(self.nodes))
        self._layout = ClusterLayout(self.host, ports, data_dirs, self.listener, self.hosts)
        cluster_id = _cluster_id()
        shared = None
        formats: list[subprocess.Popen[bytes]] = []
        for i in range(self.nodes):
            folder = self._work_dir / f"node-{i + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            properties = folder / "server.properties"
            properties.write_text(node_properties(self._layout, i, shared))
            properties.chmod(0o600)  # it may hold SASL passwords
            self._nodes.append(_Node(i, properties, folder / "kafka.log"))
            cmd = [
                java, "-cp", self._classpath, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "kafka.tools.StorageTool", "format", "--ignore-formatted",
                "-t", cluster_id, "-c", str(properties),
                *scram_arguments(self.listener),
            ]  # fmt: skip
            formats.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for i, proc in enumerate(formats):
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                self._nodes.clear()
                raise ApacheKafkaError(
                    f"formatting KRaft storage of node {i + 1} failed (exit {proc.returncode}): "
                    + _redact(out.decode("utf-8", "replace"), self.listener)[-1500:]
                )

    def _spawn(self, node: _Node) -> None:
        assert self._classpath is not None
        java = require_java()
        prefix = list(self.node_commands[node.index]) if self.node_commands else []
        cmd = [
            *prefix, java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", self._classpath, "kafka.Kafka", str(node.properties),
        ]  # fmt: skip
        node.log = open(node.log_path, "ab")  # noqa: SIM115 - open for the node's life
        try:
            node.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=node.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            _close(node)
            raise ApacheKafkaError(f"cannot run {java}: {exc}") from exc
        atexit.register(self.stop)

    def _wait_ready_sync(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not run_blocking(self._ready()):
            self._check_alive()
            if time.monotonic() >= deadline:
                raise self._startup_timeout()
            time.sleep(0.2)

    async def _ready(self) -> bool:
        """True once a metadata request lists every node as a broker."""
        from aiokafka.admin import AIOKafkaAdminClient

        assert self._layout is not None
        # A plain connect first: aiokafka logs each refusal.
        for i, ports in enumerate(self._layout.ports):
            refused = await tcp_refused_async(self._layout.host_of(i), ports.client)
            if refused is not None:
                self._last_probe_error = refused
                return False
        admin = AIOKafkaAdminClient(**self._probe_kwargs(), request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
            brokers = len(cluster.get("brokers", []))
            if brokers < self.nodes:
                self._last_probe_error = ApacheKafkaError(
                    f"{brokers} of {self.nodes} brokers registered"
                )
                return False
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            self._last_probe_error = exc
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    def _probe_kwargs(self) -> dict[str, Any]:
        if self.probe_settings is not None:
            return self.probe_settings.with_bootstrap(self.bootstrap_servers).aiokafka_kwargs()
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.listener.protocol,
        }
        if self.listener.uses_tls:
            import ssl

            # Our own child on loopback: the probe checks liveness, not identity. A
            # listener that requires client certificates needs ``probe_settings``.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            kwargs["ssl_context"] = context
        if self.listener.uses_sasl:
            user = self.listener.admin() if self.listener.authorizes else self.listener.users[0]
            kwargs.update(
                sasl_mechanism="PLAIN",
                sasl_plain_username=user.name,
                sasl_plain_password=user.password,
            )
        return kwargs

    def _check_alive(self) -> None:
        for node in self._nodes:
            code = node.proc.poll() if node.proc is not None else None
            if code is not None:
                raise ApacheKafkaError(
                    f"Apache Kafka node {node.index + 1} exited with code {code} during "
                    f"start-up. Its log ({node.log_path}):\n"
                    + _redact(self.log_tail(node.index), self.listener)
                )

    def _startup_timeout(self) -> ApacheKafkaError:
        return ApacheKafkaError(
            f"Apache Kafka at {self.bootstrap_servers} did not list {self.nodes} broker(s) "
            f"within {self.startup_timeout}s (last error: {self._last_probe_error!r}). "
            f"Node 1's log:\n" + _redact(self.log_tail(0), self.listener)
        )


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them (URL-safe base64 of 16 bytes). Like
    Kafka's ``Uuid.randomUuid``, never one that starts with "-": the storage tool's
    argument parser would take it for an option (seen: 1 start in 64 failed)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _signal(node: _Node, sig: int) -> None:
    if node.proc is not None and node.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.proc.pid, sig)


def _kill(node: _Node) -> None:
    if node.proc is not None and node.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait()


def _close(node: _Node) -> None:
    if node.log is not None:
        node.log.close()
        node.log = None


def _redact(text: str, listener: ClientListener) -> str:
    for user in listener.users:
        text = text.replace(user.password, "***")
    return text
