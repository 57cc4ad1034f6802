"""`sagas topics acl`: the Kafka ACLs a deployment must apply, printed or applied.

The ACLs themselves are computed by `sagas.deployment_acls` (pure); this module
prints them as a table or as ``kafka-acls.sh`` command lines, or creates them on a
cluster (`sagas.kafka.acl_admin`).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sagas.cli.topics_cmd import topics_app

if TYPE_CHECKING:
    from sagas.deployment_acls import Acl, DeploymentAcls

#: resource type -> the kafka-acls.sh flag that names such a resource
_RESOURCE_FLAGS = {"Topic": "--topic", "Group": "--group", "TransactionalId": "--transactional-id"}


@topics_app.command("acl")
def acl(
    definitions: list[Path] = typer.Option(
        ...,
        "--definitions",
        "-d",
        help="YAML/JSON file of saga definitions, or a folder of them (repeatable).",
    ),
    output: str = typer.Option(
        "table", "--format", help="table (for a person) or kafka-acls (kafka-acls.sh lines)."
    ),
    coordinator: str = typer.Option(
        "User:sagas-coordinator",
        "--coordinator-principal",
        help="Principal of the coordinator's replicas.",
    ),
    service: str = typer.Option(
        "User:svc-{service}",
        "--service-principal",
        help="Principal of each service; {service} is its name.",
    ),
    bridge: str = typer.Option(
        "User:sagas-bridge", "--bridge-principal", help="Principal of `sagas bridge`."
    ),
    bridged: list[str] = typer.Option(
        [],
        "--bridge",
        help="SERVICE=BRIDGE_NAME: the service is served by `sagas bridge` with this name "
        "(repeatable).",
    ),
    named: list[str] = typer.Option(
        [],
        "--service",
        help="COMMAND_TOPIC=SERVICE: who reads a command topic, where dropping its last "
        ".segment does not give the service's name (repeatable).",
    ),
    app_id: str | None = typer.Option(
        None, help="The coordinator's consumer group (default: SAGAS_APP_ID)."
    ),
    apply: bool = typer.Option(
        False, "--apply", help="Create the ACLs on the cluster (as a super user) and exit."
    ),
    bootstrap_servers: str | None = typer.Option(
        None,
        help="Cluster to apply to, and the address in kafka-acls lines "
        "(default: KAFKA_BOOTSTRAP_SERVERS; credentials from KAFKA_*).",
    ),
) -> None:
    """Print the ACLs the coordinator, each service and each bridge need for these
    definitions on a cluster that denies what no ACL allows; with --apply, create them."""
    from events.topics import Topics
    from sagas.cli.foreground import fail
    from sagas.coordinator import changelog_topic
    from sagas.deployment_acls import Deployment, Principals, deployment_acls
    from sagas.errors import SagaError
    from sagas.kafka.kafka_settings import KafkaSettings
    from sagas.loader import DefinitionRegistry, load_definitions
    from sagas.settings import CoordinatorSettings

    if output not in ("table", "kafka-acls"):
        fail(f"--format {output!r}: choose table or kafka-acls")
    kafka = KafkaSettings()
    if bootstrap_servers:
        kafka = kafka.with_bootstrap(bootstrap_servers)
    group = app_id or CoordinatorSettings().app_id
    try:
        registry = DefinitionRegistry(d for path in definitions for d in load_definitions(path))
        principals = Principals(
            coordinator=coordinator,
            service=service,
            bridge=bridge,
            bridges=_pairs("--bridge", bridged),
            services=_pairs("--service", named),
        )
        deployment = Deployment(
            Topics.from_settings(kafka), kafka.topic_prefix, group, changelog_topic(group)
        )
        computed = deployment_acls(registry, deployment, principals)
    except (SagaError, OSError, ValueError) as exc:
        fail(str(exc))
    if apply:
        _apply(kafka, computed.acls)
        return
    if output == "table":
        typer.echo(render_table(computed), nl=False)
    else:
        typer.echo(render_kafka_acls(computed, bootstrap_servers), nl=False)


def _pairs(flag: str, values: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or not key or not name:
            raise ValueError(f"{flag} {value!r}: expected KEY=NAME")
        pairs[key] = name
    return pairs


def render_table(computed: DeploymentAcls) -> str:
    """One row per ACL: principal, operation, resource type, pattern, name, why."""
    header = ("PRINCIPAL", "OPERATION", "RESOURCE", "PATTERN", "NAME", "WHY")
    rows = [header] + [
        (a.principal, a.operation, a.resource_type, a.pattern, a.name, a.why) for a in computed.acls
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n" + _unowned_note(computed, "")


def render_kafka_acls(computed: DeploymentAcls, bootstrap_servers: str | None = None) -> str:
    """``kafka-acls.sh --add`` lines, one per principal and resource (all its operations)."""
    server = shlex.quote(bootstrap_servers) if bootstrap_servers else '"$KAFKA_BOOTSTRAP_SERVERS"'
    grouped: dict[tuple[str, str, str, str], list[Acl]] = {}
    for a in computed.acls:
        grouped.setdefault((a.principal, a.resource_type, a.pattern, a.name), []).append(a)
    lines = ["# run as a super user; admin.properties holds its client settings (SASL, TLS)"]
    for (principal, kind, pattern, name), acls in grouped.items():
        operations = " ".join(f"--operation {a.operation}" for a in acls)
        lines.append(
            f"kafka-acls.sh --bootstrap-server {server} --command-config admin.properties "
            f"--add --allow-principal {shlex.quote(principal)} {operations} "
            f"{_RESOURCE_FLAGS[kind]} {shlex.quote(name)} --resource-pattern-type {pattern}"
        )
    return "\n".join(lines) + "\n" + _unowned_note(computed, "# ")


def _unowned_note(computed: DeploymentAcls, comment: str) -> str:
    if not computed.unowned:
        return ""
    return (
        f"{comment}not included: Write on {', '.join(computed.unowned)} (observed by the "
        "coordinator; the definitions do not say who publishes there)\n"
    )


def _apply(kafka: object, acls: Sequence[Acl]) -> None:
    from sagas.cli.foreground import fail, kafka_client_logs_held_back, kafka_failure
    from sagas.kafka.acl_admin import AclCreationError, AclsNotEffectiveError, create_acls
    from sagas.kafka.kafka_settings import KafkaSettings

    assert isinstance(kafka, KafkaSettings)
    if not kafka.bootstrap_servers:
        fail("--apply needs --bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS")
    with kafka_client_logs_held_back():
        try:
            created = asyncio.run(create_acls(kafka, acls))
        except (AclCreationError, AclsNotEffectiveError) as exc:
            fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
            fail(kafka_failure(exc) or f"{type(exc).__name__}: {exc}")
    principals = len({a.principal for a in acls})
    typer.echo(f"{created} ACLs applied for {principals} principals, enforced by every broker")
