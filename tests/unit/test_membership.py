"""The coordinators' assignor: partition n of every input goes to one replica, and every
replica learns which replica (by URL) owns which partition."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocol

from sagas.membership import CoPartitionedAssignor

TOPICS = {"orders": 8, "payment.replies": 8, "saga.control": 8}


def cluster(counts: dict[str, int]) -> Any:
    return SimpleNamespace(
        partitions_for_topic=lambda t: set(range(counts[t])) if t in counts else None
    )


def join(assignors: dict[str, CoPartitionedAssignor], topics: dict[str, list[str]]) -> Any:
    """What the group leader sees: each member's metadata as it went over the wire."""
    return {
        member: ConsumerProtocol.METADATA.decode(
            ConsumerProtocol.METADATA.encode(a.metadata(topics[member]))
        )
        for member, a in assignors.items()
    }


def deliver(
    assignors: dict[str, CoPartitionedAssignor], plan: Any
) -> dict[str, dict[str, list[int]]]:
    """Hand every member its assignment (through the wire encoding); return topic -> partitions."""
    out = {}
    for member, assignment in plan.items():
        decoded = ConsumerProtocol.ASSIGNMENT.decode(ConsumerProtocol.ASSIGNMENT.encode(assignment))
        assignors[member].on_assignment(decoded)
        out[member] = {topic: sorted(ps) for topic, ps in decoded.assignment}
    return out


def test_every_partition_number_goes_to_one_member_for_every_topic() -> None:
    assignors = {
        "m-b": CoPartitionedAssignor("http://b:1", "replica-b"),
        "m-a": CoPartitionedAssignor("http://a:1", "replica-a"),
        "m-c": CoPartitionedAssignor("http://c:1", "replica-c"),
    }
    members = join(assignors, {m: list(TOPICS) for m in assignors})
    got = deliver(assignors, assignors["m-a"].assign(cluster(TOPICS), members))

    owner: dict[int, str] = {}
    for member, topics in got.items():
        assert set(topics) == set(TOPICS), f"{member} must read every input topic"
        numbers = {tuple(ps) for ps in topics.values()}
        assert len(numbers) == 1, f"{member} got different partition numbers per topic: {topics}"
        for n in topics["orders"]:
            assert n not in owner, f"partition {n} given to {owner[n]} and {member}"
            owner[n] = member
    assert sorted(owner) == list(range(8))
    assert sorted(len(t["orders"]) for t in got.values()) == [2, 3, 3]
    urls = {"m-a": "http://a:1", "m-b": "http://b:1", "m-c": "http://c:1"}
    for a in assignors.values():
        assert a.owners == {n: urls[m] for n, m in owner.items()}, "every replica sees the map"


def test_the_split_follows_stable_names_not_member_ids() -> None:
    def split(ids: tuple[str, str]) -> dict[str, list[int]]:
        assignors = {
            ids[0]: CoPartitionedAssignor("http://a:1", "replica-a"),
            ids[1]: CoPartitionedAssignor("http://b:1", "replica-b"),
        }
        members = join(assignors, {m: list(TOPICS) for m in assignors})
        got = deliver(assignors, assignors[ids[0]].assign(cluster(TOPICS), members))
        return {assignors[m].member_name: t["orders"] for m, t in got.items()}

    # A restarted replica comes back with a new member id but the same instance id.
    assert split(("zzz-1", "aaa-2")) == split(("aaa-3", "zzz-4"))


def test_a_single_member_gets_everything() -> None:
    assignors = {"m": CoPartitionedAssignor("http://a:1")}
    got = deliver(
        assignors, assignors["m"].assign(cluster(TOPICS), join(assignors, {"m": list(TOPICS)}))
    )
    assert got["m"] == {topic: list(range(8)) for topic in TOPICS}
    assert set(assignors["m"].owners.values()) == {"http://a:1"}


def test_a_topic_only_some_members_read_still_gets_a_reader() -> None:
    assignors = {
        "m-a": CoPartitionedAssignor("http://a:1", "a"),
        "m-b": CoPartitionedAssignor("http://b:1", "b"),
    }
    topics = {"m-a": ["orders", "extra"], "m-b": ["orders"]}
    counts = {"orders": 4, "extra": 4}
    got = deliver(assignors, assignors["m-a"].assign(cluster(counts), join(assignors, topics)))
    assert got["m-a"]["extra"] == [0, 1, 2, 3]
    assert "extra" not in got["m-b"]


def test_an_assignment_without_owners_leaves_an_empty_map() -> None:
    a = CoPartitionedAssignor("http://a:1")
    a.owners = {0: "http://old:1"}
    a.on_assignment(SimpleNamespace(user_data=b"not json"))  # type: ignore[arg-type]
    assert a.owners == {}
