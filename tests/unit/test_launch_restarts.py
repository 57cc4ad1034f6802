"""Processes that stop so that a restart resumes them (exit 75) are started again.

`services.launch.Launcher` with ``restart_exit_codes`` does what compose's
``restart: unless-stopped`` does for the documented restart code, and nothing for
any other exit; `sagas.cli.foreground.run_until_signal` ends a participant whose
transaction is in doubt with that code and one line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
import typer

from sagas.cli.foreground import run_until_signal
from sagas.kafka.transaction_failures import EXIT_RESTART, TransactionInDoubt
from services.launch import ChildProcess, Launcher, SystemConfig

#: exits with ``code`` on its first start only (a marker file remembers), then runs
ONCE = """
import pathlib, sys, time
marker = pathlib.Path(sys.argv[1])
if not marker.exists():
    marker.write_text("ran")
    sys.exit(int(sys.argv[2]))
time.sleep(60)
"""


def _child(tmp_path: Path, name: str, code: int) -> ChildProcess:
    args = [sys.executable, "-c", ONCE, str(tmp_path / f"{name}.marker"), str(code)]
    return ChildProcess(name, args, {}, tmp_path / f"{name}.log")


async def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_a_process_that_exits_75_is_started_again_and_one_that_exits_1_is_not(
    tmp_path: Path,
) -> None:
    launcher = Launcher(SystemConfig(restart_exit_codes=(EXIT_RESTART,)), run_dir=tmp_path)
    resumed, failed = _child(tmp_path, "resumed", EXIT_RESTART), _child(tmp_path, "failed", 1)
    launcher.children = {"resumed": resumed.start(), "failed": failed.start()}
    supervisor = asyncio.create_task(launcher._supervise(every=0.05))
    try:
        await _until(lambda: failed.returncode == 1 and resumed.incarnation == 2)
        await _until(lambda: resumed.alive)
        assert [(r.name, r.exit_code) for r in launcher.restarts] == [("resumed", EXIT_RESTART)]
        assert failed.incarnation == 1 and not failed.alive
    finally:
        supervisor.cancel()
        for child in (resumed, failed):
            child.kill()


def test_a_participant_whose_transaction_is_in_doubt_exits_75_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def serve(stop: asyncio.Event) -> None:
        raise TransactionInDoubt("transaction 'payment-eos' failed: UnknownError")

    with pytest.raises(typer.Exit) as exited:
        run_until_signal(serve, "participant payment")
    assert exited.value.exit_code == EXIT_RESTART
    err = capsys.readouterr().err
    assert (
        err
        == "error: participant payment stopped: transaction 'payment-eos' failed: UnknownError\n"
    )
