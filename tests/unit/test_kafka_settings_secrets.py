"""Secrets in files (Docker/Kubernetes secrets) and encrypted client keys, from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sagas.kafka.kafka_settings import KafkaSettings

SASL = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9093",
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "sagas",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SASL.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_sasl_password_can_come_from_a_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret\n")
    env.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    settings = KafkaSettings()
    kwargs = settings.aiokafka_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def test_the_variable_wins_over_the_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("from-file")
    env.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    env.setenv("KAFKA_SASL_PASSWORD", "from-env")
    assert KafkaSettings().aiokafka_kwargs()["sasl_plain_password"] == "from-env"


def test_sasl_without_any_password_is_refused(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD_FILE"):
        KafkaSettings()


def test_an_unreadable_password_file_is_named(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    # refused when the settings are read (issue 17), not at the first connection
    with pytest.raises(ValidationError, match=r"KAFKA_SASL_PASSWORD_FILE[\s\S]*missing"):
        KafkaSettings()


def test_an_encrypted_client_key_takes_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SSL_KEY_PASSWORD", "key-pass")
    settings = KafkaSettings(security_protocol="SSL", bootstrap_servers="kafka:9093")
    assert settings.ssl_key_password is not None
    assert settings.ssl_key_password.get_secret_value() == "key-pass"
    assert "key-pass" not in repr(settings)
