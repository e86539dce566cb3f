"""The contracts are an installable package of their own (`make contracts`): a wheel an integrating system
can use with nothing of Publipost but pydantic, whose changelog names its version and every message."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import publipost_contracts
import pytest
from publipost_contracts import ALL_EVENTS

REPO = Path(__file__).parents[2]
UV = Path(sys.executable).with_name("uv")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(UV), "build", "--quiet", "--wheel", str(REPO / "contracts"), "--out-dir", str(out)], check=True)
    (built,) = out.glob("publipost_contracts-*.whl")
    return built


def test_the_wheel_holds_the_messages_and_is_versioned_as_the_package(wheel: Path):
    assert wheel.name == f"publipost_contracts-{publipost_contracts.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert {"publipost_contracts/events.py", "publipost_contracts/envelope.py", "publipost_contracts/py.typed"} <= set(
        names
    )
    assert not [name for name in names if name.startswith(("publipost_bus", "publipost_merge", "tests"))]


def test_the_wheel_alone_reads_a_message(wheel: Path):
    program = (
        "import sys; sys.path[:0] = [sys.argv[1]]\n"
        "from publipost_contracts import DispatchCompleted\n"
        "from publipost_contracts.examples import EXAMPLES\n"
        "body = EXAMPLES[DispatchCompleted].model_dump_json()\n"
        "print(DispatchCompleted.model_validate_json(body).sent)\n"
    )
    # -I: isolated, so the repository's own contracts folder is not on the path; pydantic comes from the venv.
    run = subprocess.run(
        [sys.executable, "-I", "-c", program, str(wheel)], capture_output=True, text=True, check=True, cwd="/"
    )
    assert run.stdout.strip() == "1187"


def test_the_changelog_names_the_version_and_the_schema_versions_of_every_message():
    changelog = (REPO / "contracts" / "CHANGELOG.md").read_text()
    assert f"## {publipost_contracts.__version__}\n" in changelog
    for event in ALL_EVENTS:
        versions = ", ".join(map(str, sorted(event.SCHEMA_VERSIONS)))
        assert re.search(
            rf"^\| {event.__name__} \| {re.escape(event.routing_key)} \| {versions} \|$", changelog, re.MULTILINE
        )
