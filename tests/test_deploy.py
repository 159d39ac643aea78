"""docker-compose.yml and docs/deploy.md agree with the code: commands exist, variables are read, health checks set."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from bench.cli import app
from bench.platform.settings import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
LONG_RUNNING = {"postgres", "minio", "api", "ui", "ray-head", "ray-worker"}


def test_compose_has_every_service_with_a_health_check():
    services = COMPOSE["services"]
    assert LONG_RUNNING <= set(services)
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    for volume in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        assert volume in COMPOSE["volumes"]


def test_bench_commands_in_compose_exist_with_their_options():
    runner = CliRunner()
    for name, service in COMPOSE["services"].items():
        command = service.get("command")
        if not command or command[0] != "bench":
            continue
        words = command[1:]
        subcommand = [w for w in words if not w.startswith("-")][:2]
        result = runner.invoke(app, [*subcommand, "--help"])
        assert result.exit_code == 0, f"{name}: bench {' '.join(subcommand)} does not exist"
        for option in (w for w in words if w.startswith("--")):
            assert option in result.output, f"{name}: bench {' '.join(subcommand)} has no option {option}"
    dockerfile_cmd = re.search(r'^CMD \[(.*)\]$', (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert dockerfile_cmd.replace('"', "").split(", ")[:3] == ["bench", "serve", "api"]


def test_every_bench_variable_in_compose_is_read_by_the_code_and_documented():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    seen = set()
    for name, service in COMPOSE["services"].items():
        environment = service.get("environment") or {}
        for variable in environment:
            if variable.startswith("BENCH_"):
                assert variable in ENVIRONMENT_VARIABLES, f"{name} sets {variable}, which bench never reads"
                seen.add(variable)
    assert {"BENCH_DATABASE_URL", "BENCH_STORAGE_URL", "BENCH_S3_ENDPOINT_URL", "BENCH_HOME"} <= seen
    for variable in ENVIRONMENT_VARIABLES:
        assert f"`{variable}`" in deploy, f"docs/deploy.md does not document {variable}"


def test_compose_points_the_api_at_postgres_and_the_bucket_it_creates():
    api = COMPOSE["services"]["api"]["environment"]
    assert api["BENCH_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in api["BENCH_DATABASE_URL"]
    bucket = api["BENCH_STORAGE_URL"].removeprefix("s3://").split("/")[0]
    setup = " ".join(COMPOSE["services"]["minio-setup"]["entrypoint"])
    assert f"local/{bucket}" in setup
    assert api["BENCH_S3_ENDPOINT_URL"] == "http://minio:9000"
    worker = COMPOSE["services"]["ray-worker"]["command"]
    head_port = re.search(r"--port=(\d+)", " ".join(COMPOSE["services"]["ray-head"]["command"]))[1]
    assert f"--address=ray-head:{head_port}" in worker
