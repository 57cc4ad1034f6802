"""The coordinator on a real broker: a 3-step YAML saga with plain-aiokafka participants."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from events.kafka_settings import KafkaSettings
from sagas.client import SagaClient
from tests.support.kafka_peers import ScriptedParticipant, TopicRecorder, eventually
from tests.support.processes import free_port, sagas_process

pytestmark = pytest.mark.integration

ORCHESTRATED = """
name: trip
version: 1
steps:
  - name: hotel
    command: {{type: hotel.book, topic: {p}hotel.commands}}
    reply_topic: {p}hotel.replies
    success: [hotel.booked]
    failure: [hotel.unavailable]
    compensation: {{type: hotel.cancel, topic: {p}hotel.commands, success: [hotel.cancelled]}}
    timeout: 3
  - name: flight
    command: {{type: flight.book, topic: {p}flight.commands}}
    reply_topic: {p}flight.replies
    success: [flight.booked]
    failure: [flight.full]
    compensation: {{type: flight.cancel, topic: {p}flight.commands, success: [flight.cancelled]}}
    timeout: 3
  - name: car
    command: {{type: car.rent, topic: {p}car.commands}}
    reply_topic: {p}car.replies
    success: [car.rented]
    failure: [car.unavailable]
    timeout: 1.5
"""


def _setup(tmp_path: Path, bootstrap: str) -> tuple[str, Path, dict[str, str]]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    path = tmp_path / "trip.yaml"
    path.write_text(ORCHESTRATED.format(p=prefix))
    env = {
        "SAGAS_TOPIC_PREFIX": prefix,
        "SAGAS_APP_ID": f"{prefix}coordinator",
        "SAGAS_EARLY_EVENT_GRACE": "2",
    }
    return prefix, path, env


def _answer(success: str, failure: str, *, mode: str = "ok"):  # type: ignore[no-untyped-def]
    """A participant: compensations always succeed; the action per ``mode``."""

    def handle(command: Any) -> tuple[str, dict[str, Any]] | None:
        service = command.type.split(".")[0]
        if command.type.endswith(".cancel"):
            return (f"{service}.cancelled", {})
        if mode == "silent":
            return None
        if mode == "fail":
            return (failure, {"reason": "scripted failure"})
        return (success, {f"{service}_ref": f"ref-{command.sagaid[:6]}"})

    return handle


@pytest.mark.parametrize("scenario", ["completed", "step3_fails", "step3_silent"])
async def test_three_step_saga_outcomes(kafka_bootstrap: str, tmp_path: Path, scenario: str) -> None:
    prefix, path, env = _setup(tmp_path, kafka_bootstrap)
    worker = sagas_process(
        ["worker", "-d", str(path), "--web-port", str(free_port())],
        bootstrap=kafka_bootstrap, log_dir=tmp_path, name="coordinator", extra_env=env,
    ).start()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    car_mode = {"completed": "ok", "step3_fails": "fail", "step3_silent": "silent"}[scenario]
    p = prefix
    try:
        async with (
            TopicRecorder(kafka_bootstrap, f"{p}saga.lifecycle", f"{p}hotel.commands",
                          f"{p}flight.commands", f"{p}car.commands") as seen,
            ScriptedParticipant(kafka_bootstrap, f"{p}hotel.commands", f"{p}hotel.replies",
                                _answer("hotel.booked", "hotel.unavailable")),
            ScriptedParticipant(kafka_bootstrap, f"{p}flight.commands", f"{p}flight.replies",
                                _answer("flight.booked", "flight.full")),
            ScriptedParticipant(kafka_bootstrap, f"{p}car.commands", f"{p}car.replies",
                                _answer("car.rented", "car.unavailable", mode=car_mode)),
            SagaClient(kafka) as client,
        ):
            ids = [await client.start_saga("trip", {"traveller": f"p{i}"}) for i in range(5)]
            await eventually(lambda: len(seen.terminal()) == 5, 60,
                             lambda: f"5 terminal sagas, got {seen.terminal()}; worker log:\n{worker.log_tail()}",
                             alive=worker.alive)
            expected = "completed" if scenario == "completed" else "compensated"
            assert seen.terminal() == {sid: expected for sid in ids}
            for sid in ids:
                cmds = [e.type for t, e in seen.events if e.sagaid == sid and t.endswith(".commands")]
                if scenario == "completed":
                    assert cmds == ["hotel.book", "flight.book", "car.rent"], cmds
                else:
                    # step 3 failed (or never answered): steps 2 then 1 are undone, in that order
                    assert cmds[-2:] == ["flight.cancel", "hotel.cancel"], cmds
    finally:
        worker.stop()
