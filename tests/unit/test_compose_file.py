"""docker-compose.yml is valid Compose and runs Apache Kafka in KRaft mode."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_command() -> list[str]:
    if binary := shutil.which("docker-compose"):
        return [binary]
    if os.environ.get("CI"):
        pytest.fail(
            "docker-compose is not installed and CI is set: install the Debian package "
            "docker-compose (scripts/system-deps.sh does, via make test)"
        )
    pytest.skip("docker-compose is not installed (apt-get install docker-compose)")


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"


def test_kafka_runs_in_kraft_mode() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
