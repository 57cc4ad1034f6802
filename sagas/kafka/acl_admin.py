"""Create ACLs on a Kafka cluster with aiokafka (``sagas topics acl --apply``).

aiokafka 0.14's ``AIOKafkaAdminClient`` has no ``create_acls`` (aio-libs/aiokafka#955,
open). Its protocol module has CreateAcls v0/v1 wrappers that carry one ACL per
request (Kafka 4 removed v0, KIP-896; v1 is its oldest). This module adds CreateAcls
and DescribeAcls v2/v3 (the flexible versions the Java client sends; same fields as
v1) on aiokafka's protocol classes, sends every ACL in one request, through the admin
client's connection, to any broker (a KRaft broker forwards it to the controller),
then asks every broker (DescribeAcls) until each enforces them. No JVM and no
``kafka-acls.sh`` are needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

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

__all__ = ["AclCreationError", "AclEntry", "AclsNotEffectiveError", "create_acls"]

#: Kafka's codes (org.apache.kafka.common.resource / acl)
RESOURCE_TYPES = {"Topic": 2, "Group": 3, "Cluster": 4, "TransactionalId": 5}
PATTERN_TYPES = {"literal": 3, "prefixed": 4}
OPERATIONS = {"All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7,
              "Describe": 8, "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11,
              "IdempotentWrite": 12}  # fmt: skip
ALLOW = 3
#: seconds `create_acls` waits for every broker to enforce what it created
EFFECTIVE_TIMEOUT = 30.0


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


class AclsNotEffectiveError(Exception):
    """Created, but some brokers do not enforce them yet."""

    def __init__(self, brokers: Sequence[int], timeout: float) -> None:
        super().__init__(
            f"the ACLs were created, but brokers {list(brokers)} did not enforce all of them "
            f"within {timeout:g}s; run the command again (creating an existing ACL is a no-op)"
        )


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


class _DescribeAclsResponse_v2(Response):
    API_KEY = 29
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        (
            "resources",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", CompactString("utf-8")),
                ("pattern_type", Int8),
                (
                    "acls",
                    CompactArray(
                        ("principal", CompactString("utf-8")),
                        ("host", CompactString("utf-8")),
                        ("operation", Int8),
                        ("permission_type", Int8),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeAclsResponse_v3(Response):
    API_KEY = 29
    API_VERSION = 3
    SCHEMA = _DescribeAclsResponse_v2.SCHEMA


_FILTER = Schema(
    ("resource_type_filter", Int8),
    ("resource_name_filter", CompactString("utf-8")),
    ("pattern_type_filter", Int8),
    ("principal_filter", CompactString("utf-8")),
    ("host_filter", CompactString("utf-8")),
    ("operation", Int8),
    ("permission_type", Int8),
    ("tags", TaggedFields),
)


class _DescribeAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 29
    API_VERSION = 2
    RESPONSE_TYPE = _DescribeAclsResponse_v2
    SCHEMA = _FILTER


class _DescribeAclsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 29
    API_VERSION = 3
    RESPONSE_TYPE = _DescribeAclsResponse_v3
    SCHEMA = _FILTER


_DescribeStruct: TypeAlias = _DescribeAclsRequest_v2 | _DescribeAclsRequest_v3
_ANY = 1


class _DescribeAllAcls(Request[_DescribeStruct]):
    """Every ACL the answering broker's authorizer holds (its own view)."""

    API_KEY = 29

    def build(self, request_struct_class: type[_DescribeStruct]) -> _DescribeStruct:
        return request_struct_class(_ANY, None, _ANY, None, None, _ANY, _ANY, {})


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


async def create_acls(
    settings: KafkaSettings, acls: Sequence[AclEntry], *, timeout: float = EFFECTIVE_TIMEOUT
) -> int:
    """Create ``acls`` (allow, any host) and wait until every broker enforces them; creating
    one that exists is a no-op. Returns how many were sent; raises `AclCreationError` naming
    each one the cluster refused, `AclsNotEffectiveError` after ``timeout`` seconds."""
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
        await _wait_effective(client, acls, timeout)
    return len(acls)


async def _wait_effective(client: Any, acls: Sequence[AclEntry], timeout: float) -> None:
    """Each broker's authorizer learns new ACLs from the metadata log a moment after the
    controller commits them (seen: 1-2 s on a 3-node cluster); a process started before
    would be refused. Ask every broker until each holds all of ``acls``."""
    wanted = {_key_of(a) for a in acls}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        lagging = []
        for broker in client.cluster.brokers():
            response = await client.send(broker.nodeId, _DescribeAllAcls())
            if response.error_code != 0:
                error = for_code(response.error_code)
                raise AclCreationError(
                    ((f"DescribeAcls on broker {broker.nodeId}", error.__name__),)
                )
            held = {
                (type_, name, pattern, principal, operation)
                for type_, name, pattern, entries, _tags in response.resources
                for principal, _host, operation, permission, _t in entries
                if permission == ALLOW
            }
            if not wanted <= held:
                lagging.append(broker.nodeId)
        if not lagging:
            return
        if loop.time() >= deadline:
            raise AclsNotEffectiveError(lagging, timeout)
        await asyncio.sleep(0.2)


def _key_of(acl: AclEntry) -> tuple[int, str, int, str, int]:
    return (
        RESOURCE_TYPES[acl.resource_type],
        acl.name,
        PATTERN_TYPES[acl.pattern],
        acl.principal,
        OPERATIONS[acl.operation],
    )
