"""The trigger form in a real browser: what a person does in the Airflow UI, end to end.

Debian's Chromium, headless, driven by Playwright (launched with the system browser: Playwright's
own browser download cannot work here) against `scripts/airflow.sh up` (the processes of
`make airflow`) beside the local stack. The person signs in on the simple auth manager's login
page, opens `wine_retraining`, opens Trigger, reads every Param's title and description, changes
the improvement margin and the data source, submits; the scheduler runs it; the run's page shows
that it succeeded, the decision with its reasons (the run note the Summary task writes) and the
settings it ran with. A rejected value shows a message naming the setting and starts no run.

Screenshots of each step land in `.local/screenshots/test_ui_browser/` (git-ignored) or
`WINE_SCREENSHOT_DIR`; their paths are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.airflow import AirflowApi, airflow_running
from tests.integration.stack import REPO
from wine_quality.core.config import DAG_ID

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
# Headless with nothing that phones home: these machines have no network, and without these
# flags Chromium floods the log with refused connections (and may stall on them).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("WINE_SCREENSHOT_DIR") or REPO / ".local" / "screenshots" / "test_ui_browser"
)
NEW_MARGIN = 0.0123  # not the default, and visible in the reasons of a kept production


def _missing(what: str) -> None:
    """CI must run the browser tests; elsewhere a missing browser only skips them."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (.ci/run installs it)")
    pytest.skip(what)


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of what the person sees now; print where."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    """Debian's Chromium under Playwright, with a fresh profile."""
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright is not installed (requirements-dev.lock: make venv)")
    # The UI shares two cores with a scheduler running training tasks: pages can take seconds.
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def airflow(stack, wine_csv) -> Iterator[AirflowApi]:
    """`make airflow`'s processes beside the stack; the DAG parsed and (as created) paused."""
    stack.env["WINE_DATA_URI"] = str(wine_csv)
    with airflow_running(stack) as api:
        dag = api.wait_for_dag()
        assert dag["is_paused"], "a new DAG must start paused"
        yield api


@pytest.fixture(scope="module")
def params(airflow) -> dict[str, dict]:
    """The DAG's Params as the API server has them (so the checks follow the DAG file)."""
    return airflow.get(f"/dags/{DAG_ID}/details")["params"]


@pytest.fixture(scope="module")
def signed_in(browser, airflow) -> Any:
    """Sign in as a person does: the DAG's address, the login page it sends to, the password."""
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{airflow.base_url}/dags/{DAG_ID}")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(airflow.password)
    shot(page, "01-login")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{airflow.base_url}/dags/{DAG_ID}")
    expect(page.get_by_role("heading", name=DAG_ID)).to_be_visible()
    page.close()
    return browser


def open_trigger_form(context: Any, base_url: str) -> tuple[Any, Any]:
    """The DAG's page, then its Trigger dialog; return (page, dialog)."""
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(f"{base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = titled_dialog(page, f"Trigger Dag - {DAG_ID}")
    expect(dialog.get_by_role("button", name="Run Parameters")).to_be_visible()
    return page, dialog


def titled_dialog(page: Any, title: str) -> Any:
    """The dialog under the heading ``title`` (Airflow's dialogs carry no accessible name)."""
    return page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=title))


def param_field(page: Any, dialog: Any, title: str) -> Any:
    """The form row of the Param titled ``title`` (its label, input and description)."""
    label = page.get_by_text(re.compile(rf"^{re.escape(title)}\s*\*?$"))  # * marks required
    return dialog.get_by_role("group").filter(has=label)


def wait_for_manual_run(api: AirflowApi, timeout: float = 30) -> dict:
    """The one run the form created (the API answers the form before the UI moves on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manual = [run for run in api.runs() if run["run_type"] == "manual"]
        if manual:
            assert len(manual) == 1, manual
            return manual[0]
        time.sleep(0.5)
    raise AssertionError(f"the form created no run within {timeout:g} s")


def title_of(name: str, spec: dict) -> str:
    return spec["schema"].get("title") or name


def test_invalid_value_shows_a_clear_message_and_starts_no_run(signed_in, airflow, params):
    from playwright.sync_api import expect

    page, dialog = open_trigger_form(signed_in, airflow.base_url)
    # The form unpauses the DAG before it submits, even when the run is then refused, and an
    # unpaused DAG gets the latest missed nightly run: keep it paused to see that this submit
    # starts nothing.
    unpause = dialog.get_by_role("checkbox", name=f"Unpause {DAG_ID} on trigger")
    expect(unpause).to_be_checked()
    dialog.get_by_text(f"Unpause {DAG_ID} on trigger", exact=True).click()
    expect(unpause).not_to_be_checked()
    margin = param_field(page, dialog, title_of("min_improvement", params["min_improvement"]))
    margin.get_by_role("spinbutton").fill("-0.01")  # the Param says exclusiveMinimum 0
    dialog.get_by_role("button", name="Trigger", exact=True).click()

    message = dialog.get_by_text(re.compile(r"Invalid input for param min_improvement"))
    expect(message).to_be_visible()
    expect(message).to_contain_text("-0.01 is less than or equal to the minimum of 0")
    expect(page.get_by_role("status")).to_contain_text("Failed to Trigger Dag")
    expect(dialog).to_be_visible()  # the person can correct the value in place
    message.scroll_into_view_if_needed()
    shot(page, "10-invalid-margin-rejected")

    assert airflow.runs() == []
    assert airflow.get(f"/dags/{DAG_ID}")["is_paused"]
    page.close()


def test_trigger_form_run_shows_decision_reasons_and_settings(signed_in, airflow, params, wine_csv):
    from playwright.sync_api import expect

    page, dialog = open_trigger_form(signed_in, airflow.base_url)
    shot(page, "02-trigger-form")

    # Every Param shows its title and its description beside its input.
    unexplained = [name for name, spec in params.items() if not spec.get("description")]
    problems = [f"Params without a description in the DAG: {unexplained}"] if unexplained else []
    for name, spec in params.items():
        row = param_field(page, dialog, title_of(name, spec))
        try:
            expect(row).to_have_count(1)
            if spec.get("description"):
                row.scroll_into_view_if_needed()
                expect(row).to_contain_text(spec["description"])
        except AssertionError as exc:
            problems.append(f"{name} ({title_of(name, spec)!r}): {exc}")
    assert not problems, "\n".join(problems)

    data_source = param_field(page, dialog, title_of("data_uri", params["data_uri"]))
    margin = param_field(page, dialog, title_of("min_improvement", params["min_improvement"]))
    data_source.get_by_role("textbox").fill(str(wine_csv))
    margin.get_by_role("spinbutton").fill(str(NEW_MARGIN))
    data_source.scroll_into_view_if_needed()
    shot(page, "03-trigger-form-filled")
    # As a person leaves it: "Unpause on trigger" checked, so the scheduler runs it.
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    manual = wait_for_manual_run(airflow)
    assert manual["conf"]["min_improvement"] == NEW_MARGIN
    assert manual["conf"]["data_uri"] == str(wine_csv)
    run_id = manual["dag_run_id"]
    # The UI then opens the new run's page; after "Unpause on trigger" it sometimes stays on
    # the form instead (a race in Airflow's UI: the run is created all the same). Open the
    # run's page either way, as the person would from the grid.
    run_page = f"{airflow.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
    page.goto(run_page)
    header = page.get_by_role("heading", name=run_id, exact=True).locator("xpath=..")
    expect(header).to_be_visible()
    shot(page, "04-run-page-queued")

    # Unpausing also starts the latest missed nightly run (catchup=False); with one active run
    # at a time the two run one after the other.
    run = airflow.wait_run(run_id, timeout=300)
    assert run["state"] == "success", airflow.states(run_id)
    summary = airflow.xcom(run_id, "report")

    page.reload()
    header = page.get_by_role("heading", name=run_id, exact=True).locator("xpath=..")
    expect(header.get_by_test_id("state-badge")).to_have_text("Success")
    # The decision opens the run's note, in the page's header: no log, no scrolling.
    note = page.get_by_role("button", name="Edit note").locator("xpath=..")
    expect(note).to_contain_text(f"Decision: {summary['decision']}")
    expect(note).to_be_in_viewport()
    shot(page, "05-run-succeeded-with-decision")

    page.get_by_role("button", name="Edit note").click()
    full_note = titled_dialog(page, "Dag Run Note")
    assert summary["reasons"], summary
    for reason in summary["reasons"]:
        expect(full_note).to_contain_text(reason)
    shot(page, "06-run-note-reasons")
    full_note.get_by_role("button", name="Close").click()

    page.get_by_role("link", name="Details", exact=True).click()
    conf = page.get_by_role("row").filter(has=page.get_by_role("cell", name="Conf", exact=True))
    expect(conf).to_contain_text(str(NEW_MARGIN))
    expect(conf).to_contain_text(str(wine_csv))
    conf.scroll_into_view_if_needed()
    shot(page, "07-run-details-conf")
    page.close()
