"""The services tests start themselves, built on :mod:`tests.integration.harness`.

An MLflow tracking server and the model server (started directly, for the model-server tests),
a throwaway PostgreSQL cluster, moto's S3 server and Redis. Plain helpers, no fixtures. A
missing service binary fails the run in CI (``CI`` set) and skips the test elsewhere.

PostgreSQL is made with the Debian server binaries (``initdb``/``pg_ctl``), bound to 127.0.0.1
on a free port: no library starts a cluster as another user without Docker. It refuses to run
as root, so when the tests run as root (CI) the cluster is created and run as the unprivileged
``postgres`` user with ``runuser``; its folder is then created directly under /tmp (pytest's own
temporary folders are 0700 root and not traversable by that user).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.harness import (
    PYTHONPATH,
    VENV_BIN,
    Process,
    clean_env,
    free_port,
    kill_group,
    wait_for,
)

PG_SERVER_USER = "postgres"
PG_BINARIES = ("initdb", "pg_ctl", "postgres")
# Roles and databases of the production topology: MLflow's metadata (the runbook's
# mlflow/mlflow/mlflow) and Airflow's own metadata.
PG_DATABASES = {"mlflow": "mlflow", "airflow": "airflow"}  # role/database -> password

S3_TEST_REGION = "us-east-1"
S3_BUCKETS = ("mlflow", "wine-data")
# Keys for the test's own S3 client (bucket setup, listing). moto accepts any keys.
S3_ADMIN_KEYS = {"aws_access_key_id": "test-admin-key", "aws_secret_access_key": "test-admin"}


def missing(reason: str) -> None:
    """A missing service binary fails the run in CI and skips the test elsewhere."""
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason} (CI is set: the CI image must provide it)")
    pytest.skip(reason)


# --- MLflow server and model server --------------------------------------------------------------


def start_mlflow(state: Path, log_dir: Path, name: str = "mlflow") -> Process:
    """An MLflow tracking server on a free port whose data lives in ``state``, answering."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination", str(state / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    server = Process.start(
        name, cmd, log_dir / f"{name}.log", url=f"http://127.0.0.1:{port}",
        env=clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
    )  # fmt: skip
    try:
        server.wait_http("/health", timeout=90)
    except BaseException:
        server.stop()
        raise
    return server


def start_model_server(
    tracking_uri: str, log_dir: Path, name: str, *, token: str = "", **settings: str
) -> Process:
    """``python -m wine_quality.serving`` on a free port; ``settings`` are extra env variables.

    Not waited for: the tests look at what it answers while it starts.
    """
    port = free_port()
    env = clean_env(
        PYTHONPATH=PYTHONPATH,
        MLFLOW_TRACKING_URI=tracking_uri,
        WINE_MODEL_SERVER_TOKEN=token,
        # Fail fast in tests; the server's own retry loop is what is being tested.
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        **settings,
    )
    cmd = [sys.executable, "-m", "wine_quality.serving", "--port", str(port)]
    return Process.start(
        name, cmd, log_dir / f"{name}.log", env=env, url=f"http://127.0.0.1:{port}"
    )


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then Debian's layout.

    Missing binaries raise in CI (the test fails) and skip the test elsewhere.
    """
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).resolve().parent] if initdb else []
    # Newest major version first.
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in PG_BINARIES):
            return bindir
    missing(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor in"
        " /usr/lib/postgresql/*/bin: install the Debian package `postgresql`"
    )
    raise AssertionError("unreachable")  # pytest.skip raises


@dataclass
class PostgresCluster:
    """A throwaway cluster: data folder, port, and how to start and stop it.

    Authentication: the superuser connects over the Unix socket in ``root`` with ``trust``
    (local tests only); TCP connections on 127.0.0.1 need a password (scram-sha-256), so the
    stack's ``mlflow:mlflow`` and ``airflow:airflow`` URLs are really checked.
    """

    root: Path
    bindir: Path
    port: int
    as_user: str | None = None  # run the server binaries as this user (when we are root)
    pgid: int | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def _cmd(self, binary: str, *args: str) -> list[str]:
        command = [str(self.bindir / binary), *args]
        return ["runuser", "-u", self.as_user, "--", *command] if self.as_user else command

    def _run(self, binary: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            self._cmd(binary, *args), cwd=self.root, env=clean_env(LC_ALL="C"),
            capture_output=True, text=True, timeout=timeout, start_new_session=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"{binary} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                f"{done.stderr}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def url(self, role: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of ``role``'s database over TCP, with its password."""
        return f"{driver}://{role}:{PG_DATABASES[role]}@127.0.0.1:{self.port}/{role}"

    def connect(self, role: str = PG_SERVER_USER, dbname: str | None = None):
        """A psycopg2 connection: superuser over the socket, other roles over TCP."""
        import psycopg2

        if role == PG_SERVER_USER:
            return psycopg2.connect(
                host=str(self.root), port=self.port, user=role, dbname=dbname or "postgres"
            )
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=role, password=PG_DATABASES[role],
            dbname=dbname or role, connect_timeout=5,
        )  # fmt: skip

    def init(self) -> None:
        """initdb, with settings for a disposable test cluster."""
        self._run(
            "initdb", "-D", str(self.data), "-U", PG_SERVER_USER, "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Disposable data: durability only costs time here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# wine-retraining tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        """Start the server (same data folder and port as before) and wait until it accepts."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                  "start")  # fmt: skip
        # pg_ctl starts the postmaster in a session of its own: its pid is also its group.
        self.pgid = int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, keeps the data)."""
        if self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self.pgid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        if self.pgid is None:
            return False
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def create_databases(self) -> None:
        """The roles and databases of the topology, each database owned by its role."""
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for role, password in PG_DATABASES.items():
                    # Identifiers come from the constant above, never from input.
                    cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
                    cur.execute(f"CREATE DATABASE {role} OWNER {role}")
        finally:
            conn.close()

    def destroy(self) -> None:
        """Stop (fast, then by force) and remove the data folder."""
        with contextlib.suppress(Exception):
            self.stop()
        if self.pgid is not None:
            kill_group(self.pgid)
        postmaster = self.data / "postmaster.pid"
        if postmaster.exists():  # e.g. started by a crashed earlier attempt of start()
            with contextlib.suppress(ValueError, OSError):
                kill_group(int(postmaster.read_text().splitlines()[0]))
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresCluster:
    """A fresh cluster on a free port with the ``mlflow`` and ``airflow`` databases, running.

    Raises:
        RuntimeError: In CI, when the server binaries are missing (elsewhere: pytest.skip).
    """
    bindir = postgres_bindir()
    as_user = None
    if os.geteuid() == 0:
        import pwd

        try:
            account = pwd.getpwnam(PG_SERVER_USER)
        except KeyError:
            missing(f"running as root and there is no unprivileged {PG_SERVER_USER!r} user")
        if not shutil.which("runuser"):
            missing("running as root and `runuser` is not available")
        as_user = PG_SERVER_USER
        # Under /tmp (world-traversable), owned by the server's user; 0755 so root's test can
        # read the log. initdb makes the data folder inside it 0700.
        root = Path(tempfile.mkdtemp(prefix="wine-pg-", dir="/tmp"))
        os.chmod(root, 0o755)  # noqa: S103 - no secrets; must be traversable
        os.chown(root, account.pw_uid, account.pw_gid)
    else:
        root = Path(tempfile.mkdtemp(prefix="wine-pg-"))
    cluster = PostgresCluster(root=root, bindir=bindir, port=free_port(), as_user=as_user)
    try:
        cluster.init()
        cluster.start()
        cluster.create_databases()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


# --- S3 (moto) ---------------------------------------------------------------------------------


@dataclass
class S3Server:
    """moto's standalone S3 server (in memory: a restart loses every object)."""

    process: Process
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **keys: str):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=S3_TEST_REGION,
            **(keys or S3_ADMIN_KEYS),
        )  # fmt: skip

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def stop(self) -> None:
        self.process.stop()


def start_s3(
    log_dir: Path, buckets: tuple[str, ...] = S3_BUCKETS, port: int | None = None
) -> S3Server:
    """Start ``moto_server`` on ``port`` (default: a free one) and create ``buckets``.

    moto keeps everything in memory: a server started again on the same port is empty.

    Raises:
        RuntimeError: In CI, when moto's server is not installed (elsewhere: pytest.skip).
    """
    binary = VENV_BIN / "moto_server"
    if not os.access(binary, os.X_OK):
        missing(f"{binary} not found: install moto[server]")
    port = port or free_port()
    process = Process.start(
        "moto", [str(binary), "-H", "127.0.0.1", "-p", str(port)], log_dir / "moto.log",
        url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    server = S3Server(process=process, port=port)
    try:
        process.wait_http("/moto-api/", timeout=60)
        s3 = server.client()
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
    except BaseException:
        server.stop()
        raise
    return server


# --- Redis ---------------------------------------------------------------------------------------


@dataclass
class Redis:
    """A Redis server the test started: loopback only, in memory."""

    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        with (
            contextlib.closing(socket.create_connection(("127.0.0.1", self.port), timeout=2))
            as sock,
        ):  # fmt: skip
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def stop(self) -> None:
        self.process.stop()


def start_redis(folder: Path, timeout: float = 30) -> Redis:
    """``redis-server`` on a free loopback port, without persistence, its folder ``folder``.

    Raises:
        RuntimeError: In CI, when ``redis-server`` is missing (elsewhere: pytest.skip).
    """
    binary = shutil.which("redis-server")
    if not binary:
        missing("redis-server not found: install the Debian package `redis-server`")
    port = free_port()
    args = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
        # A broker for one test: nothing is worth writing to disk.
        "--save", "", "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
    ]  # fmt: skip
    redis = Redis(Process.start("redis", args, folder / "redis.log"), port)
    try:
        wait_for(redis.ping, "PONG from redis-server", timeout=timeout, every=0.1,
                 process=redis.process)  # fmt: skip
    except BaseException:
        redis.stop()
        raise
    return redis
