"""k8s/monitoring parses and agrees with the code (issue 19, point 5): the ServiceMonitor scrapes the services'
/metrics port, and every Publipost or FastStream metric the alerts and the dashboard read is one the services
register (a renamed metric would otherwise silence its alert without a word)."""

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from publipost_bus import Bus
from publipost_settings import ServiceSettings

MONITORING = Path(__file__).parents[2] / "k8s" / "monitoring"
SERVICES = ("template", "recipient_directory", "merge", "render_pdf", "dispatch", "scheduler")
METRIC = re.compile(r"\b((?:publipost|faststream)_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def _registered() -> set[str]:
    """Every sample name the services can expose, children made or not yet."""
    for service in SERVICES:
        importlib.import_module(f"publipost_{service}.app")
    Bus(ServiceSettings(service_name="merge"))  # FastStream's own metrics are registered with a broker
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def _documents() -> dict[str, dict]:
    return {
        doc["kind"]: doc
        for path in MONITORING.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] != "Kustomization"
    }


def _dashboard() -> dict:
    return json.loads((MONITORING / "publipost-dashboard.json").read_text())


def test_the_service_monitor_scrapes_every_service_metrics_port():
    monitor = _documents()["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/part-of": "publipost"}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("http", "/metrics")]
    base = Path(__file__).parents[2] / "k8s" / "base"
    services = [
        doc
        for path in base.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Service"
    ]
    assert len(services) == 7  # the six services and the console
    for service in services:
        assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "publipost"
        assert "http" in [port["name"] for port in service["spec"]["ports"]]


def test_the_alerts_cover_dead_letters_pauses_message_age_and_libreoffice_restarts():
    rules = [rule for group in _documents()["PrometheusRule"]["spec"]["groups"] for rule in group["rules"]]
    expressions = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "publipost_dead_lettered_messages_total",
        "publipost_dispatch_paused_total",
        "publipost_message_age_seconds_bucket",
        "rabbitmq_queue_messages_ready",
        "publipost_render_libreoffice_restarts_total",
    ):
        assert metric in expressions
    assert all(rule["alert"].startswith("Publipost") and rule["labels"]["severity"] for rule in rules)


def test_every_metric_the_alerts_and_the_dashboard_read_is_registered_by_the_code():
    rules = _documents()["PrometheusRule"]["spec"]["groups"]
    used = {name for group in rules for rule in group["rules"] for name in METRIC.findall(rule["expr"])}
    panels = _dashboard()["panels"]
    used |= {name for panel in panels for target in panel["targets"] for name in METRIC.findall(target["expr"])}
    assert len(used) > 10
    assert used - _registered() == set()


def test_the_dashboard_has_the_panels_operators_look_at():
    titles = " | ".join(panel["title"] for panel in _dashboard()["panels"])
    for wanted in ("E-mails by outcome", "SMTP", "Queue depth", "conversions", "Dead-lettered"):
        assert wanted in titles


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the kustomization")
def test_the_monitoring_kustomization_renders_with_the_dashboard_for_grafana():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MONITORING)], check=True, capture_output=True, text=True
    ).stdout
    kinds = {doc["kind"]: doc for doc in yaml.safe_load_all(rendered)}
    assert set(kinds) == {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    dashboard = kinds["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["publipost-dashboard.json"]) == _dashboard()
