"""Create ACLs on a Kafka cluster with aiokafka (``sagas topics acl --apply``).

aiokafka 0.14's ``AIOKafkaAdminClient`` has no ``create_acls`` (aio-libs/aiokafka#955,
open) and its protocol module defines CreateAcls v0 and v1 only, which Apache Kafka 4
no longer serves (KIP-896 removed them). This module adds CreateAcls v2/v3 (the
flexible versions; same fields as v1) on aiokafka's protocol classes and sends one
request, through the admin client's connection, to any broker (a KRaft broker
forwards it to the controller). No JVM and no ``kafka-acls.sh`` are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from sagas.kafka.admin import admin_client
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = ["AclCreationError", "AclEntry", "create_acls"]

#: Kafka's codes (org.apache.kafka.common.resource / acl)
RESOURCE_TYPES = {"Topic": 2, "Group": 3, "Cluster": 4, "TransactionalId": 5}
PATTERN_TYPES = {"literal": 3, "prefixed": 4}
OPERATIONS = {"All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7,
              "Describe": 8, "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11,
              "IdempotentWrite": 12}  # fmt: skip
ALLOW = 3


class AclEntry(Protocol):
    """What one ACL says (`sagas.deployment_acls.Acl` has it)."""

    @property
    def principal(self) -> str: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def pattern(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def operation(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AclCreationError(Exception):
    """The cluster refused some ACLs: (what, Kafka's error) per refusal."""

    refused: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        first = "; ".join(f"{what}: {error}" for what, error in self.refused[:3])
        more = f" (and {len(self.refused) - 3} more)" if len(self.refused) > 3 else ""
        return f"the cluster refused {len(self.refused)} ACL(s): {first}{more}"


class _CreateAclsResponse_v2(Response):
    API_KEY = 30
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _CreateAclsResponse_v3(Response):
    API_KEY = 30
    API_VERSION = 3
    SCHEMA = _CreateAclsResponse_v2.SCHEMA


_CREATIONS = Schema(
    (
        "creations",
        CompactArray(
            ("resource_type", Int8),
            ("resource_name", CompactString("utf-8")),
            ("resource_pattern_type", Int8),
            ("principal", CompactString("utf-8")),
            ("host", CompactString("utf-8")),
            ("operation", Int8),
            ("permission_type", Int8),
            ("tags", TaggedFields),
        ),
    ),
    ("tags", TaggedFields),
)


class _CreateAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 2
    RESPONSE_TYPE = _CreateAclsResponse_v2
    SCHEMA = _CREATIONS


class _CreateAclsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 3
    RESPONSE_TYPE = _CreateAclsResponse_v3
    SCHEMA = _CREATIONS


_Struct: TypeAlias = _CreateAclsRequest_v2 | _CreateAclsRequest_v3


class _CreateAcls(Request[_Struct]):
    API_KEY = 30

    def __init__(self, creations: list[tuple[int, str, int, str, str, int, int, dict[int, bytes]]]):
        self._creations = creations

    def build(self, request_struct_class: type[_Struct]) -> _Struct:
        return request_struct_class(self._creations, {})


def _wire(acl: AclEntry) -> tuple[int, str, int, str, str, int, int, dict[int, bytes]]:
    return (
        RESOURCE_TYPES[acl.resource_type],
        acl.name,
        PATTERN_TYPES[acl.pattern],
        acl.principal,
        "*",
        OPERATIONS[acl.operation],
        ALLOW,
        {},
    )


def _describe(acl: AclEntry) -> str:
    return f"{acl.principal} {acl.operation} {acl.resource_type}:{acl.pattern}:{acl.name}"


async def create_acls(settings: KafkaSettings, acls: Sequence[AclEntry]) -> int:
    """Create ``acls`` (allow, any host); creating one that exists is a no-op. Returns how
    many were sent; raises `AclCreationError` naming each one the cluster refused."""
    if not acls:
        return 0
    async with admin_client(settings) as admin:
        # aiokafka has no public way to send a request it does not wrap (see above).
        client = admin._client
        node = client.get_random_node()
        response = await client.send(node, _CreateAcls([_wire(a) for a in acls]))
    refused = tuple(
        (_describe(acl), f"{for_code(code).__name__}: {message or ''}".rstrip(": "))
        for acl, (code, message, _tags) in zip(acls, response.results, strict=True)
        if code != 0
    )
    if refused:
        raise AclCreationError(refused)
    return len(acls)
