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

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bench import procstat
from bench.brokers import BrokerUnderTest, broker_under_test
from bench.ceiling import measure as measure_ceiling
from bench.coordinator_samples import BATCH_SAMPLES, batch_figures, read_samples
from bench.loadgen_run import plan_for, run_loadgen
from bench.options import Options
from bench.procstat import ProcSampler
from bench.workload import bench_trigger_workload, bench_workload, order_workload
from sagas.kafka.kafka_settings import KafkaSettings

log = logging.getLogger("bench")
Say = Callable[[str], None]


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
        "git": _git_revision(),
    }


def _git_revision() -> str:
    exported = Path(".git-revision")  # a `git archive` export run outside the repository
    if exported.exists():
        return exported.read_text().strip()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{'+dirty' if dirty else ''}"


def cpu_per_saga(usage: dict[str, procstat.Usage], result: dict[str, Any]) -> dict[str, float]:
    """Microseconds of CPU each process spent per saga that ended in the window.

    CPU seconds come from /proc (utime + stime) over the sampled window; sagas from the
    load generator's steady-state rate over the same span. Unlike a rate, this figure
    hardly moves with the machine's other load. The broker's nodes are summed.
    """
    out: dict[str, float] = {}
    for name, u in usage.items():
        sagas = result["achieved_per_s"] * u.span_seconds
        if sagas <= 0:
            continue
        key = "broker" if name.startswith("broker") else name
        out[key] = round(out.get(key, 0.0) + u.cpu_seconds * 1e6 / sagas, 1)
    return out


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
            # is read against an idle coordinator that holds no earlier sagas.
            async with self.fresh_system(name, "park", out, broker) as phase:
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
            phase = SystemRun(self, name, system, broker, via_trigger=via_trigger)
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


class SystemRun:
    """The phases run against one started system."""

    def __init__(
        self, parent: BenchRun, name: str, system: Any, broker: BrokerUnderTest,
        via_trigger: bool = False,
    ) -> None:  # fmt: skip
        from bench.system import pids

        self.parent = parent
        self.o = parent.o
        self.say = parent.say
        self.name = name
        self.system = system
        self.kafka: KafkaSettings = system.kafka
        self.lifecycle = system.topics.lifecycle
        self.workload = (
            (bench_trigger_workload if via_trigger else bench_workload)(
                system.prefix, system.topics.starts
            )
            if name == "bench"
            else order_workload(system.prefix)
        )
        self.broker = broker
        self.sampler = ProcSampler(pids(system), interval=0.25)
        self.sampler.track("bench", os.getpid())
        for node, pid in enumerate(broker.pids()):
            self.sampler.track("broker" if node == 0 else f"broker-{node + 1}", pid)

    @contextlib.asynccontextmanager
    async def sampling(self) -> AsyncIterator[None]:
        """CPU and RSS of every process of the system, sampled while the block runs."""
        task = asyncio.create_task(self.sampler.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- pieces -------------------------------------------------------------------------

    async def warm_up(self) -> None:
        """A few sagas end to end: the group has settled and every client is connected.

        A broker that lives for the whole section (Apache Kafka) then gets
        ``broker_warmup`` seconds of load at the first sweep rate, not measured: a JVM
        compiles its hot paths during its first minute, and its CPU per saga there
        (1,800 us at 500/s, measured, against ~500 once warm) says nothing about a
        broker that has run for a day. A fresh embedded broker per phase has no JIT.
        """
        plans = [(50.0, 50)]
        if not self.broker.fresh_per_phase and self.o.broker_warmup > 0:
            rate = self.o.rates[0] if self.name == "bench" else self.o.services_rates[0]
            rate = max(rate, 250.0)
            plans.append((rate, int(rate * self.o.broker_warmup)))
        for rate, count in plans:
            plan = plan_for(
                self.workload, self.kafka, self.lifecycle, rate=rate, count=count,
                label="warmup", drain_timeout=60,
            )  # fmt: skip
            result = await run_loadgen(plan)
            if result["missing"]:
                raise RuntimeError(
                    f"{self.name}: {result['missing']} of {count} warm-up sagas did not "
                    f"finish; see the logs in {self.system.run_dir}"
                )

    async def point(self, rate: float, seconds: float, label: str) -> dict[str, Any]:
        from bench.system import records_written

        count = max(1, int(rate * seconds))
        plan = plan_for(
            self.workload, self.kafka, self.lifecycle, rate=rate, count=count, label=label,
            warmup=min(self.o.warmup, seconds / 3), drain_timeout=self.o.drain_timeout,
        )  # fmt: skip
        load_before = procstat.load_average()
        written_before = await records_written(self.kafka, self.system.prefix)
        batches_before = await self.batch_samples()
        result = await run_loadgen(plan, sampler=self.sampler)
        written = await records_written(self.kafka, self.system.prefix) - written_before
        batches_after = await self.batch_samples()
        result |= batch_figures(batches_before, batches_after, result["terminal"])
        usage = self.sampler.window(result["window_start"], result["send_end"])
        result["records_per_saga"] = round(written / max(result["terminal"], 1), 1)
        result["cpu_percent"] = {name: u.cpu_percent for name, u in usage.items()}
        result["cpu_us_per_saga"] = cpu_per_saga(usage, result)
        result["rss_peak_mib"] = {name: u.rss_peak_mib for name, u in usage.items()}
        result["load_before"] = load_before
        result["load_after"] = procstat.load_average()
        lat = result["latency"]
        self.say(
            f"  {label} {rate:>6,.0f}/s offered -> {result['achieved_per_s']:>7,.1f}/s "
            f"terminal; p50 {lat['p50_ms']} p95 {lat['p95_ms']} p99 {lat['p99_ms']} ms; "
            f"coordinator CPU {result['cpu_percent'].get('coordinator', 0):.0f}% "
            f"({result['cpu_us_per_saga'].get('coordinator', 0):,.0f} us/saga, broker "
            f"{result['cpu_us_per_saga'].get('broker', 0):,.0f}); "
            f"{result['batches_per_saga']} coordinator batches/saga of "
            f"{result['records_per_batch']} records; "
            f"missing {result['missing']}; load {load_before[0]}"
        )
        by_outcome = result.get("latency_by_outcome") or {}
        if len(by_outcome) > 1:
            self.say(
                "    by outcome: "
                + "; ".join(
                    f"{outcome} p50 {lat['p50_ms']} p99 {lat['p99_ms']} ms"
                    for outcome, lat in sorted(by_outcome.items())
                )
            )
        return result

    async def batch_samples(self) -> dict[str, float] | None:
        """The coordinator's batch counters, or None if its /metrics does not answer (the
        point's other figures do not depend on them)."""
        try:
            return await read_samples(self.system["coordinator"].url("/metrics"), BATCH_SAMPLES)
        except OSError as exc:
            self.say(f"    (batches per saga not measured: coordinator /metrics: {exc})")
            return None

    async def sustained(self, sweep: list[dict[str, Any]]) -> dict[str, Any]:
        best = max((p["achieved_per_s"] for p in sweep), default=self.o.sustained_rate)
        rate = min(self.o.sustained_rate, max(50.0, (best // 50) * 50))
        self.say(f"  sustained: {rate:,.0f}/s offered for {self.o.sustained:.0f} s")
        profiling = None
        profile_file = self.parent.run_dir / "coordinator.pyspy.txt"
        if self.o.profile > 0:
            from bench.profile import record

            seconds = min(self.o.profile, self.o.sustained * 0.8)
            pid = self.system["coordinator"].pid

            async def delayed() -> Path | None:
                await asyncio.sleep(self.o.sustained * 0.1)
                return await record(pid, seconds, profile_file)

            profiling = asyncio.create_task(delayed())
        result = await self.point(rate, self.o.sustained, "sustained")
        if profiling is not None:
            from bench.profile import summarise

            raw = await profiling
            result["profile"] = (
                summarise(raw) | {"file": str(raw)}
                if raw
                else {"error": f"py-spy failed; see {profile_file.with_suffix('.error.txt')}"}
            )
        return result

    async def park_and_crash(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from bench.recovery import park_and_crash

        return await park_and_crash(self)
