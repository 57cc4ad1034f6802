"""Admission control of explicit starts (issue 19), on a real broker with a real
coordinator process: with SAGAS_MAX_IN_FLIGHT=3 and three sagas held at their payment
step, a fourth start through the API is answered 429 with Retry-After and is not started,
and a start sent by `SagaClient` waits in ``saga.starts`` (while control records keep
being applied); once an abort ends one of the three, each goes through. An abort sent
right after that start reaches the coordinator first (saga.control is not ordered with
saga.starts) and waits for it, past its grace, while the replica holds starts back."""

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

from sagas.client import SagaClient
from sagas.kafka.kafka_settings import KafkaSettings
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
PARTITIONS = 8
#: seconds a record may wait for its saga's start (SAGAS_EARLY_EVENT_GRACE), short here
#: so that a start held back by the bound outwaits it
GRACE = 1


@dataclass
class Bounded:
    url: str
    worker: ManagedProcess
    kafka: KafkaSettings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bounded(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Bounded]:
    shop_env = await shop_topics(
        kafka_bootstrap,
        tmp_path_factory.mktemp("admission"),
        f"adm{uuid.uuid4().hex[:8]}.",
        SAGAS_MAX_IN_FLIGHT=str(BOUND),
        SAGAS_EARLY_EVENT_GRACE=str(GRACE),
        SAGAS_LOG_LEVEL="info",  # to see a held record outwait its grace
    )
    port = free_port()
    worker = shop_env.worker(kafka_bootstrap, port, "coordinator").start()
    try:
        async with shop_participants(kafka_bootstrap, shop_env.prefix, Stock()):
            url = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_split, [url], PARTITIONS, [worker])
            yield Bounded(
                url,
                worker,
                KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=shop_env.prefix),
            )
    finally:
        worker.stop()


def metric(url: str, name: str, labels: str = "") -> float | None:
    """``name``'s value (``labels``: its exact label set, e.g. ``{reason="x"}``)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name}{re.escape(labels)} ([0-9.e+]+)$", text, re.MULTILINE)
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


async def in_flight(url: str, count: int, what: str) -> None:
    await run(wait_for, lambda: metric(url, "saga_admission_in_flight") == count, 30, what)


async def hold_to_the_bound(url: str) -> list[str]:
    """Start sagas whose payment is held until the replica is at its bound; their ids."""
    held = [f"held-{uuid.uuid4().hex[:8]}-{n}" for n in range(BOUND)]
    for saga_id in held:
        status, _, body = await run(start_raw, url, saga_id)
        assert status == 202, body
    for saga_id in held:  # reserved, payment held: each one in flight
        await run(wait_status, url, saga_id, {"running"})
    await in_flight(url, BOUND, f"{BOUND} sagas in flight on the coordinator")
    return held


async def abort_all(url: str, saga_ids: list[str]) -> None:
    """End what a test left in flight, so the next one starts from none."""
    for saga_id in saga_ids:
        await run(http, "POST", f"{url}/sagas/{saga_id}/abort", {"reason": "done"}, TOKEN)
    await in_flight(url, 0, "no saga in flight after the test")


async def test_starts_past_the_bound_are_refused_until_a_saga_ends(bounded: Bounded) -> None:
    url = bounded.url
    await in_flight(url, 0, "no saga in flight before the test")
    held = await hold_to_the_bound(url)

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
    await abort_all(url, [*held[1:], extra])


async def test_client_starts_past_the_bound_wait_in_kafka_until_a_saga_ends(
    bounded: Bounded,
) -> None:
    url = bounded.url
    await in_flight(url, 0, "no saga in flight before the test")
    held = await hold_to_the_bound(url)
    waiting = f"waiting-{uuid.uuid4().hex[:8]}"
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    unknown = ("saga_dead_letters_total", '{reason="unknown-saga"}')
    before = await run(metric, url, *unknown) or 0
    async with SagaClient(bounded.kafka) as client:
        assert await client.start_saga("shop", {"pay": "hold"}, saga_id=waiting) == waiting
        # sent once Kafka has the start, on saga.control: they reach the coordinator first
        await client.abort(waiting, reason="changed my mind")
        await client.abort(stranger)  # a saga nobody started
    # the abort sent after the start is applied, held for its saga: past its grace, since
    # the replica holds the start back in Kafka
    await run(
        wait_for,
        lambda: f"saga {waiting}: 1 held records wait" in bounded.worker.log_tail(2_000),
        30,
        "the abort sent after the start to wait for it past its grace",
    )
    # ... while the start waits in Kafka: no saga under its id, the replica holding back
    code, answer = await run(http, "GET", f"{url}/sagas/{waiting}")
    assert code == 404, (code, answer)
    assert await run(metric, url, "saga_admission_paused") == 1
    assert await run(metric, url, "saga_admission_in_flight") == BOUND
    # an operator sees it waiting, though the paused partition is not fetched
    await run(
        wait_for,
        lambda: metric(url, "saga_start_backlog") == 1,
        30,
        "saga_start_backlog to count the start waiting on the paused saga.starts",
    )

    code, answer = await run(
        http, "POST", f"{url}/sagas/{held[0]}/abort", {"reason": "room"}, TOKEN
    )
    assert code in (200, 202), answer
    # admitted once there is room, and at once aborted by the command sent after it
    detail = await run(wait_status, url, waiting, {"aborted"})
    assert "changed my mind" in str(detail["history"]), detail["history"]
    await abort_all(url, held[1:])
    # no start waits any more: the stranger's abort is dead-lettered after its grace
    await run(
        wait_for,
        lambda: metric(url, *unknown) == before + 1,
        30,
        "the abort of a saga nobody started to be dead-lettered, and it alone",
    )
