"""The endpoints the saga explorer adds to the API: the overview and the dead letters.

``GET /overview`` asks every replica for its part (``scope=local``) and merges
them, as ``GET /sagas`` does; the dead letters are read from Kafka by the
replica asked (the topic is not split between replicas).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import orjson

from sagas.api import listing
from sagas.api.cluster import FORWARDED
from sagas.api.dead_letters import DeadLetters
from sagas.api.requests import ApiError, check_auth
from sagas.api.server import SagaApi

log = logging.getLogger("sagas.api")

_DIGITS = re.compile(r"[0-9]{1,18}")
DEFAULT_WINDOW_MINUTES = 15
MAX_WINDOW_MINUTES = 24 * 60
DEFAULT_LETTERS = 50
MAX_LETTERS = 500


def _whole(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "bad-query", f"{name}={raw!r} is not a whole number in {low}..{high}")
    return int(raw)


def _only(params: dict[str, str], allowed: set[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise ApiError(
            400,
            "bad-query",
            f"unknown query parameter(s) {sorted(unknown)}; use {', '.join(sorted(allowed))}",
        )


class Explorer:
    def __init__(self, api: SagaApi, dead_letters: DeadLetters | None) -> None:
        self.api = api
        self.dead_letters = dead_letters

    async def overview(self, request: Any) -> tuple[int, Any]:
        params = dict(request.query)
        _only(params, {"window", "scope"})
        minutes = _whole(params, "window", DEFAULT_WINDOW_MINUTES, 1, MAX_WINDOW_MINUTES)
        why = self.api.cluster.not_ready()
        if why is not None:
            raise ApiError(503, "not-ready", f"cannot give the overview: {why}")
        local = listing.local_overview(
            self.api.replica.stored_values(),
            time.time(),
            minutes * 60.0,
            self.api.definition,
            self.api.owned_test(),
            self.api.summaries,
        )
        if params.get("scope") == "local" or request.headers.get(FORWARDED):
            return 200, local
        peers = self.api.cluster.peers()
        path = f"/overview?window={minutes}&scope=local"
        answers = await asyncio.gather(
            *(self.api._peer("GET", url, path) for url in peers), return_exceptions=True
        )
        parts, missing = [local], []
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException) or answer[0] != 200:
                missing.append(url)
                continue
            parts.append(orjson.loads(answer[1]))
        body = listing.merge_overviews(parts, minutes * 60.0)
        body["loaded"] = [
            {"saga": name, "versions": sorted(versions)}
            for name, versions in sorted(self.api.versions.items())
        ]
        body["dead_letters"] = await self._letter_count()
        body["missing_replicas"] = missing
        body["complete"] = not missing
        return 200, body

    async def _letter_count(self) -> dict[str, Any]:
        if self.dead_letters is None:
            return {"topic": None, "total": None, "error": "dead letters are not read here"}
        try:
            found = await self.dead_letters.recent(0)
        except Exception as exc:  # noqa: BLE001 - the overview shows the rest anyway
            return {"topic": self.dead_letters.topic, "total": None, "error": repr(exc)}
        return {"topic": found["topic"], "total": found["total"], "error": None}

    def _letters(self) -> DeadLetters:
        if self.dead_letters is None:
            raise ApiError(
                503,
                "no-kafka",
                "this API was started without Kafka settings, so it cannot read dead letters",
            )
        return self.dead_letters

    async def letters(self, request: Any) -> tuple[int, Any]:
        params = dict(request.query)
        _only(params, {"limit"})
        limit = _whole(params, "limit", DEFAULT_LETTERS, 1, MAX_LETTERS)
        return 200, await self._letters().recent(limit)

    async def redrive(self, request: Any, partition: str, offset: str) -> tuple[int, Any]:
        check_auth(request.headers.get("Authorization"), self.api.token)
        if not _DIGITS.fullmatch(partition) or not _DIGITS.fullmatch(offset):
            raise ApiError(
                400,
                "bad-request",
                f"partition {partition!r} and offset {offset!r} must be whole numbers: "
                f"POST /deadletters/PARTITION/OFFSET/redrive",
            )
        letters = self._letters()
        result = await letters.redrive(int(partition), int(offset))
        log.info(
            "dead letter %s[%s]@%s re-driven to %s through the API",
            letters.topic,
            partition,
            offset,
            result["to"],
        )
        return 200, result
