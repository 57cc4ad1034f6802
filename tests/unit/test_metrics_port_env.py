"""SERVICES_METRICS_PORT sets the metrics port of `sagas service` and `sagas bridge`; the flag wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import sagas.participants.bridge
import services.run
from sagas.cli import _register, app, bridge_cmd
from services.cli import service_cmd
from services.config import ServicesConfig

BRIDGE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "http-bridge" / "bridge.yaml"


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The http_port each command hands to its participant; nothing is started."""
    seen: list[int | None] = []

    def participant_for(*args: Any, http_port: int | None = None, **kwargs: Any) -> object:
        seen.append(http_port)
        return object()

    class FakeBridge:
        def __init__(self, *args: Any, http_port: int | None = None, **kwargs: Any) -> None:
            seen.append(http_port)

    monkeypatch.setattr(services.run, "participant_for", participant_for)
    monkeypatch.setattr(sagas.participants.bridge, "HttpBridge", FakeBridge)
    monkeypatch.setattr(service_cmd, "serve_until_signal", lambda *args: None)
    monkeypatch.setattr(bridge_cmd, "serve_until_signal", lambda *args: None)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.delenv("SERVICES_METRICS_PORT", raising=False)
    _register()
    return seen


def run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_model_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICES_METRICS_PORT", raising=False)
    assert ServicesConfig().metrics_port is None
    monkeypatch.setenv("SERVICES_METRICS_PORT", "9109")
    assert ServicesConfig().metrics_port == 9109
    monkeypatch.setenv("SERVICES_METRICS_PORT", "70000")
    with pytest.raises(ValueError, match="metrics_port"):
        ServicesConfig.load()


def test_service_uses_the_variable_and_the_flag_wins(
    ports: list[int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    run("service", "inventory")
    monkeypatch.setenv("SERVICES_METRICS_PORT", "9109")
    run("service", "inventory")
    run("service", "inventory", "--metrics-port", "9200")
    assert ports == [None, 9109, 9200]


def test_bridge_uses_the_variable_and_the_flag_wins(
    ports: list[int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    run("bridge", "--config", str(BRIDGE_CONFIG))
    monkeypatch.setenv("SERVICES_METRICS_PORT", "9110")
    run("bridge", "--config", str(BRIDGE_CONFIG))
    run("bridge", "--config", str(BRIDGE_CONFIG), "--metrics-port", "9201")
    assert ports == [None, 9110, 9201]
