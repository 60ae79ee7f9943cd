"""A validation report as one HTML page, to read in MLflow's artifact view next to the JSON.

The JSON keeps everything GX said; this page is what a person opens first: the verdict, the
counts, and one row per expectation, failures first, each with its arguments and what was
observed. The page is self-contained (inline CSS, no scripts, no links out), and every value
from the data or from GX is escaped, since a column name or a cell can hold any text.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wine_quality.validation.report import CheckedExpectation, ValidationReport

# Items of a list argument or observed value shown before the rest is counted instead: enough
# for the twelve columns of the file and the numeric dtypes, short for anything longer.
MAX_ITEMS = 15
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.5rem; }
.verdict { padding: 0.1rem 0.6rem; border-radius: 0.3rem; color: #fff; }
.verdict.passed { background: #1a7f37; }
.verdict.failed { background: #cf222e; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
tr.failed td { background: #ffebe9; }
td.result { font-weight: bold; }
tr.failed td.result { color: #cf222e; }
tr.passed td.result { color: #1a7f37; }
code { font-size: 0.9em; }
.examples { color: #57606a; }
"""


def render_html(report: ValidationReport, *, data_sha256: str, rows: int) -> str:
    """The report as a self-contained HTML page.

    Args:
        report: The suite's outcome on one snapshot.
        data_sha256: The snapshot's sha256, to tie the page to the data it judged.
        rows: Rows of the snapshot.

    Returns:
        The page: verdict, counts, then every expectation, failures first and otherwise in
        suite order.
    """
    verdict = "passed" if report.success else "failed"
    failed = len(report.failed)
    suite = report.result.get("suite_name") or "expectation suite"
    numbered = list(enumerate(report.checks, start=1))
    ordered = [pair for pair in numbered if not pair[1].success]
    ordered += [pair for pair in numbered if pair[1].success]
    body = "\n".join(_row(number, check, rows) for number, check in ordered) or (
        '<tr><td colspan="6">This report holds no per-expectation results.</td></tr>'
    )
    facts = [
        ("suite", _e(suite)),
        ("data sha256", f"<code>{_e(data_sha256)}</code>"),
        ("rows", _e(f"{rows:,}")),
        ("expectations evaluated", _e(report.evaluated)),
        ("passed", _e(report.evaluated - failed)),
        ("failed", _e(failed)),
    ]
    facts_html = "\n".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data validation {_e(verdict)}: {_e(suite)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Data validation <span class="verdict {verdict}">{_e(verdict.upper())}</span></h1>
<p>{_e(_summary(report))}</p>
<table class="facts">
{facts_html}
</table>
<h2>Expectations, failures first</h2>
<table class="results">
<thead><tr><th>#</th><th>result</th><th>expectation</th><th>column</th><th>arguments</th>
<th>observed</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""


def _summary(report: ValidationReport) -> str:
    """One sentence: the verdict in words."""
    if report.success:
        return f"All {report.evaluated} expectations passed."
    return f"{len(report.failed)} of {report.evaluated} expectations failed."


def _row(number: int, check: CheckedExpectation, rows: int) -> str:
    """One expectation as a table row."""
    status = "passed" if check.success else "failed"
    arguments = ", ".join(
        f"{name}={_show(value)}" for name, value in check.kwargs.items() if name != "column"
    )
    cells = [
        _e(number),
        _e(status),
        f"<code>{_e(check.expectation)}</code>",
        _e(check.column if check.column is not None else "(table)"),
        _e(arguments),
        _observed(check, rows),
    ]
    classes = ["", ' class="result"', "", "", "", ""]
    tds = "".join(f"<td{cls}>{cell}</td>" for cls, cell in zip(classes, cells, strict=True))
    return f'<tr class="{status}">{tds}</tr>'


def _observed(check: CheckedExpectation, rows: int) -> str:
    """What GX saw: the failure's statement and examples, or the observed value or count."""
    parts: list[str] = []
    if check.failure is not None:
        parts.append(_e(check.failure.message))
    if check.unexpected_count is not None:
        parts.append(_e(f"unexpected: {check.unexpected_count:,} of {rows:,} rows"))
    elif check.observed is not None:
        parts.append(_e(f"observed: {_show(check.observed)}"))
    if check.failure is not None and check.failure.examples:
        examples = _show(check.failure.examples)
        parts.append(f'<span class="examples">{_e(f"examples: {examples}")}</span>')
    return "<br>".join(parts)


def _show(value: Any) -> str:
    """A value as a person writes it, long lists cut to :data:`MAX_ITEMS`."""
    if isinstance(value, list | tuple):
        shown = ", ".join(_show(item) for item in value[:MAX_ITEMS])
        rest = len(value) - MAX_ITEMS
        return f"[{shown}{f', ... ({rest} more)' if rest > 0 else ''}]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _e(value: Any) -> str:
    """``value`` as escaped HTML text (quotes too, so it is safe in an attribute as well)."""
    return html.escape(str(value), quote=True)
