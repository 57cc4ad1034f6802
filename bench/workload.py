"""What the benchmark runs: the 4-step bench saga and the order saga of the reference services.

The bench saga has four orchestrated steps, each served by its own pair of
topics (``bench.sN.commands`` / ``bench.sN.replies``), like four services.
Every saga whose data says ``"fail": true`` is refused at step 3, so the
coordinator compensates steps 2 and 1 (in reverse order) and ends it
``compensated``; the load generator marks every tenth saga that way.

The order saga is the shipped ``order_orchestrated`` definition (5 steps,
shipping is the pivot) run by the four reference services; there the carrier
refuses a share of the shipments (``shipping.failure_rate``), which fails
step 4 and compensates 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.options import StartsOn
from events.topics import Topics

BENCH_SAGA = "bench"
STEPS = 4
FAIL_STEP = 3
SOURCE = "sagastream/bench"
TERMINAL_TYPES = ("saga.completed", "saga.compensated", "saga.failed", "saga.aborted")
#: the bench saga's trigger: the overload points start sagas with it, so that admission
#: control (which pauses trigger topics, not the control topic) applies to them
TRIGGER_TYPE = "bench.requested"


def step_name(n: int) -> str:
    return f"s{n}"


def command_topic(prefix: str, n: int) -> str:
    return f"{prefix}bench.{step_name(n)}.commands"


def reply_topic(prefix: str, n: int) -> str:
    return f"{prefix}bench.{step_name(n)}.replies"


def trigger_topic(prefix: str) -> str:
    return f"{prefix}bench.starts"


def bench_definition(prefix: str, *, timeout: float) -> dict[str, Any]:
    """The bench saga as a definition document (see `sagas.definition`).

    ``timeout`` is long on purpose: the memory and recovery phases park sagas on
    a participant that does not answer for minutes, and they must still be in
    flight (not timed out) when measured.
    """
    steps = []
    for n in range(1, STEPS + 1):
        s = step_name(n)
        step: dict[str, Any] = {
            "name": s,
            "command": {"type": f"bench.{s}.do", "topic": command_topic(prefix, n)},
            "reply_topic": reply_topic(prefix, n),
            "success": [f"bench.{s}.done"],
            "failure": [f"bench.{s}.refused"],
            "timeout": timeout,
            "retry": {"attempts": 3, "initial": 0.5},
        }
        if n < STEPS:
            step["compensation"] = {
                "type": f"bench.{s}.undo",
                "topic": command_topic(prefix, n),
                "success": [f"bench.{s}.undone"],
                "timeout": timeout,
                "retry": {"attempts": 5, "initial": 0.5},
            }
        steps.append(step)
    return {
        "name": BENCH_SAGA,
        "version": 1,
        "trigger": {"topic": trigger_topic(prefix), "type": TRIGGER_TYPE},
        "steps": steps,
    }


def write_bench_definition(prefix: str, directory: Path, *, timeout: float) -> Path:
    path = directory / "bench_saga.yaml"
    path.write_text(yaml.safe_dump(bench_definition(prefix, timeout=timeout), sort_keys=False))
    return path


@dataclass(frozen=True)
class Workload:
    """One of the two systems the sweep can drive."""

    name: str  # "bench" or "order"
    description: str
    #: where a saga is started: ``saga.starts`` as `SagaClient` sends them (bench), or
    #: the trigger topic (the order saga, and the bench saga at the overload points)
    start_topic: str
    fail_every: int  # every n-th saga is made to fail (bench); 0 = the services decide
    #: True: ``start_topic`` is a trigger topic (events of the trigger type), not start requests
    via_trigger: bool = False

    @property
    def is_bench(self) -> bool:
        return self.name == "bench"


def starts_topic(topics: Topics, starts_on: StartsOn | str) -> str:
    """The engine topic of ``topics`` that ``--starts-on`` names (`Options.starts_on`)."""
    return topics.control if StartsOn(starts_on) is StartsOn.CONTROL else topics.starts


def bench_workload(prefix: str, starts_topic: str) -> Workload:
    """The bench saga started by ``saga.start`` requests on ``starts_topic``."""
    on = starts_topic.removeprefix(prefix)
    return Workload(
        "bench",
        f"4-step bench saga, bench participants; 10% refused at step {FAIL_STEP} (2 compensations)"
        + ("" if on == "saga.starts" else f"; started on {on}"),
        starts_topic,
        10,
    )


def bench_trigger_workload(prefix: str, starts_topic: str = "") -> Workload:
    """The bench saga started by its trigger event (the overload points)."""
    return Workload(
        "bench",
        f"4-step bench saga started by {TRIGGER_TYPE} on its trigger topic",
        trigger_topic(prefix),
        10,
        via_trigger=True,
    )


def order_workload(prefix: str) -> Workload:
    return Workload(
        "order",
        "5-step order saga, the four reference services; 10% refused by the carrier at "
        "step 4 (3 compensations)",
        f"{prefix}orders",
        0,
    )
