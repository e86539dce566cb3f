"""docker-compose.yml, the Dockerfile and k8s/ parse and agree with the code: every service is deployed
with probes on its health endpoints, and every variable they set is a setting some service reads."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.settings import SchedulerSettings
from publipost_template.settings import TemplateSettings
from pydantic import AliasChoices

REPO = Path(__file__).parents[2]
SERVICES = ("template", "recipient-directory", "merge", "render-pdf", "dispatch", "scheduler")
SETTINGS = (
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
    return [doc for path in sorted((REPO / "k8s").rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def _module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], command
    return command[2]


def test_every_variable_the_deployments_set_is_a_setting():
    known = _env_names()
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    set_by_compose = {
        line.split("=", 1)[0] for line in (REPO / "deploy/compose.env").read_text().splitlines() if "=" in line
    } | {name for service in compose["services"].values() for name in service.get("environment", {})}
    set_by_k8s = {
        name for doc in _k8s_documents() if doc["kind"] in ("ConfigMap", "Secret")
        for name in {**doc.get("data", {}), **doc.get("stringData", {})}
    }
    assert set_by_compose - known == set()
    assert set_by_k8s - known == set()


def test_compose_runs_the_six_services_beside_broker_database_and_mail_catcher():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"rabbitmq", "mongodb", "mailpit", *SERVICES} <= set(services)
    for name in SERVICES:
        module = _module_of(services[name]["command"])
        assert importlib.util.find_spec(module) is not None, module
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_deployment_with_truthful_probes_and_a_service(service):
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_documents() if "metadata" in d}
    container = docs[("Deployment", service)]["spec"]["template"]["spec"]["containers"][0]
    assert importlib.util.find_spec(_module_of(container["command"])) is not None
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert docs[("Service", service)]["spec"]["ports"][0]["targetPort"] == "http"


def test_kustomizations_list_files_that_exist():
    for kustomization in (REPO / "k8s").rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"


def test_the_dockerfile_copies_what_exists():
    for line in (REPO / "deploy/Dockerfile").read_text().splitlines():
        if (match := re.match(r"COPY (\S+)", line)) and not line.startswith("COPY --from="):  # not another stage's
            assert (REPO / match.group(1)).exists(), line


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_deployed_with_the_issuer_and_a_client_of_its_own(service):
    """Every route needs a token (docs/identity.md): the services trust the issuer, and each calls the others
    with its own client, whose secret comes from a Secret, never from the ConfigMap."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_documents() if "metadata" in d}
    config = docs[("ConfigMap", "publipost-config")]["data"]
    assert config["PUBLIPOST_AUTH_ISSUER_URL"].startswith("https://")
    assert "PUBLIPOST_AUTH_CLIENT_SECRET" not in config and config.get("PUBLIPOST_AUTH_REQUIRED") != "false"
    container = docs[("Deployment", service)]["spec"]["template"]["spec"]["containers"][0]
    secret_refs = [source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source]
    identity = docs[("Secret", f"publipost-{service}-identity")]["stringData"]
    assert f"publipost-{service}-identity" in secret_refs
    assert identity["PUBLIPOST_AUTH_CLIENT_ID"] == f"publipost-{service}"

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert compose[service]["environment"]["PUBLIPOST_AUTH_CLIENT_ID"] == f"publipost-{service}"
    assert "PUBLIPOST_AUTH_CLIENT_SECRET" in compose[service]["environment"]
    compose_env = (REPO / "deploy/compose.env").read_text()
    assert "PUBLIPOST_AUTH_ISSUER_URL=http://dev-issuer:8080" in compose_env
    assert service in compose["dev-issuer"]["command"][-2]  # the issuer makes the service's client
