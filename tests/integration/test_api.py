"""The coordinator's HTTP API and the operator CLI against two real coordinator replicas
(one consumer group) on a real broker: status of completed, compensated and in-flight
sagas, list filters, retry of a failed saga once its participant is fixed, abort, the
bearer token, and the same answers whichever replica is asked."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from sagas.coordinator import partition_for
from tests.integration.api_system import (
    TOKEN,
    Stock,
    cli,
    http,
    shop_participants,
    shop_topics,
    wait_split,
    wait_status,
)
from tests.support.processes import ManagedProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Shop:
    prefix: str
    urls: list[str]
    owned: dict[str, set[int]]
    workers: list[ManagedProcess]
    stock: Stock
    env: dict[str, str]
    sagas: dict[str, str]  # what the test named them -> saga id

    @property
    def a(self) -> str:
        return self.urls[0]

    @property
    def b(self) -> str:
        return self.urls[1]

    def owner(self, saga_id: str) -> str:
        partition = partition_for(saga_id.encode(), 8)
        return next(url for url, ps in self.owned.items() if partition in ps)

    def other(self, url: str) -> str:
        return self.b if url == self.a else self.a

    def start(
        self, data: dict[str, Any], *, url: str | None = None, saga_id: str | None = None
    ) -> str:
        query = "?wait=10" + (f"&id={saga_id}" if saga_id else "")
        code, body = http("POST", f"{url or self.a}/sagas/shop{query}", data, token=TOKEN)
        assert code == 200, (code, body)
        assert body["applied"] and body["state"]["id"] == body["id"]
        return str(body["id"])

    def id_owned_by(self, url: str) -> str:
        """A fresh saga id whose partition ``url`` owns."""
        while True:
            sid = f"api-{uuid.uuid4().hex[:12]}"
            if self.owner(sid) == url:
                return sid


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shop]:
    shop_env = await shop_topics(
        kafka_bootstrap,
        tmp_path_factory.mktemp("api"),
        f"api{uuid.uuid4().hex[:8]}.",
        SAGAS_LOG_FORMAT="json",
        SAGAS_LOG_LEVEL="info",
    )
    p = shop_env.prefix
    ports = [free_port(), free_port()]
    workers = [
        shop_env.worker(kafka_bootstrap, port, f"coordinator-{n}").start()
        for n, port in enumerate(ports, 1)
    ]
    stock = Stock()
    b = kafka_bootstrap
    try:
        async with shop_participants(b, p, stock):
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            owned = await asyncio.to_thread(wait_split, urls, 8, workers)
            cli_env = {"KAFKA_BOOTSTRAP_SERVERS": b, "SAGAS_TOPIC_PREFIX": p}
            yield Shop(p, urls, owned, workers, stock, cli_env, {})
    finally:
        for worker in workers:
            worker.stop()


async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Blocking HTTP and subprocess calls off the event loop the participants run on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_status_of_completed_compensated_and_in_flight_sagas(shop: Shop) -> None:
    done = await run(shop.start, {"pay": "ok", "sku": "A"})
    undone = await run(shop.start, {"pay": "fail"})
    held = await run(shop.start, {"pay": "hold"})
    shop.sagas.update(done=done, undone=undone, held=held)

    completed = await run(wait_status, shop.a, done, {"completed"})
    assert completed["terminal"] and completed["saga"] == "shop" and completed["version"] == 1
    assert completed["context"]["sku"] == "A"
    assert completed["context"]["payment_id"] == f"p-{done}", "reply data joins the context"
    assert [(s["name"], s["status"], s["attempts"], s["outcome"]) for s in completed["steps"]] == [
        ("reserve", "succeeded", 1, "stock.reserved"),
        ("pay", "succeeded", 1, "pay.charged"),
    ]
    assert all(s["started_at"] and s["finished_at"] for s in completed["steps"])
    assert (
        completed["finished_at"] >= completed["started_at"] and completed["duration_seconds"] >= 0
    )
    events = [h["event"] for h in completed["history"]]
    assert events[0] == "saga.started" and events[-1] == "saga.completed"

    compensated = await run(wait_status, shop.a, undone, {"compensated"})
    reserve, payment = compensated["steps"]
    assert reserve["status"] == "compensated" and reserve["compensation_attempts"] == 1
    assert reserve["compensation_outcome"] == "stock.released"
    assert payment["status"] == "failed" and payment["outcome"].startswith("pay.declined")
    assert "saga.compensating" in [h["event"] for h in compensated["history"]]

    # Running, and past its first step (the reserve reply may still be on its way).
    in_flight = await run(_wait_current, shop.a, held, ["pay"])
    assert not in_flight["terminal"] and in_flight["finished_at"] is None
    assert [s["status"] for s in in_flight["steps"]] == ["succeeded", "running"]
    assert any(t["step"] == "pay" and t["kind"] == "deadline" for t in in_flight["timers"])

    # The CLI shows the same, readably, whichever replica it asks.
    code, out, err = await run(cli, ["status", held, "--api", shop.b], shop.env)
    assert code == 0, err
    assert held in out and "running" in out and "reserve" in out and "pay" in out
    assert status_line(out) == ["running", "at", "pay"]

    code, out, err = await run(cli, ["status", done, "--api", shop.b], shop.env)
    assert code == 0, err
    assert done in out and status_line(out) == ["completed"]
    assert step_row(out, "reserve")[:3] == ["0", "reserve", "succeeded"]
    assert step_row(out, "pay")[:3] == ["1", "pay", "succeeded"]
    assert "saga.completed" in out

    code, out, err = await run(cli, ["status", undone, "--api", shop.a], shop.env)
    assert code == 0, err
    # "at pay": the step it failed at, the one that turned it back
    assert undone in out and status_line(out) == ["compensated", "at", "pay"]
    assert step_row(out, "reserve")[:3] == ["0", "reserve", "compensated"]
    assert "undo: stock.released" in " ".join(step_row(out, "reserve"))
    assert step_row(out, "pay")[:3] == ["1", "pay", "failed"]
    assert "saga.compensated" in out


def status_line(out: str) -> list[str]:
    """The words after "status" in the header of `sagas status`."""
    words = next(line.split() for line in out.splitlines() if line.split()[:1] == ["status"])
    return words[1:]


def step_row(out: str, step: str) -> list[str]:
    """The cells of ``step``'s row in the steps table of `sagas status`."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃|").split("│")]
        if len(cells) > 2 and cells[1] == step:
            return cells
    raise AssertionError(f"no row for step {step!r} in:\n{out}")


def _wait_current(url: str, saga_id: str, steps: list[str]) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        code, body = http("GET", f"{url}/sagas/{saga_id}")
        if code == 200 and body["current_steps"] == steps:
            return dict(body)
        time.sleep(0.1)
    raise AssertionError(f"saga {saga_id} never got to {steps}: {body}")


async def test_every_replica_answers_healthz(shop: Shop) -> None:
    for url in shop.urls:
        code, body = await run(http, "GET", f"{url}/healthz")
        assert code == 200, body
        assert body == {"status": "ok", "replica": url}


async def test_list_filters_by_status_and_saga_and_limits(shop: Shop) -> None:
    ours = {shop.sagas["done"], shop.sagas["undone"], shop.sagas["held"]}
    code, body = await run(http, "GET", f"{shop.a}/sagas?saga=shop&status=completed&limit=1000")
    assert code == 200 and body["complete"], body
    assert {r["id"] for r in body["sagas"]} & ours == {shop.sagas["done"]}
    assert {r["status"] for r in body["sagas"]} == {"completed"}

    code, body = await run(http, "GET", f"{shop.b}/sagas?status=compensated,running&limit=1000")
    assert {r["id"] for r in body["sagas"]} & ours == {shop.sagas["undone"], shop.sagas["held"]}
    held_row = next(r for r in body["sagas"] if r["id"] == shop.sagas["held"])
    assert held_row["current_steps"] == ["pay"] and held_row["saga"] == "shop"

    code, body = await run(http, "GET", f"{shop.a}/sagas?limit=2")
    assert code == 200 and body["count"] == 2 and len(body["sagas"]) == 2
    started = [r["started_at"] for r in body["sagas"]]
    assert started == sorted(started, reverse=True), "newest first"

    for bad in ("status=stuck", "limit=0", "limit=x", "saga=nope", "colour=red"):
        code, body = await run(http, "GET", f"{shop.a}/sagas?{bad}")
        assert code == 400 and body["detail"], (bad, body)

    code, out, err = await run(
        cli, ["list", "--status", "completed", "--saga", "shop", "--api", shop.b], shop.env
    )
    assert code == 0, err
    assert shop.sagas["done"] in out and shop.sagas["undone"] not in out


async def test_every_replica_gives_the_same_answers(shop: Shop) -> None:
    # Sagas on partitions of each replica, started through the other one.
    ids = []
    for url in shop.urls:
        for _ in range(2):
            ids.append(
                await run(
                    shop.start, {"pay": "ok"}, url=shop.other(url), saga_id=shop.id_owned_by(url)
                )
            )
    # They must be done before both replicas are asked: one still on its way answers
    # "running" to the first question and "completed" to the second (seen on Apache Kafka).
    for sid in ids:
        await run(wait_status, shop.a, sid, {"completed"})
    # The first test's sagas are at rest: completed, compensated, and held at its payment.
    ids += list(shop.sagas.values())
    served = set()
    for sid in ids:
        code_a, from_a = await run(http, "GET", f"{shop.a}/sagas/{sid}")
        code_b, from_b = await run(http, "GET", f"{shop.b}/sagas/{sid}")
        assert code_a == code_b == 200
        assert from_a == from_b, f"replicas disagree on {sid}"
        served.add(from_a["served_by"])
        assert from_a["served_by"] == shop.owner(sid)
    assert served == set(shop.urls), "both replicas hold some of these sagas"

    listed = []
    for url in shop.urls:
        code, body = await run(http, "GET", f"{url}/sagas?limit=1000")
        assert code == 200 and body["complete"] and sorted(body["replicas"]) == sorted(shop.urls)
        listed.append(body["sagas"])
    assert listed[0] == listed[1]
    assert set(ids) <= {r["id"] for r in listed[0]}

    code, body = await run(http, "GET", f"{shop.b}/sagas/never-started-{uuid.uuid4().hex[:6]}")
    assert code == 404 and "never started" in body["detail"]


async def test_mutations_need_the_token(shop: Shop) -> None:
    held = shop.sagas["held"]
    for headers_token in (None, "wrong-token"):
        code, body = await run(
            http, "POST", f"{shop.a}/sagas/{held}/abort", {"reason": "x"}, token=headers_token
        )
        assert code == 401, body
        assert "Authorization: Bearer" in body["detail"] and "SAGAS_API_TOKEN" in body["detail"]
        code, body = await run(
            http, "POST", f"{shop.b}/sagas/shop", {"pay": "ok"}, token=headers_token
        )
        assert code == 401, body
    code, out, err = await run(cli, ["abort", held, "--api", shop.a], shop.env)
    assert code == 1 and "Bearer" in err
    # Reads stay open; the saga is untouched.
    code, body = await run(http, "GET", f"{shop.a}/sagas/{held}")
    assert code == 200 and body["status"] == "running"


async def test_bad_requests_are_refused_with_the_reason(shop: Shop) -> None:
    done, held = shop.sagas["done"], shop.sagas["held"]
    cases = [
        ("POST", f"/sagas/{done}/retry", {}, 409, "only a failed saga can be retried"),
        ("POST", f"/sagas/{done}/abort", {}, 409, "cannot abort a saga that is completed"),
        ("POST", f"/sagas/{held}/skip", {"reason": "x"}, 400, "skip needs the step"),
        ("POST", f"/sagas/{held}/resolve", {}, 400, "needs a reason"),
        ("POST", f"/sagas/{held}/explode", {}, 404, "no action 'explode'"),
        ("POST", "/sagas/nosuchsaga", {}, 404, "no saga definition 'nosuchsaga'"),
        ("POST", "/sagas/shop", [1, 2], 400, "must be a JSON object"),
        ("POST", "/sagas/shop?id=bad%20id", {}, 400, "is not valid"),
        ("POST", f"/sagas/unknown-{uuid.uuid4().hex[:6]}/abort", {}, 404, "no saga"),
    ]
    for method, path, payload, status, words in cases:
        for url in shop.urls:
            code, body = await run(http, method, url + path, payload, token=TOKEN)
            assert code == status and words in body["detail"], (path, url, code, body)


async def test_start_of_an_existing_id_is_idempotent_or_a_conflict_never_silent(
    shop: Shop,
) -> None:
    sid = shop.id_owned_by(shop.b)
    await run(shop.start, {"pay": "ok", "sku": "S"}, url=shop.b, saga_id=sid)
    for url in shop.urls:  # the replica holding it and the other one agree
        code, body = await run(http, "POST", f"{url}/sagas/shop?id={sid}", {"pay": "ok", "sku": "S"}, token=TOKEN)  # fmt: skip
        assert code == 200 and body["existing"] and body["state"]["id"] == sid, body
        code, body = await run(http, "POST", f"{url}/sagas/shop?id={sid}", {"pay": "ok", "sku": "T"}, token=TOKEN)  # fmt: skip
        assert code == 409 and "data differs in 'sku'" in body["detail"], body
    with_token = {**shop.env, "SAGAS_API_TOKEN": TOKEN, "SAGAS_API_URL": shop.a}
    code, out, err = await run(cli, ["start", "shop", "--id", sid, "--data", '{"sku": "T"}'], with_token)  # fmt: skip
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, (out, err)
    assert "already exists" in err
    code, out, err = await run(cli, ["start", "nosuchsaga"], with_token)
    assert code == 1 and "no saga definition 'nosuchsaga'" in err and out == "", (out, err)
    code, out, err = await run(cli, ["start", "shop", "--data", '{"pay": "ok"}'], with_token)
    assert code == 0, err
    assert (await run(wait_status, shop.a, out.strip(), {"completed"}))["context"]["pay"] == "ok"


async def test_retry_of_a_failed_saga_after_the_participant_is_fixed(shop: Shop) -> None:
    shop.stock.broken = True
    sid = shop.id_owned_by(shop.b)
    await run(shop.start, {"pay": "fail"}, url=shop.a, saga_id=sid)
    failed = await run(wait_status, shop.a, sid, {"failed"})
    reserve = failed["steps"][0]
    assert reserve["status"] == "compensation_failed" and reserve["compensation_attempts"] == 2
    assert "gave up" in failed["failure"] and "warehouse system offline" in failed["failure"]

    shop.stock.broken = False
    # Through the replica that does not hold the saga: the request is forwarded.
    code, out, err = await run(
        cli,
        ["retry", sid, "--reason", "warehouse back", "--api", shop.a, "--token", TOKEN],
        shop.env,
    )
    assert code == 0, err
    assert "retry" in out and sid in out
    compensated = await run(wait_status, shop.b, sid, {"compensated"})
    reserve = compensated["steps"][0]
    assert (
        reserve["status"] == "compensated" and reserve["compensation_outcome"] == "stock.released"
    )
    history = [(h["event"], h["detail"]) for h in compensated["history"]]
    assert ("operator.retry", "warehouse back") in history
    assert history[-1][0] == "saga.compensated"


async def test_abort_compensates_an_in_flight_saga(shop: Shop) -> None:
    held = shop.sagas["held"]
    code, out, err = await run(
        cli,
        ["abort", held, "--reason", "customer cancelled", "--api", shop.other(shop.owner(held))],
        {**shop.env, "SAGAS_API_TOKEN": TOKEN},
    )
    assert code == 0, err
    aborted = await run(wait_status, shop.a, held, {"aborted"})
    assert aborted["abort_reason"] == "customer cancelled"
    assert aborted["steps"][0]["status"] == "compensated", "abort never skips compensation"
    assert held in shop.stock.releases


async def test_tail_prints_lifecycle_events_one_line_each(shop: Shop) -> None:
    done = shop.sagas["done"]
    code, out, err = await run(
        cli, ["tail", "--from-beginning", "--id", done, "--count", "4"], shop.env, timeout=60
    )
    assert code == 0, err
    lines = [line for line in out.splitlines() if done in line]
    assert len(lines) == 4, out
    assert "saga.started" in lines[0] and "saga.completed" in lines[-1]
    assert any("saga.step.succeeded" in line and "step=reserve" in line for line in lines)


async def test_json_logs_carry_saga_id_and_step(shop: Shop) -> None:
    ids = set(shop.sagas.values())
    about: list[dict[str, Any]] = []
    for worker in shop.workers:
        for line in Path(worker.log_path).read_text().splitlines():
            if not line.strip():
                continue
            record = orjson.loads(line)  # every line is one JSON object
            assert {"ts", "level", "logger", "msg"} <= set(record), line
            if any(sid in line for sid in ids):
                about.append(record)
    assert about, "the coordinators logged nothing about the test's sagas"
    for record in about:
        assert record.get("saga_id") in ids and "step" in record, record
    assert any(r["step"] == "reserve" for r in about)


@pytest.fixture(autouse=True)
def _no_broker_override_in_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGAS_API_URL", raising=False)
    if os.environ.get("SAGAS_API_TOKEN"):
        monkeypatch.delenv("SAGAS_API_TOKEN")
