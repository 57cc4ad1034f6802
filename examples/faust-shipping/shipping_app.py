"""The shipping step of the order saga served by a faust-streaming app.

    pip install 'sagastream[faust]'
    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/faust-shipping/shipping_app.py worker

The business logic is the reference shipping service's pure handler
(`services.shipping.domain`); `sagas.participants.faust_participant.serve_saga_step` does the
wire contract: consume ``shipping.commands``, answer each command id once (a faust
Table remembers the replies, so a re-sent command gets the same answer), reply on
``shipping.replies`` with ``causationid``. The carriers' books live in this process
here; a real app keeps them in a faust Table too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import faust

from events.envelope import CloudEvent
from sagas.participants.faust_participant import serve_saga_step
from sagas.participants.participant_store import Outgoing
from services.config import ServicesConfig
from services.shipping import contract as c
from services.shipping.domain import ShippingState, make_handler
from services.topics import ServiceTopics

PREFIX = os.environ.get("SAGAS_TOPIC_PREFIX", "")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
PARTITIONS = int(os.environ.get("SAGAS_PARTITIONS", "8"))

app = faust.App(
    f"{PREFIX}faust-shipping",
    broker=",".join(f"kafka://{b}" for b in BOOTSTRAP.split(",")),
    store="memory://",
    topic_partitions=PARTITIONS,
    web_enabled=False,
)

topics = ServiceTopics.with_prefix(PREFIX)
handle = make_handler(topics)
carriers = ServicesConfig().shipping.carriers
books = {"state": ShippingState.with_carriers([(x.name, x.daily_capacity) for x in carriers], 0.0)}


def respond(command: CloudEvent) -> Sequence[Outgoing]:
    books["state"], outputs = handle(books["state"], command)
    return outputs


serve_saga_step(
    app,
    name="shipping",
    command_topic=topics.shipping_commands,
    respond=respond,
    handles={c.SCHEDULE, c.CANCEL},
    partitions=PARTITIONS,
)

if __name__ == "__main__":
    app.main()
