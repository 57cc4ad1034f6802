"""The latency-vs-throughput plot of a run: p50 and p99 against achieved sagas/s, per
broker and system (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.targets import TARGET_P99_MS, TARGET_RATE

__all__ = ["plot"]


def plot(results: dict[str, Any], path: Path) -> Path:
    """p50 and p99 saga latency against achieved throughput, one line pair per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colours = {
        ("embedded", "bench"): "tab:blue", ("embedded", "order"): "tab:orange",
        ("kafka", "bench"): "tab:green", ("kafka", "order"): "tab:red",
    }  # fmt: skip
    lines = [
        (broker, name, system)
        for broker, section in results["brokers"].items()
        for name, system in section["systems"].items()
    ]
    for broker, name, system in lines:
        points = sorted(system.get("sweep", []), key=lambda p: p["offered_per_s"])
        if not points:
            continue
        x = [p["achieved_per_s"] for p in points]
        colour = colours.get((broker, name))
        saga = "bench saga (4 steps)" if name == "bench" else "order saga (5 steps, services)"
        label = f"{broker}: {saga}"
        ax.plot(x, [p["latency"]["p50_ms"] for p in points], "o-", color=colour,
                label=f"{label} p50")  # fmt: skip
        ax.plot(x, [p["latency"]["p99_ms"] for p in points], "s--", color=colour,
                label=f"{label} p99")  # fmt: skip
        for p in points:
            ax.annotate(f"{p['offered_per_s']:,.0f}", (p["achieved_per_s"], p["latency"]["p99_ms"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)  # fmt: skip
    ax.axhline(TARGET_P99_MS, color="grey", lw=0.8, ls=":")
    ax.axvline(TARGET_RATE, color="grey", lw=0.8, ls=":")
    ax.annotate(f"target p99 {TARGET_P99_MS:.0f} ms", (0.99, TARGET_P99_MS), xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=7, color="grey")  # fmt: skip
    ax.annotate(f"target {TARGET_RATE:,.0f}/s", (TARGET_RATE, 0.5), xycoords=("data", "axes fraction"),
                ha="right", va="center", rotation=90, fontsize=7, color="grey")  # fmt: skip
    ax.set_xlim(left=0, right=max(ax.get_xlim()[1], TARGET_RATE * 1.08))
    ax.set_yscale("log")
    ax.set_xlabel("achieved terminal sagas/s (labels: offered/s)")
    ax.set_ylabel("saga latency, start -> terminal event (ms)")
    m = results["machine"]
    ax.set_title(f"sagastream, everything on {m['nproc']} CPUs ({m['cpu_model']}); "
                 f"git {m['git']}", fontsize=9)  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
