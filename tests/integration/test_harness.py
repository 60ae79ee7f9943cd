"""The harness itself: what a child inherits, how waits fail, that a stop leaves nothing behind."""

from __future__ import annotations

import sys

import pytest

from tests.integration.harness import Process, clean_env, free_port, pid_alive, wait_for

pytestmark = pytest.mark.integration


def test_clean_env_drops_the_developers_service_settings(monkeypatch):
    settings = {
        "AWS_SECRET_ACCESS_KEY": "k", "MLFLOW_TRACKING_URI": "http://prod", "AIRFLOW_HOME": "/a",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "WINE_DATA_URI": "s3://x", "PGHOST": "db",
        "BACKEND_URI": "postgresql://prod", "PYTHONPATH": "/elsewhere",
    }  # fmt: skip
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", "/root")
    env = clean_env(MLFLOW_TRACKING_URI="http://test")
    assert set(env).isdisjoint(set(settings) - {"MLFLOW_TRACKING_URI"})
    assert env["MLFLOW_TRACKING_URI"] == "http://test"
    assert env["HOME"] == "/root"
    assert env["PATH"].startswith(str(sys.executable).rsplit("/", 1)[0])


def test_free_ports_are_distinct_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(20000 <= port < 32768 for port in ports)


def test_a_wait_on_a_dead_process_fails_at_once_with_its_log(tmp_path):
    crashing = Process.start(
        "crasher", [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"],
        tmp_path / "crasher.log",
    )  # fmt: skip
    with pytest.raises(RuntimeError, match=r"crasher exited \(3\)[\s\S]*cannot bind"):
        wait_for(lambda: False, "never", timeout=60, process=crashing)


def test_a_wait_times_out_naming_the_last_answer():
    with pytest.raises(TimeoutError, match=r"no answer within 0.3 s \(last: 0\)"):
        wait_for(lambda: 0, "answer", timeout=0.3)


def test_stop_ends_the_whole_group_even_a_child_that_ignores_sigterm(tmp_path):
    # A shell whose child ignores SIGTERM and prints its pid: SIGKILL must follow.
    script = "trap '' TERM; sleep 300 & echo $!; wait"
    process = Process.start("stubborn", ["sh", "-c", script], tmp_path / "stubborn.log")
    child = int(wait_for(lambda: process.log.read_text().strip(), "the child's pid", timeout=10))
    assert pid_alive(child)
    process.stop(timeout=1)
    assert not process.alive()
    assert not pid_alive(child)
