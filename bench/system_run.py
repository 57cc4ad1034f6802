"""One started system under load: its warm-up, sweep points, sustained run and the
park-and-crash phases, with the CPU and memory of each of its processes.

`bench.run.BenchRun` starts the systems (one per phase on the embedded broker, one
for the whole section on Apache Kafka) and hands each to a `SystemRun`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bench import procstat
from bench.brokers import BrokerUnderTest
from bench.coordinator_samples import BATCH_SAMPLES, batch_figures, read_samples
from bench.loadgen_run import plan_for, run_loadgen
from bench.options import Options
from bench.procstat import ProcSampler
from bench.workload import (
    bench_trigger_workload,
    bench_workload,
    order_workload,
    starts_topic,
)
from sagas.kafka.kafka_settings import KafkaSettings

Say = Callable[[str], None]


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


class DrainProgress:
    """The load generator's progress as a line every ``every`` seconds once its sends
    are done: past capacity a point's backlog takes minutes to drain."""

    def __init__(self, say: Say, count: int, every: float = 10.0) -> None:
        self.say, self.count, self.every = say, count, every
        self.send_end: float | None = None
        self.next_line = 0.0

    def __call__(self, progress: dict[str, Any]) -> None:
        if progress["sending"]:
            return
        t = progress["t"]
        if self.send_end is None:
            self.send_end, self.next_line = t, t + self.every
        elif t >= self.next_line:
            self.next_line = t + self.every
            self.say(
                f"    draining: {progress['terminal']:,} of {self.count:,} ended "
                f"{t - self.send_end:.0f} s after the last start"
            )


class SystemRun:
    """The phases run against one started system."""

    def __init__(
        self, options: Options, say: Say, run_dir: Path, name: str, system: Any,
        broker: BrokerUnderTest, via_trigger: bool = False,
    ) -> None:  # fmt: skip
        from bench.system import pids

        self.o = options
        self.say = say
        #: the whole run's folder (profiles go there)
        self.run_dir = run_dir
        self.name = name
        self.system = system
        self.kafka: KafkaSettings = system.kafka
        self.lifecycle = system.topics.lifecycle
        starts = starts_topic(system.topics, options.starts_on)
        self.workload = (
            (bench_trigger_workload if via_trigger else bench_workload)(system.prefix, starts)
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

    async def point(
        self, rate: float, seconds: float, label: str, drain_limit: float | None = None
    ) -> dict[str, Any]:
        """One rate offered for ``seconds``; the wait for its stragglers ends at
        ``drain_limit`` (default: the options') at the latest."""
        from bench.system import records_written

        count = max(1, int(rate * seconds))
        plan = plan_for(
            self.workload, self.kafka, self.lifecycle, rate=rate, count=count, label=label,
            warmup=min(self.o.warmup, seconds / 3), drain_timeout=self.o.drain_timeout,
            drain_limit=self.o.drain_limit if drain_limit is None else drain_limit,
        )  # fmt: skip
        load_before = procstat.load_average()
        written_before = await records_written(self.kafka, self.system.prefix)
        batches_before = await self.batch_samples()
        result = await run_loadgen(plan, DrainProgress(self.say, count), self.sampler)
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
        profile_file = self.run_dir / "coordinator.pyspy.txt"
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
