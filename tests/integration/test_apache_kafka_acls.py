"""Per-role principals and the ACLs `sagas topics acl` prints, on a 3-node Apache Kafka.

The cluster (``sagas.kafka.apache_kafka``) authenticates every client with SCRAM
and authorizes with KRaft's ``StandardAuthorizer``, denying what no ACL allows;
``sagas-admin`` is the only super user (and what the nodes log in to each other
as). The operator creates the topics and applies the ACLs of the order saga
(`sagas topics acl --apply`); then:

- the coordinator (``User:sagas-coordinator``) and inventory, payment and shipping
  (``User:svc-<service>``), each with its own principal and nothing else, run the
  order saga to its end; so does payment served by `sagas bridge` (``User:sagas-bridge``);
- a service principal reading another service's commands, writing
  ``saga.lifecycle``, or consuming in the coordinator's group is refused: its
  process ends with one line naming the principal, the topic or group and the
  operation, and a non-zero exit, instead of hanging or retrying for ever.

Runs in the Apache Kafka half of the suite (``SAGAS_TEST_BROKER=kafka``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from sagas.kafka.apache_kafka import ApacheKafka, ClientListener, SaslUser
from sagas.kafka.kafka_settings import KafkaSettings
from services import definitions
from tests.integration.test_bridge import EXAMPLE, load_payments_api
from tests.support.kafka_peers import eventually
from tests.support.order_saga import OrderSaga, Recorder, order
from tests.support.processes import ManagedProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.apache_kafka]

ADMIN = SaslUser("sagas-admin", "Admin-Secret-5d1e")
ROLES = {
    "coordinator": SaslUser("sagas-coordinator", "Coord-Secret-81ab"),
    "inventory": SaslUser("svc-inventory", "Inv-Secret-27c4"),
    "payment": SaslUser("svc-payment", "Pay-Secret-9f03"),
    "shipping": SaslUser("svc-shipping", "Ship-Secret-6a72"),
}
BRIDGE = SaslUser("sagas-bridge", "Bridge-Secret-3c58")


@pytest.fixture(scope="module")
def acl_kafka() -> Iterator[ApacheKafka]:
    listener = ClientListener(
        "SASL_PLAINTEXT", users=(ADMIN, *ROLES.values(), BRIDGE), superuser=ADMIN.name
    )
    with ApacheKafka(nodes=3, listener=listener) as kafka:
        yield kafka


def env_of(kafka: ApacheKafka, user: SaslUser) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": user.name,
        "KAFKA_SASL_PASSWORD": user.password,
    }


def settings_of(env: dict[str, str]) -> KafkaSettings:
    fields = {f.validation_alias: name for name, f in KafkaSettings.model_fields.items()}
    return KafkaSettings(**{fields[k]: v for k, v in env.items()})


async def finished(system: OrderSaga, process: ManagedProcess, what: str, timeout: float) -> str:
    """Wait until ``process`` exits; its output."""
    await eventually(
        lambda: not process.alive(), timeout, lambda: f"{what} to exit:\n{system.logs()}"
    )
    return process.log_path.read_text()


async def deployed(
    kafka: ApacheKafka, prefix: str, folder: Path, *acl_args: str
) -> tuple[OrderSaga, Path]:
    """The operator's part: topics created and the printed ACLs applied, as the super user."""
    admin = env_of(kafka, ADMIN)
    system = OrderSaga(
        settings_of(admin),
        prefix,
        folder,
        env={"SERVICES_TOPIC_PREFIX": prefix, "SAGAS_APP_ID": f"{prefix}coordinator"},
        services_config="inventory: {initial_stock: {A: 10, EMPTY: 0}}\n",
        embedded=False,
    )
    await system.create_topics()
    path = definitions.write("order_orchestrated", prefix, folder)
    apply = system.start(
        "acl-apply",
        [*system.sagas_command(), "topics", "acl", "-d", str(path), "--apply", *acl_args],
        admin,
    )
    output = await finished(system, apply, "sagas topics acl --apply", 60)
    assert apply.proc is not None and apply.proc.returncode == 0, output
    assert "ACLs applied for 4 principals, enforced by every broker" in output, output
    return system, path


def start_service(
    system: OrderSaga,
    kafka: ApacheKafka,
    name: str,
    user: SaslUser,
    as_name: str | None = None,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """``sagas service`` as a deployment with ACLs runs it: the operator made the topics."""
    system.ports[as_name or name] = free_port()
    args = [*system.sagas_command(), "service", name, "--config", str(system.config),
            "--metrics-port", str(system.ports[as_name or name]), "--no-create-topics"]  # fmt: skip
    return system.start(as_name or name, args, {**env_of(kafka, user), **(env or {})})


@pytest.mark.parametrize("payment_by", ["service", "bridge", "exactly_once"])
async def test_order_saga_runs_with_a_principal_per_process_under_the_printed_acls(
    acl_kafka: ApacheKafka, payment_by: str, unique_prefix: str, tmp_path: Path
) -> None:
    """``bridge``: payment is served by `sagas bridge` (``User:sagas-bridge``) from an HTTP
    API, and the ACLs are printed with ``--bridge payment=payment-bridge``.
    ``exactly_once``: every process runs with ``SAGAS_PROCESSING_GUARANTEE=exactly_once``
    (transactional ids that start with its group id: the prefixed TransactionalId ACLs)."""
    bridged = ["--bridge", "payment=payment-bridge"] if payment_by == "bridge" else []
    system, _ = await deployed(acl_kafka, unique_prefix, tmp_path, *bridged)
    mode = {"SAGAS_PROCESSING_GUARANTEE": "exactly_once"} if payment_by == "exactly_once" else {}
    api = None
    try:
        system.start_coordinator({**env_of(acl_kafka, ROLES["coordinator"]), **mode})
        for name in ("inventory", "shipping"):
            start_service(system, acl_kafka, name, ROLES[name], env=mode)
        if payment_by != "bridge":
            start_service(system, acl_kafka, "payment", ROLES["payment"], env=mode)
        else:
            api = await start_bridge(system, acl_kafka, unique_prefix, tmp_path)
        await system.ready("inventory", "payment", "shipping", timeout=90)
        async with Recorder(system.kafka, system.engine.lifecycle) as lifecycle:
            ids = await system.place(
                [("acl-0", order(0)), ("acl-1", order(1)), ("acl-2", order(2, sku="EMPTY"))]
            )
            assert await system.wait_terminal(lifecycle, ids, timeout=120) == {
                "acl-0": "completed",
                "acl-1": "completed",
                "acl-2": "compensated",
            }
    finally:
        await system.stop()
        if api is not None:
            await api.cleanup()
    for name, process in system.processes.items():
        assert "AuthorizationFailed" not in process.log_path.read_text(), name


async def start_bridge(
    system: OrderSaga, kafka: ApacheKafka, prefix: str, folder: Path
) -> web.AppRunner:
    """`sagas bridge` named payment-bridge as ``User:sagas-bridge``, serving payment from an
    HTTP API; its health is served as "payment"."""
    api = web.AppRunner(load_payments_api().make_app(), access_log=None)
    await api.setup()
    api_port = free_port()
    await web.TCPSite(api, "127.0.0.1", api_port).start()
    bridge = yaml.safe_load((EXAMPLE / "bridge.yaml").read_text())
    bridge.update(topic_prefix=prefix, name="payment-bridge")
    (folder / "bridge.yaml").write_text(yaml.safe_dump(bridge))
    system.ports["payment"] = free_port()
    system.start(
        "payment",
        [*system.sagas_command(), "bridge", "--config", str(folder / "bridge.yaml"),
         "--metrics-port", str(system.ports["payment"])],
        {**env_of(kafka, BRIDGE), "PAYMENTS_URL": f"http://127.0.0.1:{api_port}"},
    )  # fmt: skip
    return api


def refusal_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error line in:\n{output}"
    assert "Traceback" not in output, output
    return errors[0]


async def test_a_service_principal_reading_another_services_commands_is_refused(
    acl_kafka: ApacheKafka, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    system, _ = await deployed(acl_kafka, p, tmp_path)
    try:  # svc-inventory runs payment: it may not read payment's commands
        process = start_service(system, acl_kafka, "payment", ROLES["inventory"])
        output = await finished(system, process, "payment as svc-inventory", 60)
    finally:
        await system.stop()
    assert process.proc is not None and process.proc.returncode not in (0, None), output
    line = refusal_line(output)
    assert "User:svc-inventory" in line and f"{p}payment.commands" in line, line
    assert "sagas topics acl" in line, line


async def command_to(system: OrderSaga, topic: str, saga_id: str) -> None:
    producer = AIOKafkaProducer(**system.kafka.aiokafka_kwargs())
    await producer.start()
    try:
        event = new_event("inventory.reserve", source="test", sagaid=saga_id, data={})
        value, headers = encode(event)
        await producer.send_and_wait(topic, value, key=saga_id.encode(), headers=headers)
    finally:
        await producer.stop()


@pytest.mark.parametrize("mode", ["lifecycle", "group"])
async def test_a_service_principal_overstepping_is_refused_with_one_line(
    acl_kafka: ApacheKafka, mode: str, unique_prefix: str, tmp_path: Path
) -> None:
    """``lifecycle``: inventory answers a command on ``saga.lifecycle``; ``group``: it
    consumes its own commands in the coordinator's consumer group."""
    p = unique_prefix
    system, _ = await deployed(acl_kafka, p, tmp_path)
    coordinator_group = f"{p}coordinator"
    try:
        process = system.start(
            f"rogue-{mode}",
            [sys.executable, "-m", "tests.support.rogue_participant", mode, "inventory",
             coordinator_group],
            env_of(acl_kafka, ROLES["inventory"]),
        )  # fmt: skip
        if mode == "lifecycle":
            await command_to(system, f"{p}inventory.commands", "rogue-1")
        output = await finished(system, process, f"the {mode} rogue", 60)
    finally:
        await system.stop()
    assert process.proc is not None and process.proc.returncode not in (0, None), output
    line = refusal_line(output)
    assert "User:svc-inventory" in line and "sagas topics acl" in line, line
    if mode == "lifecycle":
        assert f"Write on topic '{p}saga.lifecycle'" in line, line
    else:
        assert f"Read on group '{coordinator_group}'" in line, line


@pytest.mark.parametrize("missing", ["group", "commands"])
async def test_a_coordinator_missing_one_acl_says_which_and_exits(
    acl_kafka: ApacheKafka, missing: str, unique_prefix: str, tmp_path: Path
) -> None:
    """The printed ACLs but one (applied in-process, as the super user): the coordinator's
    group, or Write on inventory's command topic. It must stop with one line naming it."""
    from events.topics import Topics
    from sagas.coordinator import changelog_topic
    from sagas.deployment_acls import Deployment, deployment_acls
    from sagas.kafka.acl_admin import create_acls
    from sagas.loader import DefinitionRegistry

    p = unique_prefix
    admin = env_of(acl_kafka, ADMIN)
    system = OrderSaga(
        settings_of(admin),
        p,
        tmp_path,
        env={"SERVICES_TOPIC_PREFIX": p, "SAGAS_APP_ID": f"{p}coordinator"},
        services_config="inventory: {initial_stock: {A: 10}}\n",
        embedded=False,
    )
    await system.create_topics()
    app_id = f"{p}coordinator"
    registry = DefinitionRegistry([definitions.load("order_orchestrated", p)])
    computed = deployment_acls(
        registry, Deployment(Topics.with_prefix(p), p, app_id, changelog_topic(app_id))
    )
    dropped = [
        a
        for a in computed.acls
        if a.principal == "User:sagas-coordinator"
        and (
            (missing == "group" and a.resource_type == "Group")
            or (missing == "commands" and a.name == f"{p}inventory.commands")
        )
    ]
    assert len(dropped) == 1, dropped
    await create_acls(system.kafka, [a for a in computed.acls if a not in dropped])
    try:
        # as docker compose runs it: the operator made the topics (`sagas topics init`)
        definition = definitions.write("order_orchestrated", p, tmp_path)
        process = system.start(
            "coordinator",
            [*system.sagas_command(), "worker", "-d", str(definition), "--web-port",
             str(free_port()), "--no-create-topics"],
            env_of(acl_kafka, ROLES["coordinator"]),
        )  # fmt: skip
        if missing == "commands":  # the first command it sends is refused
            start_service(system, acl_kafka, "inventory", ROLES["inventory"])
            await system.place([("acl-miss-0", order(0))])
        output = await finished(system, process, "the coordinator", 90)
    finally:
        await system.stop()
    assert process.proc is not None and process.proc.returncode not in (0, None), output
    line = refusal_line(output)
    assert "User:sagas-coordinator" in line and "sagas topics acl" in line, line
    if missing == "group":
        assert f"Read on group '{app_id}'" in line, line
    else:
        assert f"Write on topic '{p}inventory.commands'" in line, line
