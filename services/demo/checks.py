"""The invariants a run must keep, checked against what the services say about themselves.

Each check returns a `Check`: whether it holds, a one-line summary, and, when
it does not, exactly which orders, SKUs or amounts are wrong.

* every saga reached a terminal state (seen on ``saga.lifecycle``);
* every order is approved or rejected to match its saga (order service);
* stock is conserved: available + reserved + shipped = initial per SKU, none
  negative, nothing left reserved, and shipped = what approved orders bought
  (inventory ``/invariants``); an order counts as approved when its saga completed;
* money is conserved: captured - refunded = the total of approved orders, no
  rejected order keeps money, no hold left behind (payment ``/invariants``);
* a failed saga compensated its succeeded steps in reverse order (compensation
  commands on the command topics, in the order they were sent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sagas.definition import SagaDefinition
from services.demo.observe import SagaTrace
from services.demo.scenario import Order


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)


def every_saga_terminal(orders: Sequence[Order], traces: Mapping[str, SagaTrace]) -> Check:
    name = "every saga terminal"
    open_ = [o for o in orders if not (traces.get(o.saga_id) and traces[o.saga_id].outcome)]
    if not open_:
        return Check(name, True, f"{len(orders)} of {len(orders)} sagas ended")
    problems = [
        f"order {o.order_id} (saga {o.saga_id}): "
        + ("never started" if o.saga_id not in traces else "started, not ended")
        for o in open_
    ]
    return Check(name, False, f"{len(open_)} of {len(orders)} sagas did not end", problems)


def orders_match_sagas(
    orders: Sequence[Order], traces: Mapping[str, SagaTrace], view: Mapping[str, Any] | None
) -> Check:
    name = "orders match their sagas"
    if view is None:
        return Check(name, False, "the order service did not answer /invariants")
    known = view.get("orders", {})
    problems = []
    for o in orders:
        outcome = traces[o.saga_id].outcome if o.saga_id in traces else None
        expected = "approved" if outcome == "completed" else "rejected"
        status = known.get(o.order_id)
        if status is None:
            problems.append(f"order {o.order_id}: unknown to the order service")
        elif outcome is None:
            problems.append(f"order {o.order_id}: {status['status']}, its saga has not ended")
        elif status["status"] != expected or status.get("saga_outcome") != outcome:
            problems.append(
                f"order {o.order_id}: {status['status']} (saga outcome there: "
                f"{status.get('saga_outcome')}), but saga {o.saga_id} ended {outcome}"
            )
    counts = view.get("counts", {})
    summary = (
        f"{counts.get('approved', 0)} approved, {counts.get('rejected', 0)} rejected, "
        f"{counts.get('pending', 0)} pending"
    )
    return Check(name, not problems, summary, problems)


def stock_conserved(
    orders: Sequence[Order],
    approved: set[str],
    initial: Mapping[str, int],
    view: Mapping[str, Any] | None,
) -> Check:
    name = "stock conserved"
    if view is None:
        return Check(name, False, "the inventory service did not answer /invariants")
    bought: Counter[str] = Counter()
    for o in orders:
        if o.order_id in approved:
            for sku, qty in o.lines:
                bought[sku] += qty
    problems = []
    skus = view.get("skus", {})
    for sku in sorted(set(initial) | set(skus)):
        s = skus.get(sku)
        if s is None:
            problems.append(f"{sku}: unknown to the inventory service")
            continue
        total = s["available"] + s["reserved"] + s["shipped"]
        figures = f"available {s['available']} + reserved {s['reserved']} + shipped {s['shipped']}"
        if total != initial.get(sku, 0) or min(s["available"], s["reserved"], s["shipped"]) < 0:
            problems.append(f"{sku}: {figures} = {total}, initial {initial.get(sku, 0)}")
        if s["reserved"] != 0:
            problems.append(f"{sku}: {s['reserved']} still reserved after every saga ended")
        if s["shipped"] != bought[sku]:
            problems.append(f"{sku}: shipped {s['shipped']}, approved orders bought {bought[sku]}")
    shipped = sum(s["shipped"] for s in skus.values())
    summary = (
        f"{len(skus)} SKUs balance; {shipped} units shipped"
        if not problems
        else (f"{len(problems)} problem(s)")
    )
    return Check(name, not problems, summary, problems)


def money_conserved(
    orders: Sequence[Order], approved: set[str], view: Mapping[str, Any] | None
) -> Check:
    name = "money conserved"
    if view is None:
        return Check(name, False, "the payment service did not answer /invariants")
    expected = sum(o.amount for o in orders if o.order_id in approved)
    captured, refunded = view["captured"], view["refunded"]
    problems = []
    if captured - refunded != expected:
        problems.append(
            f"captured {_money(captured)} - refunded {_money(refunded)} = "
            f"{_money(captured - refunded)}, approved orders total {_money(expected)}"
        )
    kept = view.get("kept_by_saga", {})
    for o in orders:
        has = kept.get(o.saga_id)
        if o.order_id in approved and has != o.amount:
            problems.append(
                f"order {o.order_id} approved for {_money(o.amount)}, payment keeps "
                f"{_money(has or 0)}"
            )
        elif o.order_id not in approved and has:
            problems.append(f"order {o.order_id} rejected, payment keeps {_money(has)}")
    held = sum(view.get("exposure", {}).values()) - view["kept"]
    if held:
        problems.append(f"{_money(held)} still authorized (held) after every saga ended")
    if not view.get("within_limits", True):
        problems.append(f"a customer is over the credit limit: {view.get('exposure')}")
    summary = (
        f"captured {_money(captured)} - refunded {_money(refunded)} = {_money(expected)}"
        if not problems
        else f"{len(problems)} problem(s)"
    )
    return Check(name, not problems, summary, problems)


def compensated_in_reverse(
    orders: Sequence[Order],
    traces: Mapping[str, SagaTrace],
    definitions: Sequence[SagaDefinition],
) -> Check:
    """Each compensated saga undid every step that took effect, last one first.

    "Took effect" is the participant's success event, ordered by its time.
    The engine may also compensate a step whose outcome it could not know in
    time (in doubt: a choreographed success it had not seen yet when another
    step failed); that undo is harmless and allowed, but must keep the
    reverse order of the definition too.
    """
    name = "compensations in reverse order"
    compensable = {
        d.name: [s.name for s in d.steps if s.compensation is not None] for d in definitions
    }
    problems, checked, multi = [], 0, 0
    for o in orders:
        t = traces.get(o.saga_id)
        if t is None or t.outcome not in ("compensated", "aborted"):
            continue
        checked += 1
        order = compensable.get(t.saga or "", [])
        took = [s for s in t.took_effect() if s in order]
        actual = t.compensated_steps()
        multi += len(took) > 1
        ranks = [order.index(s) for s in actual if s in order]
        times = [c.at for c in t.compensations]
        early = t.compensating_at is not None and times and min(times) < t.compensating_at
        wrong = (
            [s for s in actual if s in took] != took[::-1]
            or ranks != sorted(ranks, reverse=True)
            or len(set(ranks)) != len(ranks)
            or early
        )
        if wrong:
            problems.append(
                f"order {o.order_id} (saga {o.saga_id}): took effect {took}, compensated "
                f"{actual}" + (" before saga.compensating" if early else "")
            )
    summary = f"{checked} compensated sagas ({multi} with 2+ steps undone), all last-first"
    if problems:
        summary = f"{len(problems)} of {checked} compensated sagas undone out of order"
    return Check(name, not problems, summary, problems)


def run_all(
    orders: Sequence[Order],
    traces: Mapping[str, SagaTrace],
    definitions: Sequence[SagaDefinition],
    initial_stock: Mapping[str, int],
    views: Mapping[str, Any],
) -> list[Check]:
    """Every check; ``views`` holds the /invariants documents by service name."""
    order_view = views.get("order")
    # Approved = its saga completed (the lifecycle); the second check holds the order
    # service to the same, so stock and money are judged against the sagas themselves.
    approved = {
        o.order_id for o in orders if (t := traces.get(o.saga_id)) and t.outcome == "completed"
    }
    return [
        every_saga_terminal(orders, traces),
        orders_match_sagas(orders, traces, order_view),
        stock_conserved(orders, approved, initial_stock, views.get("inventory")),
        money_conserved(orders, approved, views.get("payment")),
        compensated_in_reverse(orders, traces, definitions),
    ]


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"
