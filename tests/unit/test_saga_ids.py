"""One grammar for saga ids, wherever an id enters: the API, `sagas start --id`, the client,
triggers and ``saga.start`` records (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.envelope import new_event
from events.topics import Topics
from sagas import control
from sagas.api.requests import ApiError, parse_start
from sagas.errors import InvalidSagaIdError
from sagas.loader import DefinitionRegistry
from sagas.routing import Reject, route
from tests.unit.saga_fixtures import three_step

REGISTRY = DefinitionRegistry([three_step()])
TRIGGERS = REGISTRY.triggers()
DEFINITIONS = {"order": [1]}


def api_accepts(sid: str) -> bool:
    try:
        parse_start("order", b"{}", {"id": sid}, DEFINITIONS)
    except ApiError as exc:
        assert exc.status == 400 and exc.code == "bad-saga-id"
        return False
    return True


def client_accepts(sid: str) -> bool:
    try:
        control.start_request("order", {}, saga_id=sid)
    except InvalidSagaIdError:
        return False
    return True


def coordinator_accepts(sid: str) -> bool:
    trigger = new_event("order.placed", source="t", sagaid=sid)
    routed = route(REGISTRY, TRIGGERS, Topics(), "orders", trigger, None)
    return not (isinstance(routed, Reject) and routed.reason == "invalid-saga-id")


def test_the_api_refuses_a_saga_id_with_a_trailing_newline() -> None:
    """``?id=abc%0A`` passed the API's check (``$`` matches before a final newline) and
    split log lines."""
    assert not api_accepts("abc\n")
    assert not client_accepts("abc\n")
    assert not coordinator_accepts("abc\n")


@pytest.mark.parametrize(
    "sid", ["has space", "tab\there", "\x1b[31mred", "x" * 201, "-dash", "é", "a/b", ""]
)
def test_ids_that_cannot_be_inspected_later_are_refused_on_every_way_in(sid: str) -> None:
    assert not api_accepts(sid) if sid else True  # an empty ?id= means "make one up"
    assert not coordinator_accepts(sid) if sid else True
    if sid:
        assert not client_accepts(sid)


@given(st.text(max_size=210) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,205}", fullmatch=True))
def test_api_client_and_coordinator_agree_on_every_id(sid: str) -> None:
    if not sid:
        return
    assert api_accepts(sid) == client_accepts(sid) == coordinator_accepts(sid)


def test_sagas_start_refuses_an_invalid_id_in_one_line_with_exit_code_2() -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "sagas", "start", "order", "--id", "bad id\x1b[2J"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --id: saga id"), result.stderr
    assert "\x1b" not in result.stderr  # the id is shown escaped, not interpreted
