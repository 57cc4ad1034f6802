"""Overload points: the bench saga offered 2x and 3x the sweep's peak, admission control off, then on.

Past its capacity a coordinator that starts every saga offered slows them all
and its goodput falls (issue 19: 48% of the peak at 1.5x offered, p99 18 s).
With admission control (`sagas.admission`) it admits up to its bound of sagas
in flight and lets the rest wait in Kafka. Each setting runs on fresh systems
(processes and topics; a fresh embedded broker), the sagas started by the bench
saga's trigger event, since admission control pauses trigger topics. Per point:

* goodput: sagas ended per second while load was offered (``achieved_per_s``),
  and its share of the peak;
* ``admitted_latency``: from a saga's admission (its ``saga.started`` read) to its
  end, what a saga costs the system once it is in;
* ``start_wait``: from when a start was due to its admission: the backlog's wait;
* ``latency``: due to end, what a client sees (the two above together);
* ``missing``: with the bound on, sagas not ended once none has ended for
  ``drain_timeout`` s (the backlog queued in Kafka is waited for, `bench.loadgen.Drain`);
  with it off, those not ended ``drain_timeout`` s after the last start;
* ``admission``: what the coordinator says it did meanwhile (its /metrics): times it
  paused its trigger partitions, starts it did not decide when read (held for a later
  batch, or moved from saga.control to saga.starts), deadlines the retry
  budget held back. None paused: the bound was never reached, and "on" ran as "off".
"""

from __future__ import annotations

from typing import Any

from bench.brokers import BrokerUnderTest
from bench.coordinator_samples import read_samples, samples
from sagas.settings import CoordinatorSettings

#: the coordinator's counters of what admission control and the retry budget did
COUNTERS = {
    "saga_admission_pauses_total": "pauses",
    "saga_starts_deferred_total": "starts_deferred",
    "saga_retry_budget_refused_total": "deadlines_held_back",
}


def admission_counters(metrics_text: str) -> dict[str, float]:
    """The `COUNTERS` in a /metrics page (0 for one it does not show)."""
    return samples(metrics_text, COUNTERS)


def bound_setting(option: int | None) -> int:
    """The bound the "on" half runs with: the option, else the coordinator's default."""
    if option is not None:
        return option
    return int(CoordinatorSettings.model_fields["max_in_flight"].default)


async def overload_points(
    run: Any, broker: BrokerUnderTest, sweep: list[dict[str, Any]], out: dict[str, Any]
) -> dict[str, Any]:
    """``run`` is the `bench.run.BenchRun` (not imported: it imports this module)."""
    o = run.o
    best = max(sweep, key=lambda p: p["achieved_per_s"])
    peak = best["achieved_per_s"]
    bound = bound_setting(o.overload_bound)
    result: dict[str, Any] = {
        "peak_per_s": peak,
        "peak_offered_per_s": best["offered_per_s"],
        "peak_p99_ms": best["latency"]["p99_ms"],
        "bound": bound,
        "points": [],
    }
    for setting, env in (("off", "0"), ("on", str(bound))):
        label = f"overload-bound-{setting}"
        run.say(f"  overload, admission control {setting} (SAGAS_MAX_IN_FLIGHT={env})")
        async with run.fresh_system(
            "bench", label, out, broker, coordinator_env={"SAGAS_MAX_IN_FLIGHT": env},
            via_trigger=True,
        ) as phase:  # fmt: skip
            url = phase.system["coordinator"].url("/metrics")
            for factor in o.overload:
                before = await read_samples(url, COUNTERS)
                point = await phase.point(
                    peak * factor, o.duration, f"{label}-{factor:g}x",
                    # off: the collapse is the finding; its backlog drains at a crawl, so
                    # its wait keeps the fixed window (what is left counts as missing)
                    drain_limit=o.drain_timeout if setting == "off" else None,
                )  # fmt: skip
                after = await read_samples(url, COUNTERS)
                point["admission"] = {k: after[k] - before[k] for k in after}
                point["bound"] = setting
                point["factor"] = factor
                point["goodput_share"] = round(point["achieved_per_s"] / max(peak, 1e-9), 3)
                admitted, waited = point["admitted_latency"], point["start_wait"]
                run.say(
                    f"    {factor:g}x peak: goodput {point['goodput_share']:.0%} of the peak; "
                    f"admitted p99 {admitted['p99_ms']} ms; start wait p50 "
                    f"{waited['p50_ms']} p99 {waited['p99_ms']} ms; admission "
                    f"{point['admission']}"
                )
                result["points"].append(point)
    return result
