"""TLS and SASL served by Apache Kafka itself, every process configured by ``KAFKA_*`` only.

The embedded broker cannot serve TLS with a key nor authenticate with SASL
(see ``test_tls.py``, which puts a TLS endpoint in front of it). Here each
test starts its own Apache Kafka (``sagas.kafka.apache_kafka``) with a secured
client listener:

- **mutual TLS**: an SSL listener that requires a client certificate signed by
  the test CA; plaintext, no certificate, a stranger's certificate and the
  wrong CA are refused; the order saga runs with every process holding its
  own certificate (the listener admits nobody else);
- **SASL** (SCRAM-SHA-512 and PLAIN): `sagas topics init`, the coordinator,
  inventory and shipping, `sagas bridge` (serving payment from an HTTP API),
  `sagas load` and `sagas start` connect with
  ``KAFKA_SECURITY_PROTOCOL``/``KAFKA_SASL_*`` and nothing else; the sagas
  end; no output of any process holds the password; a wrong password is one
  clear error and a non-zero exit, and the wrong password is not printed either.

Runs in the Apache Kafka half of the suite (``SAGAS_TEST_BROKER=kafka``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from sagas.kafka.apache_kafka import ApacheKafka, ClientListener, SaslUser
from sagas.kafka.kafka_settings import KafkaSettings
from services import definitions
from tests.integration.test_bridge import EXAMPLE, load_payments_api
from tests.support.kafka_peers import eventually
from tests.support.order_saga import OrderSaga, Recorder, order
from tests.support.pki import Pki, can_list_topics, make_pki
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.apache_kafka]

PROCESSES = ("coordinator", "inventory", "payment", "shipping")
SECRET = "Sagas-Secret-7f3a9c"
WRONG = "Wrong-Secret-41b2e8"
USER = "sagas"


def settings_of(env: dict[str, str]) -> KafkaSettings:
    fields = {f.validation_alias: name for name, f in KafkaSettings.model_fields.items()}
    return KafkaSettings(**{fields[k]: v for k, v in env.items()})


# -- mutual TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), PROCESSES)


@pytest.fixture(scope="module")
def tls_kafka(pki: Pki) -> Iterator[ApacheKafka]:
    keystore = pki.folder / "broker-keystore.pem"  # Kafka's PEM keystore: key, then chain
    keystore.write_bytes(pki.key("broker").read_bytes() + pki.cert("broker").read_bytes())
    listener = ClientListener("SSL", keystore=keystore, truststore=pki.ca)
    probe = settings_of(pki.env("127.0.0.1:1", "test-client"))
    with ApacheKafka(listener=listener, probe_settings=probe) as kafka:
        yield kafka


async def test_apache_kafka_tls_listener_refuses_what_it_should(
    pki: Pki, tls_kafka: ApacheKafka
) -> None:
    bootstrap = tls_kafka.bootstrap_servers
    good = pki.env(bootstrap, "test-client")
    assert await can_list_topics(settings_of(good))
    assert not await can_list_topics(settings_of({"KAFKA_BOOTSTRAP_SERVERS": bootstrap}))
    no_client_cert = {k: v for k, v in good.items() if "CERTFILE" not in k and "KEYFILE" not in k}
    assert not await can_list_topics(settings_of(no_client_cert))
    stranger = {
        **good,
        "KAFKA_SSL_CERTFILE": str(pki.cert("stranger")),
        "KAFKA_SSL_KEYFILE": str(pki.key("stranger")),
    }
    assert not await can_list_topics(settings_of(stranger))
    wrong_ca = {**good, "KAFKA_SSL_CAFILE": str(pki.folder / "other-ca.pem")}
    assert not await can_list_topics(settings_of(wrong_ca))


async def test_order_saga_over_tls_served_by_apache_kafka(
    pki: Pki, tls_kafka: ApacheKafka, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    bootstrap = tls_kafka.bootstrap_servers
    system = OrderSaga(
        settings_of(pki.env(bootstrap, "test-client")),
        p,
        tmp_path,
        env={"SERVICES_TOPIC_PREFIX": p},
        services_config="inventory: {initial_stock: {A: 10, EMPTY: 0}}\n",
        embedded=False,
    )
    await system.create_topics()
    try:
        system.start_coordinator(pki.env(bootstrap, "coordinator"))
        for name in ("inventory", "payment", "shipping"):
            system.start_service(name, pki.env(bootstrap, name))
        await system.ready("inventory", "payment", "shipping", timeout=60)
        async with Recorder(system.kafka, system.engine.lifecycle) as lifecycle:
            ids = await system.place(
                [("ktls-0", order(0)), ("ktls-1", order(1)), ("ktls-2", order(2, sku="EMPTY"))]
            )
            assert await system.wait_terminal(lifecycle, ids, timeout=90) == {
                "ktls-0": "completed",
                "ktls-1": "completed",
                "ktls-2": "compensated",
            }
    finally:
        await system.stop()


# -- SASL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[ApacheKafka]:
    listener = ClientListener("SASL_PLAINTEXT", users=(SaslUser(USER, SECRET),))
    with ApacheKafka(listener=listener) as kafka:
        yield kafka


def sasl_env(bootstrap: str, mechanism: str, password: str = SECRET) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": password,
    }


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
async def test_every_process_authenticates_with_sasl_from_the_environment(
    sasl_kafka: ApacheKafka, mechanism: str, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    env = sasl_env(sasl_kafka.bootstrap_servers, mechanism)
    system = OrderSaga(
        settings_of(env),
        p,
        tmp_path,
        env={**env, "SERVICES_TOPIC_PREFIX": p},
        services_config="inventory: {initial_stock: {A: 10, EMPTY: 0}}\n",
        embedded=False,
    )
    try:
        # The CLI creates the deployment's topics, as docker compose's one-shot job does.
        path = definitions.write("order_orchestrated", p, tmp_path)
        init = system.start("topics", [*system.sagas_command(), "topics", "init", "-d", str(path)])
        await eventually(lambda: not init.alive(), 90, lambda: f"topics init:\n{system.logs()}")
        assert init.proc is not None and init.proc.returncode == 0, system.logs()
        system.start_coordinator()
        for name in ("inventory", "shipping"):
            system.start_service(name)
        # Payment through `sagas bridge` and an HTTP API that knows nothing of Kafka.
        api = web.AppRunner(load_payments_api().make_app(), access_log=None)
        await api.setup()
        api_port = free_port()
        await web.TCPSite(api, "127.0.0.1", api_port).start()
        bridge = yaml.safe_load((EXAMPLE / "bridge.yaml").read_text())
        bridge.update(topic_prefix=p, name=f"{p}payment-bridge")
        (tmp_path / "bridge.yaml").write_text(yaml.safe_dump(bridge))
        system.ports["bridge"] = free_port()
        system.start(
            "bridge",
            [*system.sagas_command(), "bridge", "--config", str(tmp_path / "bridge.yaml"),
             "--metrics-port", str(system.ports["bridge"])],
            {"PAYMENTS_URL": f"http://127.0.0.1:{api_port}"},
        )  # fmt: skip
        await system.ready("inventory", "shipping", "bridge", timeout=60)
        async with Recorder(system.kafka, system.engine.lifecycle) as lifecycle:
            ids = await system.place([("sasl-0", order(0)), ("sasl-1", order(1, sku="EMPTY"))])
            load = system.start(
                "load",
                [*system.sagas_command(), "load", "--count", "3", "--rate", "50", "--seed", "3"],
            )
            start = system.start(
                "start",
                [*system.sagas_command(), "start", "order", "-d", str(path), "--id", "sasl-cli",
                 "--data", '{"order_id": "cli", "customer_id": "c1", "amount": 100, '
                 '"lines": [{"sku": "A", "qty": 1}]}'],
            )  # fmt: skip
            for name, process in (("load", load), ("start", start)):
                await eventually(
                    lambda process=process: not process.alive(),
                    90,
                    lambda name=name: f"sagas {name} to finish:\n{system.logs()}",
                )
                assert process.proc is not None and process.proc.returncode == 0, system.logs()
            assert await system.wait_terminal(lifecycle, [*ids, "sasl-cli"], timeout=90) == {
                "sasl-0": "completed",
                "sasl-1": "compensated",
                "sasl-cli": "completed",
            }
            # The orders of `sagas load` started sagas that ended too.
            started = await eventually(
                lambda: (
                    len(lifecycle.of_type("saga.started")) >= 6
                    and {e.sagaid for e in lifecycle.of_type("saga.started")}
                ),
                60,
                "6 sagas started",
            )
            await system.wait_terminal(lifecycle, sorted(started), timeout=90)
    finally:
        await system.stop()
        if "api" in locals():
            await api.cleanup()
    leaks = [
        name for name, process in system.processes.items() if SECRET in process.log_path.read_text()
    ]
    assert leaks == [], f"the SASL password appears in the output of {leaks}"


@pytest.mark.parametrize("command", ["worker", "service", "bridge", "topics", "load"])
async def test_a_wrong_password_is_a_clear_error_and_a_non_zero_exit(
    sasl_kafka: ApacheKafka, command: str, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    env = sasl_env(sasl_kafka.bootstrap_servers, "SCRAM-SHA-512", password=WRONG)
    system = OrderSaga(
        settings_of(sasl_env(sasl_kafka.bootstrap_servers, "SCRAM-SHA-512")),
        p,
        tmp_path,
        env={**env, "SERVICES_TOPIC_PREFIX": p},
        embedded=False,
    )
    path = definitions.write("order_orchestrated", p, tmp_path)
    bridge = yaml.safe_load((EXAMPLE / "bridge.yaml").read_text())
    bridge.update(topic_prefix=p, name=f"{p}payment-bridge")
    (tmp_path / "bridge.yaml").write_text(yaml.safe_dump(bridge))
    args = {
        "bridge": ["bridge", "--config", str(tmp_path / "bridge.yaml")],
        "worker": ["worker", "-d", str(path), "--web-port", str(free_port())],
        "service": ["service", "inventory", "--config", str(system.config)],
        "topics": ["topics", "init", "-d", str(path), "--wait", "5"],
        "load": ["load", "--count", "1"],
    }[command]
    process = system.start(
        command, [*system.sagas_command(), *args], {"PAYMENTS_URL": "http://127.0.0.1:9"}
    )
    try:
        await eventually(
            lambda: not process.alive(), 60, lambda: f"sagas {command} to exit:\n{system.logs()}"
        )
    finally:
        await system.stop()
    output = process.log_path.read_text()
    assert process.proc is not None and process.proc.returncode not in (0, None), output
    assert WRONG not in output and SECRET not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors, f"no one-line error in:\n{output}"
    assert any("authentication" in line.lower() for line in errors), output
    assert "Traceback" not in output, output
