"""The claim and transfer sagas on a real broker (issue 20): coordinator, insurer, triage
agent and bank as processes; a reviewer answers through the coordinator (SagaClient
signals); every saga ends, and the books hold: no allowance overdrawn, every paid claim
approved, every unpaid claim released, money conserved."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from sagas.client import SagaClient
from sagas.kafka.kafka_settings import KafkaSettings
from services import definitions
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder
from tests.support.processes import ManagedProcess, free_port, sagas_process

pytestmark = pytest.mark.integration

SERVICES = ("claims", "triage", "bank")
CONFIG = "topic_prefix: '{prefix}'\n"

CLAIMS: dict[str, tuple[str, int, str, str | None]] = {
    # saga id: (member, amount, procedure, the reviewer's answer if asked)
    "cl-auto-1": ("mem-ann", 9_000, "physiotherapy session after knee surgery", None),
    "cl-auto-2": ("mem-ben", 4_000, "flu vaccination shot", None),
    "cl-high": ("mem-ann", 120_000, "mri scan of the knee", "claim.approved"),
    "cl-cosmetic": ("mem-ann", 20_000, "cosmetic botox injections", "claim.rejected"),
    "cl-lapsed": ("mem-lapsed", 5_000, "blood test", None),
}
TRANSFERS: dict[str, tuple[str, int, str | None]] = {
    "tr-small": ("acc-bob", 10_000, None),
    "tr-large": ("acc-bob", 300_000, "transfer.approved"),
    "tr-sanctioned": ("acc-sanctioned", 10_000, None),
}


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


async def test_claims_and_transfers_with_a_reviewer_end_with_the_books_right(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    config = tmp_path / "services.yaml"
    config.write_text(CONFIG.format(prefix=p))
    env = {"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": p + "coordinator"}
    ports = {s: free_port() for s in SERVICES}
    api_port = free_port()
    worker = ["worker", "--web-port", str(api_port)]
    for name in ("insurance_claim", "bank_transfer"):
        worker += ["-d", str(definitions.write(name, p, tmp_path))]
    procs: dict[str, ManagedProcess] = {
        "coordinator": sagas_process(
            worker, bootstrap=kafka_bootstrap, log_dir=tmp_path, name="coordinator", extra_env=env
        ).start()
    }
    for s in SERVICES:
        args = ["service", s, "--config", str(config), "--metrics-port", str(ports[s])]
        procs[s] = sagas_process(
            args, bootstrap=kafka_bootstrap, log_dir=tmp_path, name=s, extra_env=env
        ).start()

    def logs() -> str:
        return "\n".join(f"--- {k}\n{proc.log_tail(15)}" for k, proc in procs.items())

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    try:
        for s in SERVICES:
            await eventually(
                lambda s=s: (_get(ports[s], "/health") or {}).get("ready"),
                timeout=30,
                what=f"{s} ready; logs:\n{logs()}",
            )
        await producer.start()
        async with (
            TopicRecorder(kafka_bootstrap, p + "saga.lifecycle") as lifecycle,
            SagaClient(kafka) as reviewer,
        ):
            for saga_id, (member, amount, procedure, _) in CLAIMS.items():
                data = {
                    "claim_id": saga_id,
                    "member_id": member,
                    "provider_id": "prov-1",
                    "amount": amount,
                    "procedure": procedure,
                }
                await _publish(producer, p + "claims", "claim.submitted", saga_id, data)
            for saga_id, (to, amount, _) in TRANSFERS.items():
                data = {
                    "transfer_id": saga_id,
                    "from_account": "acc-alice",
                    "to_account": to,
                    "amount": amount,
                }
                await _publish(producer, p + "transfers", "transfer.requested", saga_id, data)
            answers = {k: v[3] for k, v in CLAIMS.items()} | {k: v[2] for k, v in TRANSFERS.items()}
            for saga_id, answer in answers.items():
                if answer is None:
                    continue
                await eventually(
                    lambda saga_id=saga_id: any(
                        e.sagaid == saga_id for e in lifecycle.of_type("saga.step.waiting")
                    ),
                    timeout=60,
                    what=f"{saga_id} waits for a person; logs:\n{logs()}",
                )
                data = {"approved_by": "dr-ann", "reason": "test"}
                if saga_id == "tr-large":  # one through the CLI and the HTTP API
                    await _cli_signal(api_port, saga_id, answer, data, logs)
                else:
                    await reviewer.signal(saga_id, answer, data)
            terminal = await eventually(
                lambda: len(lifecycle.terminal()) == len(answers) and lifecycle.terminal(),
                timeout=90,
                what=f"a terminal lifecycle event per saga; logs:\n{logs()}",
            )
        assert terminal == {
            "cl-auto-1": "completed",
            "cl-auto-2": "completed",
            "cl-high": "completed",
            "cl-cosmetic": "compensated",
            "cl-lapsed": "compensated",
            "tr-small": "completed",
            "tr-large": "completed",
            "tr-sanctioned": "compensated",
        }
        books = _get(ports["claims"], "/invariants")
        assert books["no_allowance_overdrawn"] and books["books_match"], books
        assert books["every_paid_claim_approved"] and books["unsettled"] == 0, books
        assert (books["paid"], books["paid_by_person"], books["released"]) == (3, 1, 1), books
        money = _get(ports["bank"], "/invariants")
        assert money["conserved"] and money["in_flight"] == 0, money
        assert money["balances"]["acc-bob"] == 500_000 + 310_000, money
    finally:
        await producer.stop()
        for proc in procs.values():
            proc.stop()


async def _cli_signal(
    api_port: int, saga_id: str, type_: str, data: dict[str, Any], logs: Any
) -> None:
    """`sagas signal` against the coordinator's API, as a person at a terminal would."""
    args = ["signal", saga_id, type_, "--data", json.dumps(data)]
    args += ["--api", f"http://127.0.0.1:{api_port}", "--wait", "10"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagas",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"{out.decode()}\n{logs()}"
    assert f"signal: saga {saga_id} is now" in out.decode(), out.decode()


async def _publish(
    producer: AIOKafkaProducer, topic: str, type_: str, saga_id: str, data: dict[str, Any]
) -> None:
    event = new_event(type_, source="test", sagaid=saga_id, data=data)
    value, headers = encode(event)
    await producer.send_and_wait(topic, value, key=saga_id.encode(), headers=headers)
