"""README.md documents every setting, and its Python participant example works."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from events.envelope import new_event
from tests.support import config_reference as ref

ROOT = ref.ROOT


def test_the_readme_table_is_the_generated_one() -> None:
    in_readme = ref.readme_table(ref.README.read_text())
    assert in_readme is not None, "README.md lost its config-table markers"
    assert in_readme == ref.markdown(), (
        "README.md's configuration table differs from the settings models and CLI flags; "
        "regenerate it: python -m tests.support.config_reference --write"
    )


def test_every_setting_says_what_it_does() -> None:
    missing = [r.variable if r.variable != "—" else r.flags for r in ref.rows() if not r.meaning]
    assert not missing, (
        f"no description for {missing}: give the field a Field(description=...) or the "
        "option a help text (or add it to FALLBACK in tests/support/config_reference.py)"
    )


def test_the_issue_list_of_settings_is_covered() -> None:
    variables = ref.known_variables()
    for wanted in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SSL_CAFILE",
        "KAFKA_SSL_CERTFILE",
        "KAFKA_SSL_KEYFILE",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SASL_PASSWORD_FILE",
        "SAGAS_TOPIC_PREFIX",
        "SAGAS_PARTITIONS",
        "SAGAS_REPLICATION_FACTOR",
        "SAGAS_PIPELINE",
        "SAGAS_WEB_PORT",
        "SAGAS_API_TOKEN",
        "SAGAS_LOG_FORMAT",
    ):
        assert wanted in variables, wanted
    assert "SERVICES_SHIPPING__LATE__DELAY" in variables  # nested ones are real names too


def readme_python_example() -> str:
    text = ref.README.read_text()
    section = text.split("## Plug in your own service", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (example,) = [b for b in blocks if "Participant(" in b]
    return example


def test_the_readme_participant_example_is_about_twenty_lines_and_answers() -> None:
    example = readme_python_example()
    assert len(example.strip().splitlines()) <= 24
    # Everything but the last line (which would run it until Ctrl-C).
    body, last = example.strip().rsplit("\n", 1)
    assert last.startswith("asyncio.run(participant.serve(")
    scope: dict[str, object] = {}
    exec(compile(body, "README.md example", "exec"), scope)  # noqa: S102 - our own README
    handle = scope["handle"]
    command = new_event(
        "shipping.schedule",
        source="coordinator",
        sagaid="saga-1",
        time=datetime(2024, 5, 1, tzinfo=UTC),
        data={"order_id": "o-1"},
    )
    booked, outputs = handle(frozenset(), command)  # type: ignore[operator]
    (out,) = outputs
    assert booked == {"saga-1"}
    assert out.topic == "shipping.replies"
    assert out.event.type == "shipping.scheduled"
    assert out.event.causationid == command.id and out.event.sagaid == "saga-1"
    assert out.event.data["day"] == "2024-05-01"
    participant = scope["participant"]
    assert participant.input_topics == ("shipping.commands",)  # type: ignore[attr-defined]
