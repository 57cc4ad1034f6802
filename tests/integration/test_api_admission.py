"""Admission control at the HTTP API (issue 19), on a real broker with a real coordinator
process: with SAGAS_MAX_IN_FLIGHT=3 and three sagas held at their payment step, a fourth
start through the API is answered 429 with Retry-After and is not started; once an abort
ends one of the three, the same start goes through."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import pytest_asyncio

from tests.integration.api_system import (
    TOKEN,
    Stock,
    http,
    shop_participants,
    shop_topics,
    wait_split,
    wait_status,
)
from tests.support.processes import ManagedProcess, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BOUND = 3


@dataclass
class Bounded:
    url: str
    worker: ManagedProcess


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bounded(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Bounded]:
    shop_env = await shop_topics(
        kafka_bootstrap,
        tmp_path_factory.mktemp("admission"),
        f"adm{uuid.uuid4().hex[:8]}.",
        SAGAS_MAX_IN_FLIGHT=str(BOUND),
    )
    port = free_port()
    worker = shop_env.worker(kafka_bootstrap, port, "coordinator").start()
    try:
        async with shop_participants(kafka_bootstrap, shop_env.prefix, Stock()):
            url = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_split, [url], 8, [worker])
            yield Bounded(url, worker)
    finally:
        worker.stop()


def metric(url: str, name: str) -> float | None:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def start_raw(url: str, saga_id: str) -> tuple[int, dict[str, str], dict[str, object]]:
    """(status, headers, body) of a start of a saga whose payment is held."""
    request = urllib.request.Request(
        f"{url}/sagas/shop?id={saga_id}",
        data=orjson.dumps({"pay": "hold"}),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), orjson.loads(exc.read())


async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Blocking HTTP calls off the event loop the participants run on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_starts_past_the_bound_are_refused_until_a_saga_ends(bounded: Bounded) -> None:
    url = bounded.url
    held = [f"held-{uuid.uuid4().hex[:8]}-{n}" for n in range(BOUND)]
    for saga_id in held:
        status, _, body = await run(start_raw, url, saga_id)
        assert status == 202, body
    for saga_id in held:  # reserved, payment held: each one in flight
        await run(wait_status, url, saga_id, {"running"})
    await run(
        wait_for,
        lambda: metric(url, "saga_admission_in_flight") == BOUND,
        30,
        f"{BOUND} sagas in flight on the coordinator",
    )

    extra = f"extra-{uuid.uuid4().hex[:8]}"
    status, headers, body = await run(start_raw, url, extra)
    assert status == 429, body
    assert headers.get("Retry-After") == "1"
    assert body["error"] == "overloaded"
    assert f"SAGAS_MAX_IN_FLIGHT={BOUND}" in str(body["detail"])
    assert await run(metric, url, "saga_api_starts_refused_total") == 1
    code, answer = await run(http, "GET", f"{url}/sagas/{extra}")
    assert code == 404, (code, answer)  # nothing was started under that id

    code, answer = await run(
        http, "POST", f"{url}/sagas/{held[0]}/abort", {"reason": "room"}, TOKEN
    )
    assert code in (200, 202), answer
    await run(wait_status, url, held[0], {"aborted"})
    await run(
        wait_for,
        lambda: metric(url, "saga_admission_in_flight") == BOUND - 1,
        30,
        "the aborted saga to leave the count in flight",
    )
    status, _, body = await run(start_raw, url, extra)
    assert status == 202, body
    await run(wait_status, url, extra, {"running"})
