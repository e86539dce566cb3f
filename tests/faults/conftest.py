"""The fault scenarios' table, printed once the session's scenarios have run (README, "Faults").

"seconds to recover" is what a fault cost beyond its outage: the scenario's run time, minus the same
mailing's run time without a fault, minus the outage (from the kill, the cut or the refusals to the
process ready again, the link or the server back; nothing for a fault the product must end itself, such
as a hung LibreOffice). Zero when the rest of the mailing went on while the outage lasted.
"""

import pytest

from tests.faults.harness import RESULTS, Row


def recovery_s(row: Row, baseline: Row | None) -> float | None:
    if baseline is None or baseline.total_s is None or row.total_s is None:
        return None
    return max(0.0, round(row.total_s - baseline.total_s - row.outage_s, 1))


def table(rows: list[Row]) -> list[str]:
    baseline = next((row for row in rows if row.scenario == "no fault"), None)
    lines = [
        "| scenario | lost | duplicated | uncertain | failed | dead letters | outage s | seconds to recover | run s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        recovered = "—" if row is baseline else _seconds(recovery_s(row, baseline))
        lines.append(
            f"| {row.scenario} | {row.lost} | {row.duplicated} | {row.uncertain} | {row.failed} | {row.dead_letters} "
            f"| {row.outage_s:.1f} | {recovered} | {_seconds(row.total_s)} |"
        )
    return lines


def _seconds(value: float | None) -> str:
    return "stuck" if value is None else f"{value:.1f}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section(f"faults: a {RESULTS[0].records}-record mailing per scenario, each on a stack of its own")
    for line in table(RESULTS):
        terminalreporter.write_line(line)
    terminalreporter.write_line("")
    for row in RESULTS:
        window = ""
        if row.window_ms:
            window = " (sent records {:.0f} ms after the server had the e-mail, p90 {:.0f}, max {:.0f})".format(
                *row.window_ms
            )
        terminalreporter.write_line(f"- {row.scenario}: {row.note or 'as planned'}{window}")
        for problem in row.problems:
            terminalreporter.write_line(f"    problem: {problem}")
