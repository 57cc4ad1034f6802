"""The load generator (`bench.loadgen`) run as its own process, and the plan it is given.

Used by every phase of a run (`bench.run`, `bench.recovery`).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from bench.procstat import ProcSampler
from bench.workload import Workload
from sagas.kafka.kafka_settings import KafkaSettings


async def run_loadgen(
    plan: dict[str, Any],
    on_progress: Callable[[dict[str, Any]], Any] | None = None,
    sampler: ProcSampler | None = None,
) -> dict[str, Any]:
    """Run `bench.loadgen` as its own process; its result (progress lines go to
    ``on_progress``, which may be a coroutine function)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", orjson.dumps(plan).decode(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        limit=2**20,
    )  # fmt: skip
    if sampler is not None:
        sampler.track("loadgen", proc.pid)
    result: dict[str, Any] | None = None
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.create_task(proc.stderr.read())
    try:
        async for line in proc.stdout:
            doc = orjson.loads(line)
            if "result" in doc:
                result = doc["result"]
            elif on_progress is not None:
                outcome = on_progress(doc["progress"])
                if asyncio.iscoroutine(outcome):
                    await outcome
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await errors).decode(errors="replace")
    if result is None:
        raise RuntimeError(f"the load generator failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    return result


def plan_for(
    workload: Workload, kafka: KafkaSettings, lifecycle: str, *, rate: float, count: int,
    label: str, warmup: float = 0.0, drain_timeout: float = 60.0, drain_limit: float = 600.0,
) -> dict[str, Any]:  # fmt: skip
    return {
        "bootstrap": kafka.require_bootstrap(),
        "prefix": kafka.topic_prefix,
        "workload": workload.name,
        "start_topic": workload.start_topic,
        "lifecycle_topic": lifecycle,
        "rate": rate,
        "count": count,
        "fail_every": workload.fail_every,
        "via_trigger": workload.via_trigger,
        "warmup": warmup,
        "drain_timeout": drain_timeout,
        "drain_limit": drain_limit,
        "label": f"{label}-{uuid.uuid4().hex[:6]}",
    }
