"""A labelled child is made once per metric and label values, and counts like labels() does."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from sagas.kafka.metric_children import MetricChildren


def test_each_label_set_is_looked_up_once_and_counts_where_labels_would() -> None:
    registry = CollectorRegistry()
    a = Counter("a", "a", ["x"], registry=registry)
    b = Counter("b", "b", ["x"], registry=registry)
    child = MetricChildren()
    assert child(a, "1") is child(a, "1")
    assert child(a, "1") is not child(a, "2")
    assert child(a, "1") is not child(b, "1"), "same labels, another metric"
    child(a, "1").inc()
    child(a, "1").inc(2)
    child(b, "1").inc()
    assert registry.get_sample_value("a_total", {"x": "1"}) == 3
    assert registry.get_sample_value("b_total", {"x": "1"}) == 1
    assert registry.get_sample_value("a_total", {"x": "2"}) == 0
