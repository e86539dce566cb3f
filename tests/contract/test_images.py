"""The images (deploy/Dockerfile, README "Images"): a slim image for five services and one with LibreOffice for
render-pdf, both multi-stage, tini as PID 1, non-root, built from the runtime lock alone; compose and k8s run
each service on the right one; the runtime lock holds what the code imports and no test or local-stack
package. The Dockerfile is read as text (no Docker engine is needed to run this)."""

import ast
import fnmatch
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[2]
DOCKERFILE = REPO / "deploy/Dockerfile"
SERVICES = ("template", "recipient-directory", "merge", "render-pdf", "dispatch", "scheduler")
FINAL = {"service": "publipost_template.app", "render-pdf": "publipost_render_pdf.app"}
BUILD_TOOLS = {"build-essential", "gcc", "g++", "make", "cmake", "clang", "git", "pkg-config"}
OFFICE_FONTS = {"fonts-crosextra-carlito", "fonts-crosextra-caladea"}  # Calibri's and Cambria's metrics
LIBERATION = {"fonts-liberation2", "fonts-liberation"}  # Arial's, Times New Roman's and Courier New's
DEV_ONLY = ("secantusdb", "aiosmtpd", "pytest", "pytest-asyncio", "testcontainers", "playwright", "ruff", "pyyaml")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, its arguments)


def _instructions(text: str) -> list[tuple[str, str]]:
    """Each instruction with its continuation lines joined; comments and blank lines dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued RUN
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def _stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current = None
    for keyword, arguments in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = Stage(name, words[0])
        else:
            assert current is not None, f"{keyword} before FROM"
            current.instructions.append((keyword, arguments))
    return stages


def _chain(stage: str) -> list[Stage]:
    """The stage and those it is built on, from the external image's up to it."""
    stages, chain = _stages(), []
    while stage in stages:
        chain.insert(0, stages[stage])
        stage = stages[stage].base
    return chain


def _external_base(stage: str) -> str:
    return _chain(stage)[0].base


def _instructions_of(stage: str, keyword: str) -> list[str]:
    return [arguments for s in _chain(stage) for k, arguments in s.instructions if k == keyword]


def _apt_packages(stage: str) -> set[str]:
    packages = set()
    for command in _instructions_of(stage, "RUN"):
        for part in re.split(r"&&|;|\|\|", command):
            words = shlex.split(part)
            if words[:2] in (["apt-get", "install"], ["apt", "install"]):
                packages |= {w for w in words[2:] if not w.startswith("-")}
    return packages


def _exec_form(arguments: str) -> list[str]:
    return ast.literal_eval(arguments)


def _lock(path: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / path).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)(\[[^]]*\])?==(\S+)", line):
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return pins


def test_a_builder_stage_and_the_two_final_stages():
    stages = _stages()
    assert {"builder", *FINAL} <= set(stages)
    assert list(stages)[-1] == "service", "a build without --target makes the slim image"
    for final in FINAL:
        assert "builder" not in [s.name for s in _chain(final)], "the final images are not built on the builder"
        copied = [a for a in _instructions_of(final, "COPY") if a.startswith("--from=builder")]
        assert any("/opt/venv" in a for a in copied), f"{final} takes the builder's virtual environment"


@pytest.mark.parametrize("final", FINAL)
def test_the_final_stages_start_from_the_slim_python_of_the_project(final):
    python = re.search(r">=(\d+\.\d+)", (REPO / "pyproject.toml").read_text()).group(1)
    assert re.fullmatch(rf"python:{re.escape(python)}-slim(-\w+)?(@sha256:[0-9a-f]+)?", _external_base(final))
    assert _external_base(final) == _external_base("builder"), "the venv is built on the Python it runs on"


@pytest.mark.parametrize("final", FINAL)
def test_the_final_stages_install_no_build_tool_and_no_dependency_of_their_own(final):
    packages = _apt_packages(final)
    assert not packages & BUILD_TOOLS
    assert not {p for p in packages if p.endswith("-dev")}
    runs = " ".join(_instructions_of(final, "RUN"))
    assert "pip install" not in runs and "uv pip" not in runs, "dependencies come from the builder's venv"


def test_the_builder_installs_the_runtime_lock_only():
    builder = " ".join(a for k, a in _stages()["builder"].instructions)
    assert "requirements.lock" in builder
    assert "requirements-dev" not in DOCKERFILE.read_text()


@pytest.mark.parametrize("final", FINAL)
def test_tini_is_pid_1_and_the_service_runs_as_a_non_root_user(final):
    assert "tini" in _apt_packages(final)
    assert _exec_form(_instructions_of(final, "ENTRYPOINT")[-1]) == ["tini", "--"]
    user = _instructions_of(final, "USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    env = " ".join(_instructions_of(final, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    command = _exec_form(_instructions_of(final, "CMD")[-1])
    assert command[:2] == ["python", "-m"] and command[2] == FINAL[final]
    assert importlib.util.find_spec(command[2]) is not None


def test_the_image_user_is_the_one_kubernetes_runs_as():
    uid = _instructions_of("service", "USER")[-1].split(":")[0]
    assert _instructions_of("render-pdf", "USER")[-1].split(":")[0] == uid

    def run_as(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "runAsUser":
                    yield str(value)
                yield from run_as(value)
        elif isinstance(node, list):
            for item in node:
                yield from run_as(item)

    users = {u for path in (REPO / "k8s").rglob("*.yaml") for doc in yaml.safe_load_all(path.read_text())
             for u in run_as(doc)}
    assert users <= {uid}, f"k8s runs as {users}, the images as {uid}"


def test_render_pdf_has_libreoffice_and_fonts_metric_compatible_with_office():
    packages = _apt_packages("render-pdf")
    assert {"libreoffice-writer-nogui", "python3-uno", "fontconfig"} <= packages
    assert OFFICE_FONTS <= packages and packages & LIBERATION
    assert any("fc-cache" in run for run in _instructions_of("render-pdf", "RUN"))


def test_the_service_image_has_no_libreoffice():
    packages = _apt_packages("service")
    assert not {p for p in packages if p.startswith(("libreoffice", "python3-uno", "fonts-"))}


def test_the_image_carries_every_source_folder_but_the_local_stack():
    copied = {shlex.split(a)[0].rstrip("/") for a in _instructions_of("builder", "COPY") if not a.startswith("--")}
    folders = (REPO / "deploy/source-paths.txt").read_text().split()
    missing = {
        f for f in folders
        if not f.startswith("deploy/localstack") and not any(f == c or f.startswith(f"{c}/") for c in copied)
    }
    assert missing == set(), f"the images lack {missing}: COPY them in the builder"
    assert "deploy/source-paths.txt" in copied  # the .pth the builder writes from it


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, pattern.removeprefix("**/"))
        for pattern in patterns
        for candidate in candidates
    )


def test_the_build_context_leaves_out_history_environments_and_tests_but_not_the_sources():
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith(("#", "!"))]
    for path in (".git", ".venv", "tests", ".local", "bench", ".env", "services/merge/x/__pycache__"):
        assert _ignored(path, patterns), path
    sources = [shlex.split(a)[0] for a in _instructions_of("builder", "COPY") if not a.startswith("--")]
    for source in sources:
        assert not _ignored(source.rstrip("/"), patterns), source


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_builds_each_service_on_its_target(service):
    build = _compose()[service]["build"]
    assert build["dockerfile"] == "deploy/Dockerfile" and build["context"] == "."
    assert build["target"] == ("render-pdf" if service == "render-pdf" else "service")


def test_compose_never_tags_two_targets_alike_and_builds_every_image_it_runs():
    targets: dict[str, set[str]] = {}
    for name, service in _compose().items():
        if service.get("image", "").startswith("publipost"):
            assert "build" in service, f"{name} would pull {service['image']}, which no registry has"
            targets.setdefault(service["image"], set()).add(service["build"]["target"])
    assert all(len(t) == 1 for t in targets.values()), targets


def test_kubernetes_runs_render_pdf_on_its_image_and_the_others_on_the_slim_one():
    images = {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]["image"]
        for path in (REPO / "k8s/base").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Deployment"
    }
    assert images["render-pdf"].split(":")[0] == "publipost-render-pdf"
    assert {images[s].split(":")[0] for s in SERVICES if s != "render-pdf"} == {"publipost"}


def test_the_runtime_lock_has_no_test_or_local_stack_package_and_the_dev_lock_has_them():
    runtime, dev = _lock("requirements.lock"), _lock("requirements-dev.lock")
    assert not set(DEV_ONLY) & set(runtime)
    assert {"secantusdb", "aiosmtpd", "pytest", "testcontainers", "pyyaml"} <= set(dev)
    assert "-c requirements.lock" in (REPO / "requirements-dev.in").read_text().splitlines()
    assert {name: (runtime[name], dev[name]) for name in set(runtime) & set(dev) if runtime[name] != dev[name]} == {}


def _third_party_imports(folder: Path, own: set[str]) -> dict[str, str]:
    """Top-level module -> a file importing it, for every absolute import of the Python files under `folder`
    that is neither the standard library's nor one of Publipost's own packages."""
    found = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(REPO).parts
        if path.name == "uno_bridge.py" or {"tests", "build"} & set(parts):  # uno_bridge: Debian's Python, uno
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_package_the_images_import_is_in_the_runtime_lock():
    folders = [REPO / f for f in (REPO / "deploy/source-paths.txt").read_text().split()
               if not f.startswith("deploy/localstack") and (REPO / f).is_dir()]
    own = {p.name for folder in folders for p in folder.iterdir() if p.is_dir() or p.suffix == ".py"}
    own |= {p.stem for folder in folders for p in folder.rglob("*.py")}  # modules beside a script, e.g. parent_death
    distributions = packages_distributions()
    runtime = set(_lock("requirements.lock"))
    missing = {}
    for folder in folders:
        for module, where in _third_party_imports(folder, own).items():
            names = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [])}
            if not names & runtime:
                missing[module] = (where, sorted(names) or "not installed")
    assert missing == {}, f"imported by the images' code but not in requirements.lock: {missing}"
