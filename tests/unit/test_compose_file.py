"""docker-compose.yml: valid Compose, and everything it names exists and fits together.

No Docker engine is needed: `docker-compose config` validates the file (Debian's
docker-compose), and the rest is read from the file, the repository and the CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.config_reference import check_sagas_args, known_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = ("order", "inventory", "payment", "shipping")


def compose_command() -> list[str]:
    if binary := shutil.which("docker-compose"):
        return [binary]
    if os.environ.get("CI"):
        pytest.fail(
            "docker-compose is not installed and CI is set: install the Debian package "
            "docker-compose (scripts/system-deps.sh does, via make test)"
        )
    pytest.skip("docker-compose is not installed (apt-get install docker-compose)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the << merges
    return doc["services"]


def sagastream(compose: dict[str, Any]) -> dict[str, Any]:
    """The services that run our image."""
    return {n: s for n, s in compose.items() if str(s.get("image", "")).startswith("sagastream")}


def listen_port(service: dict[str, Any]) -> int | None:
    command = service.get("command") or []
    if "--metrics-port" in command:
        return int(command[command.index("--metrics-port") + 1])
    if command[:1] == ["worker"]:
        return int(service["environment"].get("SAGAS_WEB_PORT", 6066))
    return None


def compose_config(*args: str, token: str | None = "a-token") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SAGAS_API_TOKEN"}
    if token is not None:
        env["SAGAS_API_TOKEN"] = token  # as a user exports it
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), *args, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "load"]])
def test_compose_file_is_valid(profile: list[str]) -> None:
    result = compose_config(*profile)
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"


def test_compose_refuses_to_run_the_api_without_a_token_from_the_environment(
    compose: dict[str, Any],
) -> None:
    result = compose_config(token=None)
    assert result.returncode != 0 and "SAGAS_API_TOKEN" in result.stderr, result.stderr
    assert compose["coordinator"]["environment"]["SAGAS_WEB_HOST"] == "0.0.0.0"
    assert compose["coordinator"]["environment"]["SAGAS_API_TOKEN"].startswith(
        "${SAGAS_API_TOKEN:?"
    )


def test_kafka_runs_in_kraft_mode_with_a_healthcheck(compose: dict[str, Any]) -> None:
    kafka = compose["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert kafka["healthcheck"]["test"]
    # topics come from `sagas topics init`, co-partitioned; never auto-created
    # The shared broker settings (auto-create off, 8 partitions) come from the one file
    # the project's own Kafka uses too, mounted as the image's server.properties.
    mounted = {v.split(":")[0]: v.split(":")[1] for v in kafka["volumes"]}
    shared = mounted["./sagas/kafka/apache_kafka/broker.properties"]
    assert shared == "/mnt/shared/config/server.properties"
    settings = dict(
        line.split("=", 1)
        for line in (ROOT / "sagas/kafka/apache_kafka/broker.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings["auto.create.topics.enable"] == "false"
    assert settings["num.partitions"] == "8"
    assert not any(k.startswith("KAFKA_AUTO_CREATE") for k in kafka["environment"])


def test_one_image_built_from_the_dockerfile_runs_every_role(compose: dict[str, Any]) -> None:
    ours = sagastream(compose)
    assert {"topics", "coordinator", *SERVICES, "load"} <= set(ours)
    assert {s["image"] for s in ours.values()} == {"sagastream:latest"}
    assert all(s["build"] == "." for s in ours.values())
    assert DOCKERFILE.is_file()


def test_the_coordinator_runs_two_replicas_and_the_four_services_run(
    compose: dict[str, Any],
) -> None:
    assert compose["coordinator"]["deploy"]["replicas"] >= 2
    assert compose["coordinator"]["command"][0] == "worker"
    for name in SERVICES:
        assert compose[name]["command"][:2] == ["service", name]
        assert compose[name]["healthcheck"]["test"]


def test_every_command_is_a_real_sagas_command(compose: dict[str, Any]) -> None:
    for name, service in sagastream(compose).items():
        try:
            check_sagas_args(list(service["command"]))
        except Exception as exc:  # noqa: BLE001 - the message is the point
            pytest.fail(f"service {name}: `sagas {' '.join(service['command'])}`: {exc}")


def test_definitions_named_in_commands_are_in_the_image(compose: dict[str, Any]) -> None:
    copied = re.search(r"^COPY services/definitions/\*\.yaml /app/definitions/$",
                       DOCKERFILE.read_text(), flags=re.M)  # fmt: skip
    assert copied, "the Dockerfile no longer copies the definitions to /app/definitions/"
    named = {
        arg
        for service in sagastream(compose).values()
        for arg in service["command"]
        if arg.startswith("/app/definitions/")
    }
    assert named
    for path in named:
        assert (ROOT / "services" / "definitions" / Path(path).name).is_file(), path


def test_the_topic_job_runs_first_and_once(compose: dict[str, Any]) -> None:
    topics = compose["topics"]
    assert topics["command"][:2] == ["topics", "init"]
    assert topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, service in sagastream(compose).items():
        if name != "topics":
            wait = service["depends_on"]["topics"]["condition"]
            assert wait == "service_completed_successfully", name
    # it creates the topics of the definitions the coordinator runs
    definitions = [a for a in compose["coordinator"]["command"] if a.endswith(".yaml")]
    assert definitions and all(d in topics["command"] for d in definitions)


def test_environment_variables_are_ones_the_code_reads(compose: dict[str, Any]) -> None:
    known = known_variables()
    for name, service in sagastream(compose).items():
        for variable in service.get("environment", {}):
            if variable.startswith(("KAFKA_", "SAGAS_", "SERVICES_")):
                assert variable in known, f"{name}: {variable} is read by nothing (a typo?)"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def mounted(service: dict[str, Any], target: str) -> Path | None:
    """The repository path mounted at ``target`` (or at a parent of it) in ``service``."""
    for volume in service.get("volumes", []):
        source, inside = volume.split(":")[:2]
        if target == inside or target.startswith(inside.rstrip("/") + "/"):
            return ROOT / source / os.path.relpath(target, inside)
    return None


def test_prometheus_scrapes_what_runs_and_loads_the_alert_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["prometheus"]
    config_path = mounted(prometheus, "/etc/prometheus/prometheus.yml")
    assert config_path is not None and config_path.is_file()
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config.get("rule_files", []):
        path = mounted(prometheus, os.path.join("/etc/prometheus", rule_file))
        assert path is not None and path.is_file(), f"rule file {rule_file} is not mounted"
    targets: list[tuple[str, int]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += [(t.split(":")[0], int(t.split(":")[1])) for t in static["targets"]]
        for dns in job.get("dns_sd_configs", []):
            targets += [(n, int(dns["port"])) for n in dns["names"]]
    assert targets
    for host, port in targets:
        assert host in compose, f"Prometheus scrapes {host}, which compose does not run"
        assert listen_port(compose[host]) == port, f"{host} does not serve /metrics on {port}"
    scraped = {host for host, _ in targets}
    assert {"coordinator", *SERVICES} <= scraped


def test_grafana_is_provisioned_from_the_dashboards_folder(compose: dict[str, Any]) -> None:
    grafana = compose["grafana"]
    provisioning = mounted(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    host, port = re.match(r"https?://([^:/]+):(\d+)", datasource["url"]).groups()  # type: ignore[union-attr]
    assert host in compose and compose[host]["image"].startswith("prom/prometheus")
    assert port == "9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "sagastream.yaml").read_text())[
        "providers"
    ]
    folder = mounted(grafana, provider["options"]["path"])
    assert folder is not None and any(folder.glob("*.json")), "no dashboard JSON is mounted"
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        home_file = mounted(grafana, home)
        assert home_file is not None and home_file.is_file()


def test_the_load_profile_places_orders(compose: dict[str, Any]) -> None:
    load = compose["load"]
    assert load["profiles"] == ["load"]
    assert load["command"][0] == "load"
    assert all("profiles" not in compose[name] for name in ("coordinator", *SERVICES))
