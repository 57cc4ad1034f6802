"""Every setting of the README's configuration table, given a bad value, ends every process that
reads it with one line naming the variable and exit code 2 (issue 17).

The table is `tests.support.config_reference` (the README's table is generated
from it). Bad values are derived from each field's type and bounds; a variable
for which no value is wrong (a free-form name) is listed in `ANY_VALUE` with
why, so a new variable must be classified here. The walk runs the CLI in
process (`sagas.cli.exits.run`, what the `sagas` script runs); the examples
from the issue also run as real processes, timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from sagas.cli import _register, app
from sagas.cli.exits import run
from tests.support import config_reference as ref

ROOT = ref.ROOT
DEFINITIONS = str(ROOT / "services" / "definitions" / "bank_transfer.yaml")
BRIDGE = str(ROOT / "examples" / "http-bridge" / "bridge.yaml")
#: a port where nothing listens: a bad value accepted by mistake fails fast, not a test hang
NOWHERE = "127.0.0.1:9"

#: variables for which no value is wrong, and why
ANY_VALUE = {
    "KAFKA_BOOTSTRAP_SERVERS": "any host list; an unreachable one is a connection error",
    "KAFKA_SSL_KEY_PASSWORD": "a secret: any text",
    "KAFKA_SASL_USERNAME": "any user name",
    "KAFKA_SASL_PASSWORD": "a secret: any text",
    "SAGAS_TOPIC_PREFIX": "checked with the topic names it makes (Kafka's topic rules)",
    "SAGAS_APP_ID": "checked with the topic names it makes (Kafka's topic rules)",
    "SAGAS_WEB_HOST": "a host name or address; one that cannot be bound fails at bind",
    "SAGAS_PUBLIC_URL": "any URL other replicas reach this one at",
    "SAGAS_API_TOKEN": "a secret: any text",
    "SAGAS_INSTANCE_ID": "any static member id",
}
#: the processes that read each group of variables, as the command lines that run them
PROCESSES = {
    "kafka": [
        ["worker", "-d", DEFINITIONS],
        ["service", "inventory"],
        ["bridge", "--config", BRIDGE],
        ["topics", "init", "-d", DEFINITIONS],
    ],
    "coordinator": [["worker", "-d", DEFINITIONS]],
}


def bad_values(field: FieldInfo, env: str = "") -> list[str]:
    """Values of the wrong type, or out of the field's range, as environment text."""
    annotation = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 else annotation
    if typing.get_origin(base) is typing.Literal:
        return ["bogus"]
    if env.endswith("_FILE") or str(field.validation_alias or "").endswith(("FILE", "CAFILE")):
        return ["/nonexistent/file.pem"]
    if base is bool:
        return ["maybe"]
    values = []
    if base in (int, float):
        values.append("abc")
        for bound in field.metadata:
            if isinstance(bound, (Ge, Gt)):
                low = bound.ge if isinstance(bound, Ge) else bound.gt
                values.append(str(int(low) - 1 if isinstance(bound, Ge) else low))
            if isinstance(bound, (Le, Lt)):
                high = bound.le if isinstance(bound, Le) else bound.lt
                values.append(str(high * 10 + 1))
    return values


def cases() -> list[Any]:
    walked = []
    groups = {"kafka": ref.kafka_variables(), "coordinator": ref.coordinator_variables()}
    for group, variables in groups.items():
        for env, _, field in variables:
            values = bad_values(field, env)
            assert values or env in ANY_VALUE, f"{env}: no bad value known; classify it"
            for value in values:
                for args in PROCESSES[group]:
                    walked.append(pytest.param(env, value, args, id=f"{env}={value}-{args[0]}"))
    return walked


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> int:
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "SAGAS_", "SERVICES_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _register()
    return run(app, args)


@pytest.mark.parametrize(("variable", "value", "args"), cases())
def test_a_bad_setting_is_one_line_naming_it_and_exit_code_2(
    variable: str,
    value: str,
    args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": NOWHERE, variable: value}
    started = time.monotonic()
    status = run_cli(args, monkeypatch, env)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert variable in lines[0] and value in lines[0], err
    assert time.monotonic() - started < 5


def test_the_walk_covers_every_variable_of_the_table() -> None:
    walked = {case.values[0] for case in cases()}
    every = {env for env, _, _ in [*ref.kafka_variables(), *ref.coordinator_variables()]}
    assert every == walked | set(ANY_VALUE)


def test_heartbeat_and_session_must_agree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": NOWHERE, "SAGAS_SESSION_TIMEOUT": "3",
           "SAGAS_HEARTBEAT_INTERVAL": "2"}  # fmt: skip
    assert run_cli(["worker", "-d", DEFINITIONS], monkeypatch, env) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "SAGAS_HEARTBEAT_INTERVAL=2" in line and "SAGAS_SESSION_TIMEOUT=3" in line


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["worker", "-d", DEFINITIONS, "--web-port", "99999"], "--web-port"),
        (["worker", "-d", DEFINITIONS, "--log-level", "loud"], "--log-level"),
        (["worker", "-d", DEFINITIONS, "--log-format", "xml"], "--log-format"),
        (["worker", "--no-such-flag"], "--no-such-flag"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_exit_code_2(
    args: list[str], flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(args, monkeypatch, {"KAFKA_BOOTSTRAP_SERVERS": NOWHERE}) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and flag in line


@pytest.mark.parametrize(
    "setting",
    [
        "SAGAS_BATCH_MAX=abc",
        "SAGAS_LOG_LEVEL=loud",
        "SAGAS_WEB_PORT=99999",
        "KAFKA_SECURITY_PROTOCOL=TLS",
        "SAGAS_SESSION_TIMEOUT=-1",  # was accepted: JoinGroup retried for ever, SIGTERM ignored
        "KAFKA_SSL_CAFILE=/nonexistent",
    ],
)
def test_the_settings_that_gave_tracebacks_or_hangs_end_a_real_worker_in_one_line(
    setting: str, tmp_path: Path
) -> None:
    name, value = setting.split("=", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SAGAS_"))}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": NOWHERE, name: value})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sagas", "worker", "-d", DEFINITIONS],
        capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {name}=") and value in line
    assert time.monotonic() - started < 10
