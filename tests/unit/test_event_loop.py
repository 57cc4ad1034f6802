"""SAGAS_EVENT_LOOP (issue 19): uvloop when installed, asyncio's loop otherwise or when asked,
and a clear refusal when uvloop is asked for and missing. Both loops run the same program."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from sagas.process import event_loop
from sagas.process.event_loop import EventLoopError, chosen_loop, run

ROOT = Path(__file__).resolve().parents[2]


async def _loop_class() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_when_asked() -> None:
    assert chosen_loop("asyncio") == "asyncio"
    assert run(_loop_class(), "asyncio").startswith("asyncio")


@pytest.mark.skipif(not event_loop.uvloop_installed(), reason="the uvloop extra is not installed")
def test_uvloop_when_installed() -> None:
    assert chosen_loop("auto") == "uvloop"
    assert run(_loop_class(), "auto").startswith("uvloop")
    assert run(_loop_class(), "uvloop").startswith("uvloop")


def test_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "uvloop_installed", lambda: False)
    assert chosen_loop("auto") == "asyncio"
    assert run(_loop_class(), "auto").startswith("asyncio")
    with pytest.raises(EventLoopError, match="uvloop is not installed.*SAGAS_EVENT_LOOP=auto"):
        run(_loop_class(), "uvloop")


def test_worker_refuses_missing_uvloop_in_one_line() -> None:
    """A worker told to use uvloop where it is not installed exits 2 with one line, before
    it reaches Kafka (uvloop hidden from the import system stands in for its absence)."""
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'uvloop' else real(n, *a)\n"
        "from sagas.cli import main\n"
        "sys.argv = ['sagas', 'worker', '-d', sys.argv[1]]\n"
        "main()\n"
    )
    definitions = ROOT / "services" / "definitions" / "bank_transfer.yaml"
    env = {
        "PATH": "/usr/bin:/bin",
        "SAGAS_EVENT_LOOP": "uvloop",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(definitions)],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: SAGAS_EVENT_LOOP=uvloop but uvloop is not installed: pip install "
        "'sagastream[uvloop]', or set SAGAS_EVENT_LOOP=auto or asyncio"
    ], done.stderr
