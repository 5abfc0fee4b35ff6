"""The deployable stack in deploy/, checked without Docker or a cluster.

Each piece is read the way its runtime would read it: the compose file's
mounts are laid out as the containers see them, the Dockerfiles' COPY
instructions are replayed against the build context that .dockerignore
leaves, and the configurations go through promtool, amtool and postconf
where those are installed. Then the pieces are checked against each other:
the log Postfix writes is the log the exporter follows, the ports, users and
job names agree, and every exporter flag exists.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shlex
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from exporter.config import DEFAULT_PORT
from helpers import PROMTOOL, REPO, needs_promtool, replies_by, run_once, wait_for
from mta.namespace import free_port, private_dir
from daemontest import Exporter

DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
EXPORTER_DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
POSTFIX_MAIN_CF = COMPOSE_DIR / "postfix" / "main.cf"
K8S_DIR = DEPLOY / "kubernetes"
RULES_DIR = DEPLOY / "prometheus" / "rules"
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"
# Debian's group adm (the images are Debian-based): it may read the mail log.
ADM_GID = 4
EXPORTER_SERVICE = "smtp-reply-exporter"
YAML_FILES = sorted(
    p for d in (COMPOSE_DIR, K8S_DIR) for p in d.rglob("*") if p.suffix in (".yml", ".yaml")
)


def load_docs(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    return [doc for path in sorted(K8S_DIR.glob("*.yml")) for doc in load_docs(path)]


@pytest.fixture(scope="module")
def exporter_help() -> str:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


# --- Dockerfiles ---------------------------------------------------------------


@functools.cache
def exporter_stages() -> list[list[dict]]:
    """The exporter image's stages: read once for the tests that look at them."""
    return dockerfile_stages(EXPORTER_DOCKERFILE)


def dockerfile_stages(path: Path) -> list[list[dict]]:
    """The instructions of each build stage (continuation lines joined), as
    dockerfile-parse reads them: {"instruction": "COPY", "value": "a b", ...}."""
    with path.open("rb") as f:  # by content: a path not named Dockerfile would be taken for a directory
        parsed = DockerfileParser(fileobj=f).structure
    stages: list[list[dict]] = []
    for instruction in parsed:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages and instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages


def instructions(stage: list[dict], keyword: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == keyword]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (ENTRYPOINT, CMD)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def copy_sources(stage: list[dict]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    out = []
    for args in instructions(stage, "COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


def dockerignore(patterns: list[str]) -> pathspec.PathSpec:
    """A .dockerignore's patterns as a matcher of paths in the build context.

    Docker reads them as gitignore does (the last match wins, "!" re-includes,
    even below an excluded directory), except that every pattern is anchored
    at the context's root: "tests" is ./tests only, never exporter/tests.
    """
    anchored = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        anchored.append(("!" if negate else "") + "/" + pattern.removeprefix("!").lstrip("/"))
    return pathspec.PathSpec.from_lines("gitignore", anchored)


def context_ignores() -> pathspec.PathSpec:
    path = REPO / ".dockerignore"
    lines = (line.strip() for line in path.read_text().splitlines()) if path.exists() else ()
    return dockerignore([line for line in lines if line and not line.startswith("#")])


def context_files(context: Path, source: str, ignores: pathspec.PathSpec) -> list[Path]:
    """The files of a COPY source (a file or a directory) that .dockerignore
    leaves in the build context."""
    path = context / source
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return [f for f in files if not ignores.match_file(str(f.relative_to(context)))]


def test_dockerignore_follows_docker_rules():
    ignores = dockerignore([".git", "**/__pycache__", "tests", "docs/*.md", "!docs/keep.md", "/build"])
    assert ignores.match_file(".git/config")
    assert ignores.match_file("exporter/parsers/__pycache__/x.pyc")
    assert ignores.match_file("tests/data/a.log")
    assert ignores.match_file("docs/a.md")
    assert ignores.match_file("build/lib/x.py")
    assert not ignores.match_file("docs/keep.md")
    assert not ignores.match_file("exporter/tests.py")
    assert not ignores.match_file("docs/sub/a.md")
    assert not ignores.match_file("exporter/tests/x.py")  # anchored, unlike .gitignore


def build_contexts(compose: dict) -> list[tuple[Path, Path]]:
    """(context, Dockerfile) of every image: the compose builds (the
    Kubernetes example uses the same two images)."""
    out = []
    for service in compose["services"].values():
        if "build" in service:
            context = (COMPOSE_DIR / service["build"]["context"]).resolve()
            out.append((context, context / service["build"].get("dockerfile", "Dockerfile")))
    return out


def test_compose_builds_the_exporter_image_and_postfix(compose):
    dockerfiles = {dockerfile for _, dockerfile in build_contexts(compose)}
    assert dockerfiles == {EXPORTER_DOCKERFILE, COMPOSE_DIR / "postfix" / "Dockerfile"}
    assert all(context == REPO for context, _ in build_contexts(compose))


def test_every_copy_source_is_in_the_build_context(compose):
    ignores = context_ignores()
    checked = 0
    for context, dockerfile in build_contexts(compose):
        for stage in dockerfile_stages(dockerfile):
            for sources, _ in copy_sources(stage):
                for source in sources:
                    assert (context / source).exists(), (
                        f"{dockerfile.relative_to(REPO)}: COPY {source}: not in the repository")
                    assert context_files(context, source, ignores), \
                        f"{dockerfile.relative_to(REPO)}: COPY {source}: .dockerignore excludes it"
                    checked += 1
    assert checked >= 5


def test_exporter_image_runs_as_a_numeric_non_root_user_in_group_adm():
    final = exporter_stages()[-1]
    users = instructions(final, "USER")
    assert users, "the final stage sets no USER: the exporter would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: want a numeric UID other than 0"
    # The runtime applies supplementary groups from /etc/group only when
    # USER names no group.
    assert ":" not in users[-1], "USER uid:gid drops the supplementary group adm"
    useradd = " ".join(r for r in instructions(final, "RUN") if "useradd" in r)
    assert re.search(rf"--uid {uid}\b", useradd), f"no useradd creates UID {uid} in the final stage"
    assert re.search(r"--groups (\S+,)?adm\b", useradd), "the exporter's user is not in group adm"


def test_exporter_image_entrypoint_is_the_declared_console_script():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    final = exporter_stages()[-1]
    entrypoint = exec_form(instructions(final, "ENTRYPOINT")[-1])
    assert entrypoint[0] in scripts
    assert scripts[entrypoint[0]] == "exporter.cli:main"


def test_exporter_image_exposes_the_default_port_and_keeps_state_on_a_volume():
    final = exporter_stages()[-1]
    assert instructions(final, "EXPOSE") == [str(DEFAULT_PORT)]
    cmd = exec_form(instructions(final, "CMD")[-1])
    state = flag_values(cmd)["--state-file"]
    volumes = [v for args in instructions(final, "VOLUME") for v in exec_form(args)]
    assert any(PurePosixPath(state).is_relative_to(v) for v in volumes), (state, volumes)


def test_exporter_image_healthcheck_runs_the_copied_script():
    final = exporter_stages()[-1]
    checks = instructions(final, "HEALTHCHECK")
    assert len(checks) == 1
    command = exec_form(checks[0].split("CMD", 1)[1].strip())
    destinations = {dest for sources, dest in copy_sources(final) if sources == ["deploy/docker/healthcheck.py"]}
    assert command[-1] in destinations


@pytest.mark.slow
def test_build_stage_copies_enough_to_build_the_package(tmp_path):
    """Replay the build stage's COPY instructions from the filtered context,
    then build the wheel there: it must hold the console script."""
    build = exporter_stages()[0]
    workdir = PurePosixPath(instructions(build, "WORKDIR")[-1])
    root = tmp_path / "image"
    ignores = context_ignores()
    for sources, dest in copy_sources(build):
        target = root / (workdir / dest).relative_to("/")
        for source in sources:
            src = REPO / source
            for f in context_files(REPO, source, ignores):
                if src.is_dir():
                    out = target / f.relative_to(src)
                else:
                    out = target / src.name if dest.endswith("/") else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, out)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheels"),
         str(root / workdir.relative_to("/"))],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "exporter/cli.py" in names and "exporter/parsers/__init__.py" in names
    assert "smtp-reply-exporter = exporter.cli:main" in entry_points
    assert not any("__pycache__" in n for n in names)


# --- YAML, flags and files -------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses(path):
    assert load_docs(path), f"{path} holds no YAML document"


def flag_values(args: list[str]) -> dict[str, str | None]:
    """--flag=value and --flag value arguments (value None for a bare flag
    followed by another flag or nothing)."""
    out: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                value = nxt if nxt is not None and not nxt.startswith("-") else None
            out[name] = value
    return out


def positional(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith("-")]


def exporter_argument_lists(compose: dict, k8s: list[dict]) -> dict[str, list[str]]:
    final = exporter_stages()[-1]
    return {
        "Dockerfile CMD": exec_form(instructions(final, "CMD")[-1]),
        "compose command": compose["services"][EXPORTER_SERVICE]["command"],
        "kubernetes args": k8s_container(k8s, EXPORTER_SERVICE)["args"],
    }


@pytest.mark.slow
def test_exporter_flags_in_deploy_files_exist(compose, k8s, exporter_help, tmp_path):
    known = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9.-]*)", exporter_help))
    for where, args in exporter_argument_lists(compose, k8s).items():
        flags = flag_values(args)
        assert flags, f"{where}: no flags, nothing checked"
        unknown = set(flags) - known
        assert not unknown, f"{where}: {sorted(unknown)} are not flags of smtp-reply-exporter"
        # The whole argument list must be accepted together, too. The state
        # file's directory exists in the container only: a later flag gives
        # the check one that exists here.
        check = subprocess.run(
            [sys.executable, "-m", "exporter", "--check-config", *args, f"--state-file={tmp_path / 'state.json'}"],
            cwd=REPO, capture_output=True, text=True, check=False,
        )
        assert check.returncode == 0, f"{where}: {check.stderr}"


def maillog_file() -> PurePosixPath:
    match = re.search(r"^maillog_file\s*=\s*(\S+)", POSTFIX_MAIN_CF.read_text(), re.M)
    assert match, "main.cf sets no maillog_file: Postfix would log to syslog, which the exporter cannot see"
    return PurePosixPath(match.group(1))


@pytest.mark.e2e
def test_postfix_main_cf_has_no_unknown_parameters(tmp_path):
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    master = next((p for p in (Path("/usr/share/postfix/master.cf.dist"), Path("/etc/postfix/master.cf"))
                   if p.exists()), None)
    if not Path(postconf).exists() or master is None:
        pytest.skip("postconf and a master.cf are not installed (Debian package postfix)")
    shutil.copy(POSTFIX_MAIN_CF, tmp_path / "main.cf")
    shutil.copy(master, tmp_path / "master.cf")
    result = subprocess.run([postconf, "-c", str(tmp_path), "-n"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    # postlogd accepts only paths under maillog_file_prefixes (/var by default).
    assert maillog_file().is_relative_to("/var")


# --- compose ---------------------------------------------------------------------


@dataclass
class Mount:
    source: str
    target: PurePosixPath
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))


def mounts(service: dict) -> list[Mount]:
    out = []
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        out.append(Mount(source, PurePosixPath(target), "ro" in mode))
    return out


def mount_of(service: dict, path: PurePosixPath) -> Mount:
    """The mount that holds a path inside the container (the deepest one)."""
    holding = [m for m in mounts(service) if path.is_relative_to(m.target)]
    assert holding, f"{path} is on no volume of the container"
    return max(holding, key=lambda m: len(m.target.parts))


def test_compose_ports_are_bound_to_loopback(compose):
    published = [(name, p) for name, s in compose["services"].items() for p in s.get("ports", [])]
    assert {name for name, _ in published} == set(compose["services"])
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is reachable from other hosts"


def test_compose_mounts_exist_and_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for mount in mounts(service):
            if mount.is_bind:
                assert (COMPOSE_DIR / mount.source).exists(), f"{name}: mounts {mount.source}, which does not exist"
            else:
                assert mount.source in declared, f"{name}: volume {mount.source} is not declared"


def test_compose_exporter_follows_the_log_postfix_writes(compose):
    postfix, exporter = compose["services"]["postfix"], compose["services"][EXPORTER_SERVICE]
    log = maillog_file()
    written = mount_of(postfix, log)
    assert not written.is_bind and not written.read_only
    shared = [m for m in mounts(exporter) if m.source == written.source]
    assert len(shared) == 1 and shared[0].read_only, "the exporter must mount Postfix's log volume read-only"
    followed = [PurePosixPath(p) for p in positional(exporter["command"])]
    assert followed == [shared[0].target / log.relative_to(written.target)]
    assert ADM_GID in [int(g) for g in exporter.get("group_add", [])]


def test_compose_exporter_state_file_is_on_a_writable_volume(compose):
    exporter = compose["services"][EXPORTER_SERVICE]
    state = mount_of(exporter, PurePosixPath(flag_values(exporter["command"])["--state-file"]))
    assert not state.is_bind and not state.read_only


def container_tree(tmp_path: Path, service: dict, under: str) -> Path:
    """The files the container sees under a directory, laid out in tmp_path."""
    root = tmp_path / "container"
    for mount in mounts(service):
        if mount.is_bind and mount.target.is_relative_to(under):
            dest = root / mount.target.relative_to("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = COMPOSE_DIR / mount.source
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    return root


def container_config(compose: dict, tmp_path: Path, name: str) -> Path:
    """Where the file a service's --config.file names lies, with the files
    the container sees beside it laid out in tmp_path."""
    service = compose["services"][name]
    config = flag_values(service["command"])["--config.file"]
    assert config, f"{name}: --config.file has no value"
    config = PurePosixPath(config)
    return container_tree(tmp_path, service, str(config.parent)) / config.relative_to("/")


@needs_promtool
def test_compose_prometheus_config_passes_promtool(compose, tmp_path):
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(container_config(compose, tmp_path, "prometheus"))],
        capture_output=True, text=True, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # promtool only warns when a file_sd file is missing.
    assert "WARNING" not in output and "FAILED" not in output, output
    rule_files = {Path(line.split()[-1]).name for line in output.splitlines() if line.startswith("Checking ")}
    assert {p.name for p in RULES_DIR.glob("*.yml")} <= rule_files, "not every rule file is loaded"


def alert_rules_job() -> str:
    """The exporter's job in the fleet scrape configuration the rules are
    documented with (the alerts themselves name no job)."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.example.yml").read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_compose_prometheus_scrapes_the_exporter_and_alerts_to_alertmanager(compose, tmp_path):
    config_path = container_config(compose, tmp_path, "prometheus")
    config_dir = config_path.parent
    config = yaml.safe_load(config_path.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == alert_rules_job()]
    targets = [
        target
        for sd in job["file_sd_configs"]
        for pattern in sd["files"]
        for path in sorted(config_dir.glob(pattern))
        for group in yaml.safe_load(path.read_text())
        for target in group["targets"]
    ]
    assert targets == [f"{EXPORTER_SERVICE}:{DEFAULT_PORT}"]

    alertmanagers = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]
                     for t in sc["targets"]]
    am_ports = [p.rsplit(":", 1)[-1] for p in compose["services"]["alertmanager"]["ports"]]
    assert alertmanagers == [f"alertmanager:{port}" for port in am_ports]


def test_compose_alertmanager_routes_reach_defined_receivers(compose, tmp_path):
    config = yaml.safe_load(container_config(compose, tmp_path, "alertmanager").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}

    def walk(route: dict) -> list[dict]:
        return [route] + [r for child in route.get("routes", []) for r in walk(child)]

    routes = walk(config["route"])
    assert all(route.get("receiver", config["route"]["receiver"]) in receivers for route in routes)
    # The root sends to a receiver without integrations: nothing leaves the
    # stack unless a route is written for it.
    assert set(receivers[config["route"]["receiver"]]) == {"name"}
    for receiver in receivers.values():
        for webhook in receiver.get("webhook_configs", []):
            assert urllib.parse.urlsplit(webhook["url"]).hostname.endswith(".invalid"), webhook


@pytest.mark.e2e
def test_compose_alertmanager_config_passes_amtool(compose, tmp_path):
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (Debian package prometheus-alertmanager)")
    result = subprocess.run(
        [amtool, "check-config", str(container_config(compose, tmp_path, "alertmanager"))],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_compose_grafana_is_provisioned_with_the_repository_dashboards(compose, tmp_path):
    service = compose["services"]["grafana"]
    root = container_tree(tmp_path, service, "/")
    provisioning = root / "etc/grafana/provisioning"
    (providers_file,) = (provisioning / "dashboards").glob("*.yml")
    (provider,) = yaml.safe_load(providers_file.read_text())["providers"]
    dashboards = root / PurePosixPath(provider["options"]["path"]).relative_to("/")
    assert sorted(p.name for p in dashboards.glob("*.json")) == sorted(
        p.name for p in (REPO / "grafana" / "dashboards").glob("*.json")
    )
    home = PurePosixPath(service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (root / home.relative_to("/")).is_file()

    (datasource_file,) = (provisioning / "datasources").glob("*.yml")
    (datasource,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    url = urllib.parse.urlsplit(datasource["url"])
    prometheus_ports = [p.rsplit(":", 1)[-1] for p in compose["services"]["prometheus"]["ports"]]
    assert (url.hostname, str(url.port)) == ("prometheus", prometheus_ports[0])
    # The compose data source is the repository's with the url changed.
    (reference,) = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert {k: v for k, v in datasource.items() if k != "url"} == {k: v for k, v in reference.items() if k != "url"}
    prometheus_config = yaml.safe_load((COMPOSE_DIR / "prometheus/prometheus.yml").read_text())
    assert datasource["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]


# --- Kubernetes ------------------------------------------------------------------


def k8s_kind(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def pod_spec(docs: list[dict]) -> dict:
    return k8s_kind(docs, "StatefulSet")["spec"]["template"]["spec"]


def k8s_container(docs: list[dict], name: str) -> dict:
    (container,) = [c for c in pod_spec(docs)["containers"] if c["name"] == name]
    return container


def k8s_mount_of(container: dict, path: PurePosixPath) -> dict:
    holding = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    assert holding, f"{container['name']}: {path} is on no volume"
    return max(holding, key=lambda m: len(PurePosixPath(m["mountPath"]).parts))


def test_k8s_every_mount_names_a_pod_volume(k8s):
    volumes = {v["name"] for v in pod_spec(k8s)["volumes"]}
    for container in pod_spec(k8s)["containers"]:
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes, f"{container['name']}: no volume {mount['name']}"


def test_k8s_exporter_sidecar_follows_the_log_postfix_writes(k8s):
    postfix, exporter = k8s_container(k8s, "postfix"), k8s_container(k8s, EXPORTER_SERVICE)
    log = maillog_file()
    written = k8s_mount_of(postfix, log)
    assert not written.get("readOnly", False)
    volume = next(v for v in pod_spec(k8s)["volumes"] if v["name"] == written["name"])
    assert "emptyDir" in volume
    (read,) = [m for m in exporter["volumeMounts"] if m["name"] == written["name"]]
    assert read.get("readOnly") is True
    followed = [PurePosixPath(p) for p in positional(exporter["args"])]
    assert followed == [PurePosixPath(read["mountPath"]) / log.relative_to(written["mountPath"])]
    state = k8s_mount_of(exporter, PurePosixPath(flag_values(exporter["args"])["--state-file"]))
    assert not state.get("readOnly", False)


def test_k8s_exporter_runs_as_the_image_user_with_group_adm(k8s):
    final = exporter_stages()[-1]
    image_uid = int(instructions(final, "USER")[-1])
    context = k8s_container(k8s, EXPORTER_SERVICE)["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == image_uid
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert ADM_GID in pod_spec(k8s)["securityContext"]["supplementalGroups"]


def test_k8s_service_and_podmonitor_reach_the_exporter(k8s):
    pod_labels = k8s_kind(k8s, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for c in pod_spec(k8s)["containers"] for p in c.get("ports", [])}
    exporter_ports = {p["name"]: p["containerPort"] for p in k8s_container(k8s, EXPORTER_SERVICE)["ports"]}
    assert list(exporter_ports.values()) == [DEFAULT_PORT]

    service = k8s_kind(k8s, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert k8s_kind(k8s, "StatefulSet")["spec"]["serviceName"] == service["metadata"]["name"]
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports

    monitor = k8s_kind(k8s, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in exporter_ports
    job = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert [r["replacement"] for r in job] == [alert_rules_job()]


# --- health check ------------------------------------------------------------------


def healthcheck(url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SMTP_REPLY_EXPORTER_HEALTHCHECK_URL=url)
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True,
                          check=False, timeout=30)


@pytest.mark.slow
def test_healthcheck_passes_while_the_exporter_serves_and_fails_after(tmp_path):
    log = tmp_path / "mail.log"
    log.write_bytes(b"")
    exporter = Exporter(tmp_path, str(log))  # returns once it serves
    url = f"http://127.0.0.1:{exporter.port}/"
    try:
        result = healthcheck(url)
        assert result.returncode == 0, result.stderr
    finally:
        exporter.stop()
    result = healthcheck(url)
    assert result.returncode == 1 and "unhealthy" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("status, healthy", [(200, True), (401, True), (429, True), (503, False)])
def test_healthcheck_judges_http_status(status, healthy):
    """Basic auth (401) and the rate limit (429) still prove the exporter serves."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):  # noqa: ANN002
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = healthcheck(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == (0 if healthy else 1), result.stderr


# --- the demo Postfix, run for real ---------------------------------------------


def postfix_run_commands() -> list[str]:
    """The RUN instructions of the Postfix image that configure Postfix."""
    stage = dockerfile_stages(COMPOSE_DIR / "postfix" / "Dockerfile")[-1]
    return [r for r in instructions(stage, "RUN") if r.startswith(("postconf", "postfix"))]


@pytest.mark.e2e
def test_demo_postfix_logs_its_refusals_for_the_exporter(tmp_path):
    """The image's main.cf, master.cf edits and entrypoint, run on this
    machine: Postfix must start, write the log where the exporter looks, with
    the owner and mode the exporter's group can read, and refuse the demo's
    recipients with the codes deploy/README.md promises."""
    postfix = Path("/usr/sbin/postfix")
    master_cf = Path("/usr/share/postfix/master.cf.dist")
    if os.geteuid() != 0 or not postfix.exists() or not master_cf.exists():
        pytest.skip("needs root and the Debian package postfix")
    base = private_dir("smtp-reply-deploy")
    logdir = base / "log"
    conf, queue, data = base / "conf", base / "queue", base / "data"
    port = free_port()
    for d in (conf, queue, data):
        d.mkdir()
    queue.chmod(0o755)
    shutil.chown(data, "postfix", "postfix")
    shutil.copy(POSTFIX_MAIN_CF, conf / "main.cf")
    # Only where this run must differ from the container: private paths, a
    # free port on loopback, and a client address (127.0.0.5) outside mynetworks.
    (conf / "master.cf").write_text(re.sub(r"(?m)^smtp(\s+inet)", rf"127.0.0.1:{port}\1", master_cf.read_text()))
    overrides = {
        "queue_directory": queue, "data_directory": data, "meta_directory": "/etc/postfix",
        "maillog_file": logdir / "mail.log", "inet_interfaces": "127.0.0.1",
        "mynetworks": "127.0.0.1/32", "smtpd_peername_lookup": "no",
    }
    env = dict(os.environ, MAIL_CONFIG=str(conf))
    subprocess.run(["postconf", "-e", *(f"{k}={v}" for k, v in overrides.items())], env=env, check=True)
    for command in postfix_run_commands():
        subprocess.run(["sh", "-ec", command], env=env, check=True, capture_output=True)
    log = logdir / "mail.log"
    server = subprocess.Popen([str(COMPOSE_DIR / "postfix" / "entrypoint.sh")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def listening() -> bool:
            assert server.poll() is None, server.stderr.read().decode()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        assert wait_for(listening, timeout=20), "Postfix did not listen"
        refused = {}
        for rcpt in ("root@mail.example.test", "busy@mail.example.test",
                     "nobody-here@mail.example.test", "someone@example.org"):
            with smtplib.SMTP("127.0.0.1", port, source_address=("127.0.0.5", 0), timeout=10) as smtp:
                try:
                    smtp.sendmail("demo@example.org", [rcpt], "Subject: demo\r\n\r\nhello\r\n")
                except smtplib.SMTPRecipientsRefused as err:
                    refused[rcpt] = err.recipients[rcpt][0]
        assert refused == {"busy@mail.example.test": 450, "nobody-here@mail.example.test": 550,
                           "someone@example.org": 554}
        assert wait_for(lambda: log.exists() and log.read_text().count(" reject: RCPT ") == 3, timeout=20), \
            "the three rejects were not logged"
        assert (log.stat().st_gid, log.stat().st_mode & 0o777) == (ADM_GID, 0o640)
        assert (logdir.stat().st_gid, logdir.stat().st_mode & 0o777) == (ADM_GID, 0o750)
        once = run_once(str(log))
        assert once.returncode == 0, once.stderr
        counted = replies_by(once.stdout.decode(), "direction", "code", "enhanced", "stage")
        assert {k: v for k, v in counted.items() if k[1] >= "4"} == {
            ("inbound", "450", "4.2.1", "rcpt"): 1,
            ("inbound", "550", "5.1.1", "rcpt"): 1,
            ("inbound", "554", "5.7.1", "rcpt"): 1,
        }
    finally:
        subprocess.run([str(postfix), "stop"], env=env, capture_output=True, check=False)
        try:
            server.wait(timeout=20)
        finally:
            server.stderr.close()
            shutil.rmtree(base, ignore_errors=True)
