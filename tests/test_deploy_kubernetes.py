"""deploy/kubernetes/: the manifests validate against the Kubernetes JSON schemas (offline, from
the kubernetes-validate package) and agree with the image and the gateway config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_files import DRAIN_S

from onyproxy.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
SERVICEMONITOR = KUBERNETES / "components" / "servicemonitor"
# The oldest Kubernetes release still supported upstream that the manifests must work on.
KUBERNETES_VERSION = "1.30"


def kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def resources(folder: Path) -> list[dict]:
    """The objects a kustomization lists, as written (before kustomize's transformers)."""
    objects = []
    for name in kustomization(folder)["resources"]:
        objects.extend(yaml.safe_load_all((folder / name).read_text()))
    return objects


def base_objects() -> dict[str, dict]:
    return {obj["kind"]: obj for obj in resources(BASE)}


def deployment() -> dict:
    return base_objects()["Deployment"]


def container() -> dict:
    (only,) = deployment()["spec"]["template"]["spec"]["containers"]
    return only


def generated_configmap() -> dict:
    (generator,) = kustomization(BASE)["configMapGenerator"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
            "data": {name: (BASE / name).read_text() for name in generator["files"]}}


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_manifest_validates_against_the_kubernetes_schemas():
    objects = [*resources(BASE), generated_configmap()]
    assert {o["kind"] for o in objects} == {"ServiceAccount", "Deployment", "Service", "ConfigMap",
                                            "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for obj in objects:
        validate(obj)


def test_schema_validation_catches_a_mistake():
    # the offline schemas really are strict: a misspelt probe key is refused
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        validate(broken)


def test_the_configmap_holds_the_compose_gateway_config():
    # kustomize reads files only below its folder, hence the copy; it must not drift.
    assert (BASE / "gateway.yaml").read_bytes() == (ROOT / "deploy" / "gateway.yaml").read_bytes()
    volumes = {v["name"]: v for v in deployment()["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    args = build_parser().parse_args(container()["args"])
    assert args.command == "serve"
    mount = mounts[args.config]
    assert volumes[mount["name"]]["configMap"]["name"] == generated_configmap()["metadata"]["name"]
    assert mount["subPath"] in generated_configmap()["data"]


def test_probes_and_drain():
    c = container()
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and int(command[1]) > 0
    grace = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(command[1]) + DRAIN_S
    # a rollout never takes a serving pod away before its replacement is ready
    assert deployment()["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_container_matches_the_image_and_the_gateway_config():
    c = container()
    (port,) = c["ports"]
    config = yaml.safe_load((BASE / "gateway.yaml").read_text())
    assert port == {"name": "http", "containerPort": config["server"]["port"], "protocol": "TCP"}
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"EXPOSE {port['containerPort']}" in dockerfile
    user = deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert f"USER {user}:" in dockerfile
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounted = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/var/lib/onyproxy", "/tmp"} <= mounted  # the spool; multi-process metrics files
    env = {e["name"] for e in c["env"]}
    assert env == {"ONYPROXY_REDIS_HOST", "ONYPROXY_TRUSTED_PROXIES", "ONYPROXY_WORKERS"}


def test_secrets_are_referenced_never_written():
    assert not any(obj["kind"] == "Secret" for obj in resources(BASE))
    (source,) = container()["envFrom"]
    secret = source["secretRef"]["name"]
    monitor = yaml.safe_load((SERVICEMONITOR / "servicemonitor.yaml").read_text())
    credentials = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
    assert credentials == {"name": secret, "key": "ONYPROXY_METRICS_TOKEN"}
    assert f"kubectl create secret generic {secret}" in (ROOT / "README.md").read_text()


def test_service_hpa_and_pdb_select_the_gateway_pods():
    objects = base_objects()
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= \
        labels.items()
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment()["metadata"]["name"])
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment()["spec"]  # the autoscaler owns the count
    (port,) = objects["Service"]["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]


def test_the_servicemonitor_is_optional_and_scrapes_the_service():
    assert "components" not in kustomization(BASE)
    overlay = kustomization(KUBERNETES / "with-servicemonitor")
    assert overlay["resources"] == ["../base"]
    assert overlay["components"] == ["../components/servicemonitor"]
    component = kustomization(SERVICEMONITOR)
    assert component["kind"] == "Component"
    (monitor,) = [yaml.safe_load((SERVICEMONITOR / n).read_text())
                  for n in component["resources"]]
    # not in the Kubernetes schemas (a Prometheus Operator CRD): checked by hand
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1",
                                                        "ServiceMonitor")
    service = base_objects()["Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        deployment()["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) missing")
@pytest.mark.parametrize("folder", ["base", "with-servicemonitor"])
def test_kustomize_renders_valid_manifests(folder):
    out = subprocess.run(["kubectl", "kustomize", str(KUBERNETES / folder)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    objects = list(yaml.safe_load_all(out))
    by_kind = {o["kind"]: o for o in objects}
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            validate(obj)
    # the generated ConfigMap's hashed name is the one the Deployment mounts
    configmap = by_kind["ConfigMap"]["metadata"]["name"]
    volumes = by_kind["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert configmap.startswith("onyproxy-config-")
    assert any(v.get("configMap", {}).get("name") == configmap for v in volumes)
    assert ("ServiceMonitor" in by_kind) == (folder == "with-servicemonitor")
