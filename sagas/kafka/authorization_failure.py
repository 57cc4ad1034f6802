"""Kafka refused an operation: say who, on what, and which ACL is missing, in one line.

On a cluster with an authorizer, aiokafka raises ``TopicAuthorizationFailedError``
or ``GroupAuthorizationFailedError`` carrying only the topic or group. A process
that meets one cannot recover by retrying (the ACLs are the operator's), so it
ends with a line such as

    error: inventory stopped: Kafka refused User:svc-inventory Write on topic
    'saga.lifecycle' (TopicAuthorizationFailedError): no ACL allows it; `sagas topics
    acl` lists the ACLs each principal of a deployment needs

``KafkaAuthorizationError`` is the same refusal raised by our own code, where it
knows the operation (``Read`` to consume, ``Write`` to produce).
"""

from __future__ import annotations

from collections.abc import Iterable

from events.errors import EventsError
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = [
    "KafkaAuthorizationError",
    "explain_authorization_failure",
    "is_authorization_failure",
    "principal_of",
]

HINT = "no ACL allows it; `sagas topics acl` lists the ACLs each principal of a deployment needs"


class KafkaAuthorizationError(EventsError):
    """Kafka refused ``principal`` an ``operation`` on some resources."""

    def __init__(
        self,
        principal: str,
        operation: str,
        resource_type: str,
        names: Iterable[str],
        cause: str,
    ) -> None:
        self.principal = principal
        self.operation = operation
        self.resource_type = resource_type
        self.names = tuple(sorted(names))
        shown = ", ".join(repr(n) for n in self.names)
        super().__init__(
            f"Kafka refused {principal} {operation} on {resource_type.lower()} {shown} "
            f"({cause}): {HINT}"
        )


def principal_of(settings: KafkaSettings) -> str:
    """The principal Kafka sees for ``settings`` (as far as a client can tell)."""
    if settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL") and settings.sasl_username:
        return f"User:{settings.sasl_username}"
    if settings.security_protocol == "SSL":
        return "the principal of this client's TLS certificate"
    return "User:ANONYMOUS"


def is_authorization_failure(exc: BaseException) -> bool:
    from aiokafka.errors import (
        ClusterAuthorizationFailedError,
        GroupAuthorizationFailedError,
        TopicAuthorizationFailedError,
        TransactionalIdAuthorizationFailed,
    )

    return isinstance(
        exc,
        KafkaAuthorizationError
        | TopicAuthorizationFailedError
        | GroupAuthorizationFailedError
        | ClusterAuthorizationFailedError
        | TransactionalIdAuthorizationFailed,
    )


def explain_authorization_failure(
    exc: BaseException, settings: KafkaSettings, operation: str | None = None
) -> KafkaAuthorizationError:
    """``exc`` (an aiokafka authorization error) as a `KafkaAuthorizationError`."""
    from aiokafka.errors import (
        GroupAuthorizationFailedError,
        TopicAuthorizationFailedError,
        TransactionalIdAuthorizationFailed,
    )

    if isinstance(exc, KafkaAuthorizationError):
        return exc
    principal = principal_of(settings)
    cause = type(exc).__name__
    names = _names(exc)
    if isinstance(exc, GroupAuthorizationFailedError):
        return KafkaAuthorizationError(principal, operation or "Read", "Group", names, cause)
    if isinstance(exc, TransactionalIdAuthorizationFailed):
        return KafkaAuthorizationError(
            principal, operation or "Write", "TransactionalId", names, cause
        )
    if isinstance(exc, TopicAuthorizationFailedError):
        return KafkaAuthorizationError(
            principal, operation or "Read or Write", "Topic", names, cause
        )
    return KafkaAuthorizationError(principal, operation or "an operation", "Cluster", (), cause)


def _names(exc: BaseException) -> tuple[str, ...]:
    """The topics or group an aiokafka error carries (a name, a set of names, or text)."""
    found: list[str] = []
    for arg in exc.args:
        if isinstance(arg, str):
            found.append(arg)
        elif isinstance(arg, Iterable):
            found += [str(a) for a in arg]
    return tuple(dict.fromkeys(found))
