"""The coordinator passes the admission gate's room to its batch step and counts what moved.

`Coordinator.process` with a real (unstarted) coordinator: starts read on saga.control
past ``start_room`` go out to saga.starts, are counted in ``saga_starts_deferred_total``,
and do not count as sagas in flight."""

from __future__ import annotations

from pathlib import Path

from tests.unit.unstarted_coordinator import unstarted


async def test_starts_past_the_room_are_persisted_to_saga_starts_and_counted(
    tmp_path: Path,
) -> None:
    system = unstarted(tmp_path)
    starts = system.starts(0, 3)
    await system.coordinator.process(starts, 1.0, None, start_room=1)

    moved = [out for out in system.sent if out.topic == system.coordinator.topics.starts]
    assert [(out.key, out.value) for out in moved] == [(r.key, r.value) for r in starts[1:]]
    assert system.sample("saga_starts_deferred_total") == 2
    assert system.sample("saga_admission_in_flight") == 1
    assert system.sample("saga_started_total", {"saga": "bench"}) == 1
