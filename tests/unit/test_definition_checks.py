"""Definitions that would misbehave later are refused when they are loaded (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sagas.cli import _register, app
from sagas.cli.exits import run
from sagas.errors import DefinitionError
from sagas.loader import DefinitionRegistry, load_definitions

DEFINITIONS = Path(__file__).resolve().parents[2] / "services" / "definitions"
ORCHESTRATED = DEFINITIONS / "order_orchestrated.yaml"
CHOREOGRAPHED = DEFINITIONS / "order_choreographed.yaml"


def variant(
    tmp_path: Path, change: dict[str, object], step: dict[str, object] | None = None
) -> Path:
    spec = yaml.safe_load(ORCHESTRATED.read_text())
    spec.update(change)
    if step:
        spec["steps"][0].update(step)
    path = tmp_path / "saga.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_two_definitions_sharing_a_trigger_are_refused_at_load() -> None:
    """`order` and `order-choreo` both start on order.placed: every order ran as one of them,
    with no warning."""
    both = [*load_definitions(ORCHESTRATED), *load_definitions(CHOREOGRAPHED)]
    with pytest.raises(DefinitionError, match=r"'order'.*'order-choreo'.*'order.placed'"):
        DefinitionRegistry(both)


def test_the_worker_refuses_two_definitions_sharing_a_trigger_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    _register()
    args = ["worker", "-d", str(ORCHESTRATED), "-d", str(CHOREOGRAPHED)]
    assert run(app, args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "order.placed" in line


@pytest.mark.parametrize("topic", ["bad topic!/..", "..", "x" * 250, "é"])
def test_a_topic_name_kafka_would_refuse_is_refused_at_load(tmp_path: Path, topic: str) -> None:
    path = variant(tmp_path, {}, {"reply_topic": topic})
    with pytest.raises(DefinitionError, match="topic name"):
        load_definitions(path)


@pytest.mark.parametrize("timeout", [1e308, 31 * 24 * 3600])
def test_a_timeout_beyond_thirty_days_is_refused_at_load(tmp_path: Path, timeout: float) -> None:
    """``timeout: 1e308`` was accepted, and the saga's ``status`` then answered HTTP 500."""
    with pytest.raises(DefinitionError, match="timeout"):
        load_definitions(variant(tmp_path, {}, {"timeout": timeout}))


def without_timeouts(tmp_path: Path) -> Path:
    spec = yaml.safe_load(ORCHESTRATED.read_text())
    for step in spec["steps"]:
        step.pop("timeout", None)
        if step.get("compensation"):
            step["compensation"].pop("timeout", None)
    path = tmp_path / "saga.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_step_without_a_timeout_gets_the_documented_default_deadline(tmp_path: Path) -> None:
    """A step with no ``timeout`` waited for its reply for ever: one silent participant
    stalled its sagas with nothing to time out, retry or compensate."""
    from sagas.definition import COMPENSATION_TIMEOUT, STEP_TIMEOUT
    from sagas.machine import decide
    from sagas.messages import StartSaga

    (definition,) = load_definitions(without_timeouts(tmp_path))
    assert {step.timeout for step in definition.steps} == {STEP_TIMEOUT}
    assert {s.compensation.timeout for s in definition.steps if s.compensation} == {
        COMPENSATION_TIMEOUT
    }
    started = decide(definition, None, StartSaga("ord-1", {"order_id": "ord-1"}), 1000.0)
    assert [t.due for t in started.timers] == [1000.0 + STEP_TIMEOUT]
    readme = (DEFINITIONS.parents[1] / "README.md").read_text()
    assert f"default is {STEP_TIMEOUT:g} s" in readme and "no deadline" not in readme


@pytest.mark.parametrize("where", ["step", "compensation"])
def test_a_null_timeout_is_refused_at_load_not_a_wait_for_ever(tmp_path: Path, where: str) -> None:
    spec = yaml.safe_load(ORCHESTRATED.read_text())
    target = spec["steps"][0] if where == "step" else spec["steps"][0]["compensation"]
    target["timeout"] = None
    path = tmp_path / "saga.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(DefinitionError, match="timeout"):
        load_definitions(path)
