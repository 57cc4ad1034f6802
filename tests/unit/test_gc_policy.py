"""The GC policy of the long-lived processes (`sagas.process.gc_policy`)."""

from __future__ import annotations

import gc

from sagas.process.gc_policy import YOUNG_THRESHOLD, freeze_long_lived, relax_young_collections


def test_relaxed_young_collections_keep_the_older_thresholds() -> None:
    before = gc.get_threshold()
    try:
        relax_young_collections()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.set_threshold(*before)


def test_what_lives_at_the_freeze_is_left_out_of_later_collections() -> None:
    class Book:
        pass

    books = [Book() for _ in range(1_000)]  # what a replayed participant holds
    try:
        frozen = freeze_long_lived()
        assert frozen >= len(books)
        assert not any(book in gc.get_objects() for book in books[:3])
        later = Book()
        assert any(obj is later for obj in gc.get_objects())  # new objects are still collected
    finally:
        gc.unfreeze()
    assert any(obj is books[0] for obj in gc.get_objects())
