"""deploy/: the compose trial and the Kubernetes manifests agree with the bridge and with each other.

Every YAML file under deploy/ is parsed (multi-document aware); the fields that matter are
checked against the config each one ships (http.port, state.dir, the shutdown budget), and the
configs themselves go through the bridge's own loader. Where a schema validator is present
(kubeconform on PATH, or the kubernetes-validate package) the manifests also go through it.
`kubectl --dry-run=client` is not used: it still asks an API server for the schema.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bridge.config import _ENV_REF, Config, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"


def _documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


ALL_YAML = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
MANIFESTS = [(path, doc) for path in sorted(K8S.glob("*.y*ml")) for doc in _documents(path)]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in MANIFESTS if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/kubernetes, found {len(found)}"
    return found[0]


DEPLOYMENT = _one("Deployment")
CONFIGMAP = _one("ConfigMap")
SECRET = _one("Secret")
PVC = _one("PersistentVolumeClaim")
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
CONFIG_TEXT = CONFIGMAP["data"]["config.yaml"]


def _cluster_config() -> Config:
    """The ConfigMap's config.yaml through the bridge's loader, with the Secret's values as the environment."""
    return parse_config(yaml.safe_load(CONFIG_TEXT), dict(SECRET["stringData"]))


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity (100m, 1, 192Mi, 1Gi) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and (not match.group(2) or match.group(2) in units), f"unexpected quantity {value!r}"
    return float(match.group(1)) * units.get(match.group(2), 1)


def _port_number(port: str | int, container: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def _mount(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container's volumeMount at ``path`` and the pod volume it names."""
    (mount,) = [m for m in CONTAINER["volumeMounts"] if m["mountPath"] == path]
    (volume,) = [v for v in POD["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def test_every_yaml_under_deploy_parses():
    assert ALL_YAML, "deploy/ has no YAML files"
    for path in ALL_YAML:
        assert _documents(path), f"{path} is empty"
    kinds = sorted(doc["kind"] for _, doc in MANIFESTS)
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]
    for path, doc in MANIFESTS:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), path


def test_deployment_is_one_replica_recreated():
    spec = DEPLOYMENT["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    assert "rollingUpdate" not in spec["strategy"]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()


def test_no_pod_disruption_budget_pins_the_single_replica():
    # With one replica, minAvailable 1 / maxUnavailable 0 would block every node drain (README.md there).
    assert not [doc for _, doc in MANIFESTS if doc.get("kind") == "PodDisruptionBudget"]


def test_config_map_holds_a_valid_bridge_config():
    cfg = _cluster_config()
    assert cfg.http.host == "0.0.0.0" and cfg.http.port
    assert not cfg.bridge.allow_insecure
    assert cfg.imap.security != "plain" and cfg.smtp.security != "plain"
    assert urlsplit(cfg.odoo.url).scheme == "https"
    assert Path(cfg.state.dir).is_absolute()


def test_every_required_env_reference_is_provided():
    required = {m.group(1) for m in _ENV_REF.finditer(CONFIG_TEXT) if m.group(2) is None}
    optional = {m.group(1) for m in _ENV_REF.finditer(CONFIG_TEXT) if m.group(2) is not None}
    from_secret = set(SECRET["stringData"]) if any(
        ref.get("secretRef", {}).get("name") == SECRET["metadata"]["name"] for ref in CONTAINER.get("envFrom", [])
    ) else set()
    from_env = {item["name"] for item in CONTAINER.get("env", [])}
    assert required, "the ConfigMap's config references no secret"
    assert required <= from_secret | from_env, f"not provided: {sorted(required - from_secret - from_env)}"
    assert set(SECRET["stringData"]) <= required | optional, "a Secret key that the config never reads"


def test_secret_is_an_opaque_example():
    assert SECRET["type"] == "Opaque"
    assert all(isinstance(value, str) for value in SECRET["stringData"].values())
    assert "data" not in SECRET


def test_probes_use_the_bridge_endpoints_on_its_http_port():
    port = _cluster_config().http.port
    assert _port_number("http", CONTAINER) == port
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = CONTAINER[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port_number(get["port"], CONTAINER) == port, probe
    assert CONTAINER["command"][-2:] == ["--config", "/etc/bridge/config.yaml"]


def test_runs_as_non_root_with_a_read_only_root_filesystem():
    pod, container = POD["securityContext"], CONTAINER["securityContext"]
    assert pod.get("runAsNonRoot") is True or container.get("runAsNonRoot") is True
    assert pod.get("runAsUser", container.get("runAsUser")) not in (None, 0)
    assert pod.get("fsGroup"), "without fsGroup the non-root bridge cannot write a fresh volume"
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False


def test_volumes_state_from_the_pvc_config_from_the_config_map_tmp_empty():
    cfg = _cluster_config()
    _, state = _mount(cfg.state.dir)
    assert state["persistentVolumeClaim"]["claimName"] == PVC["metadata"]["name"]
    config_path = Path(CONTAINER["command"][CONTAINER["command"].index("--config") + 1])
    mount, config = _mount(str(config_path.parent))
    assert mount.get("readOnly") is True
    assert config["configMap"]["name"] == CONFIGMAP["metadata"]["name"]
    assert {"key": "config.yaml", "path": config_path.name} in config["configMap"].get(
        "items", [{"key": "config.yaml", "path": "config.yaml"}])
    _, tmp = _mount("/tmp")
    assert "emptyDir" in tmp


def test_pvc_is_read_write_once():
    assert PVC["spec"]["accessModes"] in (["ReadWriteOnce"], ["ReadWriteOncePod"])
    assert _quantity(PVC["spec"]["resources"]["requests"]["storage"]) == _quantity("1Gi")


def test_resources_are_requested_and_limited():
    resources = CONTAINER["resources"]
    for what in ("cpu", "memory"):
        request, limit = _quantity(resources["requests"][what]), _quantity(resources["limits"][what])
        assert 0 < request <= limit, what
    # bench/throughput's 71 MB peak RSS fits the request; the limit leaves room for a large email.
    assert _quantity(resources["requests"]["memory"]) >= 71e6
    assert _quantity(resources["limits"]["memory"]) >= 2 * _quantity(resources["requests"]["memory"])


def test_grace_period_outlasts_the_shutdown_budget():
    budget = _cluster_config().bridge.shutdown_budget_seconds
    assert budget >= 10
    assert POD["terminationGracePeriodSeconds"] > budget


def test_service_reaches_the_http_port():
    service = _one("Service")
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert _port_number(port["targetPort"], CONTAINER) == _cluster_config().http.port


# --- compose -----------------------------------------------------------------------------------

COMPOSE = _documents(DEPLOY / "compose.yaml")[0]
SERVICES = COMPOSE["services"]
BRIDGE = SERVICES["bridge"]
STAND_INS = {"dovecot": "dovecot", "odoo": "odoo", "smtp": "smtp_sink", "slack": "slack", "hr": "hr", "lms": "lms"}


def _trial_config() -> Config:
    return load_config(DEPLOY / "compose.config.yaml", environ={})  # every ${VAR:-default} at its default


def _stand_in_port(service: str) -> int:
    command = SERVICES[service]["entrypoint"]
    return int(command[command.index("--port") + 1])


def test_compose_config_loads_and_points_at_the_services():
    cfg = _trial_config()
    assert cfg.bridge.allow_insecure  # plain transports on the trial network only
    assert (cfg.imap.host, cfg.imap.port) == ("dovecot", _stand_in_port("dovecot"))
    assert (cfg.smtp.host, cfg.smtp.port) == ("smtp", _stand_in_port("smtp"))
    for service, url in (("odoo", cfg.odoo.url), ("slack", cfg.slack.base_url),
                         ("hr", cfg.automation.hr.url), ("lms", cfg.automation.lms.url)):
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (service, _stand_in_port(service)), service
    assert cfg.http.host == "0.0.0.0" and cfg.http.port == 8080


def test_compose_config_uses_the_stand_ins_credentials():
    from bridge.sandbox.dovecot import DEFAULT_USERS
    from bridge.sandbox.hr import HrSandbox
    from bridge.sandbox.lms import LmsSandbox
    from bridge.sandbox.odoo import OdooSandbox
    from bridge.sandbox.slack import SlackSandbox

    cfg = _trial_config()
    assert DEFAULT_USERS[cfg.imap.username] == cfg.imap.password.get_secret_value()
    odoo = inspect.signature(OdooSandbox.__init__).parameters
    assert (cfg.odoo.db, cfg.odoo.username, cfg.odoo.password.get_secret_value()) == (
        odoo["db"].default, odoo["login"].default, odoo["password"].default)
    slack = inspect.signature(SlackSandbox.__init__).parameters
    assert cfg.slack.bot_token.get_secret_value() == slack["bot_token"].default
    assert cfg.slack.channel in slack["channels"].default
    for sandbox, section in ((HrSandbox, cfg.automation.hr), (LmsSandbox, cfg.automation.lms)):
        token = inspect.signature(sandbox.__init__).parameters["token"].default
        assert section.auth_value.get_secret_value() == f"Bearer {token}"
    feed = SERVICES["feed"]["entrypoint"][-1]
    assert f'"{cfg.imap.username}", "{cfg.imap.password.get_secret_value()}"' in feed
    assert f'IMAP4("{cfg.imap.host}", {cfg.imap.port})' in feed


def test_compose_stand_ins_are_the_package_modules_on_all_interfaces():
    for service, module in STAND_INS.items():
        command = SERVICES[service]["entrypoint"]
        assert command[:3] == ["python", "-m", f"bridge.sandbox.{module}"], service
        assert command[command.index("--host") + 1] == "0.0.0.0", service
        assert callable(importlib.import_module(f"bridge.sandbox.{module}").main), service
        assert "healthcheck" in SERVICES[service], service


def test_compose_bridge_is_locked_down_with_state_and_config_mounted():
    cfg = _trial_config()
    assert BRIDGE["read_only"] is True
    assert "/tmp" in BRIDGE["tmpfs"]
    assert str(BRIDGE["user"]).split(":")[0] not in ("0", "root")
    config_path = BRIDGE["entrypoint"][BRIDGE["entrypoint"].index("--config") + 1]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in BRIDGE["volumes"]}
    assert mounts[config_path] == "./compose.config.yaml"
    assert BRIDGE["volumes"][[v.split(":")[1] for v in BRIDGE["volumes"]].index(config_path)].endswith(":ro")
    assert mounts[cfg.state.dir] in COMPOSE["volumes"], "state must be a named volume"
    test = " ".join(BRIDGE["healthcheck"]["test"])
    assert f"127.0.0.1:{cfg.http.port}/healthz" in test
    grace = re.fullmatch(r"(\d+)s", BRIDGE["stop_grace_period"])
    assert grace and int(grace.group(1)) > cfg.bridge.shutdown_budget_seconds
    assert set(BRIDGE["depends_on"]) == set(STAND_INS)


def test_compose_stand_ins_healthchecks_probe_their_own_port():
    for service in STAND_INS:
        kind, command = SERVICES[service]["healthcheck"]["test"]
        assert kind == "CMD-SHELL", service  # podman-compose 1.0 and podman's Docker API garble CMD lists
        assert f"'127.0.0.1', {_stand_in_port(service)})" in command, service


def _default_base(dockerfile: Path) -> str:
    (base,) = re.findall(r"^ARG BASE=(\S+)$", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
    return base


def test_compose_builds_from_files_on_one_overridable_base():
    # Real Dockerfiles, not build.dockerfile_inline (Compose v2.17+ only), and no top-level `name:`
    # (docker-compose 1.29 rejects it): the trial runs with more compose implementations.
    assert "name" not in COMPOSE
    builds = {service: spec["build"] for service, spec in SERVICES.items() if "build" in spec}
    assert set(builds) == {"bridge", "dovecot"}
    for service, build in builds.items():
        assert "dockerfile_inline" not in build, service
        assert build["args"] == ["BASE"], service  # from the environment, else the file's default
        dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile.is_file(), service
        assert re.search(r"^FROM \$\{BASE\}", dockerfile.read_text(encoding="utf-8"), re.MULTILINE), service
    assert _default_base(DEPLOY / "dovecot.Dockerfile") == _default_base(REPO / "Dockerfile")
    assert "@sha256:" in _default_base(REPO / "Dockerfile")


# A schema check only where a validator is installed; without one the test is not defined at all
# (the project's tests fail rather than skip, and the structural checks above are the test).
if shutil.which("kubeconform") or importlib.util.find_spec("kubernetes_validate"):

    def test_manifests_pass_a_schema_validator():
        files = [str(path) for path in sorted(K8S.glob("*.yaml"))]
        if shutil.which("kubeconform"):
            result = subprocess.run(["kubeconform", "-strict", "-summary", *files],
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr
        if importlib.util.find_spec("kubernetes_validate"):
            import kubernetes_validate

            for _, doc in MANIFESTS:
                kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on an unknown or mistyped field
