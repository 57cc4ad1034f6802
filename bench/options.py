"""What one benchmark run does: the full run (< 10 minutes) or the smoke run (seconds)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

RESULTS_DIR = Path("bench/results")
PLOT_PATH = Path("bench/latency_throughput.png")


class StartsOn(StrEnum):
    """The engine topic a bench run sends the bench saga's starts to (`Options.starts_on`)."""

    STARTS = "starts"
    CONTROL = "control"


@dataclass(frozen=True)
class Options:
    #: offered loads of the sweep (sagas/s), open loop, in increasing order
    rates: tuple[float, ...] = (100, 250, 500, 1000, 1500, 2000, 3000)
    #: seconds of load per sweep point
    duration: float = 10.0
    #: seconds at the start of a point not counted in its steady-state rate
    warmup: float = 2.0
    #: the sweep stops after the first point whose achieved rate is below this share
    stop_below: float = 0.8
    #: seconds of the sustained run (0: none), offered ``sustained_rate`` or the best the
    #: sweep achieved, whichever is lower. The target is 1,500 *completed* sagas/s: offered
    #: exactly that, an open-loop run completes less as soon as its latency grows at all
    #: (what is still in flight at the end is not counted), so it is offered 10% more.
    sustained: float = 60.0
    sustained_rate: float = 1650.0
    #: overload points, as multiples of the best rate the bench sweep achieved (its peak),
    #: each run twice on fresh systems: admission control off (SAGAS_MAX_IN_FLIGHT=0), then
    #: on (``overload_bound``; None: the coordinator's default). Started through the bench
    #: saga's trigger topic, which is what admission control pauses. Empty: none.
    overload: tuple[float, ...] = (2.0, 3.0)
    overload_bound: int | None = None
    #: where the sweep, the sustained run, the guarantees comparison and the park phase
    #: send the bench saga's starts (the overload points start it by trigger): "starts"
    #: (``saga.starts``, `SagaClient`'s way, paused at the bound) or "control"
    #: (``saga.control``, the HTTP API's way, never paused: a replica moves the starts
    #: that find no room under its bound to ``saga.starts``)
    starts_on: StartsOn = StartsOn.STARTS
    #: sagas parked on a participant that does not answer, for memory and recovery (0: none)
    park: int = 100_000
    park_rate: float = 5000.0
    #: after a point's last start, give up waiting for its stragglers once none has ended
    #: for this many seconds (``recovery_timeout`` for the recovery), or after
    #: ``drain_limit`` seconds in all: a backlog that still drains (the overload points) is
    #: waited for, so "missing" means lost or stuck, not still queued in Kafka
    drain_timeout: float = 60.0
    drain_limit: float = 600.0
    recovery_timeout: float = 300.0
    #: records of the raw broker ceiling (pipelined) and of the single round-trip test
    ceiling_records: int = 100_000
    ceiling_single: int = 2_000
    #: also sweep the order saga with the four reference services, at these rates
    services: bool = True
    services_rates: tuple[float, ...] = (100, 250, 500, 1000)
    #: py-spy the coordinator for this many seconds during the sustained run (0: no)
    profile: float = 30.0
    #: step deadline of the bench saga: longer than parking lasts, so parked sagas stay in
    #: flight (a saga a crash leaves waiting is retried only after it)
    step_timeout: float = 900.0
    #: partitions per topic of the systems under test (the ceiling keeps its own). One
    #: coordinator replica needs one; DESIGN.md's default 8 is for scaling out to 8
    #: replicas. None: SAGAS_PARTITIONS if set, else 1.
    partitions: int | None = None
    #: seconds of unmeasured load on a broker that lives for the whole section (Apache
    #: Kafka) before its first measured point: its JVM compiles its hot paths meanwhile
    broker_warmup: float = 20.0
    #: the brokers measured, in order, each in a section of its own (`bench.brokers`);
    #: KAFKA_BOOTSTRAP_SERVERS, when set, replaces them with that cluster ("external")
    brokers: tuple[str, ...] = ("embedded", "kafka")
    #: processing guarantees to compare on each broker with transactions (`bench.guarantees`):
    #: the bench saga at ``guarantee_rate`` for ``duration`` s, ``guarantee_runs`` rounds
    #: each; () skips the comparison
    guarantees: tuple[str, ...] = ()
    guarantee_rate: float = 500.0
    guarantee_runs: int = 2
    smoke: bool = False
    results_dir: Path = RESULTS_DIR
    plot: Path | None = PLOT_PATH

    @property
    def system_partitions(self) -> int:
        return self.partitions or int(os.environ.get("SAGAS_PARTITIONS") or 1)

    def broker_choices(self) -> tuple[str, ...]:
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            return ("external",)
        return self.brokers

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["partitions"] = self.system_partitions
        doc["results_dir"] = str(self.results_dir)
        doc["plot"] = str(self.plot) if self.plot else None
        return doc


FULL = Options()

#: seconds, not minutes: keeps the benchmark working in `make test`
SMOKE = replace(
    FULL,
    rates=(50, 150),
    duration=3.0,
    warmup=1.0,
    sustained=0.0,
    park=500,
    park_rate=1000.0,
    drain_timeout=30.0,
    recovery_timeout=60.0,
    ceiling_records=5_000,
    ceiling_single=100,
    services=False,
    services_rates=(50,),
    overload=(),
    profile=0.0,
    # short enough that a saga left waiting by a crash is retried within the recovery wait
    step_timeout=20.0,
    smoke=True,
    plot=None,
    # the embedded half of `make test` needs no Java; the Apache Kafka half sets
    # KAFKA_BOOTSTRAP_SERVERS, which makes the smoke run use that cluster
    brokers=("embedded",),
    broker_warmup=3.0,
)
