"""docker-compose.yml, the Dockerfile and k8s/ parse and agree with the code: every service is deployed
with probes on its health endpoints, and every variable they set is a setting some service reads."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from publipost_console.settings import ConsoleSettings
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.settings import SchedulerSettings
from publipost_template.settings import TemplateSettings
from pydantic import AliasChoices

REPO = Path(__file__).parents[2]
SERVICES = ("template", "recipient-directory", "merge", "render-pdf", "dispatch", "scheduler")
CONSOLE = "console"  # deployed like a service, without a bus, a store or a client secret of its own
SETTINGS = (
    ConsoleSettings,
    TemplateSettings,
    RecipientDirectorySettings,
    MergeSettings,
    RenderPdfSettings,
    DispatchSettings,
    SchedulerSettings,
)


def _env_names() -> set[str]:
    names = set()
    for settings in SETTINGS:
        for name, field in settings.model_fields.items():
            names.add(f"PUBLIPOST_{name.upper()}")
            if isinstance(field.validation_alias, AliasChoices):
                names.update(a for a in field.validation_alias.choices if isinstance(a, str))
    return names


def _k8s_documents() -> list[dict]:
    """The objects written out under k8s/ (not the kustomizations' patches, which are lists of operations)."""
    return [
        doc
        for path in sorted((REPO / "k8s").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and "kind" in doc
    ]


def _env_file(path: Path) -> dict[str, str]:
    """A generator's env file; one kept out of git (the example overlay's Secrets) is read from its example."""
    if not path.exists():
        path = path.with_name(f"{path.name}.example")
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _k8s_sources() -> dict[str, dict[str, str]]:
    """Every ConfigMap and Secret k8s/ provides, by name, with its variables: those the kustomizations generate
    (configMapGenerator, secretGenerator: their data lives in env files), those written out, and those the
    External Secrets Operator writes (their values are in the secret store)."""
    sources: dict[str, dict[str, str]] = {}
    for kustomization in (REPO / "k8s").rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for generator in [*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])]:
            data = sources.setdefault(generator["name"], {})
            for env in generator.get("envs", []):
                data.update(_env_file(kustomization.parent / env))
            data.update(literal.split("=", 1) for literal in generator.get("literals", []))
    for doc in _k8s_documents():
        if doc["kind"] in ("ConfigMap", "Secret"):
            sources.setdefault(doc["metadata"]["name"], {}).update({**doc.get("data", {}), **doc.get("stringData", {})})
        elif doc["kind"] == "ExternalSecret":
            target = doc["spec"].get("target", {}).get("name", doc["metadata"]["name"])
            sources.setdefault(target, {}).update({item["secretKey"]: "" for item in doc["spec"]["data"]})
    return sources


def _module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], command
    return command[2]


def test_every_variable_the_deployments_set_is_a_setting():
    known = _env_names()
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    set_by_compose = {
        line.split("=", 1)[0] for line in (REPO / "deploy/compose.env").read_text().splitlines() if "=" in line
    } | {name for service in compose["services"].values() for name in service.get("environment", {})}
    sources = _k8s_sources()
    containers = [
        container
        for doc in _k8s_documents()
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]
    set_by_k8s = {
        name
        for container in containers
        for source in container.get("envFrom", [])
        for name in sources[(source.get("configMapRef") or source["secretRef"])["name"]]
    } | {variable["name"] for container in containers for variable in container.get("env", [])}
    assert set_by_compose - known == set()
    # HOME: render-pdf's LibreOffice reads it (its home is an emptyDir under a read-only root), no setting does.
    assert set_by_k8s - known == {"HOME"}


def test_compose_runs_the_six_services_and_the_console_beside_broker_database_and_mail_catcher():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"rabbitmq", "mongodb", "mailpit", *SERVICES, CONSOLE} <= set(services)
    for name in (*SERVICES, CONSOLE):
        module = _module_of(services[name]["command"])
        assert importlib.util.find_spec(module) is not None, module
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])


@pytest.mark.parametrize("service", (*SERVICES, CONSOLE))
def test_each_service_has_a_deployment_with_truthful_probes_and_a_service(service):
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_documents() if "metadata" in d}
    container = docs[("Deployment", service)]["spec"]["template"]["spec"]["containers"][0]
    # args, not command: the image's entrypoint (tini) stays PID 1 and hands SIGTERM to the service.
    assert "command" not in container
    assert importlib.util.find_spec(_module_of(container["args"])) is not None
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert docs[("Service", service)]["spec"]["ports"][0]["targetPort"] == "http"


def test_kustomizations_list_files_that_exist():
    for kustomization in (REPO / "k8s").rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for resource in spec["resources"]:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"
        for patch in spec.get("patches", []):
            assert "path" not in patch or (kustomization.parent / patch["path"]).exists(), f"{kustomization}: {patch}"
        for generator in [*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])]:
            for env in generator.get("envs", []):
                path = kustomization.parent / env
                assert path.exists() or path.with_name(f"{path.name}.example").exists(), f"{kustomization}: {env}"


def test_the_dockerfile_copies_what_exists():
    for line in (REPO / "deploy/Dockerfile").read_text().splitlines():
        if (match := re.match(r"COPY (\S+)", line)) and not line.startswith("COPY --from="):  # not another stage's
            assert (REPO / match.group(1)).exists(), line


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_deployed_with_the_issuer_and_a_client_of_its_own(service):
    """Every route needs a token (docs/identity.md): the services trust the issuer, and each calls the others
    with its own client, whose secret comes from a Secret, never from the ConfigMap."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_documents() if "metadata" in d}
    sources = _k8s_sources()
    config = sources["publipost-config"]
    assert config["PUBLIPOST_AUTH_ISSUER_URL"].startswith("https://")
    assert "PUBLIPOST_AUTH_CLIENT_SECRET" not in config and config.get("PUBLIPOST_AUTH_REQUIRED") != "false"
    container = docs[("Deployment", service)]["spec"]["template"]["spec"]["containers"][0]
    secret_refs = [source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source]
    env = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
    assert f"publipost-{service}-identity" in secret_refs
    assert "PUBLIPOST_AUTH_CLIENT_SECRET" in sources[f"publipost-{service}-identity"]
    assert env["PUBLIPOST_AUTH_CLIENT_ID"] == f"publipost-{service}"

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert compose[service]["environment"]["PUBLIPOST_AUTH_CLIENT_ID"] == f"publipost-{service}"
    assert "PUBLIPOST_AUTH_CLIENT_SECRET" in compose[service]["environment"]
    compose_env = (REPO / "deploy/compose.env").read_text()
    assert "PUBLIPOST_AUTH_ISSUER_URL=http://dev-issuer:8080" in compose_env
    assert service in compose["dev-issuer"]["command"][-2]  # the issuer makes the service's client
