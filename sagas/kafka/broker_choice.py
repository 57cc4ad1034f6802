"""Which broker to use: the configured cluster, else an embedded one started for the block.

with broker_for(KafkaSettings()) as bootstrap:   # KAFKA_BOOTSTRAP_SERVERS, else embedded
    ...
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sagas.kafka.embedded_broker import EmbeddedBroker
from sagas.kafka.kafka_settings import KafkaSettings, KafkaSettingsError

__all__ = ["broker_for"]


class broker_for:  # noqa: N801 - used like a function: `with broker_for(settings) as bootstrap`
    """Bootstrap servers for ``settings``: its cluster if configured, else an embedded broker.

    A sync and async context manager yielding ``"host:port[,host:port]"``; an
    embedded broker started here is stopped on exit.
    """

    def __init__(self, settings: KafkaSettings | None = None, **broker_options: Any) -> None:
        self.settings = settings if settings is not None else KafkaSettings()
        self.broker_options = broker_options
        self.broker: EmbeddedBroker | None = None

    def _configured(self) -> str | None:
        if self.settings.bootstrap_servers:
            return self.settings.bootstrap_servers
        if self.settings.security_protocol != "PLAINTEXT":
            raise KafkaSettingsError(
                f"KAFKA_SECURITY_PROTOCOL={self.settings.security_protocol} but no "
                "KAFKA_BOOTSTRAP_SERVERS: the embedded broker speaks PLAINTEXT only; set "
                "KAFKA_BOOTSTRAP_SERVERS to your cluster"
            )
        self.broker = EmbeddedBroker(**self.broker_options)
        return None

    def __enter__(self) -> str:
        configured = self._configured()
        if configured is not None:
            return configured
        assert self.broker is not None
        return self.broker.start().bootstrap_servers

    def __exit__(self, *exc: object) -> None:
        if self.broker is not None:
            self.broker.stop()

    async def __aenter__(self) -> str:
        configured = self._configured()
        if configured is not None:
            return configured
        assert self.broker is not None
        return (await self.broker.astart()).bootstrap_servers

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.broker is not None:
            await self.broker.astop()
