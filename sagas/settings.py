"""Configuration of the coordinator: environment variables (``SAGAS_*``) or flags.

Kafka connection and security settings live in `sagas.kafka.kafka_settings`
(``KAFKA_*``), shared with the services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class CoordinatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAGAS_", extra="ignore")

    app_id: str = Field(
        default="sagastream-coordinator",
        description="Consumer group and table namespace; replicas share it.",
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535, description="HTTP API and /metrics.")
    public_url: str | None = Field(
        default=None,
        description="URL other replicas reach this one's API at (default: http://WEB_HOST:WEB_PORT, "
        "with the host name when WEB_HOST is 0.0.0.0).",
    )
    api_token: SecretStr | None = Field(default=None, description="Bearer token for mutations.")
    api_token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token (a Docker or Kubernetes secret), instead "
        "of SAGAS_API_TOKEN.",
    )
    api_auth: Literal["token", "none"] = Field(
        default="token",
        description="token: mutations need the bearer token; an empty one, or none while the "
        "API listens beyond loopback, is refused at start. none: no authentication, chosen "
        "explicitly.",
    )
    batch_max: int = Field(default=1000, ge=1, description="Records decided per batch at most.")
    commit_interval: float = Field(
        default=0.1,
        ge=0,
        description=(
            "Seconds between offset commits under load (what is durable is committed; a "
            "crash replays at most this much, without a second effect)."
        ),
    )
    pipeline: int = Field(
        default=16,
        ge=1,
        description="Decided batches on their way to Kafka at once (offsets commit in order).",
    )
    early_event_grace: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a reply, operator command or signal may wait for its saga to start "
            "before it is dead-lettered; the wait goes on while starts for its partition "
            "wait unread in Kafka."
        ),
    )
    timer_tick: float = Field(default=0.02, gt=0, description="Seconds between timer scans.")
    session_timeout: float = Field(
        default=10.0, gt=0, le=1800, description="Kafka consumer session timeout."
    )
    heartbeat_interval: float = Field(default=1.0, gt=0, le=600)
    rebalance_timeout: float = Field(
        default=4.0, gt=0, le=1800, description="Kafka JoinGroup rebalance timeout."
    )
    instance_id: str | None = Field(
        default=None,
        description=(
            "Static consumer-group membership id, stable across restarts of one replica "
            "(e.g. the pod name): a restarted replica takes its partitions back at once "
            "instead of waiting for its old session to expire."
        ),
    )
    max_record_bytes: int = Field(default=1_048_576, ge=1024, le=100 * 1_048_576)
    retention: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Seconds a finished saga stays queryable before it is removed from the table.",
    )
    live_cache: int = Field(
        default=8192,
        ge=0,
        description=(
            "Running sagas kept decoded in memory (saves parsing a state per reply; ~2.3 KiB "
            "each). Size it to the sagas in flight at once: throughput x saga duration."
        ),
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description=(
            "at_least_once: a crash may send a command again (same id; participants drop it). "
            "exactly_once (Apache Kafka only): each batch's commands, lifecycle events, states "
            "and input offsets are one Kafka transaction, read read_committed."
        ),
    )
    max_in_flight: int = Field(
        # One replica's peak (~1,450 bench sagas/s) x its p99 there (~0.7 s), by Little's law
        # the sagas in flight at the peak: past it a saga only waits longer inside.
        default=1000,
        ge=0,
        description=(
            "Sagas running or compensating in one replica past which it pauses its trigger "
            "topics and saga.starts (SagaClient's starts): further starts wait in Kafka until "
            "3/4 of this is reached again (0: no bound). Starts through the HTTP API are "
            "refused at it (429, try again); starts written straight to saga.control that find "
            "no room under it are moved to saga.starts, to wait there. Size it to throughput x "
            "saga duration at the peak; see the README's Overload."
        ),
    )
    retry_budget_ratio: float = Field(
        default=0.2,
        ge=0,
        description=(
            "Step deadlines a replica fires per command it sends as a first attempt; a "
            "deadline past the budget waits (0 with SAGAS_RETRY_BUDGET_PER_SECOND 0: no budget)."
        ),
    )
    retry_budget_per_second: float = Field(
        default=100.0,
        ge=0,
        description=(
            "Step deadlines a replica may always fire per second, whatever it sends (and ten "
            "times this at once)."
        ),
    )
    log_level: LogLevel = "warning"
    log_format: Literal["text", "json"] = "text"

    @field_validator("log_level", "log_format", "processing_guarantee", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> CoordinatorSettings:
        # Kafka's own rule of thumb (and what keeps a replica in its group through one
        # lost heartbeat): at least three heartbeats per session.
        if self.heartbeat_interval * 3 > self.session_timeout:
            raise ValueError(
                f"SAGAS_HEARTBEAT_INTERVAL={self.heartbeat_interval:g} must be at most a third "
                f"of SAGAS_SESSION_TIMEOUT={self.session_timeout:g}"
            )
        return self

    @model_validator(mode="after")
    def _authentication_chosen(self) -> CoordinatorSettings:
        # An empty token (SAGAS_API_TOKEN=$UNSET) used to turn authentication off silently.
        given = self.api_token.get_secret_value() if self.api_token is not None else None
        if self.api_token_file is not None:
            if given:
                raise ValueError("set SAGAS_API_TOKEN or SAGAS_API_TOKEN_FILE, not both")
            try:
                given = self.api_token_file.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"SAGAS_API_TOKEN_FILE={str(self.api_token_file)!r}: cannot read the token "
                    f"({exc.strerror})"
                ) from None
            self.api_token = SecretStr(given)
        how = "set one, or SAGAS_API_AUTH=none to serve the API without authentication"
        if self.api_auth == "none":
            if given:
                raise ValueError("SAGAS_API_AUTH=none, but a token is set: drop one of them")
            return self
        if given is not None and not given:
            source = "the file SAGAS_API_TOKEN_FILE" if self.api_token_file else "SAGAS_API_TOKEN"
            raise ValueError(f"{source} is empty: the API would take mutations from anyone; {how}")
        if given is None and self.web_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(
                f"the API listens on SAGAS_WEB_HOST={self.web_host} with no SAGAS_API_TOKEN or "
                f"SAGAS_API_TOKEN_FILE: {how}"
            )
        return self

    def advertised_url(self) -> str:
        """Where the other replicas send requests for the sagas this replica holds."""
        if self.public_url:
            return self.public_url
        host = self.web_host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.gethostname()
        return f"http://{host}:{self.web_port}"
