"""`sagas start` is checked (issue 17): an unknown saga name is an error in one line,
never an id printed for a request the coordinator will dead-letter. The API's side
(404, 409 for a taken id, the same id and data -> the existing saga) is tested against
real replicas in tests/integration/test_api.py; `same_start` is its pure core."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sagas.api.requests import ApiError, StartRequest, same_start

ROOT = Path(__file__).resolve().parents[2]
ORDER = str(ROOT / "services" / "definitions" / "order_orchestrated.yaml")


def sagas(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SAGAS_", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, "-m", "sagas", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **env},
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sagas_start_of_an_unknown_saga_is_refused_not_dead_lettered() -> None:
    # Kafka is unreachable on purpose: the name is refused before anything is sent.
    done = sagas("start", "nosuchsaga", "-d", ORDER, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert done.returncode == 1, done
    line = one_line(done.stderr)
    assert "no saga definition 'nosuchsaga'" in line and "order" in line
    assert done.stdout == ""


def test_definitions_may_be_a_folder_of_files(tmp_path: Path) -> None:
    """``-d DIR`` reads every *.yaml, *.yml and *.json in DIR (worker and topics init too:
    one loader); the shipped folder holds two sagas with one trigger, refused in one line."""
    shipped = ROOT / "services" / "definitions"
    for name in ("order_orchestrated.yaml", "bank_transfer.yaml"):
        (tmp_path / name).write_text((shipped / name).read_text())
    done = sagas("start", "nosuchsaga", "-d", str(tmp_path), KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert done.returncode == 1, done
    assert "loaded: bank-transfer, order" in one_line(done.stderr)

    both = sagas("start", "order", "-d", str(shipped), KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert both.returncode != 0 and "both triggered by 'order.placed'" in one_line(both.stderr)


def test_sagas_start_without_definitions_asks_the_api_and_says_when_it_is_unreachable() -> None:
    api = f"http://127.0.0.1:{closed_port()}"
    done = sagas("start", "order", "--wait", "0", SAGAS_API_URL=api)
    assert done.returncode == 2, done
    assert api in one_line(done.stderr) and done.stdout == ""


def request(data: dict[str, object], saga: str = "order") -> StartRequest:
    return StartRequest(saga, data, "o-1", None)


EXISTING = {"id": "o-1", "saga": "order", "version": 1, "status": "running",
            "context": {"amount": 100, "payment_id": "p-1"}}  # fmt: skip


def test_the_same_start_again_is_the_existing_saga() -> None:
    same_start(request({"amount": 100}), EXISTING)  # replies may have added to the context
    same_start(request({}), EXISTING)


@pytest.mark.parametrize(
    ("data", "saga", "words"),
    [
        ({"amount": 999}, "order", "data differs in 'amount'"),
        ({"coupon": "x"}, "order", "data differs in 'coupon'"),
        ({"amount": 100}, "shop", "it runs 'order', not 'shop'"),
    ],
)
def test_an_existing_id_with_other_data_is_a_conflict(
    data: dict[str, object], saga: str, words: str
) -> None:
    with pytest.raises(ApiError) as caught:
        same_start(request(data, saga), EXISTING)
    assert caught.value.status == 409 and words in caught.value.detail


def test_sagas_start_at_the_bound_says_so_in_one_line_and_exits_2() -> None:
    """A 429 from the API (admission control's bound, issue 19) is a try-again answer like
    a 503, not a refusal of this start: exit 2, the API's reason on one line."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import orjson

    detail = (
        "saga 'order' not started, nothing was published: 1000 sagas in flight on this "
        "replica, at its bound SAGAS_MAX_IN_FLIGHT=1000; try again after Retry-After seconds"
    )
    asked: list[str] = []

    class AtTheBound(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            asked.append(self.path)
            body = orjson.dumps({"error": "overloaded", "detail": detail})
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), AtTheBound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = f"http://127.0.0.1:{server.server_address[1]}"
        done = sagas("start", "order", "--data", '{"order_id": "o-1"}', "--api", api)
    finally:
        server.shutdown()
        server.server_close()
    assert asked and asked[0].startswith("/sagas/order"), asked
    assert done.returncode == 2, done
    line = one_line(done.stderr)
    assert "SAGAS_MAX_IN_FLIGHT=1000" in line and "try again" in line, line
    assert done.stdout == ""
