"""What a platform team gets from k8s/ (docs/kubernetes.md): every overlay renders (`kubectl kustomize`) into
objects that the Kubernetes API schemas accept, strictly and offline (kubernetes-validate), and that hold
what a production rollout needs: restricted pods, a disruption budget and a spread for every service,
network policies that deny by default and allow what the code calls, render-pdf and dispatch scaled on
their queues, Secrets from the overlays only, ConfigMaps that roll the pods, images pinned by digest, and
drain times within the grace periods."""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from publipost_bus.topology import Topology
from publipost_console.settings import ConsoleSettings
from publipost_contracts.events import RenderRequested, SendRequested
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.settings import SchedulerSettings
from publipost_template.settings import TemplateSettings

REPO = Path(__file__).parents[2]
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: the overlays cannot be rendered (kubectl kustomize)"
)

OVERLAYS = sorted(path.parent.name for path in (REPO / "k8s/overlays").glob("*/kustomization.yaml"))
SETTINGS = {
    "template": TemplateSettings,
    "recipient-directory": RecipientDirectorySettings,
    "merge": MergeSettings,
    "render-pdf": RenderPdfSettings,
    "dispatch": DispatchSettings,
    "scheduler": SchedulerSettings,
    "console": ConsoleSettings,
}
SCALED = {"render-pdf": RenderRequested, "dispatch": SendRequested}  # the queue each one scales on
# Custom resources: the Kubernetes schemas do not know them, so only their schema validation is skipped.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("external-secrets.io/v1", "ExternalSecret"),
}
# The oldest Kubernetes the manifests need (the preStop sleep action is on by default from 1.30), and the
# newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SHA256_DIGEST = re.compile(r"@sha256:(?!0{64})[0-9a-f]{64}$")


def _render(tree: Path, kustomization: str) -> list[dict]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(tree / kustomization)], check=True, capture_output=True, text=True, timeout=120
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of k8s/ whose Secrets' env files are the committed examples (placeholders), whatever a checkout
    keeps beside them: what an overlay renders from, as a newcomer copies them."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(REPO / "k8s", tree)
    for example in tree.rglob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    return tree


@pytest.fixture(scope="module")
def rendered(k8s_tree: Path) -> dict[str, list[dict]]:
    return {name: _render(k8s_tree, f"overlays/{name}") for name in OVERLAYS}


def _objects(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def _pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, and matchExpressions with In) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _environment(container: dict, docs: list[dict]) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps (in envFrom order: the later wins) and its env."""
    config_maps = _objects(docs, "ConfigMap")
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(config_maps[source["configMapRef"]["name"]]["data"])
    environment.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return environment


def test_the_overlays_are_the_example_and_production():
    assert OVERLAYS == ["example", "production"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_an_overlay_renders_is_valid_kubernetes(overlay: str, version: str, rendered):
    errors = []
    for doc in rendered[overlay]:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert errors == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_restricted_on_a_read_only_root(overlay: str, rendered):
    deployments = _objects(rendered[overlay], "Deployment")
    assert set(deployments) == set(SETTINGS)
    for name, deployment in deployments.items():
        pod = _pod(deployment)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            # Where the process writes, an emptyDir: /tmp everywhere, and LibreOffice's home in render-pdf
            # (its profile is made under /tmp: publipost_render_pdf.libreoffice).
            mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}
            assert all("emptyDir" in volume for volume in mounts.values()), name
            assert "/tmp" in mounts, name
            if name == "render-pdf":
                assert _environment(container, rendered[overlay])["HOME"] in mounts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_namespace_an_overlay_declares_enforces_restricted_pod_security(overlay: str, rendered):
    namespaces = _objects(rendered[overlay], "Namespace")
    assert namespaces, "each overlay declares its namespace"
    for namespace in namespaces.values():
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {doc["metadata"]["namespace"] for doc in rendered[overlay] if doc["kind"] != "Namespace"} == set(namespaces)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_disruption_budget_and_spreads_over_zones_and_nodes(overlay: str, rendered):
    budgets = _objects(rendered[overlay], "PodDisruptionBudget").values()
    for name, deployment in _objects(rendered[overlay], "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (budget,) = [budget for budget in budgets if _selects(budget["spec"]["selector"], labels)]
        # A drain may always take one pod: a budget of none available would block it for good at one replica.
        assert budget["spec"]["maxUnavailable"] == 1, name
        spread = _pod(deployment)["topologySpreadConstraints"]
        assert {constraint["topologyKey"] for constraint in spread} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }, name
        for constraint in spread:
            assert _selects(constraint["labelSelector"], labels), name
            assert "app.kubernetes.io/name" in constraint["matchLabelKeys"], name  # its own pods only


def _policies(docs: list[dict], direction: str, labels: dict[str, str]) -> list[dict]:
    """The rules of one direction (ingress, egress) of the policies that select pods with these labels."""
    return [
        rule
        for policy in _objects(docs, "NetworkPolicy").values()
        if direction.capitalize() in policy["spec"]["policyTypes"] and _selects(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get(direction, [])
    ]


def _allows_port(rule: dict, port: int, protocol: str = "TCP") -> bool:
    ports = rule.get("ports")
    return not ports or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)


def _in_namespace(peer: dict, labels: dict[str, str]) -> bool:
    """Whether a policy peer is the namespace's pods with these labels (not an ipBlock, not another namespace)."""
    return "podSelector" in peer and "namespaceSelector" not in peer and _selects(peer["podSelector"], labels)


def _egress_allowed(docs: list[dict], source: dict[str, str], port: int, to: dict[str, str] | None = None) -> bool:
    """Whether pods with `source` labels may open `port`: anywhere (to=None), or to pods of the namespace
    with `to` labels."""
    for rule in _policies(docs, "egress", source):
        if not _allows_port(rule, port):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        if to is not None and any(_in_namespace(peer, to) for peer in peers):
            return True
    return False


def _ingress_allowed(docs: list[dict], target: dict[str, str], port: int, source: dict[str, str]) -> bool:
    return any(
        _allows_port(rule, port) and any(_in_namespace(peer, source) for peer in rule["from"])
        for rule in _policies(docs, "ingress", target)
    )


def _callees(service: str, environment: dict[str, str]) -> set[str]:
    """The services a service calls over HTTP: its settings' *_url fields that name another service."""
    hosts = set()
    for field in SETTINGS[service].model_fields:
        value = environment.get(f"PUBLIPOST_{field.upper()}", "")
        if field.endswith("_url") and (match := re.match(r"http://([a-z-]+):8080$", value)):
            hosts.add(match.group(1))
    return hosts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_everything_then_allow_what_each_service_needs(overlay: str, rendered):
    docs = rendered[overlay]
    policies = _objects(docs, "NetworkPolicy").values()
    assert any(
        policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
        for policy in policies
    ), "a default-deny policy for the whole namespace"

    deployments = _objects(docs, "Deployment")
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    calls = {
        (caller, callee)
        for caller, deployment in deployments.items()
        for callee in _callees(caller, _environment(_pod(deployment)["containers"][0], docs))
    }
    assert calls == {
        ("merge", "template"),
        ("merge", "recipient-directory"),  # a mailing started over HTTP from a segment
        ("dispatch", "template"),
        ("dispatch", "merge"),
        ("dispatch", "recipient-directory"),  # a plain e-mail's segment
        ("scheduler", "template"),
        ("scheduler", "merge"),
        ("scheduler", "recipient-directory"),
        ("scheduler", "dispatch"),  # whether a campaign's author may send through its account
        # The web console: every page calls a service with the person's token.
        *{
            ("console", callee)
            for callee in ("template", "recipient-directory", "merge", "dispatch", "scheduler", "render-pdf")
        },
    }
    for name, pod in labels.items():
        kube_dns = {"k8s-app": "kube-dns"}
        assert any(
            _allows_port(rule, 53, "UDP")
            and any(_selects(peer.get("podSelector", {}), kube_dns) for peer in rule["to"])
            for rule in _policies(docs, "egress", pod)
            if rule.get("to")
        ), f"{name}: DNS"
        for port in (5672, 27017, 443):  # broker, database, issuer
            assert _egress_allowed(docs, pod, port), f"{name}: egress to {port}"
        # From the ingress controller's namespace, never from anywhere.
        ingress = _policies(docs, "ingress", pod)
        assert any(_allows_port(rule, 8080) and "namespaceSelector" in rule["from"][0] for rule in ingress), name
        assert all(rule.get("from") for rule in ingress), f"{name}: an ingress rule open to every source"
        for other, other_pod in labels.items():
            called = (name, other) in calls
            assert _egress_allowed(docs, pod, 8080, to=other_pod) == called, f"{name} -> {other}"
            assert _ingress_allowed(docs, other_pod, 8080, source=pod) == called, f"{name} -> {other}"
    assert _egress_allowed(docs, labels["dispatch"], 587) and _egress_allowed(docs, labels["dispatch"], 25)
    assert not _egress_allowed(docs, labels["merge"], 587)
    assert _egress_allowed(docs, labels["render-pdf"], 3000)  # Gotenberg
    assert not _egress_allowed(docs, labels["dispatch"], 3000)


def test_the_base_defines_no_secret(k8s_tree: Path):
    assert [doc["metadata"]["name"] for doc in _render(k8s_tree, "base") if doc["kind"] == "Secret"] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_provides_every_secret_the_services_and_keda_read(overlay: str, rendered):
    docs = rendered[overlay]
    provided: dict[str, set[str]] = {
        name: set(secret.get("data", {})) for name, secret in _objects(docs, "Secret").items()
    }
    for external in _objects(docs, "ExternalSecret").values():
        provided[external["spec"]["target"]["name"]] = {item["secretKey"] for item in external["spec"]["data"]}
    for auth in _objects(docs, "TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in provided[ref["name"]], ref
    for name, deployment in _objects(docs, "Deployment").items():
        secrets = [
            source["secretRef"]["name"]
            for source in _pod(deployment)["containers"][0]["envFrom"]
            if "secretRef" in source
        ]
        assert all(secret in provided for secret in secrets), name
        if name == "console":  # no bus, no store, no client of its own: only the key of its session cookies
            assert [provided[secret] for secret in secrets] == [{"PUBLIPOST_SESSION_KEY"}]
            continue
        assert len(secrets) == 2, name
        assert any("PUBLIPOST_AUTH_CLIENT_SECRET" in provided[secret] for secret in secrets), name
        assert any({"RABBITMQ_URL", "MONGODB_URL"} <= provided[secret] for secret in secrets), name
    # Committed values are placeholders: the example overlay's come from its .env.example files.
    for secret in _objects(docs, "Secret").values():
        for key, value in secret["data"].items():
            assert "CHANGE-ME" in base64.b64decode(value).decode(), f"{secret['metadata']['name']}: {key}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_render_pdf_and_dispatch_scale_on_their_queues(overlay: str, rendered):
    docs = rendered[overlay]
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in _objects(docs, "ScaledObject").values()}
    assert set(scaled) == set(SCALED)
    deployments = _objects(docs, "Deployment")
    authentications = _objects(docs, "TriggerAuthentication")
    least = 2 if overlay == "production" else 1
    for service, event in SCALED.items():
        spec = scaled[service]["spec"]
        environment = _environment(_pod(deployments[service])["containers"][0], docs)
        assert spec["minReplicaCount"] >= least, service
        assert spec["maxReplicaCount"] > spec["minReplicaCount"], service
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        # Through the management API, counting the messages delivered and not yet acknowledged too.
        assert trigger["metadata"]["protocol"] == "http" and trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["metadata"].get("excludeUnacknowledged", "false") == "false"
        queue = Topology(environment["PUBLIPOST_NAMESPACE"]).queue_name(service, event.routing_key)
        assert trigger["metadata"]["queueName"] == queue
        assert trigger["authenticationRef"]["name"] in authentications
        assert "replicas" not in deployments[service]["spec"], f"{service}: the ScaledObject owns the count"
    # A dispatch replica past the default account's connections holds no connection slot (scaling.yaml).
    dispatch = _environment(_pod(deployments["dispatch"])["containers"][0], docs)
    assert scaled["dispatch"]["spec"]["maxReplicaCount"] <= int(dispatch["PUBLIPOST_SMTP_CONNECTIONS"])
    if overlay == "production":
        for name, deployment in deployments.items():
            assert name in SCALED or deployment["spec"]["replicas"] >= 2, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_maps_are_named_after_their_content(overlay: str, rendered):
    config_maps = _objects(rendered[overlay], "ConfigMap")
    assert config_maps
    for name in config_maps:
        assert re.fullmatch(r"publipost(-render-pdf)?-config-[a-z0-9]{10}", name), name


def test_a_changed_setting_rolls_the_pods_that_read_it(k8s_tree: Path, tmp_path: Path):
    changed = tmp_path / "k8s"
    shutil.copytree(k8s_tree, changed)
    config = changed / "base/config.env"
    config.write_text(config.read_text().replace("PUBLIPOST_LOG_LEVEL=INFO", "PUBLIPOST_LOG_LEVEL=DEBUG"))
    before = _objects(_render(k8s_tree, "overlays/production"), "Deployment")
    after = _objects(_render(changed, "overlays/production"), "Deployment")
    for name in SETTINGS:
        assert before[name]["spec"]["template"] != after[name]["spec"]["template"], name


def test_production_runs_images_pinned_by_digest(rendered):
    for name, deployment in _objects(rendered["production"], "Deployment").items():
        for container in _pod(deployment)["containers"]:
            assert SHA256_DIGEST.search(container["image"]), f"{name}: {container['image']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_drains_within_its_termination_grace_period(overlay: str, rendered):
    docs = rendered[overlay]
    for name, deployment in _objects(docs, "Deployment").items():
        pod = _pod(deployment)
        container = pod["containers"][0]
        shutdown_grace_s = float(_environment(container, docs)["PUBLIPOST_SHUTDOWN_GRACE_S"])
        pause_s = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pause_s >= 1, name  # endpoints stop sending it requests before SIGTERM
        assert pod["terminationGracePeriodSeconds"] >= pause_s + shutdown_grace_s, name
        if name == "render-pdf":
            # A chunk under conversion can take one LibreOffice run at most: it finishes before the kill.
            assert shutdown_grace_s >= RenderPdfSettings.model_fields["conversion_timeout_s"].default


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_schema_migration_runs_as_a_job_before_the_services_roll(overlay: str, rendered):
    """Services no longer make indexes or upgrade data at start (docs/operations.md, "Migrations")."""
    docs = rendered[overlay]
    job = _objects(docs, "Job")["publipost-migrate"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["python", "-m", "publipost", "migrate"] and "command" not in container
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert _egress_allowed(docs, labels, 27017)  # the database, under the default deny
    for deployment in _objects(docs, "Deployment").values():
        (service,) = _pod(deployment)["containers"]
        assert "command" not in service, "args only: tini, the image's entrypoint, stays PID 1"
