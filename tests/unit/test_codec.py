"""The codec: what goes on the wire comes back the same, and bad records get typed errors."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.codec import DEFAULT_MAX_BYTES, decode, encode, encode_fields, encode_key
from events.envelope import CloudEvent, new_event
from events.errors import (
    DecodeError,
    EncodeError,
    MissingSagaIdError,
    NotACloudEventError,
    NotJSONError,
    RecordTooLargeError,
)
from tests.unit.json_strategies import json_values

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


def sample(**overrides: Any) -> CloudEvent:
    fields: dict[str, Any] = {
        "source": "svc/order",
        "sagaid": "saga-42",
        "data": {"sku": "A-1", "qty": 3, "lines": [{"n": 1.5, "ok": True, "note": None}]},
        "causationid": "cmd-1",
        "time": T0,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    fields.update(overrides)
    return new_event("inventory.reserve", **fields)


def binary_record(event: CloudEvent) -> tuple[bytes, list[tuple[str, bytes]]]:
    doc = orjson.loads(encode(event)[0])
    data = doc.pop("data")
    headers = [(f"ce_{k}", str(v).encode()) for k, v in doc.items() if k != "datacontenttype"]
    headers.append(("content-type", doc["datacontenttype"].encode()))
    return orjson.dumps(data), headers


# -- round trips -------------------------------------------------------------


def test_structured_round_trip() -> None:
    event = sample()
    value, headers = encode(event)
    assert headers == [("content-type", b"application/cloudevents+json")]
    assert decode(value, headers) == event
    assert encode_key(event) == b"saga-42"


def test_structured_value_is_plain_cloudevents_json() -> None:
    value, _ = encode(sample(causationid=None, traceparent=None))
    doc = json.loads(value)
    assert doc["specversion"] == "1.0"
    assert doc["time"] == "2024-05-17T12:30:45.123456Z"
    assert doc["datacontenttype"] == "application/json"
    assert "causationid" not in doc and "traceparent" not in doc


def test_time_keeps_its_offset_and_naive_time_is_utc() -> None:
    plus2 = datetime(2024, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    value, _ = encode(sample(time=plus2))
    assert json.loads(value)["time"] == "2024-01-01T14:00:00+02:00"
    assert decode(value).time == plus2

    value, _ = encode(sample(time=datetime(2024, 1, 1, 12, 0)))
    assert json.loads(value)["time"] == "2024-01-01T12:00:00Z"


def test_binary_mode_round_trip() -> None:
    event = sample()
    value, headers = binary_record(event)
    assert decode(value, headers) == event


def test_binary_mode_with_empty_value_has_empty_data() -> None:
    _, headers = binary_record(sample())
    assert decode(None, headers).data == {}


def test_bare_cloudevent_json_without_headers_is_accepted() -> None:
    raw = b'{"specversion":"1.0","id":"e1","source":"go/payment","type":"payment.charged",'
    raw += b'"sagaid":"s1","causationid":"c1","partitionkey":"ignored"}'
    event = decode(raw, [("x-other", b"1")])
    assert (event.type, event.sagaid, event.data, event.time) == ("payment.charged", "s1", {}, None)


def test_structured_content_type_wins_over_ce_headers() -> None:
    event = sample()
    value, headers = encode(event)
    headers = [*headers, ("ce_specversion", b"1.0"), ("ce_id", b"other")]
    assert decode(value, headers) == event


@pytest.mark.parametrize("bad", [object(), 2**64, {1: "int key"}])
def test_encode_rejects_data_that_is_not_json(bad: object) -> None:
    with pytest.raises(EncodeError, match="inventory.reserve"):
        encode(sample(data={"field": bad}))


# -- malformed records -------------------------------------------------------

VALID: dict[str, Any] = {
    "specversion": "1.0",
    "id": "e1",
    "source": "svc/x",
    "type": "x.happened",
    "sagaid": "s1",
}


def doc(**changes: Any) -> bytes:
    d = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in d.items() if v is not ...})


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (None, NotJSONError, ["None"]),
        (b"", NotJSONError, ["empty"]),
        (b"{not json", NotJSONError, ["not JSON"]),
        (b"\xff\xfe", NotJSONError, ["not JSON"]),
        (b"[1, 2]", NotACloudEventError, ["JSON object", "list"]),
        (b'"text"', NotACloudEventError, ["JSON object", "str"]),
        (doc(specversion="0.3"), NotACloudEventError, ["'specversion'", '"1.0"', "'0.3'"]),
        (doc(id=7), NotACloudEventError, ["'id'", "non-empty string", "int 7"]),
        (doc(source=""), NotACloudEventError, ["'source'", "non-empty string"]),
        (doc(type=...), NotACloudEventError, ["'type'", "missing"]),
        (doc(time="yesterday"), NotACloudEventError, ["'time'", "RFC 3339", "yesterday"]),
        (doc(time="2024-01-01T00:00:00"), NotACloudEventError, ["'time'", "offset"]),
        (doc(time=1700000000), NotACloudEventError, ["'time'", "int"]),
        (doc(time="2024-13-01T00:00:00Z"), NotACloudEventError, ["'time'", "month"]),
        (doc(causationid=5), NotACloudEventError, ["'causationid'", "a string", "int"]),
        (doc(data=[1, 2]), NotACloudEventError, ["'data'", "JSON object", "list"]),
        (doc(data="text"), NotACloudEventError, ["'data'", "JSON object", "str"]),
        (doc(data_base64="AAAA"), NotACloudEventError, ["data_base64"]),
        (doc(sagaid=...), MissingSagaIdError, ["'sagaid'", "missing"]),
        (doc(sagaid=""), MissingSagaIdError, ["'sagaid'"]),
    ],
)
def test_malformed_record_gets_typed_error(
    value: bytes | None, error: type[DecodeError], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        decode(value)
    assert type(caught.value) is error
    for word in words:
        assert word in str(caught.value)


def test_several_problems_are_named_together() -> None:
    with pytest.raises(NotACloudEventError) as caught:
        decode(doc(id=..., sagaid=..., specversion=1))
    assert type(caught.value) is NotACloudEventError  # not only the sagaid is missing
    assert set(caught.value.attributes) == {"specversion", "id", "sagaid"}
    assert caught.value.reason == "not-a-cloudevent"


def test_too_large_names_size_and_limit() -> None:
    value = doc(data={"blob": "x" * 500})
    with pytest.raises(RecordTooLargeError) as caught:
        decode(value, max_bytes=100)
    assert (caught.value.size, caught.value.limit) == (len(value), 100)
    assert f"{len(value)} bytes" in str(caught.value) and "100 bytes" in str(caught.value)


def padded_to(size: int) -> bytes:
    """A valid structured-mode event whose value is exactly ``size`` bytes."""
    value = doc(data={"blob": ""})
    value = doc(data={"blob": "x" * (size - len(value))})
    assert len(value) == size
    return value


def test_default_limit_is_one_mib() -> None:
    """Pinned: issue 2 names 1 MiB, and SAGAS_MAX_RECORD_BYTES defaults to the same."""
    assert DEFAULT_MAX_BYTES == 1_048_576
    with pytest.raises(RecordTooLargeError) as caught:
        decode(padded_to(1_048_576 + 1))
    assert (caught.value.size, caught.value.limit) == (1_048_577, 1_048_576)
    assert caught.value.reason == "too-large"
    assert decode(padded_to(1_048_576)).data["blob"].startswith("x")  # the limit itself is fine


def test_binary_header_that_is_not_utf8() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_source", b"\xff\xfe")]
    with pytest.raises(NotACloudEventError, match="ce_source.*UTF-8"):
        decode(b"{}", headers)


def test_binary_mode_names_missing_header_attributes() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"i"), ("ce_type", b"t")]
    with pytest.raises(NotACloudEventError) as caught:
        decode(b"{}", headers)
    assert set(caught.value.attributes) == {"ce_source", "ce_sagaid"}


def test_binary_mode_data_not_json_or_not_object() -> None:
    _, headers = binary_record(sample())
    with pytest.raises(NotJSONError):
        decode(b"\x00garbage", headers)
    with pytest.raises(NotACloudEventError, match="'data'"):
        decode(b"[1]", headers)


def test_error_carries_record_location_for_the_dead_letter() -> None:
    with pytest.raises(NotJSONError) as caught:
        decode(b"nope", topic="inventory.replies", partition=3, offset=17)
    err = caught.value
    assert "topic=inventory.replies partition=3 offset=17" in str(err)
    assert dict(err.dlq_headers()) == {
        "x-dlq-reason": b"not-json",
        "x-dlq-topic": b"inventory.replies",
        "x-dlq-partition": b"3",
        "x-dlq-offset": b"17",
    }
    copy = pickle.loads(pickle.dumps(err))  # errors cross process boundaries intact
    assert (type(copy), str(copy), copy.offset) == (NotJSONError, str(err), 17)


# -- properties --------------------------------------------------------------

ATTRIBUTES = ["specversion", "id", "source", "type", "time", "sagaid", "causationid",
              "traceparent", "datacontenttype", "data", "data_base64"]  # fmt: skip
HEADERS = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_sagaid", "ce_time",
           "content-type", "traceparent", "other"]  # fmt: skip
attribute_names = st.sampled_from(ATTRIBUTES)
attribute_values = json_values | st.sampled_from(
    ["1.0", "2024-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "x", ""]
)
header_values = st.binary(max_size=12) | st.sampled_from(
    [b"1.0", b"application/cloudevents+json", b"2024-01-01T00:00:00Z", b"", None, "text", 3]
)
header_lists = st.lists(st.tuples(st.sampled_from(HEADERS), header_values), max_size=3)


@st.composite
def near_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with up to three attributes dropped or replaced by random values."""
    d: dict[str, Any] = {**VALID, "time": "2024-01-01T00:00:00Z", "data": {"a": 1}}
    for key in draw(st.sets(attribute_names, max_size=3)):
        if draw(st.booleans()):
            d.pop(key, None)
        else:
            d[key] = draw(attribute_values)
    return d


@st.composite
def near_binary_headers(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Valid binary-mode headers, some dropped or replaced, plus random extra ones."""
    headers = [(f"ce_{k}", v.encode()) for k, v in VALID.items()]
    headers.append(("content-type", b"application/json"))
    for i in sorted(draw(st.sets(st.integers(0, len(headers) - 1), max_size=2)), reverse=True):
        if draw(st.booleans()):
            del headers[i]
        else:
            headers[i] = (headers[i][0], draw(header_values))
    return headers + draw(header_lists)


def decodes_or_decode_error(value: Any, headers: Any = None) -> None:
    try:
        event = decode(value, headers)
    except DecodeError as exc:
        assert str(exc)
    else:
        assert isinstance(event, CloudEvent) and event.sagaid and isinstance(event.data, dict)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_decode_error(value: bytes) -> None:
    decodes_or_decode_error(value)


@settings(max_examples=300)
@given(json_values | near_events())
def test_random_json_never_raises_anything_but_decode_error(value: Any) -> None:
    decodes_or_decode_error(json.dumps(value).encode())


@settings(max_examples=300)
@given(
    st.one_of(st.none(), st.binary(max_size=40), json_values.map(orjson.dumps)),
    header_lists | near_binary_headers(),
)
def test_random_headers_never_raise_anything_but_decode_error(
    value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    decodes_or_decode_error(value, headers)


@settings(max_examples=100)
@given(
    st.text(min_size=1),
    st.text(min_size=1),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    st.datetimes(timezones=st.just(UTC)),
)
def test_any_valid_event_round_trips(sagaid: str, source: str, data: dict, time: datetime) -> None:
    event = sample(sagaid=sagaid, source=source, data=data, time=time)
    assert decode(*encode(event)) == event


def test_derived_ids_never_change_between_versions() -> None:
    """A coordinator upgraded mid-saga must re-send a command with the id it had: pinned."""
    from events.envelope import derived_id

    assert derived_id("saga-1", "command", 2, "do", 1) == "c64aca95-720b-fb05-54e7-0e24c35046b7"
    assert derived_id("saga-1", "command", 2, "do", 2) != derived_id(
        "saga-1", "command", 2, "do", 1
    )


_TEXT = st.text(min_size=1, max_size=20)


@given(
    id_=_TEXT,
    type_=_TEXT,
    sagaid=_TEXT,
    at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    data=st.dictionaries(
        st.text(max_size=8),
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
        max_size=5,
    ),
)
@settings(max_examples=200, deadline=None)
def test_encode_fields_writes_what_encode_writes_for_the_same_event(
    id_: str, type_: str, sagaid: str, at: float, data: dict[str, Any]
) -> None:
    """The coordinator encodes its events from their attributes (`encode_fields`); the
    record must be the one `encode` writes for the validated CloudEvent, byte for byte."""
    time = datetime.fromtimestamp(at, UTC)
    event = CloudEvent(id=id_, source="sagastream/coordinator", type=type_, time=time,
                       sagaid=sagaid, data=data)  # fmt: skip
    assert encode_fields(id_, event.source, type_, time, sagaid, data) == encode(event)
