"""What one Apache Kafka node is told: its ``server.properties``, as a pure function.

``node_properties(layout, node)`` is the shared ``broker.properties`` beside this
file plus what depends on the node and the cluster: identity, listeners, the
controller quorum, replication, and the client listener's security. Tested
without a JVM; ``sagas.kafka.apache_kafka.cluster`` writes it and starts the node.

Every node has three loopback listeners:
- ``CLIENT``: what clients (and ``bootstrap_servers``) use, PLAINTEXT, SSL,
  SASL_PLAINTEXT or SASL_SSL as asked;
- ``INTERNAL``: replication between brokers, PLAINTEXT, so brokers need no
  client credentials;
- ``CONTROLLER``: the KRaft quorum, PLAINTEXT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "BROKER_PROPERTIES",
    "ClientListener",
    "ClusterLayout",
    "NodePorts",
    "SaslUser",
    "node_properties",
    "scram_arguments",
]

BROKER_PROPERTIES = Path(__file__).with_name("broker.properties")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
#: SASL mechanisms every authenticating listener offers (PLAIN from the listener's
#: JAAS users, SCRAM from credentials stored in the cluster metadata at format time).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SAFE_CREDENTIAL = re.compile(r"[A-Za-z0-9._\-+@!%~]{1,128}")


@dataclass(frozen=True)
class SaslUser:
    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ClientListener:
    """Security of the ``CLIENT`` listener.

    ``keystore``: a PEM file with the broker's private key (PKCS#8, unencrypted)
    and certificate chain; ``truststore``: the CA (PEM) that client certificates
    must chain to, which makes client certificates required (mutual TLS).
    ``users`` may log in with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.

    ``superuser`` (the name of one of ``users``) turns authorization on: KRaft's
    ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``, so a
    principal may do only what an ACL grants it; ``superuser`` is the only super
    user, and brokers and controllers authenticate to each other as it (SASL PLAIN
    on the ``INTERNAL`` and ``CONTROLLER`` listeners), so no anonymous principal
    is trusted anywhere.
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    keystore: Path | None = None
    truststore: Path | None = None
    users: tuple[SaslUser, ...] = ()
    superuser: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def authorizes(self) -> bool:
        return self.superuser is not None

    def admin(self) -> SaslUser:
        """The super user, which brokers and controllers log in as."""
        for user in self.users:
            if user.name == self.superuser:
                return user
        raise ValueError(f"superuser {self.superuser!r} is not one of the SASL users")

    def check(self) -> None:
        if self.authorizes and not self.uses_sasl:
            raise ValueError(
                f"authorization (superuser {self.superuser!r}) needs authenticated clients: "
                "use a SASL_PLAINTEXT or SASL_SSL listener"
            )
        if self.authorizes:
            self.admin()
        if self.uses_tls and self.keystore is None:
            raise ValueError(f"a {self.protocol} listener needs a keystore (PEM key + chain)")
        if self.uses_sasl and not self.users:
            raise ValueError(f"a {self.protocol} listener needs at least one SASL user")
        for path in (self.keystore, self.truststore):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
        for user in self.users:
            # Names and passwords travel in a JAAS line of a properties file and in a
            # `--add-scram` argument: keep them to characters neither format treats.
            for what, value in (("name", user.name), ("password", user.password)):
                if not _SAFE_CREDENTIAL.fullmatch(value):
                    raise ValueError(
                        f"SASL user {user.name!r}: its {what} may only hold letters, digits "
                        "and . _ - + @ ! % ~ (1-128 characters)"
                    )


@dataclass(frozen=True)
class NodePorts:
    client: int
    internal: int
    controller: int


@dataclass(frozen=True)
class ClusterLayout:
    """Where every node listens, and how the cluster replicates."""

    host: str
    ports: tuple[NodePorts, ...]
    data_dirs: tuple[Path, ...]
    listener: ClientListener = ClientListener()
    #: each node's own address (e.g. inside a network namespace); empty: ``host`` for all
    hosts: tuple[str, ...] = ()

    @property
    def nodes(self) -> int:
        return len(self.ports)

    def host_of(self, node: int) -> str:
        return self.hosts[node] if self.hosts else self.host

    @property
    def replication_factor(self) -> int:
        return min(3, self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.nodes >= 3 else 1

    def voters(self) -> str:
        return ",".join(
            f"{i + 1}@{self.host_of(i)}:{p.controller}" for i, p in enumerate(self.ports)
        )

    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host_of(i)}:{p.client}" for i, p in enumerate(self.ports))


def node_properties(layout: ClusterLayout, node: int, shared: str | None = None) -> str:
    """The ``server.properties`` of ``node`` (0-based) in ``layout``."""
    base = shared if shared is not None else BROKER_PROPERTIES.read_text()
    ports = layout.ports[node]
    host = layout.host_of(node)
    listener = layout.listener
    rf = layout.replication_factor
    # With authorization, brokers and controllers log in to each other (never anonymous).
    inner = "SASL_PLAINTEXT" if listener.authorizes else "PLAINTEXT"
    lines = [
        "process.roles=broker,controller",
        f"node.id={node + 1}",
        f"controller.quorum.voters={layout.voters()}",
        f"listeners=CLIENT://{host}:{ports.client},INTERNAL://{host}:{ports.internal},"
        f"CONTROLLER://{host}:{ports.controller}",
        f"advertised.listeners=CLIENT://{host}:{ports.client},INTERNAL://{host}:{ports.internal}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=INTERNAL",
        f"listener.security.protocol.map=CLIENT:{listener.protocol},INTERNAL:{inner},"
        f"CONTROLLER:{inner}",
        f"log.dirs={layout.data_dirs[node]}",
        f"default.replication.factor={rf}",
        f"min.insync.replicas={layout.min_insync_replicas}",
        f"offsets.topic.replication.factor={rf}",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={layout.min_insync_replicas}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={layout.min_insync_replicas}",
    ]
    lines += _security_lines(listener)
    lines += _authorizer_lines(listener)
    return (
        base.rstrip("\n")
        + "\n\n# -- this node (sagas/kafka/apache_kafka/config.py) --\n"
        + ("\n".join(lines) + "\n")
    )


def scram_arguments(listener: ClientListener) -> list[str]:
    """``kafka-storage format`` arguments that store each user's SCRAM credentials."""
    if not listener.uses_sasl:
        return []
    args: list[str] = []
    for user in listener.users:
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            args += ["--add-scram", f"{mechanism}=[name={user.name},password={user.password}]"]
    return args


def _authorizer_lines(listener: ClientListener) -> list[str]:
    """StandardAuthorizer, deny unless an ACL allows, and PLAIN between the nodes as the super
    user (SCRAM cannot serve the controllers: its credentials live in the metadata they hold)."""
    if not listener.authorizes:
        return []
    admin = listener.admin()
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{admin.name}" password="{admin.password}" '
        f'user_{admin.name}="{admin.password}";'
    )
    return [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users=User:{admin.name}",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.internal.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.internal.plain.sasl.jaas.config={jaas}",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={jaas}",
    ]


def _security_lines(listener: ClientListener) -> list[str]:
    lines: list[str] = []
    prefix = "listener.name.client."
    if listener.uses_tls:
        assert listener.keystore is not None
        lines += [
            f"{prefix}ssl.keystore.type=PEM",
            f"{prefix}ssl.keystore.location={listener.keystore}",
        ]
        if listener.truststore is not None:
            lines += [
                f"{prefix}ssl.truststore.type=PEM",
                f"{prefix}ssl.truststore.location={listener.truststore}",
                f"{prefix}ssl.client.auth=required",
            ]
    if listener.uses_sasl:
        mechanisms = ",".join(SASL_MECHANISMS)
        plain_users = " ".join(f'user_{u.name}="{u.password}"' for u in listener.users)
        lines += [
            f"sasl.enabled.mechanisms={mechanisms}",
            f"{prefix}sasl.enabled.mechanisms={mechanisms}",
            f"{prefix}plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
        ]
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            lines.append(
                f"{prefix}{mechanism}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    return lines
