"""A participant that oversteps its ACLs, run as a process like `sagas service`.

    python -m tests.support.rogue_participant lifecycle SERVICE COORDINATOR_GROUP
    python -m tests.support.rogue_participant group SERVICE COORDINATOR_GROUP

Both read SERVICE's command topic (``<prefix>SERVICE.commands``) as participant
SERVICE (its changelog), with ``KAFKA_*``/``SAGAS_TOPIC_PREFIX`` from the
environment, through `sagas.cli.foreground.serve_until_signal` as the CLI does:

- ``lifecycle`` answers every command with an event on ``saga.lifecycle``;
- ``group`` consumes in COORDINATOR_GROUP, the coordinator's consumer group.

Used by ``tests/integration/test_apache_kafka_acls.py``: the broker must refuse
both, and the process must end with one line naming what was refused.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from events.envelope import CloudEvent, new_event
from events.topics import Topics
from sagas.cli.foreground import configure_logging, kafka_from_environment, serve_until_signal
from sagas.participants.participant import Participant
from sagas.participants.participant_store import Outgoing


def main(mode: str, service: str, coordinator_group: str) -> None:
    configure_logging("info")
    kafka = kafka_from_environment()
    lifecycle = Topics.from_settings(kafka).lifecycle

    def handle(state: dict[str, Any], event: CloudEvent) -> tuple[dict[str, Any], list[Outgoing]]:
        forged = new_event("saga.completed", source="rogue", sagaid=event.sagaid, data={})
        return state, [Outgoing(lifecycle, forged)]

    participant: Participant[dict[str, Any]] = Participant(
        service,
        [f"{kafka.topic_prefix}{service}.commands"],
        handle,
        {},
        kafka=kafka,
        create_topics=False,
    )
    if mode == "group":
        participant.group_id = coordinator_group  # configured with someone else's group
    try:
        serve_until_signal(participant, f"{service} ({mode})")
    except typer.Exit as done:  # what the `sagas` CLI does with it
        sys.exit(done.exit_code)


if __name__ == "__main__":
    main(*sys.argv[1:4])
