"""The event catalog: payloads are checked against their registered models."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from events.catalog import EventCatalog, UncheckedPayload, default_catalog
from events.codec import decode
from events.envelope import new_event
from events.errors import CatalogError, DecodeError, InvalidPayloadError, UnknownEventTypeError
from tests.unit.json_strategies import json_values


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class ReserveStock(BaseModel):
    order_id: str
    lines: list[Line]


class StockReserved(BaseModel):
    reservation_id: str | None = None


def catalog(strict: bool = True) -> EventCatalog:
    cat = EventCatalog(strict=strict)
    cat.register("inventory.reserve", ReserveStock)
    cat.register("inventory.reserved", StockReserved)
    return cat


def test_validate_returns_the_payload_model() -> None:
    e = new_event(
        "inventory.reserve",
        source="svc/order",
        sagaid="s1",
        data={"order_id": "o1", "lines": [{"sku": "A", "qty": 2}]},
    )
    payload = catalog().validate(e)
    assert payload == ReserveStock(order_id="o1", lines=[Line(sku="A", qty=2)])


def test_unknown_type_in_strict_catalog_names_it_and_close_types() -> None:
    e = new_event("inventory.reserv", source="svc/order", sagaid="s1")
    with pytest.raises(UnknownEventTypeError) as caught:
        catalog().validate(e, topic="inventory.commands", offset=9)
    err = caught.value
    assert err.type == "inventory.reserv"
    assert "'inventory.reserv'" in str(err) and "'inventory.reserve'" in str(err)
    assert err.reason == "unknown-type" and err.topic == "inventory.commands"


def test_unknown_type_in_lenient_catalog_passes_unchecked() -> None:
    e = new_event("shipping.booked", source="java/shipping", sagaid="s1", data={"x": [1]})
    payload = catalog(strict=False).validate(e)
    assert payload == UncheckedPayload(type="shipping.booked", data={"x": [1]})


def test_invalid_payload_names_each_field_path() -> None:
    e = new_event(
        "inventory.reserve",
        source="svc/order",
        sagaid="s1",
        data={"lines": [{"sku": "A", "qty": 0}, {"qty": "many"}]},
    )
    with pytest.raises(InvalidPayloadError) as caught:
        catalog().validate(e)
    err = caught.value
    assert set(err.paths) == {"data.order_id", "data.lines[0].qty", "data.lines[1].sku",
                              "data.lines[1].qty"}  # fmt: skip
    message = str(err)
    assert "'inventory.reserve'" in message
    assert "data.lines[0].qty: Input should be greater than 0" in message
    assert "data.order_id: Field required" in message
    assert err.reason == "invalid-payload"


def test_register_as_decorator_and_lookup() -> None:
    cat = EventCatalog()

    @cat.register("payment.charge")
    class Charge(BaseModel):
        amount_cents: int

    assert cat.model_for("payment.charge") is Charge
    assert "payment.charge" in cat and len(cat) == 1
    assert cat.types() == ("payment.charge",)
    with pytest.raises(UnknownEventTypeError, match="payment.charged"):
        cat.model_for("payment.charged")


def test_conflicting_registration_is_refused() -> None:
    cat = catalog()
    cat.register("inventory.reserve", ReserveStock)  # same model again: fine
    with pytest.raises(CatalogError, match="inventory.reserve.*ReserveStock"):
        cat.register("inventory.reserve", StockReserved)
    with pytest.raises(CatalogError, match="BaseModel"):
        cat.register("x.y", dict)  # type: ignore[type-var]


def test_types_are_sorted() -> None:
    assert catalog().types() == ("inventory.reserve", "inventory.reserved")


def test_schema_requires_data_only_when_the_payload_requires_fields() -> None:
    schemas = catalog().json_schemas()
    assert "data" in schemas["inventory.reserve"]["required"]
    assert "data" not in schemas["inventory.reserved"]["required"]
    assert schemas["inventory.reserve"]["properties"]["type"] == {"const": "inventory.reserve"}


def test_default_catalog_has_no_business_types() -> None:
    assert isinstance(default_catalog, EventCatalog) and not default_catalog.strict


# -- property: decode + strict validate raise only the typed decode errors ------

# Near-misses of the payloads, so the registered models see wrong fields, not only noise.
line_like = st.fixed_dictionaries({}, optional={"sku": json_values, "qty": json_values})
payload_like = st.fixed_dictionaries(
    {},
    optional={
        "order_id": json_values,
        "lines": st.lists(line_like, max_size=3) | json_values,
        "reservation_id": json_values,
    },
)
event_types = st.sampled_from(["inventory.reserve", "inventory.reserved"]) | st.text(max_size=20)


@settings(max_examples=300)
@given(event_types, payload_like | json_values)
def test_random_type_and_data_raise_only_decode_errors(event_type: str, data: Any) -> None:
    strict = catalog()
    value = orjson.dumps(
        {
            "specversion": "1.0",
            "id": "e1",
            "source": "fuzz",
            "type": event_type,
            "sagaid": "s1",
            "data": data,
        }  # fmt: skip
    )
    try:
        payload = strict.validate(decode(value, topic="t", partition=0, offset=1), topic="t")
    except DecodeError as exc:  # NotACloudEvent, UnknownEventType, InvalidPayload, ...
        assert str(exc) and exc.reason
    else:
        assert event_type in strict and isinstance(payload, strict.model_for(event_type))
