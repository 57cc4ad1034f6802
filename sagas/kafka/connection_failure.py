"""Why a client could not reach Kafka, in one line a person can act on.

aiokafka reports every failed bootstrap as ``KafkaConnectionError("Unable to
bootstrap from [...]")`` and only logs the reason (a refused SASL login, a TLS
handshake, nothing listening). ``explain_connection_failure`` connects once
more to each bootstrap server with the same settings and names the first
reason it meets:

    error: Kafka at 127.0.0.1:9092 refused the SCRAM-SHA-512 login of user 'sagas':
    check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (authentication failed)

The password never appears: only the user name and mechanism are named.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from sagas.kafka.broker_probe import run_blocking
from sagas.kafka.kafka_settings import KafkaSettings, KafkaSettingsError

__all__ = ["ConnectionFailure", "explain_connection_failure", "is_connection_failure"]

_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ConnectionFailure:
    """What went wrong; ``retriable`` is False when waiting cannot help (a refused login,
    a failed TLS handshake, a malformed address), True when the broker may come up."""

    message: str
    retriable: bool

    def __str__(self) -> str:
        return self.message


def is_connection_failure(exc: BaseException) -> bool:
    """True for the errors a client raises when it cannot reach or log in to Kafka."""
    from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

    return isinstance(exc, KafkaConnectionError | SaslAuthenticationFailed | ssl.SSLError)


def explain_connection_failure(exc: BaseException, settings: KafkaSettings) -> ConnectionFailure:
    """One line: which server, what failed, which setting to check."""
    try:
        hosts = settings.hosts()
    except KafkaSettingsError as missing:
        return ConnectionFailure(str(missing), retriable=False)
    for host in hosts:
        reason = run_blocking(_probe(host, settings))
        if reason is not None:
            return reason
    return ConnectionFailure(
        f"cannot reach Kafka at {', '.join(hosts)} (KAFKA_BOOTSTRAP_SERVERS): {_short(exc)}",
        retriable=True,
    )


async def _probe(host: str, settings: KafkaSettings) -> ConnectionFailure | None:
    """Why one connection to ``host`` fails, or None when it works."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import SaslAuthenticationFailed

    name, _, port_text = host.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        return ConnectionFailure(
            f"KAFKA_BOOTSTRAP_SERVERS: {host!r} is not host:port", retriable=False
        )
    kwargs: dict[str, Any] = {
        k: v for k, v in settings.aiokafka_kwargs().items() if k != "bootstrap_servers"
    }
    protocol = settings.security_protocol
    try:
        conn = await asyncio.wait_for(
            create_conn(name, port, request_timeout_ms=int(_PROBE_TIMEOUT * 1000), **kwargs),
            _PROBE_TIMEOUT,
        )
    except SaslAuthenticationFailed:
        return ConnectionFailure(
            f"Kafka at {host} refused the {settings.sasl_mechanism} login of user "
            f"{settings.sasl_username!r}: check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
            "(authentication failed)",
            retriable=False,
        )
    except ssl.SSLError as exc:
        return ConnectionFailure(
            f"the TLS handshake with Kafka at {host} failed ({exc.reason or exc}): check "
            "KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE",
            retriable=False,
        )
    except ConnectionRefusedError:
        return ConnectionFailure(
            f"nothing listens at {host} (KAFKA_BOOTSTRAP_SERVERS): is the broker running?",
            retriable=True,
        )
    except TimeoutError:
        return ConnectionFailure(
            f"Kafka at {host} did not answer within {_PROBE_TIMEOUT:g}s over {protocol}: "
            "check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL",
            retriable=True,
        )
    except OSError as exc:
        return ConnectionFailure(
            f"cannot connect to Kafka at {host}: {exc.strerror or exc}", retriable=True
        )
    except Exception as exc:  # noqa: BLE001 - whatever it is, it is the reason
        return ConnectionFailure(
            f"cannot talk to Kafka at {host} over {protocol}: {_short(exc)}", retriable=True
        )
    conn.close()
    return None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
