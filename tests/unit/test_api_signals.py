"""POST /sagas/{id}/signal (issue 20): the token, the checks by a dry run of the machine,
and the control record it publishes; served by the real aiohttp app over a stand-in
replica (no coordinator, no Kafka)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from events.envelope import CloudEvent
from sagas import control
from sagas.api import install_api
from sagas.loader import DefinitionRegistry
from sagas.messages import Observed
from sagas.table_codec import encode_value
from sagas.testing import SagaTestKit
from tests.unit.test_waiting_steps import claim_saga

URL = "http://replica-a:6066"
PARTITIONS = 8


class StandIn:
    """A `sagas.api.replica.Replica` holding every partition, recording what it publishes."""

    def __init__(self, kit: SagaTestKit) -> None:
        self.kit = kit
        self.registry = DefinitionRegistry([kit.definition])
        self.url = URL
        self.partitions = PARTITIONS
        self.published: list[CloudEvent] = []
        #: what `check_start` answers (admission control's bound reached, or None)
        self.refusal: str | None = None

    def owners(self) -> dict[int, str]:
        return dict.fromkeys(range(PARTITIONS), URL)

    def owned_partitions(self) -> frozenset[int]:
        return frozenset(range(PARTITIONS))

    def not_ready(self) -> str | None:
        return None

    def stored_values(self) -> dict[bytes, bytes]:
        return {sid.encode(): encode_value(s) for sid, s in self.kit.states.items()}

    async def publish_control(self, event: CloudEvent) -> None:
        self.published.append(event)
        self.kit.deliver(event.sagaid, control.to_message(event))  # as the coordinator would

    def input_lag(self) -> list[Any]:
        return []

    def check_start(self) -> str | None:
        return self.refusal


def waiting_kit() -> SagaTestKit:
    kit = SagaTestKit(claim_saga())
    kit.on("reserve.do").reply("reserve.done")
    kit.on("pay.do").reply("pay.done")
    kit.on("refer.do").reply("refer.done")
    kit.on("notify.do").reply("notify.done")
    kit.start("claim-1", {"amount": 500})
    return kit


async def post(replica: StandIn, path: str, body: Any, token: str | None = "s3cret") -> Any:
    api = install_api(replica, CollectorRegistry(), token="s3cret")  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with TestClient(TestServer(api.application())) as client:
        api.http = client.session
        response = await client.post(path, data=orjson.dumps(body), headers=headers)
        return response.status, await response.json()


async def test_a_signal_through_the_api_settles_the_waiting_step() -> None:
    replica = StandIn(waiting_kit())
    body = {"type": "claim.approved", "data": {"approved_by": "dr-ann"}}
    status, answer = await post(replica, "/sagas/claim-1/signal?wait=2", body)
    assert status == 200, answer
    assert answer["state"]["status"] == "completed"
    (record,) = replica.published
    assert record.type == control.SIGNAL and record.data["type"] == "claim.approved"
    message = control.to_message(record)
    assert isinstance(message, Observed) and message.event.data == {"approved_by": "dr-ann"}


async def test_the_signal_route_needs_the_token() -> None:
    replica = StandIn(waiting_kit())
    status, answer = await post(replica, "/sagas/claim-1/signal", {"type": "x"}, token=None)
    assert status == 401 and not replica.published


async def test_signals_the_saga_would_ignore_are_refused_saying_why() -> None:
    replica = StandIn(waiting_kit())
    status, answer = await post(replica, "/sagas/claim-1/signal", {"type": "claim.maybe"})
    assert status == 400 and "its signals: claim.approved, claim.rejected" in answer["detail"]
    status, answer = await post(replica, "/sagas/claim-1/signal", {"data": {}})
    assert status == 400 and "needs its type" in answer["detail"]
    status, _ = await post(replica, "/sagas/claim-1/signal", {"type": "claim.rejected"})
    assert status == 202
    status, answer = await post(replica, "/sagas/claim-1/signal", {"type": "claim.approved"})
    assert status == 409 and "no step waits for it now" in answer["detail"], answer
    assert len(replica.published) == 1
    status, answer = await post(replica, "/sagas/nobody/signal", {"type": "claim.approved"})
    assert status == 404


def test_sagas_signal_refuses_data_that_is_not_a_json_object() -> None:
    from typer.testing import CliRunner

    from sagas.cli import _register, app

    _register()
    runner = CliRunner()
    for data, words in (("nope", "not valid JSON"), ("[1]", "must be a JSON object")):
        result = runner.invoke(app, ["signal", "claim-1", "claim.approved", "--data", data])
        assert result.exit_code == 2 and words in result.output, result.output
