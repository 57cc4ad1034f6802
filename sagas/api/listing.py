"""Which sagas of this replica's table a listing shows, and the overview's counts.

Pure functions over the stored values (`sagas.table_codec`): no I/O, so they
are tested with plain values and benchmarked on a large table
(`bench/explorer_list.py`). A listing of 100,000 sagas must not parse them
all: filters run on `table_codec.summary` (a few fields read in place, and
remembered until the saga's stored value changes: `Summaries`), a search
first looks for the searched text in the stored bytes, and only the rows of
the page are parsed.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sagas import table_codec
from sagas.api import render
from sagas.api.requests import ListQuery, wanted
from sagas.definition import SagaDefinition

#: is this key in a partition this replica owns? (None: every key is)
Owned = Callable[[bytes], bool] | None
DefinitionOf = Callable[[str, int], SagaDefinition | None]

#: how many failed (parked) sagas the overview lists
ATTENTION_ROWS = 20
IN_FLIGHT = frozenset({"running", "compensating"})


#: what a scan yields per saga: (-started_at, key, stored value, summary), ready to sort
Entry = tuple[float, bytes, bytes, table_codec.Summary]


class Summaries:
    """`table_codec.summary` of every stored saga, remembered between requests.

    The table replaces a saga's value (a new bytes object) whenever it writes it, so a
    value that is the very object summarised last time has the same summary: a scan of
    a large table reads only what changed since the previous one. The scan runs without
    an await, so the table cannot change under it.
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, Entry] = {}

    def scan(self, values: Mapping[bytes, bytes]) -> list[Entry]:
        """One entry per saga (not held events) in ``values``."""
        seen = self._seen
        out: list[Entry] = []
        append = out.append
        for key, raw in values.items():
            entry = seen.get(key)
            if entry is None or entry[2] is not raw:
                summary = table_codec.summary(raw)
                if summary is None:
                    seen.pop(key, None)
                    continue
                entry = (-summary.started_at, key, raw, summary)
                seen[key] = entry
            append(entry)
        if len(seen) > len(out):  # sagas gone from the table are forgotten
            self._seen = {entry[1]: entry for entry in out}
        return out


def matches(doc: Mapping[str, Any], find: str) -> bool:
    """Is ``find`` this saga's id, the start of it, or a top-level value of its context?"""
    saga_id = str(doc.get("saga_id", ""))
    if saga_id == find or saga_id.startswith(find):
        return True
    context = doc.get("context")
    if not isinstance(context, Mapping):
        return False
    for value in context.values():
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            continue
        if value == find or str(value) == find:
            return True
    return False


def local_rows(
    values: Mapping[bytes, bytes],
    query: ListQuery,
    definition_of: DefinitionOf,
    owned: Owned = None,
    summaries: Summaries | None = None,
) -> list[dict[str, Any]]:
    """The first ``query.limit`` sagas of ``values`` that pass ``query``, newest first."""
    needle = query.find.encode() if query.find else None
    after = (-query.after[0], query.after[1].encode()) if query.after else None
    since, until = query.since, query.until
    statuses, name = query.statuses, query.saga
    entries = (summaries or Summaries()).scan(values)
    picked: list[Entry]
    if needle is None and after is None and since is None and until is None:
        picked = [
            e
            for e in entries
            if (statuses is None or e[3].status in statuses) and (name is None or e[3].name == name)
        ]
    else:
        picked = []
        for entry in entries:
            neg_started, key, raw, seen = entry
            if needle is not None and needle not in raw:
                continue  # the cheap test: what is searched for is somewhere in the bytes
            if not wanted(query, seen.status, seen.name):
                continue
            started = -neg_started
            if (since is not None and started < since) or (until is not None and started >= until):
                continue
            if after is not None and (neg_started, key) <= after:
                continue  # on an earlier page: newest first is (-started, key) ascending
            picked.append(entry)
    # A full sort, not heapq.nsmallest: the table holds sagas in about the order they
    # started (a few runs, one per partition recovered), which timsort merges in linear
    # time; measured 5 ms for 100,000 against 56 ms for nsmallest(50).
    ordered = sorted(picked)
    rows: list[dict[str, Any]] = []
    for _, key, raw, _ in ordered:
        if owned is not None and not owned(key):
            continue  # a revoked partition's leftovers in a memory store
        doc = table_codec.saga_document(raw)
        if doc is None or (query.find is not None and not matches(doc, query.find)):
            continue
        rows.append(render.saga_row(doc, definition_of(doc["name"], doc["version"])))
        if len(rows) >= query.limit:
            break
    return rows


def local_overview(
    values: Mapping[bytes, bytes],
    now: float,
    window: float,
    definition_of: DefinitionOf,
    owned: Owned = None,
    summaries: Summaries | None = None,
) -> dict[str, Any]:
    """This replica's part of the overview: sagas by (name, status), the outcomes of the
    last ``window`` seconds, and the newest failed (parked) sagas, as wire rows."""
    counts: Counter[tuple[str, str]] = Counter()
    recent: Counter[tuple[str, str]] = Counter()
    parked: list[tuple[float, bytes, bytes]] = []
    for _, key, raw, seen in (summaries or Summaries()).scan(values):
        if owned is not None and not owned(key):
            continue
        counts[(seen.name, seen.status)] += 1
        if seen.status not in IN_FLIGHT and seen.updated_at >= now - window:
            recent[(seen.name, seen.status)] += 1
        if seen.status == "failed":
            parked.append((-seen.updated_at, key, raw))
    attention = []
    for _, _, raw in heapq.nsmallest(ATTENTION_ROWS, parked):
        doc = table_codec.saga_document(raw)
        if doc is not None:
            row = render.saga_row(doc, definition_of(doc["name"], doc["version"]))
            attention.append(render.wire_row(row))
    return {
        "counts": [[n, s, c] for (n, s), c in sorted(counts.items())],
        "recent": [[n, s, c] for (n, s), c in sorted(recent.items())],
        "attention": attention,
    }


def merge_overviews(parts: Sequence[Mapping[str, Any]], window: float) -> dict[str, Any]:
    """Replicas' overviews as one: per definition, sagas by status and in flight."""
    by_saga: dict[str, Counter[str]] = {}
    recent: dict[str, Counter[str]] = {}
    for part in parts:
        for name, status, count in part["counts"]:
            by_saga.setdefault(name, Counter())[status] += count
        for name, status, count in part["recent"]:
            recent.setdefault(name, Counter())[status] += count
    rows = render.merge_rows(*([render.from_wire(r) for r in p["attention"]] for p in parts))
    rows.sort(key=lambda r: (-float(r.get("_updated", 0)), str(r["id"])))
    return {
        "definitions": [
            {
                "saga": name,
                "in_flight": sum(c for s, c in counts.items() if s in IN_FLIGHT),
                "by_status": dict(sorted(counts.items())),
            }
            for name, counts in sorted(by_saga.items())
        ],
        "recent": {
            "window_seconds": window,
            "outcomes": {name: dict(sorted(c.items())) for name, c in sorted(recent.items())},
        },
        "attention": [render.public(r) for r in rows[:ATTENTION_ROWS]],
    }
