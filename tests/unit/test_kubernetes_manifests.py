"""deploy/kubernetes/: every manifest validates against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors), the objects fit together, the Secret
holds placeholders only, and the ConfigMap's gateway.toml and policies — laid out as the
Deployment mounts them — start a real gateway with the Deployment's own arguments.
No cluster runs here."""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from addons.launcher import STOP_TIMEOUT
from mcp_gateway.config import ConfigError, load_config
from mcp_gateway.policy_version import policy_version
from tests.support.gateway import TEST_SECRET_KEY, Gateway
from tests.support.launcher import wait_for_log
from tests.support.processes import REPO, VENV_BIN, free_port, running
from tests.support.redis_server import redis_server  # noqa: F401 - the fixture

MANIFESTS = REPO / "deploy" / "kubernetes"
FILES = sorted(MANIFESTS.glob("*.yaml"))
GATEWAY_KINDS = {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler"}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects() -> list[dict]:
    return [doc for path in FILES for doc in documents(path)]


def one(kind: str, component: str = "gateway") -> dict:
    [found] = [o for o in objects() if o["kind"] == kind
               and o["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return found


def pod_env(secrets: dict[str, str]) -> dict[str, str]:
    """The gateway container's environment: its `env` entries and the Secret's keys."""
    [container] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return {**{e["name"]: e["value"] for e in container.get("env", [])}, **secrets}


REAL_SECRETS = {"SECRET_KEY": TEST_SECRET_KEY, "ADMIN_PASSWORD": "x" * 16}


def configmap_toml() -> dict:
    return tomllib.loads(one("ConfigMap")["data"]["gateway.toml"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_manifest_validates_against_the_kubernetes_schemas(path):
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, latest_version(), strict=True)  # raises on any problem


def test_a_broken_manifest_is_caught():
    """The check above is not vacuous: a misspelt field fails it."""
    service = {**one("Service"), "spec": {**one("Service")["spec"], "portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, latest_version(), strict=True)


def test_one_file_per_object_kind():
    gateway_files = [p for p in FILES if p.name != "redis.yaml"]
    kinds = {}
    for path in gateway_files:
        [kind] = {doc["kind"] for doc in documents(path)}
        assert path.name == f"{kind.lower()}.yaml"
        kinds[kind] = path
    assert set(kinds) == GATEWAY_KINDS
    assert {doc["kind"] for doc in documents(MANIFESTS / "redis.yaml")} == {"Deployment", "Service"}


def test_the_secret_is_a_template_with_placeholders_only(tmp_path):
    secret = one("Secret")
    assert "data" not in secret
    assert set(secret["stringData"]) >= {"SECRET_KEY", "ADMIN_PASSWORD"}
    assert all(value == "REPLACE_ME" for value in secret["stringData"].values())
    # and the gateway refuses to start with the placeholder key
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(_lay_out(tmp_path), env=pod_env(secret["stringData"]))


def _lay_out(root: Path, store: str | None = None) -> Path:
    """The ConfigMap's files where the Deployment's volume items put them, under `root`."""
    deployment = one("Deployment")
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    data = one("ConfigMap")["data"]
    for item in volume["configMap"]["items"]:
        target = root / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        text = data[item["key"]]
        if item["key"] == "gateway.toml":
            text = text.replace('state_dir = "/app/var"', f'state_dir = "{root / "var"}"')
            if store:
                text = text.replace('store = "redis://mcp-gateway-redis:6379/0"', f'store = "{store}"')
        target.write_text(text)
    return root / "gateway.toml"


def test_the_deployment_drains_before_it_is_stopped_and_runs_locked_down(tmp_path):
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    drain = load_config(_lay_out(tmp_path), env=pod_env(REAL_SECRETS)).drain_timeout
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + STOP_TIMEOUT
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # liveness must not kill a pod while it drains (its listener is closed then)
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > drain
    assert "--workers" in container["args"] and deployment["spec"]["replicas"] >= 2
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # everything the gateway writes is on an emptyDir: the state folder, the logs, /tmp
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {mounts["/app/var"], mounts["/app/logs"], mounts["/tmp"]} <= empty_dirs
    assert configmap_toml()["gateway"]["state_dir"] == "/app/var"
    # the Secret is referenced, never inlined
    assert {"secretRef": {"name": one("Secret")["metadata"]["name"]}} in container["envFrom"]


def test_the_objects_select_the_gateway_pods():
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert one("Service")["spec"]["selector"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", one("Deployment")["metadata"]["name"])
    store = configmap_toml()["session"]["store"]
    redis_service = one("Service", component="redis")["metadata"]["name"]
    assert store.startswith(f"redis://{redis_service}:")


def test_the_configmap_starts_a_real_gateway(tmp_path, redis_server):
    """The ConfigMap's gateway.toml and policies, mounted as the Deployment mounts them (only the
    in-cluster Redis address and the state folder swapped for local ones), run by the launcher
    with the Deployment's own arguments."""
    config = _lay_out(tmp_path / "etc", store=redis_server.url)
    assert (config.parent / "policies" / "default.toml").read_text() == (REPO / "policies" / "default.toml").read_text()
    args = one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    args = [str(config) if a == "/etc/mcp-gateway/gateway.toml" else a for a in args]
    port = free_port()
    env = {**pod_env(REAL_SECRETS), "HOME": str(tmp_path),
           "MCP_GATEWAY_LISTEN_HOST": "127.0.0.1", "MCP_GATEWAY_LISTEN_PORT": str(port)}
    loaded = load_config(config, env=env)
    assert loaded.session.store == redis_server.url and loaded.rate_limits.enabled
    command = [str(VENV_BIN / "python"), "-m", "addons.launcher", "run", *args]
    with running(command, tmp_path / "gateway.log", port=port, env=env, timeout=40) as proc:
        gw = Gateway(port, config, tmp_path / "var", proc)
        wait_for_log(gw, "MCP Gateway listening on", count=2)
        health = httpx.get(f"{gw.url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["policy_version"] == policy_version(config.parent / "policies")
        refused = httpx.get(f"{gw.url}/api/streamable/currenttime", timeout=10)
        assert refused.status_code == 401  # auth on, as configured
