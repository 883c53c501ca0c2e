"""Shared checks for the deployment artefacts: Kubernetes schemas (built-in kinds through the
kubernetes-validate package, offline; the CRDs we use through small schemas of our own), and the
gateway's own validation of a config.yaml laid out exactly as the Pod would see it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from gateway import keys
from gateway.config import Settings, load_settings
from gateway.runtime import load_key_files

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

#: The oldest Kubernetes the manifests support (the chart's kubeVersion) and the newest the package ships.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())

#: The Pod's view: the projected volume is mounted here, the config is this file in it.
CONFIG_DIR = "/etc/eid-gateway"
CONFIG_PATH = f"{CONFIG_DIR}/config.yaml"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = r"^[0-9]+(ms|s|m|h)$"
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}

# The custom resources we ship have no schema in kubernetes-validate. These follow the CRDs'
# documented fields (Prometheus Operator ServiceMonitor, Traefik v3 Middleware and IngressRoute)
# for the parts we use; unknown fields are refused where a typo would silently disable something.
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {
                        "type": "object",
                        "required": ["matchLabels"],
                        "properties": {"matchLabels": {"type": "object", "minProperties": 1}},
                    },
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "string", "minLength": 1},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": {"type": "string", "pattern": _DURATION},
                                "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            },
                        },
                    },
                },
            },
        },
    },
    ("traefik.io/v1alpha1", "Middleware"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["forwardAuth"],
                "properties": {
                    "forwardAuth": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["address"],
                        "properties": {
                            "address": {"type": "string", "pattern": "^https?://[^/]+/"},
                            "trustForwardHeader": {"type": "boolean"},
                            "authResponseHeaders": _STRINGS,
                            "authResponseHeadersRegex": {"type": "string"},
                            "authRequestHeaders": _STRINGS,
                            "addAuthCookiesToResponse": _STRINGS,
                            "headerField": {"type": "string"},
                            "forwardBody": {"type": "boolean"},
                            "maxBodySize": {"type": "integer"},
                            "preserveLocationHeader": {"type": "boolean"},
                            "preserveRequestMethod": {"type": "boolean"},
                            "tls": {"type": "object"},
                        },
                    }
                },
            },
        },
    },
    ("traefik.io/v1alpha1", "IngressRoute"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["routes"],
                "properties": {
                    "entryPoints": _STRINGS,
                    "tls": {"type": "object"},
                    "routes": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["match", "kind", "services"],
                            "properties": {
                                "match": {"type": "string", "minLength": 1},
                                "kind": {"const": "Rule"},
                                "priority": {"type": "integer"},
                                "middlewares": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["name"],
                                        "properties": {"name": _NAME, "namespace": _NAME},
                                    },
                                },
                                "services": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["name", "port"],
                                        "properties": {
                                            "name": _NAME,
                                            "namespace": _NAME,
                                            "port": {"type": ["integer", "string"]},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def validate_resource(doc: Mapping[str, Any], where: str) -> None:
    """Schema-check one resource: built-in kinds strictly (no unknown field) against every version
    in K8S_VERSIONS; our CRDs against CRD_SCHEMAS; anything else is an error."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in CRD_SCHEMAS:
        try:
            jsonschema.validate(doc, CRD_SCHEMAS[key])
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"{where}: {key[1]} {list(exc.absolute_path)}: {exc.message}") from None
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(dict(doc), version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            raise AssertionError(f"{where}: no schema for {key} in Kubernetes {version}") from None
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{where}: {key[1]} {doc.get('metadata', {}).get('name')} "
                f"fails Kubernetes {version}: {list(exc.path)}: {exc.message}"
            ) from None


def merge_patch(base: Any, patch: Any) -> Any:
    """A small strategic-merge emulation: maps merge; lists of named maps (containers, volumes,
    env) merge by name; other lists are replaced. Enough for the patches we ship."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge_patch(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    named = (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    )
    if named:
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            index = next((n for n, b in enumerate(out) if b["name"] == item["name"]), None)
            if index is None:
                out.append(copy.deepcopy(item))
            else:
                out[index] = merge_patch(out[index], item)
        return out
    return copy.deepcopy(patch)


def gateway_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if "--config" in c.get("args", [])]
    assert len(found) == 1, "exactly one container runs `eid-gateway run --config ...`"
    return found[0]


def container_port(container: Mapping[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container {container['name']} has no port named {name}"
    return int(ports[name])


def config_path_from_args(container: Mapping[str, Any]) -> str:
    args = container["args"]
    return str(args[args.index("--config") + 1])


def env_references(text: str) -> set[str]:
    """${VAR}s of a config, outside YAML comments."""
    return {m for line in text.splitlines() for m in _ENV_REF.findall(line.split("#", 1)[0])}


def materialize_pod_files(
    tmp: Path, deployment: Mapping[str, Any], config_text: str, config_map_name: str
) -> tuple[Path, dict[str, str]]:
    """Lay out the gateway container's config folder as the Pod would see it: the volume mounted
    at the config's folder, its ConfigMap item carrying ``config_text`` and every Secret item a
    freshly generated key. Environment: every variable the container defines, Secret references
    filled with dummy values. Returns (config file, environment)."""
    container = gateway_container(deployment)
    config_file = config_path_from_args(container)
    folder = str(Path(config_file).parent)
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == folder]
    assert len(mounts) == 1, f"one volume is mounted at {folder}"
    assert mounts[0].get("readOnly") is True, "the config volume is mounted read-only"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    sources = volumes[mounts[0]["name"]]["projected"]["sources"]
    config_sources = [s["configMap"] for s in sources if "configMap" in s]
    assert [c["name"] for c in config_sources] == [config_map_name]
    config_items = {i["path"]: i["key"] for i in config_sources[0]["items"]}
    assert config_items.get(Path(config_file).name) == "config.yaml", "config.yaml is projected to --config's path"
    (tmp / Path(config_file).name).write_text(config_text, encoding="utf-8")
    for source in sources:
        for item in source.get("secret", {}).get("items", []):
            target = tmp / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(keys.generate_ec_pem())
    environ: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            environ[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            environ[var["name"]] = "dummy-secret-value-" + "x" * 40
    return tmp / Path(config_file).name, environ


def check_gateway_config(config_file: Path, environ: Mapping[str, str]) -> Settings:
    """What `eid-gateway check-config` does: load_settings, then read every key file."""
    text = config_file.read_text(encoding="utf-8")
    missing = env_references(text) - set(environ)
    assert not missing, f"the config uses ${{{sorted(missing)}}} but the container does not set them"
    settings = load_settings(yaml.safe_load(text), environ, base_dir=config_file.parent)
    load_key_files(settings)
    return settings


def identity_headers(settings: Settings) -> list[str]:
    """The headers /_auth/verify answers with and a proxy must copy upstream."""
    return [*settings.headers.values(), settings.assertion.header]


def names(docs: Iterable[Mapping[str, Any]], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d.get("kind") == kind}
