"""What an API client gets when a request is too large or the coordinator has a bug (issue 17)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sagas.api import _answer


async def raising(exc: Exception) -> tuple[int, Any]:
    raise exc


async def test_a_two_megabyte_body_is_a_413_not_a_500() -> None:
    """aiohttp refuses bodies over 1 MiB while reading them; that ended as a 500."""
    too_large = web.HTTPRequestEntityTooLarge(max_size=1_048_576, actual_size=2_097_152)
    response = await _answer(lambda: raising(too_large))
    assert response.status == 413
    assert orjson.loads(response.body)["error"] == "too-large"  # type: ignore[arg-type]


async def test_a_500_carries_no_traceback_or_repr_of_internals() -> None:
    response = await _answer(lambda: raising(KeyError("secret-internal-state")))
    body = orjson.loads(response.body)  # type: ignore[arg-type]
    assert response.status == 500 and body["error"] == "internal"
    assert "Traceback" not in body["detail"] and "digest" in body["detail"]
    assert "secret-internal-state" not in body["detail"]
