"""One benchmark run: per broker, its ceiling, then each system under a load sweep.

The run measures each broker of ``Options.brokers`` in turn, side by side in one
result (``results["brokers"][name]``): ``embedded`` (Tansu, in memory) and
``kafka`` (Apache Kafka, KRaft, started by `sagas.kafka.apache_kafka` for the whole
section), or ``external`` (``KAFKA_BOOTSTRAP_SERVERS``). Per broker, in order
(see `bench.options.Options` for the sizes):

1. ceiling: plain aiokafka round trips on a broker of their own (`bench.ceiling`);
2. per system (``bench``, then ``order`` with the reference services): sweep the
   offered load open loop, one load-generator process per point, until a point
   achieves less than ``stop_below`` of what was offered; per point: achieved
   sagas/s, latency percentiles, records written per saga, CPU and RSS of every
   process and its CPU per completed saga, the load average. On the embedded
   broker every point (and each phase below) runs on a system started for it
   alone and warmed up: a fresh broker, fresh topics (see
   `BenchRun.system_phases` for why); on Apache Kafka one broker serves the
   whole section and one system (topics of 8 partitions, processes) the sweep
   and the sustained run, as in production;
3. ``bench`` only: a sustained run (1,650 sagas/s offered, the 1,500/s target plus
   10%, or the best the sweep saw),
   py-spy on the coordinator meanwhile; then the overload points (`bench.overload`):
   2x and 3x the sweep's peak, admission control off then on;
4. ``bench`` only: park ``park`` sagas on the participant (SIGSTOP) and read the
   coordinator's RSS; then let the participant answer, SIGKILL the coordinator
   while it works through them, start it again and time until it processes
   again and until every parked saga is terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench import procstat
from bench.brokers import BrokerUnderTest, broker_under_test
from bench.ceiling import measure as measure_ceiling
from bench.options import Options
from bench.system_run import Say, SystemRun
from sagas import compiled_build

log = logging.getLogger("bench")


def machine() -> dict[str, Any]:
    """The machine, as the README describes it."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": sys.version.split()[0],
        #: ``pure Python`` or ``compiled (7 of 7 modules)`` (`sagas.compiled_build`): the
        #: processes the bench starts inherit its path, so they run the same build
        "build": compiled_build.describe(),
        "git": git_revision(),
    }


def git_revision(root: Path | None = None) -> str:
    """``HEAD``'s short hash, ``+dirty`` with tracked changes; outside a repository, what
    its export wrote to ``.git-revision`` (`git archive`, `scripts/build_compiled.py`)."""
    exported = (root or Path()) / ".git-revision"
    if exported.exists():
        return exported.read_text().strip()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, cwd=root,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, cwd=root,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not rev:
        return "unknown"
    return f"{rev}{'+dirty' if dirty else ''}"


# -- one run --------------------------------------------------------------------------


class BenchRun:
    def __init__(self, options: Options, say: Say, run_dir: Path) -> None:
        self.o = options
        self.say = say
        self.run_dir = run_dir
        self.results: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "options": options.as_dict(),
            "systems": {},
        }

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.results["brokers"] = {}
        for choice in self.o.broker_choices():
            async with broker_under_test(choice, self.o, self.run_dir / choice) as broker:
                self.say(f"[bold]broker: {broker.describe()}[/]")
                section: dict[str, Any] = {"broker": broker.as_dict(), "systems": {}}
                self.results["brokers"][choice] = section
                clock = time.monotonic()
                section["ceiling"] = await self.ceiling(broker)
                section["ceiling"]["seconds"] = round(time.monotonic() - clock, 1)
                # Read by every process the systems start (the launcher passes it on).
                os.environ["SAGAS_PARTITIONS"] = str(broker.partitions)
                # Per-broker client defaults, unless the environment sets them already.
                chosen = {k: v for k, v in broker.client_env.items() if k not in os.environ}
                os.environ.update(chosen)
                section["broker"]["client_env"] = {k: os.environ[k] for k in broker.client_env}
                workloads = ["bench"] + (["order"] if self.o.services else [])
                for name in workloads:
                    section["systems"][name] = await self.system_phases(name, broker)
                if self.o.guarantees:
                    from bench.guarantees import compare_guarantees

                    section["guarantees"] = await compare_guarantees(self, broker)
                section["elapsed_s"] = round(time.monotonic() - clock, 1)
                for name in chosen:
                    os.environ.pop(name, None)
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        return self.results

    async def system_phases(self, name: str, broker: BrokerUnderTest) -> dict[str, Any]:
        """Each sweep point, the sustained run and the park-and-crash phase.

        On the embedded broker each phase runs on a system of its own: a fresh broker
        and fresh topics. Why: the embedded broker (Tansu 0.6, memory storage) lists
        every record batch a partition has ever stored on each fetch that returns new
        data, so a fetch costs time in proportion to the partition's history (0.7 ms at
        200 batches, 8 ms at 10,000, measured). Run on one system, each phase would pay
        for the records of all the phases before it, which is a property of that broker,
        not of the engine. Apache Kafka's offset index makes a fetch independent of
        history, so there one system serves the sweep and the sustained run, as it would
        in production; the park-and-crash phase gets fresh processes and topics on the
        same broker, so that its memory reading starts from an empty coordinator.
        """
        out: dict[str, Any] = {"phase_seconds": {}}
        rates = self.o.rates if name == "bench" else self.o.services_rates
        sweep: list[dict[str, Any]] = []
        out["sweep"] = sweep
        how = (
            "a fresh broker and processes for every phase"
            if broker.fresh_per_phase
            else ("one broker and one set of processes for every phase")
        )
        self.say(f"[bold]system: {name}[/] ({how})")
        async with self.shared_system(name, broker, out) as shared:
            for rate in rates:
                async with self.phase_system(name, f"sweep-{rate:g}", out, broker, shared) as phase:
                    result = await phase.point(rate, self.o.duration, "sweep")
                sweep.append(result)
                if result["achieved_per_s"] < self.o.stop_below * rate or result["missing"]:
                    break
            if name == "bench" and self.o.sustained > 0:
                async with self.phase_system(name, "sustained", out, broker, shared) as phase:
                    out["sustained"] = await phase.sustained(sweep)
        if name == "bench" and self.o.overload and sweep:
            from bench.overload import overload_points

            out["overload"] = await overload_points(self, broker, sweep, out)
        if name == "bench" and self.o.park > 0:
            # Fresh processes and topics (on the same broker): the memory per parked saga
            # is read against an idle coordinator that holds no earlier sagas. No admission
            # bound: the parked sagas are measured in flight, and at the bound their starts
            # would wait in saga.starts behind a participant that answers nothing.
            async with self.fresh_system(
                name, "park", out, broker, coordinator_env={"SAGAS_MAX_IN_FLIGHT": "0"}
            ) as phase:
                out["memory"], out["recovery"] = await phase.park_and_crash()
        return out

    @contextlib.asynccontextmanager
    async def shared_system(
        self, name: str, broker: BrokerUnderTest, out: dict[str, Any]
    ) -> AsyncIterator[SystemRun | None]:
        """The one system of every phase on a broker that does not need fresh ones."""
        if broker.fresh_per_phase:
            yield None
            return
        async with self.fresh_system(name, "all phases", out, broker) as phase:
            yield phase

    @contextlib.asynccontextmanager
    async def phase_system(
        self, name: str, label: str, out: dict[str, Any], broker: BrokerUnderTest,
        shared: SystemRun | None,
    ) -> AsyncIterator[SystemRun]:  # fmt: skip
        if shared is not None:
            clock = time.monotonic()
            yield shared
            out["phase_seconds"][label] = round(time.monotonic() - clock, 1)
            return
        async with self.fresh_system(name, label, out, broker) as phase:
            yield phase

    @contextlib.asynccontextmanager
    async def fresh_system(
        self, name: str, label: str, out: dict[str, Any], broker: BrokerUnderTest,
        coordinator_env: dict[str, str] | None = None, via_trigger: bool = False,
    ) -> AsyncIterator[SystemRun]:  # fmt: skip
        """A started, warmed-up system for one phase, its processes sampled meanwhile."""
        from bench.system import launch

        clock = time.monotonic()
        async with launch(
            name, self.run_dir / broker.name / name / label, step_timeout=self.o.step_timeout,
            kafka=broker.settings, extra_coordinator_env=coordinator_env,
        ) as system:  # fmt: skip
            phase = SystemRun(
                self.o, self.say, self.run_dir, name, system, broker, via_trigger=via_trigger
            )
            await phase.warm_up()
            out.setdefault("workload", phase.workload.description)
            out["phase_seconds"][f"{label} (start)"] = round(time.monotonic() - clock, 1)
            clock = time.monotonic()
            async with phase.sampling():
                yield phase
            out["phase_seconds"][label] = round(time.monotonic() - clock, 1)

    async def ceiling(self, broker: BrokerUnderTest) -> dict[str, Any]:
        self.say("[bold]ceiling[/]: plain aiokafka produce -> consume round trips")
        load_before = procstat.load_average()
        async with broker.for_ceiling() as settings:
            result = await measure_ceiling(
                settings, records=self.o.ceiling_records, single=self.o.ceiling_single,
                prefix=f"bench-ceiling-{uuid.uuid4().hex[:6]}.",
            )  # fmt: skip
        doc = result.as_dict() | {"load_before": load_before, "load_after": procstat.load_average()}
        self.say(
            f"  pipelined {doc['pipelined_per_s']:,.0f} records/s; single round trip "
            f"p50 {doc['single_p50_ms']} ms, p99 {doc['single_p99_ms']} ms "
            f"(load {load_before[0]})"
        )
        return doc
