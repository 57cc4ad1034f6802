"""An authorizer's refusal, said in one line: who, what operation, on which resource."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from sagas.cli.foreground import kafka_failure
from sagas.kafka.authorization_failure import (
    KafkaAuthorizationError,
    explain_authorization_failure,
    is_authorization_failure,
    principal_of,
)
from sagas.kafka.kafka_settings import KafkaSettings

SASL = KafkaSettings(
    bootstrap_servers="127.0.0.1:1",
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="svc-inventory",
    sasl_password="secret-not-shown",
)


def test_the_principal_is_the_sasl_user() -> None:
    assert principal_of(SASL) == "User:svc-inventory"
    assert principal_of(KafkaSettings(bootstrap_servers="h:1")) == "User:ANONYMOUS"


@pytest.mark.parametrize(
    ("error", "operation", "expected"),
    [
        (TopicAuthorizationFailedError("saga.lifecycle"), "Write",
         "Kafka refused User:svc-inventory Write on topic 'saga.lifecycle'"),
        (TopicAuthorizationFailedError({"b.commands", "a.commands"}), "Read",
         "Read on topic 'a.commands', 'b.commands'"),
        (GroupAuthorizationFailedError("sagastream-coordinator"), None,
         "Read on group 'sagastream-coordinator' (GroupAuthorizationFailedError)"),
        (TransactionalIdAuthorizationFailed("inventory-eos"), None,
         "Write on transactionalid 'inventory-eos'"),
    ],
)  # fmt: skip
def test_a_refusal_names_principal_operation_and_resource(
    error: Exception, operation: str | None, expected: str
) -> None:
    assert is_authorization_failure(error)
    said = str(explain_authorization_failure(error, SASL, operation))
    assert expected in said
    assert "\n" not in said and "secret-not-shown" not in said
    assert "`sagas topics acl`" in said


def test_the_cli_says_a_refusal_in_one_line_and_nothing_else_is_taken_for_one() -> None:
    refused = KafkaAuthorizationError(
        "User:x", "Write", "Topic", ["t"], "TopicAuthorizationFailedError"
    )
    assert kafka_failure(refused) == str(refused)
    assert not is_authorization_failure(KafkaConnectionError("down"))
    assert not is_authorization_failure(ValueError("saga.lifecycle"))
