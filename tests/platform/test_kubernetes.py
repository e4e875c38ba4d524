"""deploy/kubernetes, checked offline: every manifest against Kubernetes' schemas
(kubernetes-validate) or KEDA's CRD fields (keda_schema.py), the kustomizations' wiring,
a setting for every field of Settings, probes on the operations port, and KEDA's query run on a
real database. The example overlay is rendered (tests/platform/kustomize.py, and `kubectl
kustomize` too where kubectl is installed)."""

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queue
from emobot.settings import Settings
from tests.platform.keda_schema import SCHEMAS
from tests.platform.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE, OVERLAY = K8S / "base", K8S / "overlays" / "example"
KUBERNETES = "1.33"
SECRET_FILES = ("secrets.env", "keda.env")  # the operator's, made from the .example files


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[str, dict[str, Any]]:
    """Every resource of base and overlay by "Kind/name"."""
    found = {}
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in documents(path):
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def secrets_example(name: str) -> dict[str, str]:
    return env_file(OVERLAY / f"{name}.example")


def validate(doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def generated(kind: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """The ConfigMap or Secret kustomize makes from an env file."""
    if kind == "Secret":
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "data": encoded}
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "data": data}


def operations_settings() -> dict[str, str]:
    """What the processes get: the base's ConfigMap, merged with the overlay's, and Secrets."""
    return {
        **env_file(BASE / "config.env"),
        **env_file(OVERLAY / "config.env"),
        **secrets_example("secrets.env"),
    }


def container(resources: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    [only] = resources[f"Deployment/{name}"]["spec"]["template"]["spec"]["containers"]
    return only


def test_every_manifest_is_valid_for_kubernetes_or_keda() -> None:
    resources = manifests()
    for doc in resources.values():
        validate(doc)
    validate(generated("ConfigMap", "emobot-config", operations_settings()))
    validate(generated("Secret", "emobot-secrets", secrets_example("secrets.env")))
    validate(generated("Secret", "emobot-keda", secrets_example("keda.env")))
    kinds = {key.split("/")[0] for key in resources}
    assert kinds == {
        "Job",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "ScaledObject",
        "TriggerAuthentication",
        "Namespace",
        "Ingress",
    }


def test_the_validators_refuse_a_wrong_manifest() -> None:
    resources = manifests()
    deployment = resources["Deployment/emobot-bot"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate({**deployment, "spec": {**deployment["spec"], "replicas": "two"}})
    scaled = resources["ScaledObject/emobot-worker"]
    trigger = scaled["spec"]["triggers"][0]
    numeric = {**trigger, "metadata": {**trigger["metadata"], "targetQueryValue": 32}}
    with pytest.raises(jsonschema.ValidationError):  # KEDA's metadata values are strings
        validate({**scaled, "spec": {**scaled["spec"], "triggers": [numeric]}})
    with pytest.raises(jsonschema.ValidationError):  # a field KEDA does not have
        validate({**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}})


def test_the_kustomizations_list_every_manifest_and_file() -> None:
    for folder in (BASE, OVERLAY):
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        listed = {folder / entry for entry in kustomization["resources"]}
        assert all(path.exists() for path in listed), listed
        manifests_here = {p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert manifests_here <= listed
        for generator in (
            *kustomization.get("configMapGenerator", []),
            *kustomization.get("secretGenerator", []),
        ):
            for name in generator["envs"]:
                example = folder / f"{name}.example"
                assert (folder / name).is_file() or (name in SECRET_FILES and example.is_file())
    # The operator's secret files are never committed.
    ignored = (OVERLAY / ".gitignore").read_text().split()
    assert set(SECRET_FILES) <= set(ignored)


def test_config_and_secrets_hold_every_setting_and_make_valid_settings() -> None:
    config = env_file(BASE / "config.env")
    secrets = secrets_example("secrets.env")
    assert not set(config) & set(secrets)
    assert set(config) | set(secrets) == {name.upper() for name in Settings.model_fields}
    assert set(env_file(OVERLAY / "config.env")) <= set(config)  # merged: overrides only
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in operations_settings().items()})
    assert settings.webhook_url and settings.metrics_port and settings.bot_token
    assert settings.database_url and settings.database_url.endswith("?ssl=require")


def test_processes_are_probed_and_scraped_on_their_operations_port() -> None:
    resources = manifests()
    config = env_file(BASE / "config.env")
    for name in ("emobot-bot", "emobot-worker", "emobot-trainer"):
        spec = container(resources, name)
        ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
        assert ports["metrics"] == int(config["METRICS_PORT"])
        assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
        sources = {ref[key]["name"] for ref in spec["envFrom"] for key in ref}
        assert sources == {"emobot-config", "emobot-secrets"}
        template = resources[f"Deployment/{name}"]["spec"]["template"]["metadata"]
        assert template["annotations"]["prometheus.io/port"] == config["METRICS_PORT"]
        assert spec["resources"]["requests"] and spec["resources"]["limits"]["memory"]
    bot = container(resources, "emobot-bot")
    assert {p["name"]: p["containerPort"] for p in bot["ports"]}["webhook"] == int(
        config["WEBHOOK_PORT"]
    )
    assert resources["Service/emobot-bot"]["spec"]["ports"][0]["targetPort"] == "webhook"
    path = resources["Ingress/emobot-bot"]["spec"]["rules"][0]["http"]["paths"][0]["path"]
    assert path == "/telegram/webhook"
    assert resources["Deployment/emobot-bot"]["spec"]["replicas"] >= 2
    assert resources["Deployment/emobot-trainer"]["spec"]["replicas"] == 1


def test_keda_scales_the_worker_from_zero_with_its_own_connection() -> None:
    resources = manifests()
    worker = resources["Deployment/emobot-worker"]
    assert "replicas" not in worker["spec"]  # KEDA owns it; an apply must not reset it
    scaled = resources["ScaledObject/emobot-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["minReplicaCount"] == 0
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "postgresql"
    auth = resources[f"TriggerAuthentication/{trigger['authenticationRef']['name']}"]
    [ref] = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "connection"
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    [keda] = [g for g in overlay["secretGenerator"] if g["name"] == ref["name"]]
    assert keda["options"]["disableNameSuffixHash"]  # KEDA's reference is not renamed
    assert ref["key"] in secrets_example(keda["envs"][0])
    connection = secrets_example("keda.env")["connection"]
    assert connection.startswith("postgresql://")  # libpq form, for KEDA's driver


async def test_the_scaling_query_counts_the_requests_not_answered(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    query = manifests()["ScaledObject/emobot-worker"]["spec"]["triggers"][0]["metadata"]["query"]
    async with sessions.begin() as session:
        for chat in range(4):
            await queue.enqueue(session, chat_id=chat, user_id=None, message_id=1, blob_key="k")
    async with sessions.begin() as session:
        [done, _] = await queue.claim(session, worker="w", limit=2, lease_s=60)
        await queue.mark_replied(session, [done.id])
    async with sessions() as session:
        counted = await session.scalar(text(query))
        backlog = await queue.backlog(session)
    assert counted == backlog.queued + backlog.processing == 3


def example_overlay(tmp_path: Path) -> Path:
    """The example overlay with its secrets files made from the .example ones."""
    shutil.copytree(K8S, tmp_path / "kubernetes")
    overlay = tmp_path / "kubernetes" / "overlays" / "example"
    for name in SECRET_FILES:
        shutil.copy(overlay / f"{name}.example", overlay / name)
    return overlay


def without_hashes(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Documents by kind and name, generated names' hash suffixes cut (the renderers hash
    differently), so that two renderings compare."""
    hashed = {
        doc["metadata"]["name"]: doc["metadata"]["name"].rsplit("-", 1)[0]
        for doc in docs
        if doc["kind"] in ("ConfigMap", "Secret")
        and doc["metadata"]["name"].count("-") >= 2
        and doc["metadata"]["name"] not in ("emobot-keda",)
    }
    text = yaml.safe_dump_all(docs, sort_keys=True)
    for name, base in hashed.items():
        text = text.replace(name, base)
    found = {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text) if d}
    for doc in found.values():
        if doc["kind"] == "Secret":  # kubectl wraps long base64 lines
            doc["data"] = {k: base64.b64decode(v) for k, v in doc["data"].items()}
    return found


def test_the_example_overlay_renders(tmp_path: Path) -> None:
    """Rendered by tests/platform/kustomize.py (CI has no kubectl new enough); where kubectl is
    installed, its rendering must be the same."""
    overlay = example_overlay(tmp_path)
    rendered = render(overlay)
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        result = subprocess.run(
            [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        by_kubectl = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        assert without_hashes(rendered) == without_hashes(by_kubectl)
    names = {doc["kind"]: set() for doc in rendered}
    for doc in rendered:
        validate(doc)
        names[doc["kind"]].add(doc["metadata"]["name"])
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "emobot"
    # Generated names carry a content hash; every reference was rewritten to it. Bot and
    # worker run the serving image (no TensorFlow), trainer and migrate the training one.
    assert names["ConfigMap"] != {"emobot-config"}
    for doc in rendered:
        if doc["kind"] in ("Deployment", "Job"):
            image = (
                "train"
                if doc["metadata"]["name"] in ("emobot-trainer", "emobot-migrate")
                else "serve"
            )
            for spec in doc["spec"]["template"]["spec"]["containers"]:
                assert spec["image"] == f"registry.example.org/emobot:0.1.0-{image}"
                for ref in spec["envFrom"]:
                    kind = "ConfigMap" if "configMapRef" in ref else "Secret"
                    assert next(iter(ref.values()))["name"] in names[kind]
    [scaled] = [doc for doc in rendered if doc["kind"] == "ScaledObject"]
    assert scaled["spec"]["maxReplicaCount"] == 3  # the overlay's patch
    [config] = [doc for doc in rendered if doc["kind"] == "ConfigMap"]
    assert config["data"]["WEBHOOK_URL"] == "https://bot.example.org"
    assert config["data"]["BATCH_SIZE"] == "32"  # the base's, merged
