"""`kubectl kustomize` for the features deploy/kubernetes uses, in Python: CI has no kubectl
new enough (Debian's kubernetes-client is 1.20, whose kustomize cannot read `envs:`, and no
registry CI reaches ships a newer one), so the example overlay is rendered here too.

Supported, as kustomize does them: `resources` (files and folders with a kustomization),
`namespace`, `labels` (metadata only), `images`, `configMapGenerator` and `secretGenerator`
from `envs` files (`behavior: merge`, `options.disableNameSuffixHash`), a content-hash suffix
on generated names with every `envFrom`, `valueFrom` and volume reference rewritten to it, and
JSON 6902 `patches` chosen by `target`. Anything else in a kustomization raises, so a new
feature in the manifests cannot be skipped over silently; where kubectl is installed, the test
compares both renderings.
"""

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]
SUPPORTED = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "labels",
    "images",
    "configMapGenerator",
    "secretGenerator",
    "patches",
}
CLUSTER_SCOPED = {"Namespace"}
GENERATED = "kustomize.emobot/generated"  # kept on a generated object until names are final


def render(folder: Path) -> list[Doc]:
    """The documents `kubectl kustomize folder` prints (order aside)."""
    docs = _build(folder)
    renames = {}
    for doc in docs:
        hashed = doc["metadata"].pop(GENERATED, None)
        if hashed:
            name = doc["metadata"]["name"]
            doc["metadata"]["name"] = f"{name}-{_hash(doc)}"
            renames[(doc["kind"], name)] = doc["metadata"]["name"]
    for doc in docs:
        _rename_references(doc, renames)
    return docs


def _build(folder: Path) -> list[Doc]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise NotImplementedError(f"{folder}: {sorted(unknown)} not supported here")
    docs: list[Doc] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        if path.is_dir():
            docs += _build(path)
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in spec.get(key, []):
            _generate(folder, kind, generator, docs)
    for entry in spec.get("labels", []):
        if set(entry) - {"pairs"}:
            raise NotImplementedError(f"labels options {sorted(entry)} not supported here")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(entry["pairs"])
    for image in spec.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                _set_image(container, image)
    for patch in spec.get("patches", []):
        for doc in docs:
            if _matches(doc, patch["target"]):
                _apply_6902(doc, yaml.safe_load(patch["patch"]))
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs


def _env_pairs(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path}: {line!r} is not KEY=VALUE")
            pairs[key] = value
    return pairs


def _generate(folder: Path, kind: str, generator: Doc, docs: list[Doc]) -> None:
    unknown = set(generator) - {"name", "envs", "behavior", "options"}
    if unknown or set(generator.get("options", {})) - {"disableNameSuffixHash"}:
        raise NotImplementedError(f"generator fields {sorted(generator)} not supported here")
    data: dict[str, str] = {}
    for env in generator.get("envs", []):
        data.update(_env_pairs(folder / env))
    if kind == "Secret":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    existing = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == generator["name"]]
    if generator.get("behavior", "create") == "merge":
        [target] = existing
        target["data"].update(data)
        return
    if existing:
        raise ValueError(f"{kind} {generator['name']} generated twice without behavior: merge")
    doc: Doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": generator["name"]}}
    if kind == "Secret":
        doc["type"] = "Opaque"
    doc["data"] = data
    if not generator.get("options", {}).get("disableNameSuffixHash"):
        doc["metadata"][GENERATED] = True
    docs.append(doc)


def _hash(doc: Doc) -> str:
    content = {k: doc.get(k) for k in ("kind", "type", "data") if k in doc}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def _pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _containers(doc: Doc) -> list[Doc]:
    spec = _pod_spec(doc) or {}
    return spec.get("containers", []) + spec.get("initContainers", [])


def _set_image(container: Doc, image: Doc) -> None:
    name, _, tag = container["image"].partition(":")
    if name != image["name"]:
        return
    name = image.get("newName", name)
    tag = image.get("newTag", tag)
    container["image"] = f"{name}:{tag}" if tag else name


def _matches(doc: Doc, target: Doc) -> bool:
    group = doc["apiVersion"].rpartition("/")[0] if "/" in doc["apiVersion"] else ""
    wanted = {"group": group, "kind": doc["kind"], "name": doc["metadata"]["name"]}
    unknown = set(target) - set(wanted) - {"version"}
    if unknown:
        raise NotImplementedError(f"patch target fields {sorted(unknown)} not supported here")
    return all(target[k] == v for k, v in wanted.items() if k in target)


def _apply_6902(doc: Doc, operations: list[Doc]) -> None:
    for operation in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in operation["path"][1:].split("/")
        ]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if operation["op"] in ("replace", "add"):
            if isinstance(node, list):
                index = len(node) if last == "-" else int(last)
                if operation["op"] == "add":
                    node.insert(index, copy.deepcopy(operation["value"]))
                else:
                    node[index] = copy.deepcopy(operation["value"])
            else:
                if operation["op"] == "replace" and last not in node:
                    raise KeyError(f"replace of a missing {operation['path']}")
                node[last] = copy.deepcopy(operation["value"])
        elif operation["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise NotImplementedError(f"patch op {operation['op']} not supported here")


def _rename_references(doc: Doc, renames: dict[tuple[str, str], str]) -> None:
    spec = _pod_spec(doc)
    if spec is None:
        return

    def renamed(kind: str, ref: Doc | None) -> None:
        if ref is not None and (kind, ref.get("name")) in renames:
            ref["name"] = renames[(kind, ref["name"])]

    for container in _containers(doc):
        for source in container.get("envFrom", []):
            renamed("ConfigMap", source.get("configMapRef"))
            renamed("Secret", source.get("secretRef"))
        for env in container.get("env", []):
            value_from = env.get("valueFrom", {})
            renamed("ConfigMap", value_from.get("configMapKeyRef"))
            renamed("Secret", value_from.get("secretKeyRef"))
    for volume in spec.get("volumes", []):
        renamed("ConfigMap", volume.get("configMap"))
        if "secret" in volume and (("Secret", volume["secret"].get("secretName")) in renames):
            volume["secret"]["secretName"] = renames[("Secret", volume["secret"]["secretName"])]
