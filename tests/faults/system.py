"""The whole order system under fault injection: broker, 2 coordinator replicas, 4 services.

`FaultSystem` wraps a `services.launch.Launcher` (the demo's, with the demo's
business failures switched on) and adds what the fault scenarios need:

* faults by PID: ``kill``/``restart`` (SIGKILL), `pause` (SIGSTOP, then
  SIGCONT), `throttle` (SIGSTOP/SIGCONT duty cycle: a slow consumer);
* `run`: place a scenario's orders with `services.demo.drive.drive` while faults
  fire, then judge the result against everything placed on this system so
  far (`tests.faults.checker`);
* the audits of `tests.faults.audit`, read incrementally;
* peak memory of the coordinators (``VmHWM`` in ``/proc/PID/status``);
* ``guarantee="exactly_once"`` runs every coordinator and service with
  ``SAGAS_PROCESSING_GUARANTEE=exactly_once`` (Apache Kafka only), and
  `duplicate_deliveries` counts command ids and lifecycle events delivered
  twice (`tests.faults.delivery`).

Secrets are set to marker strings in every process's environment so the
security scenario can look for them in the logs and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sagas.kafka.guarantee import GUARANTEE_VARIABLE, ProcessingGuarantee
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.transaction_failures import EXIT_RESTART
from services.demo.domains import DomainScenario
from services.demo.drive import RunResult, drive
from services.demo.scenario import Order, Scenario
from services.launch import Launcher, SystemConfig
from tests.faults.audit import LedgerAudit, LifecycleAudit, StateAudit
from tests.faults.delivery import DeliveryReport, duplicate_deliveries
from tests.faults.plan import Plan

COORDINATORS = ("coordinator-1", "coordinator-2")
SERVICES = ("inventory", "payment", "shipping", "order")
#: the services of the transfer and claim sagas, which run on the same system (issue 20)
DOMAIN_SERVICES = ("bank", "claims", "triage")
#: Put in every process's environment; must never show up in a log or in /metrics.
SASL_SECRET = "sasl-marker-7f3c9e1d2b"
API_SECRET = "api-marker-4a8d0c6e5f"
#: Unknown-saga replies wait this long for their saga before they are dead-lettered.
EARLY_GRACE = 2.0


@dataclass(frozen=True)
class TaggedScenario(Scenario):
    """The demo's scenario with order ids unique to one fault scenario (``tag``)."""

    tag: str = "s"

    def make_orders(self) -> list[Order]:
        return [replace(o, order_id=f"{self.tag}-{o.order_id}") for o in super().make_orders()]


@dataclass
class FaultLog:
    """When each fault was injected and when what it broke was back."""

    what: str
    at: float  # epoch seconds
    back_at: float | None = None


@dataclass
class Outcome:
    """One scenario's run: its orders, the drive's result, the faults it injected."""

    name: str
    orders: list[Order]
    result: RunResult
    faults: list[FaultLog] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FaultSystem:
    def __init__(
        self, launcher: Launcher, base: Scenario, guarantee: ProcessingGuarantee = "at_least_once"
    ) -> None:
        self.launcher = launcher
        self.base = base
        self.guarantee = guarantee
        self.orders: list[Order] = []  # every order placed on this system, all scenarios
        self.extra_sagas: set[str] = set()  # sagas started by other means (the fuzzer)
        self.lifecycle = LifecycleAudit(launcher.kafka, launcher.topics.lifecycle)
        self.ledgers = LedgerAudit(
            launcher.kafka, launcher.prefix, launcher.run_dir / "services.yaml"
        )
        self.states = StateAudit(launcher.kafka, f"{launcher.app_id}-sagas-changelog")
        self._seeds = 100

    # -- start and stop -----------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        run_dir: Path,
        plan: Plan,
        *,
        kafka: KafkaSettings | None = None,
        env: Mapping[str, str] | None = None,
        domains: bool = True,
        guarantee: ProcessingGuarantee = "at_least_once",
    ) -> FaultSystem:
        """``kafka``: the cluster to run on (default: the suite's broker); ``env``: added to
        every process's environment; ``domains``: also run the transfer and claim sagas;
        ``guarantee``: the processing guarantee of every process."""
        base = Scenario(orders=plan.orders, rate=plan.rate)
        secrets = {"KAFKA_SASL_PASSWORD": SASL_SECRET, GUARANTEE_VARIABLE: guarantee, **(env or {})}
        domain = DomainScenario()
        extra = ("bank_transfer", "insurance_claim") if domains else ()
        config = SystemConfig(
            mode="orchestrated",
            coordinators=2,
            definitions=("order_orchestrated", *extra),
            services=(*SERVICES, *(DOMAIN_SERVICES if domains else ())),
            awaits_deadline=domain.deadline,
            services_config={
                **base.services_config(),
                **(domain.services_config() if domains else {}),
            },
            coordinator_env={
                **secrets,
                "SAGAS_API_TOKEN": API_SECRET,
                "SAGAS_EARLY_EVENT_GRACE": str(EARLY_GRACE),
                "SAGAS_LOG_LEVEL": "info",
            },
            service_env=secrets,
            ready_timeout=120.0,
            # as compose's `restart: unless-stopped` does: a process that stops so that a
            # restart resumes it (fenced, or its transaction in doubt) is started again
            restart_exit_codes=(EXIT_RESTART,),
        )
        launcher = Launcher(config, run_dir=run_dir, kafka=kafka)
        await launcher.start()
        system = cls(launcher, base, guarantee)
        try:
            for audit in (system.lifecycle, system.ledgers, system.states):
                await audit.tail.start()
        except BaseException:
            await system.close()
            raise
        return system

    async def close(self) -> None:
        for audit in (self.lifecycle, self.ledgers, self.states):
            await audit.tail.stop()
        await self.launcher.aclose()

    # -- faults -------------------------------------------------------------------------

    def kill(self, *names: str) -> None:
        for name in names:
            self.launcher.kill(name)

    async def start_again(self, *names: str) -> None:
        for name in names:
            await self.launcher.start_process(name, wait=False)
        await self.launcher.wait_ready(*names, timeout=120.0)

    async def crash_and_restart(self, log: list[FaultLog], *names: str, down: float = 0.0) -> None:
        """SIGKILL ``names`` at once, keep them down ``down`` seconds, start them, wait ready."""
        fault = FaultLog(f"SIGKILL {'+'.join(names)}", time.time())
        log.append(fault)
        self.kill(*names)
        if down:
            await asyncio.sleep(down)
        await self.start_again(*names)
        fault.back_at = time.time()

    async def pause(self, log: list[FaultLog], name: str, seconds: float) -> None:
        """SIGSTOP ``name`` for ``seconds``, then SIGCONT: a GC pause, a frozen VM."""
        child = self.launcher[name]
        fault = FaultLog(f"SIGSTOP {name} {seconds:g}s", time.time())
        log.append(fault)
        child.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            child.signal(signal.SIGCONT)
        fault.back_at = time.time()

    async def throttle(
        self, log: list[FaultLog], name: str, seconds: float, run: float = 0.05, stop: float = 0.6
    ) -> None:
        """Let ``name`` run ``run`` s out of every ``run + stop`` s for ``seconds``."""
        child = self.launcher[name]
        fault = FaultLog(
            f"throttle {name} to {run / (run + stop):.0%} for {seconds:g}s", time.time()
        )
        log.append(fault)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                child.signal(signal.SIGSTOP)
                await asyncio.sleep(stop)
                child.signal(signal.SIGCONT)
                await asyncio.sleep(run)
        finally:
            child.signal(signal.SIGCONT)
        fault.back_at = time.time()

    # -- running a scenario -------------------------------------------------------------

    def scenario(self, tag: str, orders: int, rate: float) -> TaggedScenario:
        self._seeds += 1
        return TaggedScenario(orders=orders, rate=rate, seed=self._seeds, tag=tag)

    async def run(
        self,
        name: str,
        scenario: Scenario,
        *,
        faults: Mapping[int, Callable[[list[FaultLog]], Awaitable[Any]]] | None = None,
        settle: float = 90.0,
    ) -> Outcome:
        """Place ``scenario``'s orders, firing ``faults[n]`` once ``n`` orders are out."""
        log: list[FaultLog] = []

        def bind(fault: Callable[[list[FaultLog]], Awaitable[Any]]) -> Callable[[], Any]:
            async def fire() -> Any:
                return await fault(log)

            return fire

        bound = {n: bind(f) for n, f in (faults or {}).items()}
        orders = scenario.make_orders()
        self.orders += orders
        restarts = len(self.launcher.restarts)
        result = await drive(self.launcher, scenario, faults=bound, settle_timeout=settle)
        outcome = Outcome(name, orders, result, log)
        if again := self.launcher.restarts[restarts:]:
            counts = Counter(r.name for r in again)
            outcome.notes.append(
                f"restarted after exit {EXIT_RESTART}: "
                + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))
            )
        return outcome

    async def duplicate_deliveries(self) -> DeliveryReport:
        """Command ids and lifecycle events found in two records (raw, read_committed)."""
        commands = {t for d in self.launcher.definitions for t in d.topics_written()}
        return await duplicate_deliveries(
            self.launcher.kafka, commands=commands, lifecycle=self.launcher.topics.lifecycle
        )

    # -- measurements -------------------------------------------------------------------

    def memory(self, name: str) -> dict[str, int]:
        """``VmRSS`` and ``VmHWM`` (peak) of process ``name``, in KiB."""
        pid = self.launcher[name].pid
        out: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])
        except OSError:
            pass
        return out

    def dead(self) -> list[str]:
        """Processes of the system that are not running (none should be, between faults)."""
        return [c.name for c in self.launcher if not c.alive]

    @property
    def run_dir(self) -> Path:
        return self.launcher.run_dir


def new_run_dir(plan_name: str, max_age: float = 12 * 3600) -> Path:
    """A fresh folder for the run's logs and table, outside pytest's rotating basetemp
    (other pytest sessions on the machine would delete it). Folders older than ``max_age``
    are pruned; younger ones may belong to a run still going on in another checkout."""
    base = Path(tempfile.gettempdir()) / "sagas-faults"
    base.mkdir(exist_ok=True)
    for old in base.iterdir():
        if time.time() - old.stat().st_mtime > max_age:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-{plan_name}-", dir=base))


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
