"""No password, bearer token, API key or client secret in any log of the test run (issue 14, point 8).

Runs after every other test: what each test printed was scanned as it ended (tests/conftest.py), and the
log files of the local stacks started by this run (end-to-end and fault scenarios) are scanned here. The
tests give accounts real passwords, call with real tokens and keys, and break things on purpose, so the
services' error paths log too.
"""

from pathlib import Path

import pytest

from tests.conftest import SECRETS_IN_OUTPUT, SESSION_STARTED
from tests.log_secrets import secrets_in

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.after_all_tests  # see tests/conftest.py


def _stack_logs(config: pytest.Config, base: Path) -> list[Path]:
    """The log files the local stacks of this run wrote: in the run's temporary directory, and the fault
    scenarios' (kept under .local/faults)."""
    started = config.stash[SESSION_STARTED]
    found = [*base.rglob("logs/*.log"), *(REPO / ".local" / "faults").glob("*/logs/*.log")]
    return [path for path in found if path.stat().st_mtime >= started]


def test_no_log_holds_a_password_a_token_or_a_key(request, tmp_path_factory):
    findings = list(request.config.stash[SECRETS_IN_OUTPUT])
    scanned = 0
    for path in _stack_logs(request.config, tmp_path_factory.getbasetemp()):
        scanned += 1
        text = path.read_text(errors="replace")
        findings += [f"{path.relative_to(path.parents[2])}: {finding}" for finding in secrets_in(text)]
    assert not findings, f"{len(findings)} secrets in the logs ({scanned} stack log files scanned):\n" + "\n".join(findings[:50])
