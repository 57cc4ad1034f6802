"""What each Apache Kafka node is told (a pure function of the cluster's layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagas.kafka.apache_kafka.config import (
    BROKER_PROPERTIES,
    ClientListener,
    ClusterLayout,
    NodePorts,
    SaslUser,
    node_properties,
    scram_arguments,
)


def layout(nodes: int, listener: ClientListener | None = None) -> ClusterLayout:
    ports = tuple(NodePorts(9000 + 10 * i, 9001 + 10 * i, 9002 + 10 * i) for i in range(nodes))
    dirs = tuple(Path(f"/data/node-{i + 1}") for i in range(nodes))
    return ClusterLayout("127.0.0.1", ports, dirs, listener or ClientListener())


def properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in out, f"{key} set twice"
            out[key] = value
    return out


def test_three_nodes_form_one_quorum_with_three_replicas_and_two_in_sync() -> None:
    cluster = layout(3)
    nodes = [properties(node_properties(cluster, i)) for i in range(3)]
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    voters = "1@127.0.0.1:9002,2@127.0.0.1:9012,3@127.0.0.1:9022"
    assert {n["controller.quorum.voters"] for n in nodes} == {voters}
    for n in nodes:
        assert n["process.roles"] == "broker,controller"
        assert n["default.replication.factor"] == "3"
        assert n["min.insync.replicas"] == "2"
        assert n["offsets.topic.replication.factor"] == "3"
        assert n["transaction.state.log.min.isr"] == "2"
    assert nodes[1]["listeners"] == (
        "CLIENT://127.0.0.1:9010,INTERNAL://127.0.0.1:9011,CONTROLLER://127.0.0.1:9012"
    )
    assert nodes[2]["log.dirs"] == "/data/node-3"
    assert cluster.bootstrap_servers() == "127.0.0.1:9000,127.0.0.1:9010,127.0.0.1:9020"


def test_nodes_on_addresses_of_their_own_listen_and_meet_there() -> None:
    """The broker-fault tests put each node in a network namespace with its own address."""
    base = layout(3)
    hosts = ("10.218.7.11", "10.218.7.12", "10.218.7.13")
    cluster = ClusterLayout(base.host, base.ports, base.data_dirs, base.listener, hosts)
    nodes = [properties(node_properties(cluster, i)) for i in range(3)]
    assert nodes[1]["listeners"] == (
        "CLIENT://10.218.7.12:9010,INTERNAL://10.218.7.12:9011,CONTROLLER://10.218.7.12:9012"
    )
    assert nodes[2]["advertised.listeners"].startswith("CLIENT://10.218.7.13:9020,")
    voters = "1@10.218.7.11:9002,2@10.218.7.12:9012,3@10.218.7.13:9022"
    assert {n["controller.quorum.voters"] for n in nodes} == {voters}
    assert cluster.bootstrap_servers() == "10.218.7.11:9000,10.218.7.12:9010,10.218.7.13:9020"


def test_one_node_replicates_nothing_and_keeps_the_shared_settings() -> None:
    node = properties(node_properties(layout(1), 0))
    assert node["default.replication.factor"] == "1"
    assert node["min.insync.replicas"] == "1"
    shared = properties(BROKER_PROPERTIES.read_text())
    assert shared["auto.create.topics.enable"] == "false"  # the engine creates its topics
    assert {k: node[k] for k in shared} == shared


def test_a_tls_listener_requires_client_certificates_from_the_truststore(tmp_path: Path) -> None:
    keystore, ca = tmp_path / "broker.pem", tmp_path / "ca.pem"
    keystore.write_text("key and chain")
    ca.write_text("ca")
    listener = ClientListener("SSL", keystore=keystore, truststore=ca)
    listener.check()
    node = properties(node_properties(layout(1, listener), 0))
    assert node["listener.security.protocol.map"].startswith("CLIENT:SSL,INTERNAL:PLAINTEXT")
    assert node["listener.name.client.ssl.keystore.location"] == str(keystore)
    assert node["listener.name.client.ssl.truststore.location"] == str(ca)
    assert node["listener.name.client.ssl.client.auth"] == "required"


def test_sasl_users_log_in_with_plain_or_scram() -> None:
    listener = ClientListener("SASL_PLAINTEXT", users=(SaslUser("svc", "pw-1"),))
    node = properties(node_properties(layout(1, listener), 0))
    assert node["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    assert 'user_svc="pw-1"' in node["listener.name.client.plain.sasl.jaas.config"]
    assert "ScramLoginModule" in node["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert scram_arguments(listener) == [
        "--add-scram", "SCRAM-SHA-256=[name=svc,password=pw-1]",
        "--add-scram", "SCRAM-SHA-512=[name=svc,password=pw-1]",
    ]  # fmt: skip
    assert "pw-1" not in repr(listener)


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        (ClientListener("SSL"), "needs a keystore"),
        (ClientListener("SASL_SSL", keystore=Path("/nonexistent.pem")), "needs at least one"),
        (ClientListener("SSL", keystore=Path("/nonexistent.pem")), "not found: /nonexistent.pem"),
        (ClientListener("SASL_PLAINTEXT", users=(SaslUser("a", 'x"y'),)), "its password"),
        (ClientListener("SASL_PLAINTEXT", users=(SaslUser("a,b", "x"),)), "its name"),
    ],
)
def test_a_listener_that_cannot_work_is_refused_with_what_is_wrong(
    listener: ClientListener, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        listener.check()


def test_cluster_ids_never_start_with_a_dash_the_storage_tool_reads_as_an_option() -> None:
    from sagas.kafka.apache_kafka.cluster import _cluster_id

    ids = [_cluster_id() for _ in range(5000)]  # about 78 would start with "-" otherwise
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_a_superuser_turns_on_the_standard_authorizer_and_authenticates_the_nodes() -> None:
    admin, service = SaslUser("sagas-admin", "Admin-1"), SaslUser("svc-a", "Svc-1")
    listener = ClientListener("SASL_PLAINTEXT", users=(service, admin), superuser="sagas-admin")
    props = properties(node_properties(layout(3, listener), 1, shared=""))
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:sagas-admin"
    # No anonymous principal anywhere: the nodes log in to each other as the super user.
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["sasl.mechanism.inter.broker.protocol"] == "PLAIN"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    for name in ("internal", "controller"):
        jaas = props[f"listener.name.{name}.plain.sasl.jaas.config"]
        assert 'username="sagas-admin" password="Admin-1"' in jaas
        assert "svc-a" not in jaas  # a service cannot log in as a node


def test_without_a_superuser_nothing_is_authorized_and_the_nodes_stay_plaintext() -> None:
    listener = ClientListener("SASL_PLAINTEXT", users=(SaslUser("u", "p"),))
    props = properties(node_properties(layout(1, listener), 0, shared=""))
    assert "authorizer.class.name" not in props
    assert props["listener.security.protocol.map"].endswith(
        "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    )


@pytest.mark.parametrize(
    ("listener", "problem"),
    [
        (ClientListener("PLAINTEXT", superuser="admin"), "needs authenticated clients"),
        (
            ClientListener("SASL_PLAINTEXT", users=(SaslUser("u", "p"),), superuser="admin"),
            "not one of the SASL users",
        ),
    ],
)
def test_a_superuser_needs_sasl_and_must_be_a_user(listener: ClientListener, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        listener.check()
