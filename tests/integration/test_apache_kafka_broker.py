"""`sagas broker --engine kafka`: a real Apache Kafka started, listed by kcat, stopped by PID.

- ``--nodes 3`` gives a KRaft quorum that kcat (librdkafka, not our client) lists
  with 3 brokers; its topics get replication factor 3 and ``min.insync.replicas=2``;
- SIGTERM stops every node; a SIGKILLed ``sagas broker`` takes its nodes with it
  (the kernel's parent-death signal: no ``finally`` runs);
- without ``java`` (or ``mvn``, on a first run) the command says in one line
  what to install, and exits 2;
- kcat talks to Apache Kafka directly (no shim, unlike the embedded broker).

Runs in the Apache Kafka half of the suite (``SAGAS_TEST_BROKER=kafka``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagas.kafka.apache_kafka.jars import cache_dir

pytestmark = [pytest.mark.integration, pytest.mark.apache_kafka]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purpose; only its parent can reap it.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(") ", 1)[1].startswith("Z")


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _kcat() -> str:
    kcat = shutil.which("kcat")
    if kcat is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is not installed and CI is set: run scripts/system-deps.sh")
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return kcat


def kcat_metadata(bootstrap: str) -> dict[str, object]:
    done = subprocess.run(
        [_kcat(), "-L", "-J", "-m", "10", "-b", bootstrap],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


class BrokerCommand:
    """``sagas broker ...`` as a child process, its output in files; the banner parsed."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out = folder / "broker.out"
        self.err = folder / "broker.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sagas", "broker", *args],
                stdout=out,
                stderr=err,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self.address = ""
        self.pids: list[int] = []

    def ready(self, timeout: float = 120) -> BrokerCommand:
        def banner() -> bool:
            assert self.proc.poll() is None, f"`sagas broker` exited: {self.stderr()}"
            return "\npids " in self.out.read_text()

        _wait(banner, timeout, "the banner of `sagas broker`")
        for line in self.out.read_text().splitlines():
            if line.startswith("export KAFKA_BOOTSTRAP_SERVERS="):
                self.address = line.split("=", 1)[1].strip()
            if line.startswith("pids "):
                self.pids = [int(p) for p in line.split(";")[0].split()[1:]]
        return self

    def stderr(self) -> str:
        return self.err.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in self.pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[BrokerCommand]:
    command = BrokerCommand(tmp_path, "--engine", "kafka", "--nodes", "3")
    try:
        yield command.ready()
    finally:
        command.close()


def test_three_node_cluster_is_listed_by_kcat_and_stops_on_sigterm(
    three_nodes: BrokerCommand,
) -> None:
    assert len(three_nodes.pids) == 3
    metadata = kcat_metadata(three_nodes.address.split(",")[0])
    assert len(metadata["brokers"]) == 3, metadata  # type: ignore[arg-type]
    assert {b["id"] for b in metadata["brokers"]} == {1, 2, 3}  # type: ignore[attr-defined]

    # A topic created by the engine's admin gets three replicas, two of them in sync at least.
    created = subprocess.run(
        [sys.executable, "-c",
         "import asyncio, sys; from sagas.kafka.admin import ensure_topics; "
         "from sagas.kafka.kafka_settings import KafkaSettings; "
         "asyncio.run(ensure_topics(KafkaSettings(bootstrap_servers=sys.argv[1], "
         "replication_factor=3, partitions=2), ['replicated']))",
         three_nodes.address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    topics = {t["topic"]: t for t in kcat_metadata(three_nodes.address)["topics"]}  # type: ignore[attr-defined]
    for partition in topics["replicated"]["partitions"]:
        assert len(partition["replicas"]) == 3 and len(partition["isrs"]) >= 2, partition

    three_nodes.proc.send_signal(signal.SIGTERM)
    assert three_nodes.proc.wait(60) == 0
    _wait(lambda: all(_gone(p) for p in three_nodes.pids), 20, "every node to exit")


def test_the_nodes_die_with_a_sigkilled_sagas_broker(tmp_path: Path) -> None:
    command = BrokerCommand(tmp_path, "--engine", "kafka")
    try:
        command.ready()
        assert len(command.pids) == 1
        os.kill(command.proc.pid, signal.SIGKILL)
        command.proc.wait(10)
        _wait(lambda: all(_gone(p) for p in command.pids), 20, "the node to die with its parent")
    finally:
        command.close()


def test_kcat_talks_to_apache_kafka_directly(kafka_bootstrap: str) -> None:
    """The limit of the embedded broker (kcat needs a shim there) is not Apache Kafka's."""
    metadata = kcat_metadata(kafka_bootstrap)
    assert metadata["brokers"], metadata


def test_missing_java_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    # A PATH with python but neither java nor mvn, and no JAVA_HOME.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "JAVA_HOME": "", "SAGAS_KAFKA_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "sagas", "broker", "--engine", "kafka"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "java" in lines[0] and "install" in lines[0]


def test_the_jars_come_from_the_cache_after_the_first_run() -> None:
    # The suite's own Kafka (or an earlier test) fetched them: a second run reuses them.
    stamp = cache_dir() / "COMPLETE"
    assert stamp.is_file(), f"no complete jar cache at {stamp.parent}"
    done = subprocess.run(
        [sys.executable, "-c",
         "from sagas.kafka.apache_kafka.jars import ensure_jars; print(ensure_jars())"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Fetching" not in done.stderr and "downloaded" not in done.stderr
    assert done.stdout.strip() == f"{cache_dir() / 'libs'}/*"


def test_a_first_run_fetches_the_jars_with_progress_and_an_interrupted_one_is_redone(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "SAGAS_KAFKA_CACHE": str(tmp_path / "cache")}
    fetch = [
        sys.executable,
        "-c",
        "from sagas.kafka.apache_kafka.jars import ensure_jars; ensure_jars()",
    ]
    first = subprocess.run(fetch, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr
    assert "Fetching Apache Kafka 4.4.0 with Maven" in first.stderr
    assert "jars ready" in first.stderr
    target = tmp_path / "cache" / "kafka-4.4.0"
    assert (target / "COMPLETE").is_file()
    assert len(list((target / "libs").glob("*.jar"))) > 20

    # A fetch cut short leaves no stamp: the next run fetches again instead of trusting it.
    (target / "COMPLETE").unlink()
    again = subprocess.run(fetch, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "Fetching" in again.stderr, again.stderr
