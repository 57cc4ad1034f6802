"""Prometheus metrics of overload handling (admission control and the retry budget).

Per replica, no labels (every value is this replica's: sum them over replicas):

* ``saga_admission_in_flight``: sagas running or compensating in this replica's
  partitions, the count the bound applies to;
* ``saga_admission_limit``: the bound (``SAGAS_MAX_IN_FLIGHT``; 0: none);
* ``saga_admission_paused``: 1 while the trigger partitions are paused at the bound
  (a partition paused only while it holds fetched starts for a later batch is not
  counted);
* ``saga_admission_pauses_total``: times they were paused;
* ``saga_starts_deferred_total``: starts not decided when read because the bound
  was reached: trigger records held for a later batch (their offsets not
  committed until then), and starts read on ``saga.control`` moved to
  ``saga.starts``;
* ``saga_start_backlog``: records on the trigger and ``saga.starts`` partitions this
  replica holds that it has not committed yet: the starts waiting in Kafka;
* ``saga_api_starts_refused_total``: starts the HTTP API answered 429 (nothing
  published) because this replica was at its bound; the callers try again;
* ``saga_retry_budget_refused_total``: step deadlines the retry budget held
  back (each fires later, when the budget allows).

Admitted starts are ``saga_started_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class AdmissionMetrics:
    in_flight: Gauge
    limit: Gauge
    paused: Gauge
    pauses: Counter
    deferred: Counter
    backlog: Gauge
    api_refused: Counter
    budget_refused: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, backlog: Callable[[], float]) -> AdmissionMetrics:
        metrics = cls(
            in_flight=Gauge(
                "saga_admission_in_flight",
                "Sagas running or compensating in this replica's partitions (what the "
                "admission bound counts).",
                registry=registry,
            ),
            limit=Gauge(
                "saga_admission_limit",
                "Sagas in flight past which this replica pauses its trigger partitions "
                "(SAGAS_MAX_IN_FLIGHT; 0: no bound).",
                registry=registry,
            ),
            paused=Gauge(
                "saga_admission_paused",
                "1 while this replica's trigger partitions are paused at its bound (new starts "
                "wait in Kafka).",
                registry=registry,
            ),
            pauses=Counter(
                "saga_admission_pauses",
                "Times this replica paused its trigger partitions.",
                registry=registry,
            ),
            deferred=Counter(
                "saga_starts_deferred",
                "Starts not decided when read because the bound was reached (trigger "
                "records held for a later batch; saga.control starts moved to saga.starts).",
                registry=registry,
            ),
            backlog=Gauge(
                "saga_start_backlog",
                "Records on this replica's trigger and saga.starts partitions not committed "
                "yet: starts waiting.",
                registry=registry,
            ),
            api_refused=Counter(
                "saga_api_starts_refused",
                "Starts the HTTP API refused (429, nothing published) because this replica was "
                "at its bound on sagas in flight; the caller tries again.",
                registry=registry,
            ),
            budget_refused=Counter(
                "saga_retry_budget_refused",
                "Step deadlines the retry budget held back to fire later.",
                registry=registry,
            ),
        )
        metrics.backlog.set_function(backlog)
        return metrics
