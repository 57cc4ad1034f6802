"""Prometheus metrics of the coordinator, built against a registry passed in.

Names and labels are those of DESIGN.md ("Metrics"). No label ever carries a
saga id, order id or customer: only saga names, step names, outcomes, topics
and reasons, which are bounded by the loaded definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sagas.kafka.metric_children import MetricChildren
from sagas.messages import Decision, Outcome

#: Sagas take milliseconds (in-process participants) to minutes (human steps).
SAGA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Records per batch: one fetched record per batch is the light-load regime, where a
#: replica's CPU goes to Kafka requests (a fetch, two produce requests) rather than to sagas.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class CoordinatorMetrics:
    started: Counter
    finished: Counter
    in_flight: Gauge
    duration: Histogram
    step_duration: Histogram
    retries: Counter
    timeouts: Counter
    compensations: Counter
    late_effects: Counter
    dead_letters: Counter
    messages: Counter
    ignored: Counter
    batch_records: Histogram
    #: ``child(metric, *labels)``: each labelled child made once (labels are bounded, above)
    child: MetricChildren = field(
        default_factory=MetricChildren, init=False, repr=False, compare=False
    )

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CoordinatorMetrics:
        return cls(
            started=Counter("saga_started", "Sagas started.", ["saga"], registry=registry),
            finished=Counter(
                "saga_finished",
                "Sagas that reached a terminal state.",
                ["saga", "outcome"],
                registry=registry,
            ),
            in_flight=Gauge(
                "saga_in_flight",
                "Sagas started and not yet terminal.",
                ["saga"],
                registry=registry,
            ),
            duration=Histogram(
                "saga_duration_seconds",
                "Start to terminal state.",
                ["saga", "outcome"],
                buckets=SAGA_BUCKETS,
                registry=registry,
            ),
            step_duration=Histogram(
                "saga_step_duration_seconds",
                "Step issued to its success.",
                ["saga", "step"],
                buckets=STEP_BUCKETS,
                registry=registry,
            ),
            retries=Counter(
                "saga_step_retries",
                "Step or compensation attempts after the first.",
                ["saga", "step"],
                registry=registry,
            ),
            timeouts=Counter(
                "saga_timeouts",
                "Deadlines that passed with no reply.",
                ["saga", "step"],
                registry=registry,
            ),
            compensations=Counter(
                "saga_compensations",
                "Compensations by result (ok, gave_up).",
                ["saga", "step", "result"],
                registry=registry,
            ),
            late_effects=Counter(
                "saga_late_effects",
                "Successes that came after the saga gave up on their step, by what the "
                "engine did (compensate, compensate_after_current, compensate_in_turn, "
                "parked, nothing_to_undo).",
                ["saga", "step", "action"],
                registry=registry,
            ),
            dead_letters=Counter(
                "saga_dead_letters",
                "Records sent to the dead-letter topic.",
                ["reason"],
                registry=registry,
            ),
            messages=Counter(
                "saga_messages",
                "Records read and written by the coordinator.",
                ["topic", "direction"],
                registry=registry,
            ),
            ignored=Counter(
                "saga_messages_ignored",
                "Messages that changed nothing, by why.",
                ["saga", "outcome"],
                registry=registry,
            ),
            batch_records=Histogram(
                "saga_batch_records",
                "Records in each batch the coordinator decided (fetched together). Few per "
                "batch: the replica's CPU goes to Kafka requests, not to sagas.",
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
        )

    def observe(self, saga: str, decision: Decision, started: bool, reopened: bool = False) -> None:
        """Record what one decision of the state machine did.

        ``saga_in_flight`` is counted by the replica that sees the start or the
        end, so only its sum over replicas is meaningful (and a restart resets a
        replica's share); ``saga_states`` counts the table exactly.
        """
        child = self.child
        if decision.outcome is not Outcome.APPLIED:
            child(self.ignored, saga, decision.outcome.value).inc()
            return
        if started:
            child(self.started, saga).inc()
        if started or reopened:  # an operator retry takes a parked saga back in flight
            child(self.in_flight, saga).inc()
        for signal in decision.signals:
            if signal.kind == "step_done":
                child(self.step_duration, saga, signal.step).observe(signal.value)
            elif signal.kind == "retry":
                child(self.retries, saga, signal.step).inc()
            elif signal.kind == "timeout":
                child(self.timeouts, saga, signal.step).inc()
            elif signal.kind == "compensation":
                child(self.compensations, saga, signal.step, signal.label).inc()
            elif signal.kind == "late_effect":
                child(self.late_effects, saga, signal.step, signal.label).inc()
            elif signal.kind == "finished":
                child(self.finished, saga, signal.label).inc()
                child(self.duration, saga, signal.label).observe(signal.value)
                child(self.in_flight, saga).dec()
