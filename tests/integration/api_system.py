"""A small shop saga for the API and CLI tests: two coordinator replicas in one group,
a stock participant whose "release" can be broken and fixed, a payment participant.

The payment participant decides per saga from its context: ``{"pay": "ok" | "fail" |
"hold"}`` (``hold`` never answers, so the saga stays in flight until aborted).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from events.envelope import CloudEvent
from events.topics import Topics
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from tests.support.kafka_peers import ScriptedParticipant
from tests.support.processes import ManagedProcess, sagas_process

TOKEN = "s3cret-test-token"

#: Short consumer-group timeouts on the embedded broker (a join there takes about half the
#: session timeout); a real cluster keeps its defaults. Finished sagas stay in the table.
GROUP_TIMING = (
    {}
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    else {
        "SAGAS_SESSION_TIMEOUT": "3",
        "SAGAS_HEARTBEAT_INTERVAL": "0.5",
        "SAGAS_REBALANCE_TIMEOUT": "2",
    }
)

SHOP = """
sagas:
  - name: shop
    version: 1
    steps:
      - name: reserve
        command: {{type: stock.reserve, topic: {p}stock.commands}}
        reply_topic: {p}stock.replies
        success: [stock.reserved]
        failure: [stock.rejected]
        timeout: 10
        compensation:
          type: stock.release
          topic: {p}stock.commands
          success: [stock.released]
          failure: [stock.release_failed]
          timeout: 10
          retry: {{attempts: 2, initial: 0.1}}
      - name: pay
        command: {{type: pay.charge, topic: {p}pay.commands}}
        reply_topic: {p}pay.replies
        success: [pay.charged]
        failure: [pay.declined]
        timeout: 120
"""

TOPICS = [
    "stock.commands",
    "stock.replies",
    "pay.commands",
    "pay.replies",
    *Topics().all(),  # the engine's topics, saga.starts among them
]


@dataclass
class Stock:
    """The stock participant's behaviour: ``broken`` makes every release fail."""

    broken: bool = False
    releases: list[str] = field(default_factory=list)

    def __call__(self, command: CloudEvent) -> tuple[str, dict[str, Any]]:
        if command.type == "stock.release":
            self.releases.append(command.sagaid)
            if self.broken:
                return ("stock.release_failed", {"reason": "warehouse system offline"})
            return ("stock.released", {})
        return ("stock.reserved", {"reservation": f"r-{command.sagaid}"})


def pay(command: CloudEvent) -> tuple[str, dict[str, Any]] | None:
    mode = command.data.get("pay", "ok")
    if mode == "hold":
        return None
    if mode == "fail":
        return ("pay.declined", {"reason": "card declined"})
    return ("pay.charged", {"payment_id": f"p-{command.sagaid}"})


def http(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """(status, parsed JSON) of one request; never raises for an HTTP error status."""
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return exc.code, raw.decode("utf-8", "replace")
    except OSError as exc:
        return 0, repr(exc)


def ready(url: str) -> dict[str, Any] | None:
    code, body = http("GET", f"{url}/readyz", timeout=2)
    return body if code == 200 else None


def wait_split(
    urls: list[str], partitions: int, procs: list[ManagedProcess]
) -> dict[str, set[int]]:
    """Wait until every replica is ready and the partitions are split between all of them."""

    def split() -> dict[str, set[int]] | None:
        for proc in procs:
            if not proc.alive():
                raise AssertionError(f"{proc.name} died:\n{proc.log_tail()}")
        views = {u: ready(u) for u in urls}
        if not all(views.values()):
            return None
        owned = {u: set(v["partitions"]) for u, v in views.items() if v}
        every = [p for ps in owned.values() for p in ps]
        if sorted(every) != list(range(partitions)) or not all(owned.values()):
            return None
        return owned

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = split()
        if found:
            return found
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail(20)}" for p in procs)
    raise AssertionError(f"the partitions never split between {urls}:\n{logs}")


def wait_status(url: str, saga_id: str, statuses: set[str], timeout: float = 40) -> dict[str, Any]:
    last: list[Any] = [None]

    def done() -> dict[str, Any] | None:
        code, body = http("GET", f"{url}/sagas/{saga_id}", timeout=5)
        last[0] = (code, body)
        return body if code == 200 and body["status"] in statuses else None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = done()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"saga {saga_id} did not reach {statuses}: last answer {last[0]}")


def cli(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "sagas", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


def definitions_file(folder: Path, prefix: str) -> Path:
    path = folder / "shop.yaml"
    path.write_text(SHOP.format(p=prefix))
    return path


@dataclass(frozen=True)
class ShopTopics:
    """A shop of its own on the broker: topic prefix, definitions file, coordinator env."""

    prefix: str
    folder: Path
    definitions: Path
    env: dict[str, str]

    def worker(self, bootstrap: str, port: int, name: str) -> ManagedProcess:
        """A coordinator replica of this shop with its API on ``port`` (not started yet)."""
        return sagas_process(
            ["worker", "-d", str(self.definitions), "--web-port", str(port)],
            bootstrap=bootstrap,
            log_dir=self.folder,
            name=name,
            extra_env=self.env,
        )


async def shop_topics(bootstrap: str, folder: Path, prefix: str, **env: str) -> ShopTopics:
    """Create the shop's topics under ``prefix`` and write its definitions into ``folder``;
    ``env`` adds to the coordinators' settings (token, app id and group timing set here)."""
    definitions = definitions_file(folder, prefix)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    await ensure_topics(kafka, [f"{prefix}{name}" for name in TOPICS])
    settings = {
        "SAGAS_TOPIC_PREFIX": prefix,
        "SAGAS_APP_ID": f"{prefix}coordinator",
        "SAGAS_API_TOKEN": TOKEN,
        **GROUP_TIMING,
        **env,
    }
    return ShopTopics(prefix, folder, definitions, settings)


@contextlib.asynccontextmanager
async def shop_participants(bootstrap: str, prefix: str, stock: Stock) -> AsyncIterator[None]:
    """The stock and payment participants, answering while the block runs."""
    async with contextlib.AsyncExitStack() as stack:
        for peer in (
            ScriptedParticipant(
                bootstrap, f"{prefix}stock.commands", f"{prefix}stock.replies", stock, name="stock"
            ),
            ScriptedParticipant(
                bootstrap, f"{prefix}pay.commands", f"{prefix}pay.replies", pay, name="pay"
            ),
        ):
            await stack.enter_async_context(peer)
        yield
