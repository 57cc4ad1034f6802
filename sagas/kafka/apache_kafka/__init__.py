"""Apache Kafka run by the project: jars fetched with Maven, KRaft nodes started by PID.

    with ApacheKafka(nodes=3) as kafka:
        kafka.bootstrap_servers       # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"

``jars`` fetches and caches the broker's jars; ``config`` writes each node's
``server.properties`` (the shared ``broker.properties`` plus the node's part);
``cluster`` formats storage, starts the nodes and waits for metadata.
"""

from sagas.kafka.apache_kafka.cluster import ApacheKafka
from sagas.kafka.apache_kafka.config import ClientListener, SaslUser
from sagas.kafka.apache_kafka.jars import (
    KAFKA_VERSION,
    ApacheKafkaError,
    KafkaJarsError,
    KafkaToolMissingError,
)

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafka",
    "ApacheKafkaError",
    "ClientListener",
    "KafkaJarsError",
    "KafkaToolMissingError",
    "SaslUser",
]
