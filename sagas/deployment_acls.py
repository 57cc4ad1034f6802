"""The Kafka ACLs a deployment must apply for a set of saga definitions (pure, no I/O).

``deployment_acls(registry, deployment, principals)`` lists, per principal, every
(operation, resource) the processes of a deployment need on a cluster whose
authorizer denies what no ACL allows (``allow.everyone.if.no.acl.found=false``):

- the **coordinator** reads its inputs (triggers, replies, observed topics,
  ``saga.control``, ``saga.starts``) in its consumer group, writes commands,
  ``saga.lifecycle``, ``saga.deadletter``, ``saga.control`` (timers, API starts, operator
  commands, signals) and ``saga.starts`` (`sagas start`, and the starts it holds back
  at its admission bound), reads the
  dead letters (the API lists them) and writes back to its inputs (a dead letter's
  re-drive), owns the saga table's changelog (read on recovery, written by every
  batch, created on first start) and transactional ids that start with its group id;
- a **participant** (a service answering an orchestrated step, or `sagas bridge`
  serving one) reads its command topics in its own group, writes its reply topics,
  ``saga.deadletter`` (commands it cannot decode) and its changelog (read on start,
  created on first start), and owns transactional ids that start with its group id.
  Nothing else: not ``saga.lifecycle``, not another participant's commands, not the
  coordinator's group.

Participants are found in the orchestrated steps: the service of a command topic is
the topic's name without the deployment's prefix and without its last ``.segment``
(``inventory.commands`` -> ``inventory``) unless ``Principals.services`` names it.
Choreographed steps (``observes``) name only what the coordinator reads: who writes
an observed topic is not in the definitions (`DeploymentAcls.unowned` lists them).

Reading implies describing in Kafka, so each process also sees (``Metadata``) exactly
the topics it may use. Every ACL allows, from any host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from events.topics import Topics
from sagas.definition import SagaDefinition
from sagas.loader import DefinitionRegistry

__all__ = [
    "Acl",
    "Deployment",
    "DeploymentAcls",
    "Principals",
    "deployment_acls",
    "participant_changelog",
    "participant_group",
    "service_of",
]

Operation = Literal["Read", "Write", "Create", "Describe"]
ResourceType = Literal["Topic", "Group", "TransactionalId"]
PatternType = Literal["literal", "prefixed"]


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """Allow ``principal`` to do ``operation`` on a resource, from any host."""

    principal: str
    resource_type: ResourceType
    pattern: PatternType
    name: str
    operation: Operation
    #: why the process needs it, for a person reading the table
    why: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Principals:
    """Kafka principals of a deployment's processes (``User:<SASL user name>``)."""

    coordinator: str = "User:sagas-coordinator"
    #: a service's principal; ``{service}`` is replaced by its name
    service: str = "User:svc-{service}"
    bridge: str = "User:sagas-bridge"
    #: service name -> the `sagas bridge` (its ``name:``) that serves it instead
    bridges: Mapping[str, str] = field(default_factory=dict)
    #: command topic (as the definitions write it) -> service name, where the rule
    #: "drop the prefix and the last .segment" does not give it
    services: Mapping[str, str] = field(default_factory=dict)

    def of_service(self, name: str) -> str:
        return self.bridge if name in self.bridges else self.service.format(service=name)


@dataclass(frozen=True, slots=True)
class Deployment:
    """The names the engine gives a deployment's own resources."""

    topics: Topics
    #: ``SAGAS_TOPIC_PREFIX``: before every engine topic and participant group
    topic_prefix: str
    #: ``SAGAS_APP_ID``: the coordinator's consumer group
    app_id: str
    #: the saga table's changelog (`sagas.coordinator.changelog_topic`)
    coordinator_changelog: str


@dataclass(frozen=True, slots=True)
class DeploymentAcls:
    acls: tuple[Acl, ...]
    #: topics the coordinator observes (choreography) whose writers the definitions do
    #: not name: grant their writers Write on them yourself
    unowned: tuple[str, ...] = ()

    def principals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.principal for a in self.acls))


def participant_group(prefix: str, name: str) -> str:
    """The consumer group of participant ``name`` (as `sagas.participants.participant`)."""
    return f"{prefix}{name}"


def participant_changelog(prefix: str, name: str) -> str:
    """The changelog of participant ``name`` (as `sagas.participants.participant`)."""
    return f"{prefix}{name}.changelog"


def service_of(command_topic: str, prefix: str, overrides: Mapping[str, str]) -> str:
    """The service that reads ``command_topic``: given in ``overrides``, else the name
    without ``prefix`` and without its last ``.segment``."""
    if command_topic in overrides:
        return overrides[command_topic]
    bare = command_topic.removeprefix(prefix) if prefix else command_topic
    head, dot, _ = bare.rpartition(".")
    return head if dot and head else bare


@dataclass
class _Participant:
    commands: set[str] = field(default_factory=set)
    replies: set[str] = field(default_factory=set)


def _participants(
    definitions: Iterable[SagaDefinition], prefix: str, overrides: Mapping[str, str]
) -> dict[str, _Participant]:
    found: dict[str, _Participant] = {}

    def add(command_topic: str, reply_topic: str) -> None:
        who = found.setdefault(service_of(command_topic, prefix, overrides), _Participant())
        who.commands.add(command_topic)
        who.replies.add(reply_topic)

    for definition in definitions:
        for step in definition.steps:
            if step.command is not None:
                add(step.command.topic, step.listens_on)
            if step.compensation is not None:
                add(step.compensation.topic, step.compensation.reply_topic or step.listens_on)
    return found


def deployment_acls(
    registry: DefinitionRegistry, deployment: Deployment, principals: Principals = Principals()
) -> DeploymentAcls:
    """Every ACL the deployment of ``registry`` needs, sorted by principal then resource."""
    definitions = list(registry)
    participants = _participants(definitions, deployment.topic_prefix, principals.services)
    unknown = sorted(set(principals.bridges) - set(participants))
    if unknown:
        raise ValueError(
            f"--bridge names services {unknown} that no orchestrated step sends commands to; "
            f"services of these definitions: {', '.join(sorted(participants)) or 'none'}"
        )
    acls = _coordinator(registry, deployment, principals.coordinator)
    for name in sorted(participants):
        group_name = principals.bridges.get(name, name)
        acls += _participant(
            participants[name],
            principals.of_service(name),
            participant_group(deployment.topic_prefix, group_name),
            participant_changelog(deployment.topic_prefix, group_name),
            deployment.topics.deadletter,
        )
    observed = {s.observes for d in definitions for s in d.steps if s.observes is not None}
    replies = {t for p in participants.values() for t in p.replies}
    return DeploymentAcls(tuple(_unique(acls)), tuple(sorted(observed - replies)))


def _coordinator(registry: DefinitionRegistry, deployment: Deployment, who: str) -> list[Acl]:
    topics = deployment.topics
    inputs = sorted(registry.topics_read() | set(topics.inputs()))
    commands = sorted(set().union(*(d.topics_written() for d in registry)) - set(inputs))
    acls = [Acl(who, "Group", "literal", deployment.app_id, "Read", "its consumer group")]
    for name in inputs:
        acls.append(Acl(who, "Topic", "literal", name, "Read", "an input"))
    for name in commands:
        acls.append(Acl(who, "Topic", "literal", name, "Write", "sends commands"))
    acls += [
        Acl(who, "Topic", "literal", topics.lifecycle, "Write", "lifecycle events"),
        Acl(who, "Topic", "literal", topics.control, "Write", "timers, operators, signals"),
        Acl(who, "Topic", "literal", topics.starts, "Write", "held-back starts, sagas start"),
        Acl(who, "Topic", "literal", topics.deadletter, "Write", "records it cannot decode"),
        Acl(who, "Topic", "literal", topics.deadletter, "Read", "the API lists dead letters"),
    ]
    for name in inputs:
        if name not in topics.inputs():
            acls.append(Acl(who, "Topic", "literal", name, "Write", "re-drive of a dead letter"))
    changelog = deployment.coordinator_changelog
    acls += [
        Acl(who, "Topic", "literal", changelog, "Read", "saga table: recovery"),
        Acl(who, "Topic", "literal", changelog, "Write", "saga table: every batch"),
        Acl(who, "Topic", "literal", changelog, "Create", "saga table: first start"),
        *_transactions(who, deployment.app_id),
    ]
    return acls


def _participant(
    participant: _Participant, who: str, group: str, changelog: str, deadletter: str
) -> list[Acl]:
    acls = [Acl(who, "Group", "literal", group, "Read", "its consumer group")]
    acls += [Acl(who, "Topic", "literal", t, "Read", "its commands") for t in participant.commands]
    acls += [Acl(who, "Topic", "literal", t, "Write", "its replies") for t in participant.replies]
    acls += [
        Acl(who, "Topic", "literal", deadletter, "Write", "commands it cannot decode"),
        Acl(who, "Topic", "literal", changelog, "Read", "its changelog: replay on start"),
        Acl(who, "Topic", "literal", changelog, "Write", "its changelog: every effect"),
        Acl(who, "Topic", "literal", changelog, "Create", "its changelog: first start"),
        *_transactions(who, group),
    ]
    return acls


def _transactions(who: str, group: str) -> list[Acl]:
    """Exactly-once: transactional ids start with the process's consumer group id."""
    why = "exactly-once transactions"
    return [
        Acl(who, "TransactionalId", "prefixed", group, "Write", why),
        Acl(who, "TransactionalId", "prefixed", group, "Describe", why),
    ]


def _unique(acls: Iterable[Acl]) -> list[Acl]:
    """Each ACL once (the first reason kept), in the order principals were listed."""
    seen: dict[Acl, Acl] = {}
    for acl in acls:
        seen.setdefault(acl, acl)
    order = {p: i for i, p in enumerate(dict.fromkeys(a.principal for a in seen))}
    return sorted(seen, key=lambda a: (order[a.principal], _KIND[a.resource_type], a))


_KIND: dict[str, int] = {"Group": 0, "Topic": 1, "TransactionalId": 2}
