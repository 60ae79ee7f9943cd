"""Repository hygiene that protects users: no committed secrets, placeholders only in
.env.example, and ruff's security rules (S) clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Credential shapes worth refusing anywhere in the tree.
PATTERNS = {
    "aws-access-key-id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private-key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "github-token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "slack-token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),
    "bearer-literal": re.compile(r"Bearer [A-Za-z0-9_\-]{24,}"),
    "password-literal": re.compile(
        r"""(?i)(password|secret|token)\s*[:=]\s*["'](?![$<])[^"'\s{}]{8,}["']"""
    ),
    # A password written into the URL; a template placeholder ({var}, ${VAR}, <...>) is not one.
    "url-credentials": re.compile(r"://[^/\s:@]+:(?!mlflow@|airflow@|[<{$])[^/\s@]{6,}@"),
}
# Values that are plainly not secrets: test fixtures and documentation placeholders.
NOT_SECRETS = re.compile(r"(?i)test|example|placeholder|changeme")


def tracked_files() -> list[Path]:
    """Files git tracks or would add (not ignored): a secret is caught before its commit."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / name for name in out.split("\0") if name]


def test_no_credential_patterns_in_tracked_files():
    found = []
    for path in tracked_files():
        if not path.is_file() or path.suffix in {".png", ".jpg"}:
            continue
        text = path.read_text(errors="replace")
        for name, pattern in PATTERNS.items():
            for match in pattern.finditer(text):
                if NOT_SECRETS.search(match.group(0)):
                    continue
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert found == []


# Assembled at run time so this file itself holds no secret-shaped text for the scan to find.
@pytest.mark.parametrize(
    "sample",
    [
        "pass" + 'word = "hunter2hunter2"',
        "aws_key = AKIA" + "ABCDEFGHIJKLMNOP",
        "postgresql://admin:" + "s3cr3tpass@db:5432/x",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
    ],
)
def test_the_scanner_would_catch_a_secret(sample):
    assert any(pattern.search(sample) for pattern in PATTERNS.values())


@pytest.mark.parametrize(
    "sample",
    [
        'f"{driver}://{role}:{passwords[role]}@127.0.0.1:5432/{role}"',
        "postgresql+psycopg2://airflow:${POSTGRES_PASSWORD}@postgres/airflow",
        "s3://<bucket>:<key>@host",
    ],
)
def test_the_scanner_ignores_template_placeholders(sample):
    assert not PATTERNS["url-credentials"].search(sample)


def test_env_example_holds_placeholders_only():
    allowed_values = {"", "127.0.0.1", "5000", "1234"}
    for line in (REPO / ".env.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert value in allowed_values or value.startswith("<"), f"{key} has a value: {value!r}"


def test_no_env_file_or_data_copy_is_tracked():
    names = {path.name for path in tracked_files()}
    assert ".env" not in names
    assert not [n for n in names if n.endswith(".csv")]


def test_ruff_including_security_rules_is_clean():
    import tomllib

    lint = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in lint["select"]  # bandit's security rules are part of the lint
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(REPO)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
