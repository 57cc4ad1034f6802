"""The one grammar of saga ids, checked wherever an id enters the system.

A saga id is the record key of every record of its saga, a path segment of
the HTTP API (``/sagas/{id}``), a log field and a CLI argument: it must be
printable, unambiguous in a URL and short. Allowed: ASCII letters and digits,
then also ``. _ : @ -``; 1 to 200 characters, starting with a letter or digit.
Triggers, ``saga.start`` control records, ``sagas start --id`` and the API
all use `check_saga_id`; replies and operator commands for sagas that already
exist are not re-checked (an id accepted before this rule keeps working).
"""

from __future__ import annotations

import re

MAX_SAGA_ID_LENGTH = 200
#: ``\Z``, not ``$``: ``$`` also matches before a final newline ("abc\n" would pass)
SAGA_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\-]{0,199}\Z", re.ASCII)
SAGA_ID_RULE = "1 to 200 ASCII letters, digits and . _ : @ -, starting with a letter or digit"


def is_valid_saga_id(value: object) -> bool:
    return isinstance(value, str) and SAGA_ID_PATTERN.match(value) is not None


def saga_id_problem(value: object) -> str | None:
    """None when ``value`` is a valid saga id, else what is wrong with it (value shortened)."""
    if is_valid_saga_id(value):
        return None
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"saga id {shown} is not valid: expected {SAGA_ID_RULE}"
