"""The HTTP bridge's pure parts: its config file and what an HTTP outcome means for the saga."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.envelope import new_event
from sagas.participants.bridge import BridgeConfig, HttpOutcome, reply_for
from sagas.participants.bridge.config import BridgeConfigError
from sagas.participants.bridge.outcome import enrich, is_retriable, make_handler
from sagas.participants.participant_store import ParticipantCore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "http-bridge" / "bridge.yaml"

ROUTE = {
    "command": "payment.authorize",
    "topic": "payment.commands",
    "url": "${API}/authorize",
    "reply_topic": "payment.replies",
    "success": "payment.authorized",
    "failure": "payment.declined",
}


def config(**extra: object) -> BridgeConfig:
    return BridgeConfig.from_dict({"routes": [ROUTE], **extra}, env={"API": "http://api:80"})


def test_the_example_config_loads_with_its_defaults() -> None:
    example = BridgeConfig.load(EXAMPLE, env={})
    assert {r.command for r in example.routes} == {
        "payment.authorize", "payment.capture", "payment.void", "payment.refund",
    }  # fmt: skip
    assert all(r.url.startswith("http://127.0.0.1:8080/") for r in example.routes)
    assert all(r.retry.attempts == 4 and r.timeout == 2 for r in example.routes)


def test_defaults_merge_and_topics_get_the_prefix() -> None:
    c = config(
        topic_prefix="staging.",
        defaults={"timeout": 3, "headers": {"A": "1", "B": "2"}},
        routes=[{**ROUTE, "headers": {"B": "3"}}],
    )
    route = c.routes[0]
    assert route.url == "http://api:80/authorize"
    assert route.timeout == 3 and route.headers == {"A": "1", "B": "3"}
    assert (route.topic, route.reply_topic) == (
        "staging.payment.commands",
        "staging.payment.replies",
    )
    assert c.input_topics == ("staging.payment.commands",)


def test_a_missing_environment_variable_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text("routes:\n  - {command: a, topic: t, url: '${NOPE}/x', reply_topic: r, "
                    "success: s, failure: f}\n")  # fmt: skip
    with pytest.raises(BridgeConfigError, match="NOPE is not set"):
        BridgeConfig.load(path, env={})


def test_one_route_per_command_type() -> None:
    with pytest.raises(ValueError, match="more than one route"):
        BridgeConfig.from_dict({"routes": [ROUTE, ROUTE]}, env={"API": "http://x"})


@pytest.mark.parametrize("status", [500, 503, 408, 425, 429, 302])
def test_server_errors_and_throttling_are_retried(status: int) -> None:
    assert is_retriable(status)


@pytest.mark.parametrize("status", [200, 201, 204, 400, 402, 404, 409, 422])
def test_answers_are_final(status: int) -> None:
    assert not is_retriable(status)


def test_2xx_is_the_success_type_with_the_json_as_data() -> None:
    route = config().routes[0]
    body = {"authorization_id": "a1", "amount": 5}
    assert reply_for(route, HttpOutcome(status=200, body=body)) == ("payment.authorized", body)
    assert reply_for(route, HttpOutcome(status=204)) == ("payment.authorized", {})
    assert reply_for(route, HttpOutcome(status=200, body=[1])) == (
        "payment.authorized", {"result": [1]},
    )  # fmt: skip


def test_4xx_is_the_failure_type_with_a_reason() -> None:
    route = config().routes[0]
    type_, data = reply_for(route, HttpOutcome(status=402, body={"reason": "no money"})) or ("", {})
    assert (type_, data) == ("payment.declined", {"reason": "no money", "http_status": 402})
    type_, data = reply_for(route, HttpOutcome(status=404, body="not here")) or ("", {})
    assert type_ == "payment.declined"
    assert data["reason"] == "http://api:80/authorize answered HTTP 404: not here"


def test_giving_up_is_silent_unless_configured_otherwise() -> None:
    outcome = HttpOutcome(status=503, attempts=5, error="HTTP 503")
    assert reply_for(config().routes[0], outcome) is None
    loud = config(defaults={"on_exhausted": "failure"}).routes[0]
    type_, data = reply_for(loud, outcome) or ("", {})
    assert type_ == "payment.declined" and "5 attempts" in data["reason"]


def test_the_handler_replays_the_recorded_outcome_without_calling_again() -> None:
    c = config()
    command = new_event("payment.authorize", source="coordinator", sagaid="s1", data={"amount": 5})
    recorded = enrich(command, HttpOutcome(status=200, body={"authorization_id": "a1"}))
    first = ParticipantCore(make_handler(c), {})
    applied = first.apply("payment.commands", recorded)
    (out,) = applied.outputs
    assert out.topic == "payment.replies" and out.event.causationid == command.id
    assert out.event.data == {"authorization_id": "a1"}
    assert applied.entry is not None and applied.entry.input.data["command"] == {"amount": 5}
    # a restart rebuilds the same answer from the changelog entry alone
    again = ParticipantCore(make_handler(c), {})
    again.replay(applied.entry)
    assert again.mismatches == 0 and again.state == {"payment.authorized": 1}
