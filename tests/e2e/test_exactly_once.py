"""The order system in ``SAGAS_PROCESSING_GUARANTEE=exactly_once`` on Apache Kafka.

Every process (coordinators and services) runs with the setting. Orders flow with
the demo's injected business failures while a coordinator is SIGKILLed and
restarted, or SIGSTOPped past its session and resumed after its partitions moved
to the other replica. Then, besides the demo's invariants (every saga ended,
stock and money balance), the command topics and ``saga.lifecycle`` are read raw
with a ``read_committed`` consumer: no command id and no lifecycle event may be
in two records (`tests.faults.delivery`) -- in at_least_once a crash re-sends
them, here an interrupted batch's transaction is aborted and never read.

The embedded broker has no transactions: these tests run in the Apache Kafka half.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from sagas.kafka.embedded_broker import EmbeddedBroker
from services.demo.drive import RunResult, drive
from services.demo.scenario import Scenario
from services.launch import Launcher, SystemConfig
from tests.faults.delivery import DeliveryReport, duplicate_deliveries
from tests.kafka_fixtures import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

EXACTLY_ONCE = {"SAGAS_PROCESSING_GUARANTEE": "exactly_once"}
#: Apache Kafka's smallest session timeout (group.min.session.timeout.ms)
SESSION = {"SAGAS_SESSION_TIMEOUT": "6", "SAGAS_HEARTBEAT_INTERVAL": "1"}


@pytest.fixture(autouse=True)
def _transactions(embedded_broker: EmbeddedBroker | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if embedded_broker is not None:
        pytest.skip(
            "the embedded Tansu broker has no Kafka transactions (exactly_once is refused "
            "there): runs on Apache Kafka (make test-kafka)"
        )
    # the drive's observers read read_committed too, as every reader of the system should
    monkeypatch.setenv("SAGAS_PROCESSING_GUARANTEE", "exactly_once")


def _config(scenario: Scenario, coordinators: int) -> SystemConfig:
    return SystemConfig(
        mode="orchestrated",
        coordinators=coordinators,
        services_config=scenario.services_config(),
        coordinator_env={**EXACTLY_ONCE, **SESSION, "SAGAS_LOG_LEVEL": "info"},
        service_env=EXACTLY_ONCE,
        ready_timeout=120.0,
    )


def _assert_invariants(result: RunResult) -> None:
    broken = [c for c in result.checks if not c.ok]
    assert not broken, "\n".join(
        f"{c.name}: {c.summary}\n  " + "\n  ".join(c.problems[:20]) for c in broken
    )
    seen = Counter(result.trace(o).outcome or "not ended" for o in result.orders)
    assert seen["completed"] > 0 and seen["compensated"] > 0, seen
    assert seen["not ended"] == 0, seen


async def _deliveries(system: Launcher, isolation: str = "read_committed") -> DeliveryReport:
    commands = {t for d in system.definitions for t in d.topics_written()}
    assert commands, "the order saga writes commands"
    return await duplicate_deliveries(
        system.kafka, commands=commands, lifecycle=system.topics.lifecycle, isolation=isolation
    )


async def test_the_order_saga_completes_through_a_coordinator_sigkill_with_no_command_or_lifecycle_event_twice(  # noqa: E501
    tmp_path: Path,
) -> None:
    scenario = Scenario(orders=150, rate=30, seed=21)
    async with Launcher(_config(scenario, 1), run_dir=tmp_path) as system:

        async def crash() -> None:
            await system.restart("coordinator")  # SIGKILL mid-flow, start again, wait ready

        result = await drive(system, scenario, faults={50: crash}, settle_timeout=90)
        report = await _deliveries(system)
        raw = await _deliveries(system, "read_uncommitted")

    _assert_invariants(result)
    assert report.records[system.topics.lifecycle] >= len(result.orders), report.describe()
    assert report.ok, report.describe()
    # what the killed replica had written but not committed stays in the log, aborted
    print(f"read_uncommitted, for comparison: {raw.describe()}")


async def test_a_coordinator_paused_past_its_session_is_fenced_and_nothing_it_wrote_is_read(
    tmp_path: Path,
) -> None:
    scenario = Scenario(orders=240, rate=30, seed=22)
    async with Launcher(_config(scenario, 2), run_dir=tmp_path) as system:
        zombie = system["coordinator-1"]
        paused: list[float] = []

        async def pause() -> None:
            heir_log = system["coordinator-2"].log_path
            seen = heir_log.stat().st_size
            zombie.signal(signal.SIGSTOP)
            try:
                # past the 6 s session: the group gives its partitions to coordinator-2,
                # whose producers take the partitions' transactional ids
                await eventually(
                    lambda: _took_all(heir_log, seen),
                    60,
                    0.2,
                    what="coordinator-2 to take every partition over",
                )
            finally:
                zombie.signal(signal.SIGCONT)
                paused.append(1.0)

        result = await drive(system, scenario, faults={60: pause}, settle_timeout=120)
        assert paused, "the pause ran"
        report = await _deliveries(system)
        raw = await _deliveries(system, "read_uncommitted")
        alive, code = zombie.alive, zombie.returncode
        log = zombie.log_path.read_text(errors="replace")

    _assert_invariants(result)
    assert report.ok, report.describe()
    # The resumed replica was either fenced mid-transaction (it says so in one line and
    # exits 75; its aborted records are visible to read_uncommitted only) or had nothing
    # open and rejoined the group: never a hang, never another exit.
    fenced = "replica stopped (exit 75), a restart rejoins the group" in log
    assert (fenced and code == 75) or (alive and not fenced), (alive, code, log[-3000:])
    print(f"zombie fenced: {fenced}; read_uncommitted, for comparison: {raw.describe()}")


def _took_all(log: Path, since: int) -> bool:
    with log.open("rb") as f:
        f.seek(since)
        new = f.read().decode(errors="replace")
    return any("partitions [0, 1, 2, 3, 4, 5, 6, 7] assigned" in line for line in new.splitlines())
