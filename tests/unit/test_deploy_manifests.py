"""The deployment files parse, probe the right endpoints and name only real settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document and "kind" in document, path
            found[document["kind"]] = document
    return found


def container(kind: str) -> dict[str, Any]:
    [only] = manifests()[kind]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_every_manifest_parses_and_each_kind_we_need_is_there() -> None:
    assert {"Deployment", "Service", "Job", "ConfigMap", "Secret", "Kustomization"} <= set(
        manifests()
    )


def test_the_deployment_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    api = container("Deployment")
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    named_ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["port"] in named_ports
    assert named_ports["http"] == int(api["args"][api["args"].index("--port") + 1])


def test_the_service_routes_to_the_deployment_pods() -> None:
    found = manifests()
    pod_labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert found["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert found["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_migrations_run_in_a_job_and_not_when_instances_start() -> None:
    found = manifests()
    assert container("Job")["args"] == ["migrate"]
    assert found["Job"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert found["ConfigMap"]["data"]["BASTION_AUTO_MIGRATE"] == "false"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_as_a_non_root_user_with_their_settings_from_the_config_map_and_secret(
    kind: str,
) -> None:
    spec = manifests()[kind]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    sources = {next(iter(source.values()))["name"] for source in container(kind)["envFrom"]}
    assert sources == {"bastion-config", "bastion-secrets"}


def test_the_config_map_and_secret_name_only_real_settings() -> None:
    found = manifests()
    names = {*found["ConfigMap"]["data"], *found["Secret"]["stringData"]}
    unknown = {
        name for name in names if name.removeprefix("BASTION_").lower() not in Settings.model_fields
    }
    assert not unknown
    assert {"BASTION_SECRET_KEY", "BASTION_DATABASE_URL", "BASTION_REDIS_URL"} <= names


def test_the_image_is_multi_stage_and_runs_as_an_unprivileged_user() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert "tests" in (ROOT / ".dockerignore").read_text().split()
