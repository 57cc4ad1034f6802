"""The Grafana dashboard, its provisioning and the Prometheus scrape config fit together
and fit the code: every metric they query is one the coordinator or a participant
exports, every panel issue 5 asks for is there, and no query uses a per-saga label."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sagas.admission_metrics import AdmissionMetrics
from sagas.metrics import CoordinatorMetrics
from sagas.participants.participant_io import ParticipantMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
DASHBOARD = DASHBOARDS / "grafana" / "sagastream.json"
METRIC = re.compile(r"\b((?:saga|participant)_[a-z_]+)\b")


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def exported_metrics() -> set[str]:
    """Sample names the processes export (counters with _total, histograms with _bucket...)."""
    from sagas.api.collectors import CoordinatorCollector

    registry = CollectorRegistry()
    CoordinatorMetrics.create(registry)
    AdmissionMetrics.create(registry, lambda: 0.0)
    ParticipantMetrics.create(registry)
    families = list(registry.collect())
    families += list(CoordinatorCollector.describe(None))  # type: ignore[arg-type]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {f.name + s for f in families for s in suffixes[f.type]}


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "sagastream" and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == "prometheus"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


def test_every_metric_queried_is_exported_by_the_code() -> None:
    exported = exported_metrics()
    alerts = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    alert_exprs = [r["expr"] for g in alerts["groups"] for r in g["rules"]]
    for expr in exprs() + alert_exprs:
        for name in METRIC.findall(expr):
            assert name in exported, f"{name} (in {expr}) is not a metric the code exports"


def test_the_panels_issue_5_asks_for() -> None:
    text = "\n".join(exprs())
    wanted = {
        "started per second": r"rate\(saga_started_total",
        "finished per second by outcome": r"sum by \(saga, outcome\) \(rate\(saga_finished_total",
        "in flight": r'saga_states\{[^}]*status=~"running\|compensating"',
        "p50 saga duration": r"histogram_quantile\(0\.5, [^\n]*saga_duration_seconds_bucket",
        "p95 saga duration": r"histogram_quantile\(0\.95, [^\n]*saga_duration_seconds_bucket",
        "p99 saga duration": r"histogram_quantile\(0\.99, [^\n]*saga_duration_seconds_bucket",
        "step duration by step": r"by \(le, saga, step\) \(rate\(saga_step_duration_seconds_bucket",
        "compensations by step and result": r"by \(saga, step, result\) \(rate\(saga_compensations_total",
        "timeouts": r"rate\(saga_timeouts_total",
        "retries": r"rate\(saga_step_retries_total",
        "dead letters by reason": r"sum by \(reason\) \(rate\(saga_dead_letters_total",
        "participant command rate by service": r"by \(service, result\) \(rate\(participant_commands_total",
        "participant latency by service": r"by \(le, service\) \(rate\(participant_command_duration_seconds_bucket",
        "consumer lag": r"saga_consumer_lag",
        # issue 19: admitted vs waiting starts, and whether a replica holds them back
        "admitted starts": r"sum\(rate\(saga_started_total",
        "waiting starts": r"sum\(saga_start_backlog\)",
        "paused trigger partitions": r"saga_admission_paused",
    }
    missing = [what for what, pattern in wanted.items() if not re.search(pattern, text)]
    assert not missing, f"panels missing: {missing}"


def test_no_query_uses_a_per_saga_label() -> None:
    for expr in exprs():
        for label in ("saga_id", "order_id", "customer"):
            assert label not in expr, expr


def test_provisioning_points_grafana_at_the_dashboard_and_prometheus() -> None:
    datasources = yaml.safe_load(
        (DASHBOARDS / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert [(d["uid"], d["type"], d["url"]) for d in datasources] == [
        ("prometheus", "prometheus", "http://prometheus:9090")
    ]
    providers = yaml.safe_load(
        (DASHBOARDS / "provisioning" / "dashboards" / "sagastream.yaml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    assert list((DASHBOARDS / "grafana").glob("*.json")) == [DASHBOARD]


def test_prometheus_scrapes_the_compose_services() -> None:
    config = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    assert (DASHBOARDS / config["rule_files"][0]).exists()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    coordinator = jobs["coordinator"]["dns_sd_configs"][0]
    assert coordinator["names"] == ["coordinator"] and coordinator["port"] == 6066
    targets = [t for sc in jobs["services"]["static_configs"] for t in sc["targets"]]
    assert sorted(targets) == [f"{s}:8000" for s in ("inventory", "order", "payment", "shipping")]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text()).get("services", {})
    if "coordinator" not in compose:
        pytest.skip("docker-compose.yml has no coordinator service yet")
    for host in ["coordinator", *(t.split(":")[0] for t in targets)]:
        assert host in compose, f"prometheus.yml scrapes {host!r}, not a compose service"
