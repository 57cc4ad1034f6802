"""`sagas broker --port <taken>` (issue 17): one line naming the port and exit code 2,
not a success banner (whatever listens there answered the readiness probe) and then
the broker's panic. The check happens before Tansu runs, so no broker is needed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def test_sagas_broker_on_a_taken_port_is_an_error_not_a_success_banner() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "sagas", "broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env={k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
        )
    assert done.returncode == 2, done
    assert "listening" not in done.stdout and "export" not in done.stdout, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines[0]
    assert time.monotonic() - started < 10
