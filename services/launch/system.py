"""Start the whole system as separate OS processes, and take it down again.

    async with Launcher(SystemConfig(mode="choreography")) as system:
        system.kafka                    # KafkaSettings pointed at the broker, with the prefix
        system["payment"].url()         # http://127.0.0.1:PORT/metrics
        await system.restart("payment") # SIGKILL, start again, wait until ready
    # every child stopped: SIGTERM, SIGKILL after the deadline, broker last

What `start` does, in order (each step waits on a condition with a deadline):

1. the broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else an embedded Tansu broker
   (`sagas.kafka.embedded_broker`) whose log is ``broker.log`` in the run folder;
2. topics: every topic of the chosen saga definitions, the engine's own
   (lifecycle, dead letters, control) and the services' business topics, all
   with the same partition count, created *before* any consumer subscribes
   (a broker that auto-creates would pick its own default count);
3. the coordinator replicas (``sagas worker``) and the services
   (``sagas service NAME``), all at once, each logging to ``NAME.log`` and
   serving ``/metrics`` on a free loopback port;
4. waits until every one is ready (`services.launch.probes`: ``/health`` of a
   service, ``/readyz`` of a coordinator).

Every run gets its own topic prefix and coordinator group (``run-<hex>.``) so
runs against one shared cluster never see each other's records. On the
embedded broker the coordinator gets short consumer-group timeouts: a join
there takes about half the session timeout, and a restarted replica waits for
the old member's session to expire.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from events.topics import Topics
from sagas.definition import SagaDefinition
from sagas.kafka.admin import check_copartitioned, ensure_topics
from sagas.kafka.embedded_broker import EMBEDDED_CLIENT_ENV, EmbeddedBroker
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.loader import DefinitionRegistry
from sagas.process.free_ports import free_port
from sagas.topic_setup import coordinator_topics
from services.launch.child import ChildProcess, LaunchError, kill_all, stop_all
from services.launch.probes import Http, is_ready

log = logging.getLogger("services.launch")

Mode = Literal["orchestrated", "choreography"]

SERVICES = ("inventory", "payment", "shipping", "order")
DEFINITION_FOR_MODE: Mapping[str, str] = {
    "orchestrated": "order_orchestrated",
    "choreography": "order_choreographed",
}
#: Coordinator consumer-group timing on the embedded broker (seconds, as SAGAS_* wants them).
EMBEDDED_GROUP_TIMING = {
    "SAGAS_SESSION_TIMEOUT": "3",
    "SAGAS_HEARTBEAT_INTERVAL": "0.5",
    "SAGAS_REBALANCE_TIMEOUT": "2",
}


@dataclass(frozen=True)
class Restarted:
    """A process the launcher started again because it exited with one of
    `SystemConfig.restart_exit_codes`."""

    name: str
    exit_code: int
    at: float  # epoch seconds


@dataclass(frozen=True)
class SystemConfig:
    """What to run. Everything has a default that gives the demo's order system."""

    mode: Mode = "orchestrated"
    #: shipped definitions (`services.definitions.NAMES`); default: the order saga of ``mode``
    definitions: tuple[str, ...] = ()
    services: tuple[str, ...] = SERVICES
    #: sections of `services.config.ServicesConfig` (stock, limits, failure injection);
    #: ``mode`` and ``topic_prefix`` are filled in by the launcher
    services_config: Mapping[str, Any] = field(default_factory=dict)
    coordinators: int = 1
    #: topic prefix; None gives a fresh ``run-<hex>.`` per launch
    prefix: str | None = None
    #: partitions of every topic; None takes SAGAS_PARTITIONS (default 8)
    partitions: int | None = None
    coordinator_env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0
    #: seconds to give every step that waits for a person (``awaits:``) instead of its
    #: shipped deadline (hours or days): the demo's reviewer is sometimes not in time
    awaits_deadline: float | None = None
    #: seconds every step that is not ``awaits:`` waits for its answer instead of its shipped
    #: timeout. A choreographed step that times out before the pivot is compensated while
    #: the services may still carry the saga past the pivot (the saga then parks), so a
    #: test that restarts a service on a loaded machine gives the restart this much room.
    step_timeout: float | None = None
    #: exit codes after which a process is started again at once, as a supervisor
    #: (compose's ``restart: unless-stopped``, systemd, Kubernetes) would: 75 is what the
    #: coordinator, a participant or the bridge exits with when a restart resumes it (fenced,
    #: or a transaction in doubt). Default: none, a process that exits stays down.
    restart_exit_codes: tuple[int, ...] = ()

    def definition_names(self) -> tuple[str, ...]:
        return self.definitions or (DEFINITION_FOR_MODE[self.mode],)


class Launcher:
    """Supervisor of one running system: broker, topics, coordinator(s), services."""

    def __init__(
        self,
        config: SystemConfig | None = None,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.config = config or SystemConfig()
        self.run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="sagas-run-"))
        self.prefix = (
            self.config.prefix if self.config.prefix is not None else f"run-{uuid.uuid4().hex[:8]}."
        )
        base = kafka or KafkaSettings()
        self.embedded = not base.bootstrap_servers
        self._base_kafka = base
        self.kafka = base.model_copy(update={"topic_prefix": self.prefix})
        if self.config.partitions:
            self.kafka = self.kafka.model_copy(update={"partitions": self.config.partitions})
        self.topics = Topics.from_settings(self.kafka)
        self.broker: EmbeddedBroker | None = None
        self.definitions: list[SagaDefinition] = []
        self.children: dict[str, ChildProcess] = {}
        self.http = Http()
        self.restarts: list[Restarted] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False

    # -- what callers use ---------------------------------------------------------------

    def __getitem__(self, name: str) -> ChildProcess:
        try:
            return self.children[name]
        except KeyError:
            raise LaunchError(
                f"no process {name!r} in this system; there are: {', '.join(self.children)}"
            ) from None

    def __iter__(self) -> Iterator[ChildProcess]:
        return iter(self.children.values())

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.require_bootstrap()

    @property
    def app_id(self) -> str:
        """The coordinators' app id (their consumer group, table namespace): one per run."""
        return self.config.coordinator_env.get("SAGAS_APP_ID", f"{self.prefix}coordinator")

    @property
    def coordinator_names(self) -> list[str]:
        return [c.name for c in self if c.role == "coordinator"]

    def metrics_urls(self) -> dict[str, str]:
        """Where each process serves Prometheus metrics."""
        return {c.name: url for c in self if (url := c.url("/metrics")) is not None}

    async def get_json(self, name: str, path: str) -> Any:
        """``GET path`` on process ``name``; None when it does not answer with JSON."""
        url = self[name].url(path)
        return None if url is None else await self.http.json(url)

    # -- start --------------------------------------------------------------------------

    async def __aenter__(self) -> Launcher:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> Launcher:
        """Broker, topics, every process; returns once all are ready."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self._kill_at_exit)
        if self.embedded:
            self.broker = EmbeddedBroker(log_path=self.run_dir / "broker.log")
            await self.broker.astart()
            self.kafka = self.broker.settings(self.kafka)
        definition_files = self._write_definitions()
        await self._create_topics()
        services_file = self._write_services_config()
        for n in range(1, self.config.coordinators + 1):
            name = "coordinator" if self.config.coordinators == 1 else f"coordinator-{n}"
            self._add_coordinator(name, definition_files)
        for service in self.config.services:
            self._add_service(service, services_file)
        for child in self:
            child.start()
        await self.wait_ready(*self.children, timeout=self.config.ready_timeout)
        if self.config.restart_exit_codes:
            self._supervisor = asyncio.create_task(self._supervise())
        return self

    async def _supervise(self, every: float = 0.2) -> None:
        """Start again every process that exited with a code of ``restart_exit_codes``."""
        codes = set(self.config.restart_exit_codes)
        while not self._closed:
            for child in self:
                code = child.returncode
                if code is not None and code in codes:
                    self.restarts.append(Restarted(child.name, code, time.time()))
                    try:
                        child.start()
                    except LaunchError as exc:  # its command is gone: say so, keep watching
                        log.error("could not start %s again: %s", child.name, exc)
            await asyncio.sleep(every)  # a poll interval: exits are not announced

    def _write_definitions(self) -> list[Path]:
        from sagas.builder import definition_from_dict
        from services import definitions

        files = []
        for name in self.config.definition_names():
            spec = definitions.render(name, self.prefix)
            for step in spec["steps"]:
                if step.get("awaits") and self.config.awaits_deadline is not None:
                    step["awaits"]["deadline"] = self.config.awaits_deadline
                elif not step.get("awaits") and self.config.step_timeout is not None:
                    step["timeout"] = self.config.step_timeout
            path = self.run_dir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            files.append(path)
            self.definitions.append(definition_from_dict(spec))
        return files

    async def _create_topics(self) -> None:
        from services.topics import ServiceTopics

        registry = DefinitionRegistry(self.definitions)
        reads, writes = coordinator_topics(registry, self.topics)
        business = ServiceTopics.with_prefix(self.prefix).all()
        names = [*reads, *writes, *self.topics.all(), *business]
        await ensure_topics(self.kafka, names, partitions=self.kafka.partitions)
        await check_copartitioned(self.kafka, reads)

    def _write_services_config(self) -> Path:
        doc = {**self.config.services_config, "mode": self.config.mode, "topic_prefix": self.prefix}
        path = self.run_dir / "services.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        # An embedded broker's client settings, unless the environment sets them.
        client = {k: v for k, v in EMBEDDED_CLIENT_ENV.items() if k not in os.environ}
        return {
            **(client if self.embedded else {}),
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SAGAS_TOPIC_PREFIX": self.prefix,
            "SAGAS_PARTITIONS": str(self.kafka.partitions),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def _add_coordinator(self, name: str, definition_files: list[Path]) -> None:
        port = free_port()
        args = ["worker", "--web-port", str(port)]
        for path in definition_files:
            args += ["-d", str(path)]
        timing = EMBEDDED_GROUP_TIMING if self.embedded else {}
        env = self._env(
            {
                **timing,
                "SAGAS_APP_ID": self.app_id,
                **self.config.coordinator_env,
            }
        )
        self.children[name] = ChildProcess.sagas(
            name, args, env, self.run_dir, http_port=port, role="coordinator"
        )

    def _add_service(self, service: str, config_file: Path) -> None:
        port = free_port()
        args = ["service", service, "--config", str(config_file), "--metrics-port", str(port)]
        args += ["--mode", self.config.mode]
        env = self._env(dict(self.config.service_env))
        self.children[service] = ChildProcess.sagas(
            service, args, env, self.run_dir, http_port=port, role="service"
        )

    # -- readiness ----------------------------------------------------------------------

    async def wait_ready(self, *names: str, timeout: float | None = None) -> None:
        """Wait until each named process is ready; `LaunchError` if one dies or times out."""
        limit = self.config.ready_timeout if timeout is None else timeout
        await asyncio.gather(*(self._wait_one(self[name], limit) for name in names))

    async def _wait_one(self, child: ChildProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not child.alive:
                raise LaunchError(
                    f"{child.name} exited with code {child.returncode} while starting; "
                    f"its log ({child.log_path}) ends:\n{child.log_tail()}"
                )
            if await is_ready(child, self.http):
                return
            if time.monotonic() >= deadline:
                raise LaunchError(
                    f"{child.name} (pid {child.pid}) was not ready after {timeout:g}s; "
                    f"its log ({child.log_path}) ends:\n{child.log_tail()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    # -- faults -------------------------------------------------------------------------

    def kill(self, name: str) -> int | None:
        """SIGKILL process ``name`` (a crash); returns its exit code. Start it again with
        `start_process` or use `restart`."""
        return self[name].kill()

    async def terminate(self, name: str, timeout: float | None = None) -> int | None:
        """Stop ``name`` gracefully: SIGTERM, SIGKILL after ``timeout`` (config default)."""
        return await self[name].astop(self.config.stop_timeout if timeout is None else timeout)

    async def start_process(self, name: str, *, wait: bool = True) -> ChildProcess:
        """Start a stopped process again (same command, port and log file)."""
        child = self[name].start()
        if wait:
            await self.wait_ready(name)
        return child

    async def restart(self, name: str, *, crash: bool = True, wait: bool = True) -> ChildProcess:
        """SIGKILL (``crash``) or SIGTERM ``name``, start it again, wait until ready."""
        if crash:
            self.kill(name)
        else:
            await self.terminate(name)
        return await self.start_process(name, wait=wait)

    # -- stop ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop every child (SIGTERM, SIGKILL after the deadline), then the broker."""
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        try:
            await stop_all(list(self), self.config.stop_timeout)
        finally:
            try:
                if self.broker is not None:
                    await self.broker.astop()
            finally:
                await self.http.close()
                atexit.unregister(self._kill_at_exit)

    def _kill_at_exit(self) -> None:
        kill_all(list(self))
        if self.broker is not None:
            self.broker.stop()
