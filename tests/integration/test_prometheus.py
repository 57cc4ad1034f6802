"""A real Prometheus scrapes a short order-saga run; every PromQL expression of the
Grafana dashboard must return at least one series.

The run is the shipped orchestrated order saga (timeouts shortened) with the four
reference services as processes and failures injected so that every panel has
something real to show: declined payments and carrier refusals (compensations),
late inventory answers (timeouts, retries, late replies ignored) and bad records
(dead letters). Prometheus is the Debian package, on a free port with its own
config and storage folder, stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from events.topics import Topics
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from services import definitions
from services.topics import ServiceTopics
from tests.kafka_fixtures import eventually
from tests.support.processes import ManagedProcess, free_port, sagas_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "grafana" / "sagastream.json"
SERVICES = ("inventory", "payment", "shipping", "order")
ORDERS = 30
SERVICES_CONFIG = """
topic_prefix: '{prefix}'
mode: orchestrated
inventory: {{initial_stock: {{A: 1000, EMPTY: 0}}, late: {{probability: 0.3, delay: 1.2}}}}
payment: {{credit_limits: {{broke: 100}}, default_credit_limit: 100000000}}
shipping: {{failure_rate: 0.3}}
"""
#: What Grafana would put in place of the dashboard's variables.
GRAFANA_VARIABLES = {"$__rate_interval": "20s", "$__interval": "5s", "$saga": ".*"}
#: The metric names of DESIGN.md ("Metrics"), as Prometheus stores them.
DESIGN_METRICS = (
    "saga_started_total",
    "saga_finished_total",
    "saga_in_flight",
    "saga_duration_seconds_count",
    "saga_step_duration_seconds_count",
    "saga_step_retries_total",
    "saga_timeouts_total",
    "saga_compensations_total",
    "saga_dead_letters_total",
    "saga_messages_total",
    "participant_commands_total",
    "participant_command_duration_seconds_count",
    "saga_consumer_lag",
)


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary:
        return binary
    if os.environ.get("CI"):
        pytest.fail(
            "the prometheus binary is missing and CI is set: install the Debian package "
            "prometheus (scripts/system-deps.sh does, via make test)"
        )
    pytest.skip("prometheus is not installed (apt-get install prometheus)")


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every expression in the dashboard, variables filled in as Grafana does."""
    found: list[tuple[str, str]] = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        # label_values(METRIC, LABEL) is Grafana's; its PromQL is the metric selector.
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", text or "")
        if match:
            found.append((f"variable ${variable['name']}", match.group(1)))
    out = []
    for where, expr in found:
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, f"{where}: unfilled variable in {expr}"
        out.append((where, expr))
    return out


class Prometheus:
    def __init__(self, folder: Path, targets: dict[str, list[str]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]}
                for job, hosts in targets.items()
            ],
        }
        config_file = folder / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        storage = folder / "tsdb"
        storage.mkdir()
        self.process = ManagedProcess(
            [
                prometheus_binary(),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            dict(os.environ),
            folder / "prometheus.log",
            "prometheus",
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def query(self, expr: str) -> list[dict[str, Any]] | None:
        answer = self.get("/api/v1/query", query=expr)
        if not answer or answer.get("status") != "success":
            return None
        return list(answer["data"]["result"])

    def targets_up(self) -> bool:
        answer = self.get("/api/v1/targets")
        active = (answer or {}).get("data", {}).get("activeTargets", [])
        return bool(active) and all(t["health"] == "up" for t in active)


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _order(i: int) -> dict[str, Any]:
    return {
        "order_id": f"o{i}",
        "customer_id": "broke" if i % 5 == 0 else f"c{i % 4}",
        "amount": 500 + i,
        "lines": [{"sku": "EMPTY" if i % 7 == 3 else "A", "qty": 1}],
    }


def _short_timeouts(prefix: str, folder: Path) -> Path:
    """The shipped order saga with 1 s step deadlines, so late answers become timeouts."""
    spec = definitions.render("order_orchestrated", prefix)
    for step in spec["steps"]:
        step["timeout"] = 1.0
        step["retry"] = {"attempts": 3, "initial": 0.1}
        if step.get("compensation"):
            step["compensation"]["timeout"] = 2.0
            step["compensation"]["retry"] = {"attempts": 5, "initial": 0.1}
    path = folder / "order.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


async def test_every_dashboard_query_returns_series(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path
) -> None:
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 15
    p = unique_prefix
    config = tmp_path / "services.yaml"
    config.write_text(SERVICES_CONFIG.format(prefix=p))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    business = ServiceTopics.with_prefix(p)
    await ensure_topics(kafka, [*business.all(), *Topics.from_settings(kafka).all()])
    env = {"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": p + "coordinator"}
    api_port = free_port()
    ports = {s: free_port() for s in SERVICES}
    procs: dict[str, ManagedProcess] = {
        "coordinator": sagas_process(
            [
                "worker",
                "-d",
                str(_short_timeouts(p, tmp_path)),
                # a saga with a step that waits for a person: the approvals panels have series
                "-d",
                str(definitions.write("insurance_claim", p, tmp_path)),
                "--web-port",
                str(api_port),
            ],
            bootstrap=kafka_bootstrap,
            log_dir=tmp_path,
            name="coordinator",
            extra_env=env,
        )
    }
    for service in SERVICES:
        procs[service] = sagas_process(
            ["service", service, "--config", str(config), "--metrics-port", str(ports[service])],
            bootstrap=kafka_bootstrap,
            log_dir=tmp_path,
            name=service,
            extra_env=env,
        )
    prometheus = Prometheus(
        tmp_path,
        {
            "coordinator": [f"127.0.0.1:{api_port}"],
            "services": [f"127.0.0.1:{port}" for port in ports.values()],
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)

    def logs() -> str:
        return "\n".join(f"--- {k}\n{proc.log_tail(15)}" for k, proc in procs.items())

    try:
        prometheus.process.start()
        for proc in procs.values():
            proc.start()
        await eventually(
            lambda: (
                (_get(api_port, "/readyz") or {}).get("ready")
                and all((_get(port, "/health") or {}).get("ready") for port in ports.values())
            ),
            timeout=60,
            what=f"the coordinator and services ready:\n{logs()}",
        )
        await producer.start()
        for i in range(ORDERS):
            event = new_event("order.placed", source="test", sagaid=f"prom-{i}", data=_order(i))
            value, headers = encode(event)
            await producer.send_and_wait(
                business.orders, value, key=event.sagaid.encode(), headers=headers
            )
        # Records no saga can use: they must show up as dead letters by reason.
        await producer.send_and_wait(business.orders, b"\x00 not json", key=b"prom-bad-1")
        stray = new_event("inventory.exploded", source="test", sagaid="prom-0")
        await producer.send_and_wait(business.inventory_replies, encode(stray)[0], key=b"prom-0")

        def settled() -> bool:
            listed = _get(api_port, "/sagas?limit=1000&saga=order") or {"sagas": []}
            ours = [r for r in listed["sagas"] if r["id"].startswith("prom-")]
            return len(ours) == ORDERS and all(
                r["status"] in ("completed", "compensated") for r in ours
            )

        await eventually(settled, timeout=120, what=f"every order saga terminal:\n{logs()}")
        await eventually(
            prometheus.targets_up,
            timeout=30,
            what=f"every scrape target up:\n{prometheus.get('/api/v1/targets')}",
        )

        def empty() -> list[str]:
            return [
                f"{where}: {expr}"
                for where, expr in queries + [(f"metric {m}", m) for m in DESIGN_METRICS]
                if not prometheus.query(expr)
            ]

        # Rates need two samples after the last increase; the census of saga_states runs
        # every 15 s. Wait for all, then name the ones that never answered.
        deadline = time.monotonic() + 45
        missing = empty()
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(1)
            missing = empty()
        assert not missing, "queries with no series:\n" + "\n".join(missing)

        # The failures were real: compensations, timeouts and dead letters by reason.
        outcomes = {
            r["metric"]["outcome"]
            for r in prometheus.query("sum by (outcome) (saga_finished_total)") or []
        }
        assert {"completed", "compensated"} <= outcomes
        reasons = {
            r["metric"]["reason"]
            for r in prometheus.query("sum by (reason) (saga_dead_letters_total)") or []
        }
        assert {"not-json", "unknown-type"} <= reasons, reasons
        assert float(prometheus.query("sum(saga_timeouts_total)")[0]["value"][1]) > 0
        labels = prometheus.query("saga_started_total")
        assert all("saga_id" not in r["metric"] and "order_id" not in r["metric"] for r in labels)
    finally:
        await producer.stop()
        prometheus.process.stop()
        for proc in procs.values():
            proc.stop()
