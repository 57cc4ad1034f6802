"""The demo's transfers and insurance claims, and a simulated reviewer who answers them.

Beside the orders (`services.demo.drive`), the demo submits claims (healthcare) and
transfers (finance). Some of them wait for a person (`awaits:` steps: a high
amount, an unsure or denying triage agent, a large transfer). The reviewer
follows ``saga.lifecycle``, and for each ``saga.step.waiting`` approves, rejects,
answers too late (sent after the deadline) or never answers, after a random delay.
Then every saga must have ended, a rejected or unanswered one never completed, and
the insurer's and the bank's books must hold. A late answer is ignored if the
deadline was applied first; under load (or while a replica takes over) the
deadline may be applied after it, and then the approval wins: the deadline travels
through Kafka and is ordered with the signal, so either order is a correct end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.codec import decode, encode
from events.envelope import derived_id, new_event
from sagas.client import SagaClient
from sagas.kafka.guarantee import reader_isolation
from services.demo.checks import Check
from services.launch import Launcher

SOURCE = "sagastream/demo"
TERMINAL = {"saga.completed", "saga.compensated", "saga.failed", "saga.aborted"}
#: what the reviewer does with a waiting step, and how often
ANSWERS = (("approve", 0.65), ("reject", 0.15), ("late", 0.10), ("never", 0.10))
PROCEDURES = (
    "physiotherapy session after knee surgery",
    "mri scan of the knee",
    "emergency room visit for broken wrist with x-ray",
    "general practitioner consultation for flu symptoms",
    "cosmetic botox injections",
    "hair transplant for baldness",
    "blood test cholesterol screening",
    "dental filling for cavity",
)
MEMBERS = ("mem-ann", "mem-ben", "mem-ann", "mem-ben", "mem-lapsed")
PAYEES = ("acc-bob", "acc-bob", "acc-bob", "acc-closed", "acc-sanctioned")
SIGNALS = {
    "insurance-claim": ("claim.approved", "claim.rejected"),
    "bank-transfer": ("transfer.approved", "transfer.declined"),
}


@dataclass(frozen=True)
class DomainScenario:
    claims: int = 40
    transfers: int = 40
    rate: float = 10.0  # of each, per second
    seed: int = 7
    deadline: float = 6.0  # seconds every waiting step gets in the demo
    slowest_answer: float = 4.0  # an answer in time comes within this many seconds

    def services_config(self) -> dict[str, Any]:
        """Allowances that run out for one member only, late in the run; a payer rich
        enough that the transfers that fail do so for screening, a closed payee or a
        person's no."""
        members = {
            "mem-ann": {"allowance": 2_000_000},
            "mem-ben": {"allowance": 400_000},
            "mem-lapsed": {"allowance": 500_000, "active": False},
        }
        accounts = {
            "acc-alice": {"balance": 50_000_000},
            "acc-bob": {"balance": 500_000},
            "acc-closed": {"balance": 0, "closed": True},
            "acc-sanctioned": {"balance": 0},
        }
        return {"claims": {"members": members}, "bank": {"accounts": accounts}}

    def claim_data(self) -> list[tuple[str, dict[str, Any]]]:
        rng = random.Random(self.seed)
        out = []
        for i in range(self.claims):
            sid = derived_id("demo-claim", self.seed, i)
            amount = rng.choice((3_000, 8_000, 25_000, 60_000, 120_000))
            data = {
                "claim_id": f"clm-{i + 1:04d}",
                "member_id": rng.choice(MEMBERS),
                "provider_id": f"prov-{rng.randint(1, 9)}",
                "amount": amount,
                "procedure": rng.choice(PROCEDURES),
            }
            out.append((sid, data))
        return out

    def transfer_data(self) -> list[tuple[str, dict[str, Any]]]:
        rng = random.Random(self.seed + 1)
        out = []
        for i in range(self.transfers):
            sid = derived_id("demo-transfer", self.seed, i)
            data = {
                "transfer_id": f"trf-{i + 1:04d}",
                "from_account": "acc-alice",
                "to_account": rng.choice(PAYEES),
                "amount": rng.choice((5_000, 40_000, 300_000, 600_000)),
            }
            out.append((sid, data))
        return out


@dataclass
class DomainResult:
    saga: str
    ids: list[str]
    terminal: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)  # saga id -> approve|reject|...
    view: Any = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def outcomes(self) -> Counter[str]:
        return Counter(self.terminal.get(i, "not ended") for i in self.ids)


class Reviewer:
    """Answers ``saga.step.waiting`` events of the sagas it is given, as a person would."""

    def __init__(self, system: Launcher, scenario: DomainScenario, sagas: dict[str, str]) -> None:
        self.system, self.scenario = system, scenario
        self.sagas = sagas  # saga id -> definition name
        self.rng = random.Random(scenario.seed + 2)
        self.answers: dict[str, str] = {}
        self.terminal: dict[str, str] = {}
        self.pending: set[asyncio.Task[None]] = set()

    async def run(self, client: SagaClient) -> None:
        consumer = AIOKafkaConsumer(
            self.system.topics.lifecycle,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level=reader_isolation(),
            **self.system.kafka.aiokafka_kwargs(),
        )
        await consumer.start()
        try:
            async for record in consumer:
                with contextlib.suppress(Exception):
                    self.see(decode(record.value, record.headers), client)
        finally:
            await consumer.stop()
            for task in self.pending:
                task.cancel()

    def see(self, event: Any, client: SagaClient) -> None:
        saga = self.sagas.get(event.sagaid)
        if saga is None:
            return
        if event.type in TERMINAL:
            self.terminal[event.sagaid] = event.type.removeprefix("saga.")
        elif event.type == "saga.step.waiting" and event.sagaid not in self.answers:
            roll, answer = self.rng.random(), "never"
            for name, share in ANSWERS:
                if roll < share:
                    answer = name
                    break
                roll -= share
            self.answers[event.sagaid] = answer
            if answer != "never":
                task = asyncio.create_task(self.answer(client, event.sagaid, saga, answer))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)

    async def answer(self, client: SagaClient, saga_id: str, saga: str, answer: str) -> None:
        s = self.scenario
        late = answer == "late"
        delay = (
            s.deadline + self.rng.uniform(1, 2) if late else self.rng.uniform(0.2, s.slowest_answer)
        )
        await asyncio.sleep(delay)
        yes, no = SIGNALS[saga]
        who = f"reviewer-{self.rng.randint(1, 3)}"
        if answer == "reject":
            await client.signal(saga_id, no, {"reason": "not covered", "rejected_by": who})
        else:
            await client.signal(saga_id, yes, {"approved_by": who})


async def drive_domains(
    system: Launcher, scenario: DomainScenario, names: tuple[str, ...], settle_timeout: float
) -> list[DomainResult]:
    """Submit the claims and/or transfers, review them, wait until all end, check."""
    work = {
        "claim": ("insurance-claim", "claims", "claim.submitted", scenario.claim_data()),
        "transfer": ("bank-transfer", "transfers", "transfer.requested", scenario.transfer_data()),
    }
    chosen = [work[n] for n in names if n in work]
    sagas = {sid: saga for saga, _, _, items in chosen for sid, _ in items}
    reviewer = Reviewer(system, scenario, sagas)
    producer = AIOKafkaProducer(**system.kafka.producer_kwargs(), linger_ms=5)
    await producer.start()
    async with SagaClient(system.kafka) as client:
        watching = asyncio.create_task(reviewer.run(client))
        try:
            for n in range(max((len(items) for *_, items in chosen), default=0)):
                for _, topic, type_, items in chosen:
                    if n < len(items):
                        sid, data = items[n]
                        event = new_event(type_, source=SOURCE, sagaid=sid, data=data)
                        value, headers = encode(event)
                        await producer.send(
                            system.prefix + topic, value, key=sid.encode(), headers=headers
                        )
                await asyncio.sleep(1 / scenario.rate)
            await producer.flush()
            deadline = time.monotonic() + settle_timeout + scenario.deadline
            while len(reviewer.terminal) < len(sagas) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(
                0
            )  # late answers still in flight are sent: they must change nothing
            while reviewer.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            await producer.stop()
    results = []
    for saga, *_, items in chosen:
        ids = [sid for sid, _ in items]
        result = DomainResult(
            saga,
            ids,
            {i: reviewer.terminal[i] for i in ids if i in reviewer.terminal},
            {i: reviewer.answers[i] for i in ids if i in reviewer.answers},
        )
        service = "claims" if saga == "insurance-claim" else "bank"
        result.view = await _settled_view(system, service)
        result.checks = _checks(result)
        results.append(result)
    return results


async def _settled_view(system: Launcher, service: str, timeout: float = 30.0) -> Any:
    """The service's /invariants once two reads agree (a restarted service replays its
    changelog first, and answers nothing while it is down)."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        view = await system.get_json(service, "/invariants")
        if (view is not None and view == previous) or time.monotonic() > deadline:
            return view
        previous = view
        await asyncio.sleep(0.3)


def _checks(r: DomainResult) -> list[Check]:
    ended = [i for i in r.ids if i in r.terminal]
    checks = [Check("every saga ended", len(ended) == len(r.ids), f"{len(ended)}/{len(r.ids)}")]
    undone = [
        i
        for i, a in r.answers.items()
        if a in ("reject", "never") and r.terminal.get(i) == "completed"
    ]
    checks.append(
        Check(
            "no rejected or unanswered review completed",
            not undone,
            f"{len(undone)} did" if undone else "none did",
            [f"saga {i}: the reviewer's answer was {r.answers[i]!r}" for i in undone],
        )
    )
    v = r.view or {}
    if r.saga == "insurance-claim":
        completed = sum(1 for i in r.ids if r.terminal.get(i) == "completed")
        checks += [
            Check("no allowance overdrawn", bool(v.get("no_allowance_overdrawn")), ""),
            Check("books match (used = reserved + paid)", bool(v.get("books_match")), ""),
            Check("every paid claim approved", bool(v.get("every_paid_claim_approved")), ""),
            Check("released = reserved for every unpaid claim", v.get("unsettled") == 0, ""),
            Check("paid = completed", v.get("paid") == completed, f"{v.get('paid')} paid"),
        ]
    else:
        checks += [
            Check("money conserved", bool(v.get("conserved")), f"in flight {v.get('in_flight')}"),
            Check("nothing left in flight", v.get("in_flight") == 0, ""),
            Check("no negative balance", bool(v.get("non_negative")), ""),
        ]
    return checks


def print_domains(console: Any, results: list[DomainResult]) -> None:
    """Per saga: how its sagas ended, what the reviewer did, and the invariants."""
    from rich.table import Table

    from services.demo.report import checks_table

    for r in results:
        table = Table(title=f"{r.saga}: {len(r.ids)} sagas", title_justify="left")
        table.add_column("ended as")
        table.add_column("sagas", justify="right")
        for outcome, count in sorted(r.outcomes().items()):
            table.add_row(outcome, str(count))
        reviewed = Counter(r.answers.values())
        table.add_section()
        table.add_row("waited for a person", str(len(r.answers)))
        late_won = sum(
            1 for i, a in r.answers.items() if a == "late" and r.terminal.get(i) == "completed"
        )
        for answer, label in (
            ("approve", "  approved in time"),
            ("reject", "  rejected"),
            ("late", "  answered after the deadline"),
            ("never", "  never answered (deadline)"),
        ):
            table.add_row(label, str(reviewed.get(answer, 0)))
        if late_won:
            table.add_row("    of which applied (deadline not yet applied)", str(late_won))
        console.print(table)
        console.print(checks_table(r.checks))
