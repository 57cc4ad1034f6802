"""Configuration, shipped definitions, the services' catalog and the `sagas service` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events.catalog import default_catalog
from sagas.cli import _register, app
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.loader import load_definitions
from services import definitions
from services.catalog import PAYLOADS, catalog
from services.common import Mode
from services.config import ServicesConfig
from services.run import SERVICE_NAMES, build_spec

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1")


def test_config_from_yaml_and_json_with_failure_injection(tmp_path: Path) -> None:
    yaml_file = tmp_path / "demo.yaml"
    yaml_file.write_text(
        "mode: choreography\n"
        "inventory: {initial_stock: {A: 3, B: 0}, late: {probability: 0.1, delay: 2}}\n"
        "shipping: {failure_rate: 0.2, carriers: [{name: x, daily_capacity: 5}]}\n"
    )
    config = ServicesConfig.load(yaml_file)
    assert config.mode is Mode.CHOREOGRAPHY
    assert config.inventory.initial_stock == {"A": 3, "B": 0}
    assert config.inventory.late.delay == 2 and config.shipping.failure_rate == 0.2
    json_file = tmp_path / "demo.json"
    json_file.write_text(json.dumps({"payment": {"credit_limits": {"c": 5}}}))
    assert ServicesConfig.load(json_file, mode="both").mode is Mode.BOTH


def test_bad_config_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("shipping: {failure_rate: 2}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml[\s\S]*failure_rate"):
        ServicesConfig.load(bad)
    with pytest.raises(ValueError, match="cannot read"):
        ServicesConfig.load(tmp_path / "missing.yaml")


def test_environment_fills_what_the_file_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICES_SHIPPING__FAILURE_RATE", "0.5")
    assert ServicesConfig.load().shipping.failure_rate == 0.5


def test_modes_decide_what_each_service_consumes() -> None:
    orchestrated = build_spec("inventory", ServicesConfig(), KAFKA)
    assert orchestrated.input_topics == ("inventory.commands",)
    choreo = build_spec("inventory", ServicesConfig(mode=Mode.CHOREOGRAPHY), KAFKA)
    assert set(choreo.input_topics) == {"inventory.commands", "orders", "shipping.events"}
    payment = build_spec(
        "payment", ServicesConfig(mode=Mode.CHOREOGRAPHY, topic_prefix="t."), KAFKA
    )
    assert set(payment.input_topics) == {"t.payment.commands", "t.inventory.events"}
    order = build_spec("order", ServicesConfig(), KAFKA.model_copy(update={"topic_prefix": "p."}))
    assert order.input_topics == ("orders", "p.saga.lifecycle")
    for name in SERVICE_NAMES:
        spec = build_spec(name, ServicesConfig(), KAFKA)
        assert spec.name == name and spec.handles


@pytest.mark.parametrize("name", definitions.NAMES)
def test_shipped_definitions_load_and_use_only_service_topics(name: str, tmp_path: Path) -> None:
    (definition,) = load_definitions(definitions.path(name))
    topics = {"orders", "transfers", "claims", "approvals"} | {
        f"{s}.{kind}"
        for s in ("inventory", "payment", "shipping", "bank", "claims", "triage")
        for kind in ("commands", "replies", "events")
    }
    definition.check_topics(topics)
    prefixed = definitions.load(name, "x.")
    assert all(t.startswith("x.") for t in prefixed.topics_read() | prefixed.topics_written())
    (reloaded,) = load_definitions(definitions.write(name, "x.", tmp_path))
    assert reloaded == prefixed
    for step in definition.steps:
        for t in (*step.success, *step.failure):
            assert t in catalog, f"{name}: {t} has no payload model"


def test_orchestrated_order_saga_has_shipping_as_its_pivot() -> None:
    d = definitions.load("order_orchestrated")
    assert d.steps[d.pivot_index or 0].name == "schedule_shipment"
    assert d.steps[-1].name == "commit_inventory" and d.steps[-1].compensation is None
    assert all(s.timeout for s in d.steps)


def test_every_service_type_is_in_the_default_catalog() -> None:
    assert len(PAYLOADS) == len(catalog)
    assert all(t in default_catalog for t in PAYLOADS)


def test_service_command_refuses_unknown_names_and_missing_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register()
    runner = CliRunner()
    result = runner.invoke(app, ["service", "warehouse"])
    assert result.exit_code == 2 and "unknown service" in result.output
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = runner.invoke(app, ["service", "inventory"])
    assert result.exit_code == 2 and "KAFKA_BOOTSTRAP_SERVERS" in result.output
