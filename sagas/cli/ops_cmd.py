"""Operator commands: `sagas status`, `list`, `retry`, `abort`, `skip`, `resolve`, `signal`,
`tail`.

All but `tail` talk to the coordinator's HTTP API (any replica answers for
every saga): ``--api URL`` or ``SAGAS_API_URL``, and ``--token`` or
``SAGAS_API_TOKEN`` for the commands that change a saga. `tail` reads the
lifecycle topic from Kafka (``KAFKA_BOOTSTRAP_SERVERS``).

Exit codes: 0 done, 1 the API refused or does not know the saga, 2 usage or
connection problem.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn

import orjson
import typer

from sagas.cli import app

DEFAULT_API = "http://127.0.0.1:6066"

API = typer.Option(
    DEFAULT_API, "--api", envvar="SAGAS_API_URL", help="Coordinator API base URL (any replica)."
)
TOKEN = typer.Option(
    None, "--token", envvar="SAGAS_API_TOKEN", help="Bearer token for commands that change a saga."
)
AS_JSON = typer.Option(False, "--json", help="Print the API's JSON instead of a table.")
WAIT = typer.Option(
    10.0, "--wait", help="Seconds to wait for the coordinator to apply it (0: don't)."
)


class ApiCallError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail") or body.get("error") or f"HTTP {status}")
        self.status = status
        self.body = body


def call(
    api: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    query: dict[str, Any] | None = None,
    timeout: float = 40.0,
) -> dict[str, Any]:
    """One API request; returns the JSON answer or raises `ApiCallError` (4xx/5xx)."""
    params = {k: v for k, v in (query or {}).items() if v is not None}
    url = api.rstrip("/") + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = {"error": f"HTTP {exc.code}", "detail": raw.decode("utf-8", "replace")[:500]}
        raise ApiCallError(exc.code, answer) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        _fail(
            f"cannot reach the coordinator API at {api} ({reason}); is `sagas worker` running? "
            f"Point --api or SAGAS_API_URL at any replica's web port",
        )


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _console() -> Any:
    import sys

    from rich.console import Console

    # Piped or captured output is not cut to 80 columns: ids are for copying.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _request(api: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return call(api, method, path, **kwargs)
    except ApiCallError as exc:
        _fail(str(exc), 1 if exc.status < 500 else 2)


def _quote(saga_id: str) -> str:
    return urllib.parse.quote(saga_id, safe="")


@app.command()
def status(
    saga_id: str = typer.Argument(..., help="Saga id."),
    api: str = API,
    as_json: bool = AS_JSON,
) -> None:
    """Show one saga: status, context, every step with attempts and outcomes, history."""
    from sagas.cli.ops_render import saga_status

    detail = _request(api, "GET", f"/sagas/{_quote(saga_id)}")
    if as_json:
        typer.echo(orjson.dumps(detail, option=orjson.OPT_INDENT_2).decode())
        return
    _console().print(saga_status(detail))


@app.command("list")
def list_sagas(
    status_filter: str | None = typer.Option(
        None,
        "--status",
        help="running, compensating, completed, compensated, failed, aborted "
        "(comma-separated for several).",
    ),
    saga: str | None = typer.Option(None, "--saga", help="Only sagas of this definition."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many."),
    api: str = API,
    as_json: bool = AS_JSON,
) -> None:
    """List sagas of every replica, newest first."""
    from sagas.cli.ops_render import saga_list

    answer = _request(
        api, "GET", "/sagas", query={"status": status_filter, "saga": saga, "limit": limit}
    )
    if as_json:
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        return
    console = _console()
    console.print(saga_list(answer["sagas"]))
    console.print(f"{answer['count']} saga(s)", style="dim")
    if not answer.get("complete", True):
        console.print(
            f"warning: replicas {', '.join(answer['missing_replicas'])} did not answer; "
            f"their sagas are missing",
            style="yellow",
        )


def _operate(
    saga_id: str, action: str, api: str, token: str | None, wait: float, body: dict[str, Any]
) -> None:
    answer = _request(
        api,
        "POST",
        f"/sagas/{_quote(saga_id)}/{action}",
        token=token,
        body=body,
        query={"wait": wait or None},
        timeout=wait + 30,
    )
    state = answer.get("state")
    if state:
        from sagas.cli.ops_render import styled

        line = styled(state["status"])
        line.stylize("bold")
        _console().print(f"{action}: saga {saga_id} is now ", line, sep="")
    else:
        typer.echo(
            f"{action}: accepted for saga {saga_id}; `sagas status {saga_id}` shows its progress"
        )


@app.command()
def retry(
    saga_id: str = typer.Argument(..., help="Id of a saga in status failed."),
    reason: str = typer.Option("retried by operator", "--reason", help="Kept in the history."),
    api: str = API,
    token: str | None = TOKEN,
    wait: float = WAIT,
) -> None:
    """Try the action a failed saga gave up on again, with a fresh retry budget."""
    _operate(saga_id, "retry", api, token, wait, {"reason": reason})


@app.command()
def abort(
    saga_id: str = typer.Argument(..., help="Id of a running saga."),
    reason: str = typer.Option("aborted by operator", "--reason", help="Kept in the history."),
    api: str = API,
    token: str | None = TOKEN,
    wait: float = WAIT,
) -> None:
    """Stop a running saga: compensate what succeeded, then end it as aborted."""
    _operate(saga_id, "abort", api, token, wait, {"reason": reason})


@app.command()
def skip(
    saga_id: str = typer.Argument(..., help="Id of a saga in status failed."),
    step: str = typer.Argument(..., help="The step whose given-up action was done by hand."),
    reason: str = typer.Option(..., "--reason", help="Why; kept in the history."),
    api: str = API,
    token: str | None = TOKEN,
    wait: float = WAIT,
) -> None:
    """Mark a failed saga's given-up action as done by hand; the saga goes on."""
    _operate(saga_id, "skip", api, token, wait, {"step": step, "reason": reason})


@app.command()
def resolve(
    saga_id: str = typer.Argument(..., help="Id of a saga in status failed."),
    reason: str = typer.Option(..., "--reason", help="What was repaired; kept in the history."),
    api: str = API,
    token: str | None = TOKEN,
    wait: float = WAIT,
) -> None:
    """Declare a failed saga repaired by hand; it ends where it was heading."""
    _operate(saga_id, "resolve", api, token, wait, {"reason": reason})


@app.command()
def signal(
    saga_id: str = typer.Argument(..., help="Id of a saga with a step waiting for a signal."),
    type_: str = typer.Argument(..., metavar="TYPE", help="Signal type, e.g. claim.approved."),
    data: str = typer.Option("{}", "--data", help="JSON object; it joins the saga's context."),
    api: str = API,
    token: str | None = TOKEN,
    wait: float = WAIT,
) -> None:
    """Answer a waiting step (awaits:), e.g. a person's approval or rejection."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _fail(f"--data is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        _fail(f"--data must be a JSON object, got {type(payload).__name__}")
    _operate(saga_id, "signal", api, token, wait, {"type": type_, "data": payload})


@app.command()
def tail(
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the oldest event kept, not at new ones."
    ),
    saga: str | None = typer.Option(None, "--saga", help="Only sagas of this definition."),
    saga_id: str | None = typer.Option(None, "--id", help="Only this saga."),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after this many events."),
    as_json: bool = typer.Option(False, "--json", help="Print each event as CloudEvents JSON."),
    timeout: float = typer.Option(
        30.0,
        "--timeout",
        min=1,
        help="Give up (exit 2) when Kafka has not answered for this many seconds.",
    ),
) -> None:
    """Follow saga lifecycle events live (saga.lifecycle), one line each, until Ctrl-C."""
    import asyncio
    import contextlib

    from sagas.cli.foreground import kafka_failure
    from sagas.kafka.broker_watch import KafkaUnreachableError
    from sagas.kafka.kafka_settings import KafkaSettings

    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        _fail("KAFKA_BOOTSTRAP_SERVERS is not set; point it at the cluster the coordinator uses")
    # aiokafka retries a lost broker and logs every attempt: the watch says it in one line
    for noisy in ("aiokafka", "sagas.kafka.broker_watch"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL + 1)
    # ... and a connection the dead broker reset, left in an aiokafka future nobody awaits
    logging.getLogger("asyncio").addFilter(drop_lost_connections)
    follow = _tail(kafka, from_beginning, saga, saga_id, count, as_json)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_until_kafka_is_gone(kafka, follow, timeout))
    except KafkaUnreachableError as exc:
        _fail(f"sagas tail gave up: {exc}")
    except Exception as exc:
        if (reason := kafka_failure(exc)) is None:
            raise
        _fail(reason)


def drop_lost_connections(record: logging.LogRecord) -> bool:
    """False for an asyncio log record about a lost connection (``sagas tail`` says that
    Kafka is gone in one line); True for anything else, which is still logged."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, ConnectionError)


async def _until_kafka_is_gone(kafka: Any, follow: Any, timeout: float) -> None:
    """Run ``follow`` until it ends, or raise once Kafka has not answered for ``timeout``."""
    import asyncio

    from sagas.kafka.broker_watch import BrokerWatch

    following = asyncio.ensure_future(follow)
    watching = asyncio.ensure_future(
        BrokerWatch(kafka, interval=min(5.0, timeout / 3)).fail_after(timeout)
    )
    try:
        await asyncio.wait([following, watching], return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            watching.result()  # raises KafkaUnreachableError
        await following
    finally:
        following.cancel()
        watching.cancel()
        await asyncio.gather(following, watching, return_exceptions=True)


async def _tail(
    kafka: Any,
    from_beginning: bool,
    saga: str | None,
    saga_id: str | None,
    count: int | None,
    as_json: bool,
) -> None:
    from aiokafka import AIOKafkaConsumer

    from events.codec import decode
    from events.errors import DecodeError
    from events.topics import Topics
    from sagas.cli.ops_render import tail_line
    from sagas.kafka.guarantee import reader_isolation

    topic = Topics.from_settings(kafka).lifecycle
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.consumer_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level=reader_isolation(),
    )
    console = _console()
    seen = 0
    try:
        await consumer.start()
        console.print(f"following {topic} (Ctrl-C to stop)", style="dim", highlight=False)
        async for record in consumer:
            try:
                event = decode(record.value, record.headers)
            except DecodeError as exc:
                console.print(f"(undecodable record at offset {record.offset}: {exc})", style="dim")
                continue
            if saga_id is not None and event.sagaid != saga_id:
                continue
            if saga is not None and event.data.get("saga") != saga:
                continue
            if as_json:
                typer.echo(record.value.decode("utf-8", "replace"))
            else:
                # one event, one line: never wrapped to the terminal or a pipe's 160 columns
                line = tail_line(event.type, event.sagaid, event.data, event.time)
                console.print(line, soft_wrap=True)
            seen += 1
            if count is not None and seen >= count:
                return
    finally:
        await consumer.stop()
