"""Real infrastructure for the production-topology tests: a PostgreSQL cluster and an S3 server.

Plain helpers, no fixtures. PostgreSQL is a throwaway cluster made with the Debian server
binaries (``initdb``/``pg_ctl``), bound to 127.0.0.1 on a free port; S3 is moto's standalone
server (in memory). Every process starts in its own session, so stopping it stops its children
too, and ``stop()`` ends with a SIGKILL to the whole group: a failing test leaves nothing behind.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the cluster is created and
run as the unprivileged ``postgres`` user with ``runuser``; its folder is then created directly
under /tmp (pytest's own temporary folders are 0700 root and not traversable by that user).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

VENV_BIN = Path(sys.executable).parent
PG_SERVER_USER = "postgres"
PG_BINARIES = ("initdb", "pg_ctl", "postgres")
# Roles and databases of the production topology: MLflow's metadata (the runbook's
# mlflow/mlflow/mlflow) and Airflow's own metadata.
PG_DATABASES = {"mlflow": "mlflow", "airflow": "airflow"}  # role/database -> password

S3_TEST_REGION = "us-east-1"
S3_BUCKETS = ("mlflow", "wine-data")
# Keys for the test's own S3 client (bucket setup, listing). moto accepts any keys.
S3_ADMIN_KEYS = {"aws_access_key_id": "test-admin-key", "aws_secret_access_key": "test-admin"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing(reason: str) -> None:
    """A missing service binary fails the run in CI and skips the test elsewhere."""
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason} (CI is set: the CI image must provide it)")
    pytest.skip(reason)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without cloud keys or service settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MLFLOW_", "AIRFLOW", "WINE_", "PG"))
    }
    env.update(extra)
    return env


def _kill_group(pgid: int, timeout: float = 10, leader: subprocess.Popen | None = None) -> None:
    """SIGTERM a process group, wait for it to empty, then SIGKILL whatever is left.

    ``leader``, if it is our child, is reaped while waiting: as a zombie it would keep the
    group alive in the eyes of ``killpg``.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if leader is not None:
                leader.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@dataclass
class Process:
    """A process the tests started in its own session, with its log file."""

    name: str
    popen: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, name: str, args: list[str], log: Path, **kwargs) -> Process:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, **kwargs,
            )  # fmt: skip
        return cls(name=name, popen=popen, log=log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15) -> None:
        """Stop the whole process group (the leader's pid is the group id)."""
        _kill_group(self.popen.pid, timeout, leader=self.popen)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def wait_http(url: str, process: Process, timeout: float = 60, ok=(200,)) -> requests.Response:
    """Poll ``url`` until it answers with a status in ``ok``; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(
                f"{process.name} exited ({process.popen.returncode}):\n{process.log_tail()}"
            )
        try:
            response = requests.get(url, timeout=5)
            if response.status_code in ok:
                return response
            last = response.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{process.name} did not answer {url} in {timeout:g} s ({last}):\n"
                       f"{process.log_tail()}")  # fmt: skip


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
    _missing(
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
            _kill_group(self.pgid)
        postmaster = self.data / "postmaster.pid"
        if postmaster.exists():  # e.g. started by a crashed earlier attempt of start()
            with contextlib.suppress(ValueError, OSError):
                _kill_group(int(postmaster.read_text().splitlines()[0]))
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
            _missing(f"running as root and there is no unprivileged {PG_SERVER_USER!r} user")
        if not shutil.which("runuser"):
            _missing("running as root and `runuser` is not available")
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
        _missing(f"{binary} not found: install moto[server]")
    port = port or free_port()
    process = Process.start(
        "moto", [str(binary), "-H", "127.0.0.1", "-p", str(port)], log_dir / "moto.log",
        env=clean_env(),
    )  # fmt: skip
    server = S3Server(process=process, port=port)
    try:
        wait_http(f"{server.endpoint}/moto-api/", process, timeout=60)
        s3 = server.client()
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
    except BaseException:
        server.stop()
        raise
    return server
