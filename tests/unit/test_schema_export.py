"""`sagas schema export`: the written schemas accept real records and reject bad ones."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

import sagas.cli.schema_cmd  # noqa: F401  (registers `schema` on the app)
from events.codec import encode
from events.envelope import new_event
from sagas.cli import app

CONTRACT = textwrap.dedent(
    """
    from pydantic import BaseModel, Field
    from events.catalog import EventCatalog

    class Money(BaseModel):
        amount_cents: int = Field(ge=0)
        currency: str = Field(min_length=3, max_length=3)

    class Charge(BaseModel):
        order_id: str
        total: Money

    class Charged(BaseModel):
        payment_id: str | None = None

    catalog = EventCatalog(strict=True)
    catalog.register("payment.charge", Charge)
    catalog.register("payment.charged", Charged)
    not_a_catalog = 42
    """
)


@pytest.fixture
def contract_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    src = tmp_path / "src"
    src.mkdir()
    (src / "sample_contract.py").write_text(CONTRACT)
    monkeypatch.syspath_prepend(str(src))
    return "sample_contract"


def export(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["schema", "export", *args])
    return result.exit_code, result.output


def test_export_writes_schemas_that_validate_real_records(
    tmp_path: Path, contract_module: str
) -> None:
    out = tmp_path / "out" / "schemas"
    code, output = export(str(out), "--catalog", f"{contract_module}:catalog")
    assert code == 0, output
    assert "wrote 3 files" in output and str(out) in output
    assert sorted(p.name for p in out.iterdir()) == [
        "index.json",
        "payment.charge.schema.json",
        "payment.charged.schema.json",
    ]
    index = json.loads((out / "index.json").read_text())
    assert index["types"]["payment.charge"]["schema"] == "payment.charge.schema.json"

    schema = json.loads((out / "payment.charge.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    good = new_event(
        "payment.charge",
        source="svc/order",
        sagaid="s1",
        data={"order_id": "o1", "total": {"amount_cents": 1250, "currency": "EUR"}},
    )
    record = orjson.loads(encode(good)[0])
    assert list(validator.iter_errors(record)) == []

    bad_payload = {**record, "data": {"order_id": "o1", "total": {"amount_cents": -1}}}
    errors = {tuple(e.absolute_path) for e in validator.iter_errors(bad_payload)}
    assert ("data", "total", "amount_cents") in errors and ("data", "total") in errors

    for broken in (
        {k: v for k, v in record.items() if k != "sagaid"},
        {**record, "type": "payment.charged"},
        {**record, "specversion": "0.3"},
        {k: v for k, v in record.items() if k != "data"},
    ):
        assert not validator.is_valid(broken), broken


def test_default_catalog_exports_without_services(tmp_path: Path) -> None:
    code, output = export(str(tmp_path))
    assert code == 0, output
    assert (tmp_path / "index.json").exists()


def test_the_export_lists_every_lifecycle_event_the_coordinator_publishes(tmp_path: Path) -> None:
    """Issue 17: ``saga.step.late_succeeded`` and ``late_compensated`` were missing. The
    types are read from the engine's source (every ``emit("saga...")``, and the terminal
    ``saga.{status}``), so a new one fails here until it is in events/lifecycle.py."""
    from events.lifecycle import LIFECYCLE_TYPES
    from sagas.state import SagaStatus

    root = Path(__file__).resolve().parents[2] / "sagas"
    source = "\n".join(p.read_text() for p in root.glob("*.py"))
    emitted = set(re.findall(r'emit\(\s*"(saga\.[a-z_.]+)"', source))
    emitted |= {f"saga.{s.value}" for s in SagaStatus if s.terminal}
    assert {"saga.step.late_succeeded", "saga.step.late_compensated"} <= emitted
    assert emitted == set(LIFECYCLE_TYPES)

    code, output = export(str(tmp_path))
    assert code == 0, output
    index = json.loads((tmp_path / "index.json").read_text())
    assert set(LIFECYCLE_TYPES) <= set(index["types"])
    late = json.loads((tmp_path / "saga.step.late_succeeded.schema.json").read_text())
    validator = Draft202012Validator(late)
    event = new_event(
        "saga.step.late_succeeded",
        source="sagastream/coordinator",
        sagaid="s1",
        data={"saga": "order", "version": 1, "status": "completed", "step": "ship",
              "type": "shipping.scheduled", "action": "compensate"},
    )  # fmt: skip
    record = orjson.loads(encode(event)[0])
    assert list(validator.iter_errors(record)) == []
    assert not validator.is_valid({**record, "data": {**record["data"], "action": "shrug"}})


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_xyz:catalog", ["cannot import", "no_such_module_xyz"]),
        ("sample_contract:missing", ["no attribute", "missing"]),
        ("sample_contract:not_a_catalog", ["int", "EventCatalog"]),
        ("sample_contract", ["module:attr"]),
    ],
)
def test_bad_catalog_option_gives_a_clear_error(
    tmp_path: Path, contract_module: str, spec: str, words: list[str]
) -> None:
    code, output = export(str(tmp_path / "out"), "--catalog", spec)
    assert code == 2
    for word in words:
        assert word in output
    assert not (tmp_path / "out").exists()
