"""Secrets stay secret: not in any log, not in /metrics; mutations need the API token.

Every process of the shared system was started with ``KAFKA_SASL_PASSWORD``
(and the coordinators with ``SAGAS_API_TOKEN``) set to marker strings. After
the scenarios before this one (crashes, tracebacks, dead letters, fuzzed
input all logged), no log file and no ``/metrics`` page may contain either.
The token check itself is covered in depth by
``tests/integration/test_api.py::test_mutations_need_the_token``; here it is
checked once more on this system. TLS to the broker is covered by
``tests/integration/test_tls.py`` (a TLS endpoint in front of Tansu, which
cannot serve TLS itself); SASL cannot be tested on the embedded broker (see
the README's "Fault tests").
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.faults.checker import VERDICTS, Verdict
from tests.faults.system import API_SECRET, COORDINATORS, SASL_SECRET, FaultSystem

pytestmark = pytest.mark.asyncio(loop_scope="package")

PAGES = ("/metrics", "/readyz", "/healthz", "/health", "/invariants", "/sagas?limit=50")


async def test_secrets_never_appear_in_logs_or_metrics(faults: FaultSystem) -> None:
    secrets = (SASL_SECRET.encode(), API_SECRET.encode())
    leaks, scanned = [], 0
    for path in sorted(faults.run_dir.glob("*.log")):
        text = path.read_bytes()
        scanned += len(text)
        leaks += [f"{path.name} contains {s.decode()}" for s in secrets if s in text]
    pages = 0
    for child in faults.launcher:
        for page in PAGES:
            url = child.url(page)
            if url is None:
                continue
            try:
                _, body = await faults.launcher.http.get(url)
            except Exception:  # noqa: BLE001 - a page the process does not serve
                continue
            pages += 1
            leaks += [f"{child.name} {page} contains {s.decode()}" for s in secrets if s in body]

    refused = []
    url = faults.launcher[COORDINATORS[0]].url("/sagas/some-saga/abort")
    assert url is not None
    async with aiohttp.ClientSession() as http:
        for token in (None, "not-the-token"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(url, json={"reason": "x"}, headers=headers) as response:
                refused.append(response.status)
    verdict = Verdict(
        "secrets in logs and /metrics",
        sagas=0,
        terminal=0,
        violations=leaks
        + [f"mutation without the token answered {s}" for s in refused if s != 401],
        notes=[
            f"{scanned / 1e6:.1f} MB of logs and {pages} HTTP pages scanned; abort without/with a wrong token: {refused}"
        ],
    )
    VERDICTS.append(verdict)
    assert not verdict.violations, verdict.explain()
