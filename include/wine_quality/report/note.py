"""The run's decision as the Airflow run's note: the first thing a person sees on the run's page.

The task SDK cannot set a run note (tasks may only read it), so the summary step writes it
through Airflow's public REST API, as a dedicated user with the ``user`` role
(``WINE_AIRFLOW_API_USER``/``WINE_AIRFLOW_API_PASSWORD``, set with the rest of the pipeline's
environment in scripts/airflow-env.sh). Without an API server (``airflow dags test``) there is
nothing to write to: the decision is then in the summary and the logs only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)

# Airflow's limit on a run note.
NOTE_LIMIT = 1000


def render_note(summary: Mapping[str, Any]) -> str:
    """Markdown for the note: the decision (and a person's approval or rejection of it) on the
    first line, then each reason word for word.

    The first line is what the run page's header shows; the rest opens with the note.
    """
    header = f"**Decision: {summary.get('decision') or 'not made'}**"
    # A person's answer (or its absence) overrides the decision: it belongs in the header.
    approval = summary.get("approval")
    if isinstance(approval, Mapping) and approval.get("outcome") in ("approved", "rejected"):
        header += f", {approval['reason']}"
    lines = [header]
    lines += [f"- {reason}" for reason in summary.get("reasons") or ()]
    metrics = summary.get("candidate_metrics") or {}
    facts = []
    if summary.get("candidate_version"):
        rmse = f" (RMSE {metrics['rmse']:.4f})" if "rmse" in metrics else ""
        facts.append(f"candidate v{summary['candidate_version']}{rmse}")
    if summary.get("served_version"):
        facts.append(f"served v{summary['served_version']}")
    steps = summary.get("steps") or {}
    failed = [name for name, status in steps.items() if status == "failed"]
    if failed:
        facts.append("failed: " + ", ".join(failed))
    if facts:
        lines.append("")
        lines.append("; ".join(facts))
    note = "\n".join(lines)
    return note if len(note) <= NOTE_LIMIT else note[: NOTE_LIMIT - 1] + "…"


def publish_note(
    summary: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> bool:
    """Set the run's note to ``render_note(summary)``; True when it was written.

    Never raises: a summary must not fail because the note could not be written (it says why
    in the log instead).
    """
    env = os.environ if env is None else env
    base = (env.get("WINE_AIRFLOW_API_URL") or env.get("AIRFLOW__API__BASE_URL") or "").rstrip("/")
    user, password = env.get("WINE_AIRFLOW_API_USER"), env.get("WINE_AIRFLOW_API_PASSWORD")
    if not (base and user and password):
        log.info("no Airflow API login for the pipeline: the run note is not written")
        return False
    note = render_note(summary)
    try:
        login = requests.post(
            f"{base}/auth/token", json={"username": user, "password": password}, timeout=timeout
        )
        login.raise_for_status()
        answer = requests.patch(
            f"{base}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
            params={"update_mask": "note"},
            json={"note": note},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            timeout=timeout,
        )
        answer.raise_for_status()
    except requests.RequestException as exc:
        # No API server (`airflow dags test`), or it refused: the summary still holds it all.
        log.info("run note not written (%s): %s", base, str(exc)[:200])
        return False
    log.info("run note written: %s", note.splitlines()[0])
    return True
