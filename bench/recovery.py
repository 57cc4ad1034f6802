"""Memory per in-flight saga and recovery from a SIGKILL, on the bench system.

1. SIGSTOP the bench participant: it keeps its connections and answers nothing;
2. start ``park`` sagas; once the coordinator has started them all (their
   ``saga.started`` events were read), the coordinator's RSS growth over its idle
   RSS before, divided by ``park``, is its memory per in-flight saga;
3. SIGCONT the participant; once the coordinator is busy with the answers (a
   fifth of the sagas' worth of lifecycle events, or 5 s), SIGKILL it and start
   it again at once, as a supervisor would;
4. time until a lifecycle event produced after the kill is read ("processing
   again"; Kafka's record timestamps, the coordinator's clock), until the
   coordinator says it is ready, and until every parked saga is terminal.

Sagas still not terminal at the end of the wait are listed with what the
coordinator's API says about them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench import procstat
from bench.loadgen_run import plan_for, run_loadgen
from bench.options import Options
from bench.procstat import ProcSampler
from bench.report import count_text
from bench.workload import Workload
from sagas.kafka.kafka_settings import KafkaSettings


class SystemRun(Protocol):
    """What these phases use of `bench.system_run.SystemRun` (named here, so that `bench.system_run`,
    which calls them, is not imported back)."""

    run_dir: Path
    o: Options
    say: Callable[..., Any]
    system: Any
    kafka: KafkaSettings
    lifecycle: str
    workload: Workload
    sampler: ProcSampler


async def park_and_crash(run: SystemRun) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench.system import PARTICIPANT, pause, resume

    n = run.o.park
    participant = run.system[PARTICIPANT]
    coordinator = run.system["coordinator"]
    run.say(f"  memory: parking {n:,} sagas on a participant that does not answer")
    baseline = await steady_rss(coordinator.pid)
    pause(participant)
    state: dict[str, Any] = {"phase": "parking"}
    memory: dict[str, Any] = {"sagas": n, "rss_before_mib": round(baseline / 2**20, 1)}
    recovery: dict[str, Any] = {"sagas": n}
    t_park = time.time()

    async def on_progress(p: dict[str, Any]) -> None:
        state["started"] = p["started"]
        if state["phase"] == "parking" and p["started"] >= n:
            state["phase"] = "measuring"
            memory["park_seconds"] = round(time.time() - t_park, 1)
            rss = await steady_rss(coordinator.pid)
            memory["rss_after_mib"] = round(rss / 2**20, 1)
            memory["bytes_per_saga"] = round((rss - baseline) / n)
            run.say(
                f"  memory: {memory['rss_before_mib']} -> {memory['rss_after_mib']} MiB "
                f"= {memory['bytes_per_saga']:,} bytes per in-flight saga"
            )
            resume(participant)
            state.update(phase="resumed", resumed_at=time.time(), events_at_resume=None)
        elif state["phase"] == "resumed" and p["t"] >= state["resumed_at"]:
            # SIGKILL once the coordinator is busy with the answers (a fifth of the
            # sagas' worth of lifecycle events since), or after 5 s at the latest
            if state["events_at_resume"] is None:
                state["events_at_resume"] = p["lifecycle_events"]
            busy = p["lifecycle_events"] - state["events_at_resume"] >= n // 5
            if busy or p["t"] - state["resumed_at"] >= 5.0:
                recovery["in_flight_at_kill"] = n - p["terminal"]
                await _crash(run, state, recovery)
        elif state["phase"] == "killed" and p["last_event_ms"] / 1000 > state["killed_at"]:
            state["phase"] = "processing"
            recovery["processing_again_s"] = round(
                p["last_event_ms"] / 1000 - state["killed_at"], 2
            )
            if run.o.profile > 0:  # where the restarted coordinator spends its time
                state["profile_task"] = asyncio.create_task(
                    _profile(run, coordinator.pid, min(run.o.profile, 30.0))
                )
        ended = state["phase"] in ("killed", "processing") and p["terminal"] >= n
        if ended and "all_terminal_s" not in recovery:
            recovery["all_terminal_s"] = round(p["t"] - state["killed_at"], 2)

    plan = plan_for(
        run.workload, run.kafka, run.lifecycle, rate=run.o.park_rate, count=n,
        label="park", drain_timeout=run.o.recovery_timeout,
    )  # fmt: skip
    try:
        result = await run_loadgen(plan, on_progress, sampler=run.sampler)
    finally:
        if (task := state.get("ready_task")) is not None:
            task.cancel()
    if (task := state.get("profile_task")) is not None:
        recovery["profile"] = await task
    if state["phase"] == "parking":  # never all started: report what was seen
        resume(participant)
        memory["error"] = (
            f"only {state.get('started', 0):,} of {n:,} sagas started by the end of the wait "
            f"({run.o.recovery_timeout:g} s); no memory figure"
        )
    if "killed_at" in state and result["terminal"] >= n and "all_terminal_s" not in recovery:
        # the last progress report came before the last saga ended: bound it by now
        recovery["all_terminal_s"] = round(time.time() - state["killed_at"], 2)
    if "killed_at" in state and "processing_again_s" not in recovery and result["terminal"] >= n:
        recovery["processing_again_s"] = recovery["all_terminal_s"]
    if "killed_at" in state:
        usage = run.sampler.window(state["killed_at"], time.time())
        recovery["cpu_percent"] = {name: u.cpu_percent for name, u in usage.items()}
    recovery.update(
        terminal=result["terminal"],
        missing=result["missing"],
        outcomes=result["outcomes"],
        duplicate_terminal_events=result["duplicate_terminal_events"],
    )
    if result["missing"]:
        recovery["missing_states"] = {
            sid: await _saga_summary(run, sid) for sid in result["missing_sample"][:5]
        }
    health = await run.system.get_json(PARTICIPANT, "/health") or {}
    recovery["participant_repeated_commands"] = health.get("repeats")
    run.say(
        f"  recovery: in flight at SIGKILL {count_text(recovery.get('in_flight_at_kill'))}; "
        f"processing again after {recovery.get('processing_again_s', '?')} s; all terminal "
        f"after {recovery.get('all_terminal_s', '?')} s; missing {result['missing']}"
        + (f"; {memory['error']}" if "error" in memory else "")
    )
    return memory, recovery


async def _crash(run: SystemRun, state: dict[str, Any], recovery: dict[str, Any]) -> None:
    """SIGKILL the coordinator and start it again at once, as a supervisor would."""
    coordinator = run.system["coordinator"]
    state["killed_at"] = time.time()
    run.system.kill("coordinator")
    state["phase"] = "killed"
    await run.system.start_process("coordinator", wait=False)
    run.sampler.track("coordinator", coordinator.pid)
    run.say(
        f"  recovery: coordinator SIGKILLed with {recovery['in_flight_at_kill']:,} sagas in "
        "flight, busy with their answers; restarted"
    )

    async def ready() -> None:
        await run.system.wait_ready("coordinator", timeout=run.o.recovery_timeout)
        recovery["ready_s"] = round(time.time() - state["killed_at"], 2)

    state["ready_task"] = asyncio.create_task(ready())


async def _profile(run: SystemRun, pid: int | None, seconds: float) -> dict[str, Any]:
    from bench.profile import record, summarise

    out = run.run_dir / "coordinator-recovery.pyspy.txt"
    raw = await record(pid or 0, seconds, out) if pid else None
    return summarise(raw) | {"file": str(raw)} if raw else {"error": "py-spy failed"}


async def _saga_summary(run: SystemRun, saga_id: str) -> Any:
    """What the coordinator's API says about a saga (for sagas that never ended)."""
    doc = await run.system.get_json("coordinator", f"/sagas/{saga_id}")
    if not isinstance(doc, dict):
        return doc
    keep = ("status", "phase", "current", "steps", "timers", "error", "detail")
    return {k: v for k, v in doc.items() if k in keep}


async def steady_rss(pid: int | None, seconds: float = 3.0) -> int:
    """The median of a few RSS readings over ``seconds`` (the coordinator is idle)."""
    readings = []
    for _ in range(7):
        readings.append(procstat.rss_bytes(pid or 0))
        await asyncio.sleep(seconds / 7)
    return sorted(readings)[len(readings) // 2]
