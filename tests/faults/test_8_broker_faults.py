"""Broker faults on a 3-node Apache Kafka while orders flow: nothing lost, nothing doubled.

The order system (2 coordinator replicas, 4 services) runs on its own 3-node
cluster (`tests.faults.brokers`): every topic with replication factor 3 and
``min.insync.replicas=2``, every producer with ``acks=all``; each node in a
network namespace of its own (`tests.faults.netns`) so that one can be cut off.
Each scenario places its orders open loop (`Plan.broker_orders` at
`Plan.broker_rate`), breaks the cluster part-way, and `tests.faults.checker.judge`
checks every invariant over everything placed so far:

* the leader of most of the coordinator's input partitions is SIGKILLed, stays
  down until the controller has moved its leaderships, and is started again;
* one broker is SIGSTOPped until the controller fences it (its session expired),
  then SIGCONTed;
* a rolling restart: each broker in turn SIGTERMed, started, and waited for
  until every replica of the system's topics is back in sync;
* a network partition: the leader's link is set down (it reaches neither the
  other brokers nor any client) until it is fenced, then up again.

``SAGAS_FAULTS_GUARANTEE`` (default ``at_least_once``) is passed to every process
as ``SAGAS_PROCESSING_GUARANTEE``, so the same scenarios run in either mode; in
``exactly_once`` each scenario also fails on any command id or lifecycle event found
in two records (`tests.faults.delivery`).
These tests start their own cluster: they run in the Apache Kafka half
(``SAGAS_TEST_BROKER=kafka``, `make test-kafka`, and `make test-faults`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from sagas.kafka.guarantee import GUARANTEE_VARIABLE, ProcessingGuarantee, guarantee_from_env
from sagas.loader import DefinitionRegistry
from sagas.topic_setup import coordinator_topics
from tests.faults.brokers import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, BrokerCluster
from tests.faults.checker import TABLE_FILES, VERDICTS, Verdict, judge, table
from tests.faults.plan import Plan
from tests.faults.system import FaultLog, FaultSystem, Outcome, new_run_dir

pytestmark = [pytest.mark.asyncio(loop_scope="package"), pytest.mark.apache_kafka]

GUARANTEE_ENV = "SAGAS_FAULTS_GUARANTEE"
DEFAULT_GUARANTEE = "at_least_once"
#: how long the cluster may take to fence a node, and a node to catch up
FENCE_TIMEOUT = 90.0
SYNC_TIMEOUT = 180.0


@dataclass
class Rig:
    cluster: BrokerCluster
    system: FaultSystem
    guarantee: ProcessingGuarantee
    inputs: list[str]  # the coordinator's input topics
    topics: list[str]  # every topic of the system, and the group offsets

    def name(self, scenario: str) -> str:
        mode = "" if self.guarantee == DEFAULT_GUARANTEE else f" [{self.guarantee}]"
        return f"broker: {scenario}{mode}"


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def rig(fault_plan: Plan) -> AsyncIterator[Rig]:
    guarantee = guarantee_from_env({GUARANTEE_VARIABLE: os.environ.get(GUARANTEE_ENV, "")})
    run_dir = new_run_dir(f"brokers-{fault_plan.name}")
    cluster = BrokerCluster()
    system: FaultSystem | None = None
    try:
        await cluster.start()
        system = await FaultSystem.start(
            run_dir,
            fault_plan,
            kafka=cluster.settings(),
            env=cluster.env(),
            domains=False,
            guarantee=guarantee,
        )
        launcher = system.launcher
        reads, _ = coordinator_topics(DefinitionRegistry(launcher.definitions), launcher.topics)
        every = await cluster.topic_names((launcher.prefix, launcher.app_id))
        yield Rig(cluster, system, guarantee, reads, [*every, "__consumer_offsets"])
    finally:
        try:
            if system is not None:
                await system.close()
        finally:
            await cluster.close()
            mine = [v for v in VERDICTS if v.scenario.startswith("broker: ")]
            if mine:
                path = run_dir / "fault-table.md"
                path.write_text(table(mine) + "\n")
                TABLE_FILES.append(path)


def assert_ok(verdict: Verdict) -> None:
    assert verdict.ok, verdict.explain()


def first_saga_after(outcome: Outcome) -> str:
    """Per fault: seconds from it until the first saga started after it had ended."""
    parts = []
    for fault in outcome.faults:
        ends = [
            t.ended_at
            for t in outcome.result.traces.values()
            if t.started_at is not None and t.started_at >= fault.at and t.ended_at is not None
        ]
        if ends:
            parts.append(f"{fault.what}: first saga after it ended +{min(ends) - fault.at:.1f}s")
    return "; ".join(parts)


async def run_scenario(
    rig: Rig,
    plan: Plan,
    tag: str,
    title: str,
    fault: Callable[[list[FaultLog]], Awaitable[None]],
    notes: list[str],
) -> Verdict:
    scenario = rig.system.scenario(tag, plan.broker_orders, plan.broker_rate)
    outcome = await rig.system.run(
        rig.name(title),
        scenario,
        faults={max(1, plan.broker_orders // 5): fault},
        settle=plan.settle,
    )
    outcome.notes += [*notes, first_saga_after(outcome)]
    verdict = await judge(rig.system, outcome, quiet_timeout=plan.settle)
    if rig.guarantee == "exactly_once":
        report = await rig.system.duplicate_deliveries()
        doubled = sum(len(ids) for ids in report.duplicates.values())
        read = sum(report.records.values())
        verdict.notes.append(f"{doubled} ids delivered twice ({read} records read)")
        if not report.ok:
            verdict.violations.append(report.describe())
    return verdict


async def test_topics_are_replicated_three_times_with_two_in_sync(rig: Rig) -> None:
    """What the scenarios rely on: every topic of the system (the engine's, the
    services', the changelogs) has 3 replicas and refuses acks=all writes below 2."""
    states = await rig.cluster.partitions(rig.topics)
    short = sorted({p.topic for p in states if len(p.replicas) != REPLICATION_FACTOR})
    assert not short, f"topics with fewer than {REPLICATION_FACTOR} replicas: {short}"
    changelogs = [t for t in rig.topics if t.endswith("changelog")]
    assert changelogs, f"no changelog topic among {rig.topics}"
    for topic in [*rig.inputs, *changelogs]:
        configs = await rig.cluster.topic_configs(topic)
        assert configs.get("min.insync.replicas") == str(MIN_INSYNC_REPLICAS), (topic, configs)


async def test_leader_of_coordinator_inputs_killed_and_restarted(
    rig: Rig, fault_plan: Plan
) -> None:
    notes: list[str] = []
    cluster = rig.cluster

    async def kill_leader(log: list[FaultLog]) -> None:
        node = await cluster.leader_of(rig.inputs)
        fault = FaultLog(f"SIGKILL broker {node + 1}", time.time())
        log.append(fault)
        await cluster.kill(node, signal.SIGKILL)
        moved = await cluster.wait_led_elsewhere(node, rig.inputs, FENCE_TIMEOUT)
        if fault_plan.broker_down:
            await asyncio.sleep(fault_plan.broker_down)  # the fault's length, not a wait
        cluster.restart(node)
        synced = await cluster.wait_back(node, rig.topics, SYNC_TIMEOUT)
        fault.back_at = time.time()
        notes.append(
            f"broker {node + 1} led most inputs; leaders moved after {moved:.1f}s, "
            f"back in sync {synced:.1f}s after its restart"
        )

    verdict = await run_scenario(
        rig, fault_plan, "b-kill", "SIGKILL input leader", kill_leader, notes
    )
    assert_ok(verdict)


async def test_broker_paused_past_its_session(rig: Rig, fault_plan: Plan) -> None:
    notes: list[str] = []
    cluster = rig.cluster

    async def freeze(log: list[FaultLog]) -> None:
        node = await cluster.leader_of(rig.inputs)
        fault = FaultLog(f"SIGSTOP broker {node + 1}", time.time())
        log.append(fault)
        cluster.pause(node)
        try:
            fenced = await cluster.wait_led_elsewhere(node, rig.inputs, FENCE_TIMEOUT)
            if fault_plan.broker_down:
                await asyncio.sleep(fault_plan.broker_down)
        finally:
            cluster.resume(node)
        synced = await cluster.wait_back(node, rig.topics, SYNC_TIMEOUT)
        fault.back_at = time.time()
        notes.append(
            f"broker {node + 1} fenced {fenced:.1f}s into its pause; "
            f"back in sync {synced:.1f}s after SIGCONT"
        )

    verdict = await run_scenario(rig, fault_plan, "b-stop", "SIGSTOP past session", freeze, notes)
    assert_ok(verdict)


async def test_rolling_restart_of_every_broker(rig: Rig, fault_plan: Plan) -> None:
    notes: list[str] = []
    cluster = rig.cluster

    async def roll(log: list[FaultLog]) -> None:
        for node in range(3):
            fault = FaultLog(f"restart broker {node + 1}", time.time())
            log.append(fault)
            await cluster.kill(node, signal.SIGTERM)
            cluster.restart(node)
            await cluster.wait_back(node, rig.topics, SYNC_TIMEOUT)
            fault.back_at = time.time()
            notes.append(f"broker {node + 1} back in sync after {fault.back_at - fault.at:.1f}s")

    verdict = await run_scenario(rig, fault_plan, "b-roll", "rolling restart", roll, notes)
    assert_ok(verdict)


async def test_network_partition_cuts_one_broker_off(rig: Rig, fault_plan: Plan) -> None:
    cluster = rig.cluster
    network = cluster.network
    if network is None:
        pytest.skip(f"no network namespaces here: {cluster.why_no_netns}")
    notes: list[str] = []

    async def partition(log: list[FaultLog]) -> None:
        node = await cluster.leader_of(rig.inputs)
        fault = FaultLog(f"cut broker {node + 1} off", time.time())
        log.append(fault)
        cluster.cut(node)
        try:
            fenced = await cluster.wait_led_elsewhere(node, rig.inputs, FENCE_TIMEOUT)
            if fault_plan.broker_down:
                await asyncio.sleep(fault_plan.broker_down)
        finally:
            cluster.heal(node)
        synced = await cluster.wait_back(node, rig.topics, SYNC_TIMEOUT)
        fault.back_at = time.time()
        notes.append(
            f"broker {node + 1} fenced {fenced:.1f}s after the cut; "
            f"back in sync {synced:.1f}s after healing"
        )

    verdict = await run_scenario(rig, fault_plan, "b-cut", "network partition", partition, notes)
    assert_ok(verdict)
