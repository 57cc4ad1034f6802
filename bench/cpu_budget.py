"""What a point's CPU says about the rate this machine carries at that point's costs.

Every process of a run shares the machine's cores: the broker, the coordinator, the
participants, the load generator and the launcher (everything the issues' targets put
on the one machine). Their CPU per completed saga, summed, gives the rate the cores
carry at that cost (cores / CPU per saga); the same sum without the coordinator's share
gives it for a coordinator that cost nothing. Both are figures of the point they were
measured at, not bounds on higher rates: the other processes get cheaper per saga as
the rate and the coordinator's batches grow (on Apache Kafka the broker took 440 us per
saga at 1,000/s and 176 at 2,000/s in one run), and a point that fell behind divides
the load generator's work by fewer completed sagas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CpuBudget", "budget", "budget_line", "budgets"]


@dataclass(frozen=True)
class CpuBudget:
    """CPU per completed saga at one point: of every process, and of all but the coordinator."""

    offered_per_s: float
    label: str
    cores: int
    total_us: float
    others_us: float

    @property
    def ceiling_per_s(self) -> float:
        """The rate ``cores`` carry at this CPU per saga."""
        return self.cores * 1e6 / self.total_us

    @property
    def ceiling_without_coordinator_per_s(self) -> float:
        """The rate ``cores`` carry if the coordinator cost nothing."""
        return self.cores * 1e6 / self.others_us


def budget(point: dict[str, Any], cores: int | None, label: str = "") -> CpuBudget | None:
    """A point's budget; None without CPU figures, without a process besides the
    coordinator's, or without a count of cores (``os.cpu_count()`` may not know)."""
    per = point.get("cpu_us_per_saga") or {}
    total = sum(per.values())
    others = sum(us for name, us in per.items() if not name.startswith("coordinator"))
    if cores is None or cores <= 0 or total <= 0 or others <= 0:
        return None
    return CpuBudget(point["offered_per_s"], label, cores, total, others)


def budgets(system: dict[str, Any], cores: int | None) -> list[CpuBudget]:
    """The budgets of a system's sweep points and of its sustained run."""
    points = [(p, "") for p in system.get("sweep", [])]
    if system.get("sustained"):
        points.append((system["sustained"], "sustained"))
    return [b for p, label in points if (b := budget(p, cores, label)) is not None]


def budget_line(b: CpuBudget) -> str:
    """One point's budget, for the console and markdown reports."""
    at = f"{b.offered_per_s:,.0f}/s" + (f" ({b.label})" if b.label else "")
    return (
        f"CPU budget at {at}: every process {b.total_us:,.0f} us per saga, so {b.cores} "
        f"cores carry at most {b.ceiling_per_s:,.0f}/s at that cost; without the "
        f"coordinator's share {b.others_us:,.0f} us, at most "
        f"{b.ceiling_without_coordinator_per_s:,.0f}/s at those costs with a coordinator that "
        "cost nothing"
    )
