"""One OS process of the system: started with its log file, stopped by PID.

A `ChildProcess` knows how to start itself again with the same command,
environment and HTTP port, so a fault test can SIGKILL it and bring it back
where clients (and the printed ``/metrics`` URLs) expect it. Every child runs
in its own session: a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order instead of having them die at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from sagas.errors import SagaError
from sagas.process.parent_death import die_with_parent


class LaunchError(SagaError):
    """A process of the system could not be started, became unready, or died."""


class ChildProcess:
    """A ``sagas`` subcommand (or any command) run as a child, logging to ``log_path``.

    ``http_port`` is where it serves ``/metrics`` (and ``/health``); it stays
    the same across restarts. ``incarnation`` counts starts; ``log_offset`` is
    where the current incarnation's output begins in the (appended) log.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        *,
        http_port: int | None = None,
        role: str = "service",
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.http_port = http_port
        self.role = role
        self.incarnation = 0
        self.log_offset = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def sagas(
        cls,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        http_port: int | None = None,
        role: str = "service",
    ) -> ChildProcess:
        """``python -m sagas ARGS`` with this interpreter (the venv's ``sagas``)."""
        command = [sys.executable, "-m", "sagas", *args]
        return cls(name, command, env, log_dir / f"{name}.log", http_port=http_port, role=role)

    # -- state --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def url(self, path: str = "/metrics") -> str | None:
        """``http://127.0.0.1:PORT/path``, or None when the process serves no HTTP."""
        if self.http_port is None:
            return None
        return f"http://127.0.0.1:{self.http_port}{path}"

    # -- start and stop -----------------------------------------------------------------

    def start(self) -> ChildProcess:
        if self.alive:
            raise LaunchError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self.log_offset = self._log.tell()
        self.incarnation += 1
        banner = f"--- {self.name}: start #{self.incarnation}: {' '.join(self.args)}\n"
        self._log.write(banner.encode())
        self._log.flush()
        try:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            self._close_log()
            raise LaunchError(f"cannot run {self.name} ({self.args[0]}): {exc}") from exc
        return self

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the process by PID; False if it is not running."""
        if not self.alive:
            return False
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)
        return True

    def kill(self) -> int | None:
        """SIGKILL (a crash: no goodbye) and reap; returns the exit code."""
        if self.signal(signal.SIGKILL):
            assert self.proc is not None
            self.proc.wait()
        self._close_log()
        return self.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds (blocking)."""
        if self.signal(signal.SIGTERM):
            assert self.proc is not None
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
        return self.returncode

    async def astop(self, timeout: float = 10.0) -> int | None:
        """`stop` without blocking the event loop."""
        await stop_all([self], timeout)
        return self.returncode

    def log_text(self, *, current: bool = True) -> str:
        """The log (of the current incarnation only, by default)."""
        try:
            with open(self.log_path, "rb") as f:
                if current:
                    f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text(current=False).splitlines()[-lines:]) or "(no output)"

    def _close_log(self) -> None:
        if self._log is not None and not self.alive:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.alive else f"exited {self.returncode}"
        return f"<ChildProcess {self.name} {state}>"


async def stop_all(children: Sequence[ChildProcess], timeout: float = 10.0) -> None:
    """SIGTERM every running child at once; SIGKILL those still running at the deadline.

    Safe to call again while it runs (a second Ctrl-C): whatever is left is killed.
    """
    running = [c for c in children if c.signal(signal.SIGTERM)]
    deadline = time.monotonic() + timeout
    try:
        while any(c.alive for c in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:  # also when cancelled while waiting: nobody is left behind
        for child in running:
            if child.alive:
                child.kill()
            child._close_log()


def kill_all(children: Sequence[ChildProcess]) -> None:
    """SIGKILL whatever still runs: the last resort at interpreter exit."""
    for child in children:
        child.kill()
