"""Is a process ready? Asked over its HTTP port, never assumed.

* A service (`sagas.participants.participant`) answers ``GET /health`` with
  ``{"ready": true}`` once it has replayed its changelog and consumes.
* The coordinator answers ``GET /readyz`` with ``{"ready": true}`` once its
  partitions are assigned and its table recovered (`sagas.api`).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from services.launch.child import ChildProcess

#: where each role answers ``{"ready": bool}``, first found wins
READY_PATHS = {"coordinator": ("/readyz",), "service": ("/health",)}


class Http:
    """A small JSON/text client for the processes' loopback HTTP ports."""

    def __init__(self, timeout: float = 2.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str) -> tuple[int, bytes]:
        """(status, body); raises ``aiohttp.ClientError``/``TimeoutError`` when unreachable."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.get(url) as response:
            return response.status, await response.read()

    async def json(self, url: str) -> Any:
        """The JSON document at ``url`` (any status); None when unreachable or not JSON."""
        try:
            _, body = await self.get(url)
            return orjson.loads(body)
        except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError):
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def is_ready(child: ChildProcess, http: Http) -> bool:
    """One readiness check of ``child`` (by its role); False while it is starting."""
    for path in READY_PATHS.get(child.role, ("/health",)):
        url = child.url(path)
        doc = await http.json(url) if url is not None else None
        if isinstance(doc, dict) and isinstance(doc.get("ready"), bool):
            return bool(doc["ready"])
    return False
