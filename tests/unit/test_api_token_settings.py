"""The API's authentication is chosen, never lost by accident (issue 17): an empty
`SAGAS_API_TOKEN=` (an unset shell variable) used to turn authentication off silently,
and the image bound the API on 0.0.0.0 with no token. Each is now one line and exit
code 2 at start, unless `SAGAS_API_AUTH=none` says so; the token may come from a
secret file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagas.settings import CoordinatorSettings
from tests.unit.test_bad_settings import DEFINITIONS, NOWHERE, run_cli

WORKER = ["worker", "-d", DEFINITIONS]


def refusal(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    status = run_cli(WORKER, monkeypatch, {"KAFKA_BOOTSTRAP_SERVERS": NOWHERE, **env})
    err = capsys.readouterr().err
    assert status == 2, err
    (line,) = err.strip().splitlines()
    return line


def test_an_empty_api_token_is_refused_at_start_not_taken_as_no_authentication(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal({"SAGAS_API_TOKEN": ""}, monkeypatch, capsys)
    assert "SAGAS_API_TOKEN is empty" in line and "SAGAS_API_AUTH=none" in line


def test_an_api_on_every_interface_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal({"SAGAS_WEB_HOST": "0.0.0.0"}, monkeypatch, capsys)
    assert "SAGAS_WEB_HOST=0.0.0.0" in line and "SAGAS_API_TOKEN_FILE" in line


def test_an_empty_token_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("\n")
    line = refusal({"SAGAS_API_TOKEN_FILE": str(tmp_path / "token")}, monkeypatch, capsys)
    assert "SAGAS_API_TOKEN_FILE is empty" in line


def test_no_authentication_is_an_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGAS_API_TOKEN", raising=False)
    chosen = CoordinatorSettings(web_host="0.0.0.0", api_auth="none")
    assert chosen.api_token is None
    with pytest.raises(ValueError, match="drop one of them"):
        CoordinatorSettings(api_auth="none", api_token="t")


def test_the_token_comes_from_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGAS_API_TOKEN", raising=False)
    (tmp_path / "token").write_text("s3cret\n")
    settings = CoordinatorSettings(web_host="0.0.0.0", api_token_file=tmp_path / "token")
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "s3cret"
