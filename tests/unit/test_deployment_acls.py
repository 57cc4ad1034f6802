"""The ACLs of a deployment, computed from the shipped definitions (`sagas.deployment_acls`),
and what `sagas topics acl` prints of them (README block included)."""

from __future__ import annotations

import shlex

import pytest

from events.topics import Topics
from sagas.cli.acl_cmd import render_kafka_acls, render_table
from sagas.coordinator import changelog_topic
from sagas.deployment_acls import (
    Acl,
    Deployment,
    DeploymentAcls,
    Principals,
    deployment_acls,
    participant_changelog,
    participant_group,
    service_of,
)
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.loader import DefinitionRegistry
from sagas.participants.participant import Participant
from services import definitions
from tests.support import acl_reference

SHIPPED = ("order_orchestrated", "order_choreographed", "bank_transfer", "insurance_claim")
APP = "sagastream-coordinator"


def deployment(prefix: str = "", app_id: str = APP) -> Deployment:
    return Deployment(Topics.with_prefix(prefix), prefix, app_id, changelog_topic(app_id))


def acls_of(name: str, prefix: str = "", principals: Principals = Principals()) -> DeploymentAcls:
    registry = DefinitionRegistry([definitions.load(name, prefix)])
    return deployment_acls(registry, deployment(prefix), principals)


def granted(computed: DeploymentAcls, principal: str) -> set[tuple[str, str, str, str]]:
    return {
        (a.operation, a.resource_type, a.pattern, a.name)
        for a in computed.acls
        if a.principal == principal
    }


def test_a_service_may_use_its_commands_replies_changelog_and_group_and_nothing_else() -> None:
    computed = acls_of("order_orchestrated", prefix="p.")
    assert granted(computed, "User:svc-inventory") == {
        ("Read", "Group", "literal", "p.inventory"),
        ("Read", "Topic", "literal", "p.inventory.commands"),
        ("Write", "Topic", "literal", "p.inventory.replies"),
        ("Write", "Topic", "literal", "p.saga.deadletter"),
        ("Read", "Topic", "literal", "p.inventory.changelog"),
        ("Write", "Topic", "literal", "p.inventory.changelog"),
        ("Create", "Topic", "literal", "p.inventory.changelog"),
        ("Write", "TransactionalId", "prefixed", "p.inventory"),
        ("Describe", "TransactionalId", "prefixed", "p.inventory"),
    }
    assert computed.principals() == (
        "User:sagas-coordinator",
        "User:svc-inventory",
        "User:svc-payment",
        "User:svc-shipping",
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_no_service_may_touch_the_lifecycle_other_commands_or_the_coordinators_group(
    name: str,
) -> None:
    computed = acls_of(name)
    topics = Topics()
    services = [a for a in computed.acls if a.principal != "User:sagas-coordinator"]
    for acl in services:
        service = acl.principal.removeprefix("User:svc-")
        assert acl.name != topics.lifecycle, acl
        assert acl.name != topics.control, acl
        assert not (acl.resource_type == "Group" and acl.name == APP), acl
        assert not acl.name.startswith(APP), acl
        if acl.operation == "Read" and acl.name.endswith(".commands"):
            assert acl.name == f"{service}.commands", acl
        assert acl.pattern == "literal" or acl.resource_type == "TransactionalId", acl


@pytest.mark.parametrize("name", SHIPPED)
def test_the_coordinator_may_do_what_its_batch_step_and_api_do(name: str) -> None:
    registry = DefinitionRegistry([definitions.load(name)])
    computed = deployment_acls(registry, deployment())
    mine = granted(computed, "User:sagas-coordinator")
    topics = Topics()
    for topic in registry.topics_read() | {topics.control, topics.starts}:
        assert ("Read", "Topic", "literal", topic) in mine
    # the clients it stands for write starts and operator commands
    assert ("Write", "Topic", "literal", topics.starts) in mine
    assert ("Write", "Topic", "literal", topics.control) in mine
    for definition in registry:
        for topic in definition.topics_written():
            assert ("Write", "Topic", "literal", topic) in mine
    changelog = changelog_topic(APP)
    assert {
        ("Read", "Group", "literal", APP),
        ("Write", "Topic", "literal", topics.lifecycle),
        ("Write", "Topic", "literal", topics.control),
        ("Write", "Topic", "literal", topics.deadletter),
        ("Read", "Topic", "literal", topics.deadletter),
        ("Read", "Topic", "literal", changelog),
        ("Write", "Topic", "literal", changelog),
        ("Create", "Topic", "literal", changelog),
        ("Write", "TransactionalId", "prefixed", APP),
        ("Describe", "TransactionalId", "prefixed", APP),
    } <= mine
    # Nothing on a participant's group or changelog.
    assert not any(t[1] == "Group" and t[3] != APP for t in mine)
    assert not any(t[3].endswith(".changelog") for t in mine)


def test_every_acl_is_listed_once_and_the_order_is_stable() -> None:
    computed = acls_of("bank_transfer")
    assert len(set(computed.acls)) == len(computed.acls)
    assert acls_of("bank_transfer") == computed
    # bank serves every step of the transfer: one service principal
    assert computed.principals() == ("User:sagas-coordinator", "User:svc-bank")


def test_the_names_match_the_runtimes_names() -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.")
    participant: Participant[dict[str, int]] = Participant(
        "inventory", ["t.inventory.commands"], lambda s, e: (s, []), {}, kafka=kafka
    )
    assert participant_group("t.", "inventory") == participant.group_id
    assert participant_changelog("t.", "inventory") == participant.changelog_topic


def test_a_bridge_serves_a_service_under_its_own_principal_group_and_changelog() -> None:
    principals = Principals(bridges={"payment": "payment-bridge"})
    computed = acls_of("order_orchestrated", principals=principals)
    assert "User:svc-payment" not in computed.principals()
    bridge = granted(computed, "User:sagas-bridge")
    assert ("Read", "Topic", "literal", "payment.commands") in bridge
    assert ("Write", "Topic", "literal", "payment.replies") in bridge
    assert ("Read", "Group", "literal", "payment-bridge") in bridge
    assert ("Write", "Topic", "literal", "payment-bridge.changelog") in bridge
    with pytest.raises(ValueError, match="no orchestrated step sends commands to"):
        acls_of("order_orchestrated", principals=Principals(bridges={"paymnet": "b"}))


def test_principal_names_and_service_names_are_configurable() -> None:
    principals = Principals(
        coordinator="User:orchestrator",
        service="User:{service}-app",
        services={"inventory.commands": "stock"},
    )
    computed = acls_of("order_orchestrated", principals=principals)
    assert computed.principals() == (
        "User:orchestrator",
        "User:payment-app",
        "User:shipping-app",
        "User:stock-app",
    )
    assert ("Read", "Group", "literal", "stock") in granted(computed, "User:stock-app")


@pytest.mark.parametrize(
    ("topic", "prefix", "service"),
    [
        ("inventory.commands", "", "inventory"),
        ("p.inventory.commands", "p.", "inventory"),
        ("a.b.commands", "", "a.b"),
        ("commands", "", "commands"),
        (".commands", "", ".commands"),
    ],
)
def test_the_service_of_a_command_topic(topic: str, prefix: str, service: str) -> None:
    assert service_of(topic, prefix, {}) == service


def test_observed_topics_of_a_choreography_are_named_as_not_covered() -> None:
    computed = acls_of("order_choreographed")
    assert computed.unowned  # who publishes the events is not in the definition
    assert all("events" in t for t in computed.unowned)
    assert "not included: Write on" in render_table(computed)


def test_kafka_acls_lines_add_exactly_the_computed_acls() -> None:
    computed = acls_of("order_orchestrated", prefix="p.")
    flags = {"--topic": "Topic", "--group": "Group", "--transactional-id": "TransactionalId"}
    added: list[Acl] = []
    for line in render_kafka_acls(computed).splitlines():
        if line.startswith("#"):
            continue
        words = shlex.split(line)
        assert words[0] == "kafka-acls.sh" and "--add" in words
        principal = words[words.index("--allow-principal") + 1]
        kind = next(flags[w] for w in words if w in flags)
        name = words[words.index(next(w for w in words if w in flags)) + 1]
        pattern = words[words.index("--resource-pattern-type") + 1]
        for i, word in enumerate(words):
            if word == "--operation":
                added.append(Acl(principal, kind, pattern, name, words[i + 1]))  # type: ignore[arg-type]
    assert sorted(added) == sorted(computed.acls)


def test_the_table_has_a_row_per_acl() -> None:
    computed = acls_of("order_orchestrated")
    rows = render_table(computed).splitlines()
    assert rows[0].split() == ["PRINCIPAL", "OPERATION", "RESOURCE", "PATTERN", "NAME", "WHY"]
    assert len(rows) == 1 + len(computed.acls)


def test_the_readme_shows_the_commands_output() -> None:
    in_readme = acl_reference.readme_block(acl_reference.README.read_text())
    assert in_readme is not None, "README.md lost its acl-table markers"
    assert in_readme == acl_reference.block(), (
        "README.md's ACL table differs from `sagas topics acl`; regenerate it: "
        "python -m tests.support.acl_reference --write"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--format", "yaml"], "--format 'yaml': choose table or kafka-acls"),
        (["--bridge", "payment"], "--bridge 'payment': expected KEY=NAME"),
        (["--bridge", "paymnet=b"], "no orchestrated step sends commands to"),
        (["--apply"], "--apply needs --bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS"),
    ],
)
def test_a_wrong_flag_is_one_line_and_exit_code_2(
    args: list[str], said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagas.cli import _register, app
    from sagas.cli.exits import run

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    _register()
    path = str(definitions.path("order_orchestrated"))
    assert run(app, ["topics", "acl", "-d", path, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and said in err[0], err


def test_kafka_acls_lines_name_the_given_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    from sagas.cli import _register, app
    from sagas.cli.exits import run

    _register()
    path = str(definitions.path("order_orchestrated"))
    args = ["topics", "acl", "-d", path, "--format", "kafka-acls"]
    assert run(app, [*args, "--bootstrap-servers", "k1:9092,k2:9092"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert lines and all("--bootstrap-server k1:9092,k2:9092 " in line for line in lines)
