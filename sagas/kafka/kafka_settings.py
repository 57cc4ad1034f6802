"""How every process reaches Kafka: bootstrap servers, security, topic defaults.

One settings model, read from ``KAFKA_*`` and ``SAGAS_*`` environment variables
(or passed in code), turned into keyword arguments for aiokafka clients so that
no client is configured by hand:

    settings = KafkaSettings()                      # from the environment
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(), group_id="x")

``bootstrap_servers`` is optional: ``None`` means "use the embedded broker"
(see ``sagas.kafka.broker_choice.broker_for``). The SASL password is a
``SecretStr``: it never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.errors import EventsError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


class KafkaSettingsError(EventsError):
    """The Kafka settings cannot be used as they are (a configuration mistake)."""


class KafkaSettings(BaseSettings):
    """Connection, security and topic defaults shared by the coordinator and services."""

    # Each field is read from its documented environment variable only (never from
    # a bare PARTITIONS), and can be passed by its Python name in code.
    model_config = SettingsConfigDict(
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        env_ignore_empty=True,
        case_sensitive=False,
        hide_input_in_errors=True,  # inputs may hold the SASL password
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="host:port[,host:port...]. Required by every command but `sagas demo` "
        "and `sagas bench`, which start a broker of their own when it is unset (`sagas "
        "broker` starts one for the others to use).",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        validation_alias="KAFKA_SECURITY_PROTOCOL",
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    ssl_cafile: str | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_CAFILE",
        description="CA bundle to verify the brokers; system CAs when unset.",
    )
    ssl_certfile: str | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_CERTFILE",
        description="Client certificate, for mutual TLS.",
    )
    ssl_keyfile: str | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_KEYFILE",
        description="Private key of the client certificate.",
    )
    ssl_key_password: SecretStr | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_KEY_PASSWORD",
        description="Password of an encrypted KAFKA_SSL_KEYFILE.",
    )
    sasl_mechanism: SaslMechanism = Field(
        default="PLAIN",
        validation_alias="KAFKA_SASL_MECHANISM",
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str | None = Field(
        default=None,
        validation_alias="KAFKA_SASL_USERNAME",
        description="SASL user (SASL_PLAINTEXT, SASL_SSL).",
    )
    sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias="KAFKA_SASL_PASSWORD",
        description="SASL password; never logged.",
    )
    sasl_password_file: str | None = Field(
        default=None,
        validation_alias="KAFKA_SASL_PASSWORD_FILE",
        description=(
            "File holding the SASL password (a Docker or Kubernetes secret), read when "
            "KAFKA_SASL_PASSWORD is unset; a trailing newline is ignored."
        ),
    )
    topic_prefix: str = Field(
        default="",
        validation_alias="SAGAS_TOPIC_PREFIX",
        description="Prepended verbatim (include your own separator) to the engine's topics "
        "(saga.lifecycle, saga.deadletter, saga.control, saga.starts) and to participants' "
        "changelog topics and consumer groups. Not to the topics saga definitions name (write the "
        "prefix into them; the reference services take SERVICES_TOPIC_PREFIX) nor to the "
        "coordinator's group and table changelog (SAGAS_APP_ID).",
    )
    partitions: int = Field(
        default=8,
        ge=1,
        validation_alias="SAGAS_PARTITIONS",
        description="Partitions of topics we create; all coordinator inputs must match.",
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        validation_alias="SAGAS_REPLICATION_FACTOR",
        description="Replicas of topics we create (3 on a production cluster).",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        validation_alias="SAGAS_MIN_INSYNC_REPLICAS",
        description="min.insync.replicas of topics we create (unset: the broker's default). "
        "With acks=all, which every engine producer uses, a write fails instead of being "
        "kept by fewer replicas; 2 with SAGAS_REPLICATION_FACTOR=3 survives one broker down.",
    )
    enable_idempotence: bool = Field(
        default=False,
        validation_alias="KAFKA_ENABLE_IDEMPOTENCE",
        description=(
            "Idempotent producers for the coordinator, the participants and the saga client "
            "(Kafka's producer id and sequence numbers): a write retried after its leader "
            "died is kept once, not twice, and a batch is retried until it lands instead of "
            "expiring. Set true on Apache Kafka (measured: a SIGKILLed leader left duplicate "
            "changelog records without it); the embedded broker (Tansu 0.6) does not support "
            "it, so it is off by default."
        ),
    )
    metadata_max_age_ms: int = Field(
        default=10_000,
        ge=1_000,
        validation_alias="KAFKA_METADATA_MAX_AGE_MS",
        description=(
            "How old a consumer's cluster metadata may grow before it asks again (aiokafka's "
            "default is 5 minutes). aiokafka 0.14 does not refresh metadata when looking up "
            "a partition's start offset fails with NotLeaderForPartition: after a broker was "
            "SIGSTOPped and resumed, a coordinator kept asking it for 3.5 minutes and its "
            "sagas stood still; this bounds such a stall well under a step's 30 s deadline."
        ),
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        validation_alias="KAFKA_FETCH_MAX_WAIT_MS",
        description=(
            "How long a consumer's fetch may wait for data. Apache Kafka answers a fetch as "
            "soon as data arrives, so the wait costs no latency; 100 ms keeps idle consumers "
            "from polling (measured idle: coordinator 2.7% and broker 15% of a core at 100 ms, "
            "8.8% and 27% at 10 ms). The embedded broker (Tansu 0.6) answers a fetch that finds "
            "nothing only after half its wait, so whatever starts one sets 10 ms "
            "(sagas.kafka.embedded_broker.EMBEDDED_CLIENT_ENV)."
        ),
    )

    fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        le=52_428_800,
        validation_alias="KAFKA_FETCH_MIN_BYTES",
        description=(
            "How many bytes a consumer's fetch waits for (at most KAFKA_FETCH_MAX_WAIT_MS) "
            "before the broker answers. 1 answers as soon as any record arrives (lowest "
            "latency); more gives fewer, larger batches at moderate load, so less CPU per "
            "record, for up to the wait's latency per hop."
        ),
    )

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file")
    @classmethod
    def _readable_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked when the settings are read, so the error names the variable and the
        # path, not an OSError from deep inside the TLS set-up.
        if value is not None and not os.access(value, os.R_OK):
            what = "no such file" if not os.path.exists(value) else "not readable"
            raise ValueError(f"{value}: {what}")
        return value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        if self.security_protocol in _SASL_PROTOCOLS and (
            not self.sasl_username or (self.sasl_password is None and not self.sasl_password_file)
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME "
                f"and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE")
        if (
            self.min_insync_replicas is not None
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"SAGAS_MIN_INSYNC_REPLICAS={self.min_insync_replicas} is more than "
                f"SAGAS_REPLICATION_FACTOR={self.replication_factor}: no write could ever "
                "succeed; lower it or raise the replication factor"
            )
        return self

    # -- derived values -------------------------------------------------------------

    def topic_configs(self, **extra: str) -> dict[str, str]:
        """Topic configs for a topic we create: ``extra`` plus min.insync.replicas if set."""
        configs = dict(extra)
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        return configs

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in _TLS_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in _SASL_PROTOCOLS

    def with_bootstrap(self, bootstrap_servers: str) -> KafkaSettings:
        """The same settings pointed at ``bootstrap_servers`` (e.g. an embedded broker)."""
        return self.model_copy(update={"bootstrap_servers": bootstrap_servers})

    def require_bootstrap(self) -> str:
        """The bootstrap servers, or a clear error when none are configured."""
        if not self.bootstrap_servers:
            raise KafkaSettingsError(
                "no Kafka bootstrap servers configured: set KAFKA_BOOTSTRAP_SERVERS "
                "(host:port[,host:port]), or start the embedded broker with `sagas broker` "
                "(or sagas.kafka.broker_choice.broker_for) and use its address"
            )
        return self.bootstrap_servers

    def hosts(self) -> list[str]:
        """``["host:port", ...]`` from the comma-separated bootstrap servers."""
        return [h.strip() for h in self.require_bootstrap().split(",") if h.strip()]

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for SSL / SASL_SSL (verifies the broker's certificate)."""
        from aiokafka.helpers import create_ssl_context

        password = self.ssl_key_password
        return create_ssl_context(
            cafile=self.ssl_cafile,
            certfile=self.ssl_certfile,
            keyfile=self.ssl_keyfile,
            password=password.get_secret_value() if password is not None else None,
        )

    def sasl_secret(self) -> str:
        """The SASL password: KAFKA_SASL_PASSWORD, else the content of KAFKA_SASL_PASSWORD_FILE."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if not self.sasl_password_file:
            raise KafkaSettingsError("no SASL password: set KAFKA_SASL_PASSWORD or _FILE")
        try:
            with open(self.sasl_password_file, encoding="utf-8") as file:
                return file.read().rstrip("\r\n")
        except OSError as exc:
            raise KafkaSettingsError(
                f"cannot read KAFKA_SASL_PASSWORD_FILE {self.sasl_password_file}: "
                f"{exc.strerror or exc}"
            ) from None

    # -- client arguments ----------------------------------------------------------

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": ",".join(self.hosts()),
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_secret()
        return kwargs

    def producer_kwargs(self) -> dict[str, Any]:
        """``aiokafka_kwargs()`` plus what every producer here should use: ``acks=all``
        (a write is kept by min.insync.replicas replicas before it counts) and idempotence
        when KAFKA_ENABLE_IDEMPOTENCE is set."""
        return {
            **self.aiokafka_kwargs(),
            "acks": "all",
            "enable_idempotence": self.enable_idempotence,
        }

    def consumer_kwargs(self) -> dict[str, Any]:
        """``aiokafka_kwargs()`` plus the consumer settings every consumer here should use."""
        return {
            **self.aiokafka_kwargs(),
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "fetch_min_bytes": self.fetch_min_bytes,
            "metadata_max_age_ms": self.metadata_max_age_ms,
        }
