"""Kubernetes manifests under deploy/ (kustomize base, components, overlays).

Every resource file is schema-checked as it is (kubernetes-validate's offline schemas, strict, for
Kubernetes 1.30 and the newest the package ships; our CRDs against small schemas of our own).
kustomize itself is emulated only as far as needed to check the overlays: resources are collected,
patches must target a resource of the base and are merged with a small strategic-merge emulation,
generated ConfigMaps are built from their files. Where `kubectl` is installed, the real
`kubectl kustomize` output of every directory is validated too (skipped otherwise).
The gateway's config.yaml of each directory passes the gateway's own validation, laid out as the
Pod sees it (projected ConfigMap + Secret volume, environment from the container spec).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from gateway.server import DRAIN_NOTICE
from tests.deploy.k8s import (
    CRD_SCHEMAS,
    DEPLOY,
    check_gateway_config,
    container_port,
    gateway_container,
    identity_headers,
    load_docs,
    materialize_pod_files,
    merge_patch,
    names,
    validate_resource,
)

BASE = DEPLOY / "base"
OVERLAYS = sorted(p for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
COMPONENTS = sorted(p for p in (DEPLOY / "components").iterdir() if (p / "kustomization.yaml").is_file())
KUSTOMIZATIONS = [BASE, *COMPONENTS, *OVERLAYS]
CONFIG_MAP = "eid-gateway-config"

KUSTOMIZATION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind"],
    "properties": {
        "apiVersion": {"enum": ["kustomize.config.k8s.io/v1beta1", "kustomize.config.k8s.io/v1alpha1"]},
        "kind": {"enum": ["Kustomization", "Component"]},
        "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "resources": {"type": "array", "items": {"type": "string"}},
        "components": {"type": "array", "items": {"type": "string"}},
        "patches": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": False, "required": ["path"],
                      "properties": {"path": {"type": "string"}}},
        },
        "configMapGenerator": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "files"],
                "properties": {
                    "name": {"type": "string"},
                    "behavior": {"enum": ["create", "replace", "merge"]},
                    "files": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "options": {"type": "object", "properties": {"labels": {"type": "object"}}},
                },
            },
        },
        "images": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": False, "required": ["name"],
                      "properties": {"name": {"type": "string"}, "newName": {"type": "string"},
                                     "newTag": {"type": "string"}, "digest": {"type": "string"}}},
        },
    },
    "allOf": [
        {"if": {"properties": {"kind": {"const": "Component"}}},
         "then": {"properties": {"apiVersion": {"const": "kustomize.config.k8s.io/v1alpha1"}}},
         "else": {"properties": {"apiVersion": {"const": "kustomize.config.k8s.io/v1beta1"}}}},
    ],
}


@dataclass
class Built:
    """What kustomize would produce, without the name hashes and without kustomize."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> file name -> text
    namespace: str | None = None


def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def build(directory: Path) -> Built:
    spec = kustomization(directory)
    built = Built()
    for entry in [*spec.get("resources", []), *spec.get("components", [])]:
        path = (directory / entry).resolve()
        if path.is_dir():
            inner = build(path)
            built.docs += inner.docs
            built.config_maps.update(inner.config_maps)
        else:
            built.docs += load_docs(path)
    for generator in spec.get("configMapGenerator", []):
        files = {Path(f).name: (directory / f).read_text(encoding="utf-8") for f in generator["files"]}
        behavior = generator.get("behavior", "create")
        exists = generator["name"] in built.config_maps
        assert exists == (behavior != "create"), f"{directory}: generator {generator['name']} ({behavior})"
        if behavior == "merge":
            files = {**built.config_maps[generator["name"]], **files}
        built.config_maps[generator["name"]] = files
    for patch in spec.get("patches", []):
        for doc in load_docs(directory / patch["path"]):
            targets = [
                i for i, d in enumerate(built.docs)
                if (d["apiVersion"], d["kind"], d["metadata"]["name"])
                == (doc["apiVersion"], doc["kind"], doc["metadata"]["name"])
            ]
            assert len(targets) == 1, f"{patch['path']}: targets no resource of the base"
            built.docs[targets[0]] = merge_patch(built.docs[targets[0]], doc)
    for image in spec.get("images", []):
        for doc in built.docs:
            for container in pod_spec(doc).get("containers", []):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', 'latest')}"
    if "namespace" in spec:
        built.namespace = spec["namespace"]
        for doc in built.docs:
            doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return built


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
        return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return {}


def the(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name}"
    return found[0]


def resource_files(directory: Path) -> list[Path]:
    spec = kustomization(directory)
    return [directory / r for r in spec.get("resources", []) if (directory / r).is_file()]


def rel(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


def gateway_settings(built: Built, tmp_path: Path) -> Any:
    deployment = the(built.docs, "Deployment", "eid-gateway")
    config_file, environ = materialize_pod_files(
        tmp_path, deployment, built.config_maps[CONFIG_MAP]["config.yaml"], CONFIG_MAP
    )
    return check_gateway_config(config_file, environ)


# ---------------------------------------------------------------- kustomization files themselves


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_is_well_formed_and_lists_every_file(directory: Path) -> None:
    spec = kustomization(directory)
    jsonschema.validate(spec, KUSTOMIZATION_SCHEMA)
    referenced = {"kustomization.yaml"}
    for entry in [*spec.get("resources", []), *spec.get("components", [])]:
        path = directory / entry
        assert path.is_file() or (path / "kustomization.yaml").is_file(), f"{entry} does not exist"
        referenced.add(entry)
    for patch in spec.get("patches", []):
        assert (directory / patch["path"]).is_file()
        referenced.add(patch["path"])
    for generator in spec.get("configMapGenerator", []):
        for name in generator["files"]:
            assert (directory / name).is_file()
            referenced.add(name)
    # A manifest written but not listed would silently not be deployed.
    orphans = {p.name for p in directory.iterdir() if p.is_file()} - referenced
    assert not orphans, f"files not referenced by kustomization.yaml: {sorted(orphans)}"


@pytest.mark.parametrize("directory", OVERLAYS, ids=rel)
def test_overlay_builds_on_the_base(directory: Path) -> None:
    spec = kustomization(directory)
    assert "../../base" in spec["resources"]
    for component in spec.get("components", []):
        assert (directory / component).resolve().parent == (DEPLOY / "components")


# ---------------------------------------------------------------- every resource against its schema


@pytest.mark.parametrize(
    "path", [p for d in KUSTOMIZATIONS for p in resource_files(d)], ids=rel
)
def test_resource_file_validates(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        validate_resource(doc, rel(path))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_patched_and_generated_resources_validate(directory: Path) -> None:
    built = build(directory)
    for doc in built.docs:
        validate_resource(doc, f"{rel(directory)} (after patches)")
    for name, files in built.config_maps.items():
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": files}
        validate_resource(config_map, f"{rel(directory)} generated ConfigMap {name}")


@pytest.mark.parametrize("directory", [d for d in OVERLAYS if kustomization(d).get("patches")], ids=rel)
def test_patches_are_well_formed_and_target_the_base(directory: Path) -> None:
    base = build(BASE)
    for patch in kustomization(directory)["patches"]:
        for doc in load_docs(directory / patch["path"]):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{patch['path']} is not a resource patch"
            key = (doc["apiVersion"], doc["kind"], doc["metadata"]["name"])
            assert key in {(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in base.docs}, key


def test_crd_schemas_refuse_broken_resources() -> None:
    """The hand-written CRD schemas are not vacuous."""
    middleware = load_docs(DEPLOY / "overlays/traefik/middleware.yaml")[0]
    broken = copy.deepcopy(middleware)
    del broken["spec"]["forwardAuth"]["address"]
    typo = copy.deepcopy(middleware)
    typo["spec"]["forwardAuth"]["authResponseHeader"] = ["X-Auth-Ssn"]
    monitor = load_docs(DEPLOY / "components/servicemonitor/servicemonitor.yaml")[0]
    no_endpoints = copy.deepcopy(monitor)
    no_endpoints["spec"]["endpoints"] = []
    for doc in (broken, typo, no_endpoints):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])])


# ---------------------------------------------------------------- the gateway's own config validation


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=rel)
def test_config_passes_gateway_validation(directory: Path, tmp_path: Path) -> None:
    built = build(directory)
    settings = gateway_settings(built, tmp_path)
    deployment = the(built.docs, "Deployment", "eid-gateway")
    container = gateway_container(deployment)
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", container_port(container, "http"))
    assert settings.metrics_listen == ("0.0.0.0", container_port(container, "metrics"))
    # One worker per pod: with N, worker i's metrics would be on port + i, which no port declares.
    assert container["args"][-2:] == ["--workers", "1"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.shutdown_grace + DRAIN_NOTICE
    # Several replicas must sign assertions with one key, or the JWKS differs between them.
    assert settings.assertion.signing_key_file is not None
    assert settings.public_url.startswith("https://")


# ---------------------------------------------------------------- the base's contract


def test_base_deployment_contract() -> None:
    docs = build(BASE).docs
    deployment = the(docs, "Deployment", "eid-gateway")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = gateway_container(deployment)
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"] == {"path": "/_auth/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/_auth/healthz", "port": "http"}
    assert "lifecycle" not in container, "no preStop: readiness drains on SIGTERM"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GW_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "eid-gateway-secrets", "key": "session-secret"
    }
    secret_sources = [
        s["secret"] for v in pod["volumes"] if "projected" in v for s in v["projected"]["sources"] if "secret" in s
    ]
    assert [s["name"] for s in secret_sources] == ["eid-gateway-secrets"]
    assert all(i["path"].startswith("keys/") for i in secret_sources[0]["items"])
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret is committed; it is created out of band"


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=rel)
def test_services_pdb_and_monitor_select_the_gateway(directory: Path) -> None:
    built = build(directory)
    docs = built.docs
    deployment = the(docs, "Deployment", "eid-gateway")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container = gateway_container(deployment)
    service = the(docs, "Service", "eid-gateway")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "http")]
    container_port(container, "http")
    metrics = the(docs, "Service", "eid-gateway-metrics")
    assert metrics["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"]
    pdb = the(docs, "PodDisruptionBudget", "eid-gateway")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert deployment["spec"]["replicas"] - pdb["spec"]["maxUnavailable"] >= 1
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert allowed == {container_port(container, "http"), container_port(container, "metrics")}


def test_service_monitor_component_scrapes_the_metrics_service() -> None:
    monitor = the(build(DEPLOY / "components/servicemonitor").docs, "ServiceMonitor", "eid-gateway")
    metrics = the(build(BASE).docs, "Service", "eid-gateway-metrics")
    gateway = the(build(BASE).docs, "Service", "eid-gateway")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= metrics["metadata"]["labels"].items()
    assert not selector.items() <= gateway["metadata"]["labels"].items(), "the public Service is not scraped"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in metrics["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


# ---------------------------------------------------------------- the four integrations


def verify_url(built: Built) -> str:
    service = the(built.docs, "Service", "eid-gateway")
    port = service["spec"]["ports"][0]["port"]
    return f"http://eid-gateway.{built.namespace}.svc.cluster.local:{port}/_auth/verify"


def assert_trusts_a_pod_cidr(settings: Any) -> None:
    assert settings.trusted_proxies, "/_auth/verify answers only trusted_proxies"
    for network in settings.trusted_proxies:
        # A cluster-internal range, never "everyone" (0.0.0.0/0) or a public range.
        assert network.is_private and network.prefixlen >= 8, network


def test_sidecar(tmp_path: Path) -> None:
    built = build(DEPLOY / "overlays/sidecar")
    settings = gateway_settings(built, tmp_path)
    deployment = the(built.docs, "Deployment", "eid-gateway")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"gateway", "app"}
    upstream = urlsplit(settings.upstream)
    assert upstream.hostname == "127.0.0.1", "the gateway reaches the app over the Pod's loopback"
    app = containers["app"]
    assert "ports" not in app, "the app declares no port: it listens on loopback only"
    assert {"name": "LISTEN_ADDRESS", "value": f"127.0.0.1:{upstream.port}"} in app["env"]
    # The app's readiness is checked through the gateway, on a public path.
    assert app["readinessProbe"]["httpGet"]["port"] == container_port(containers["gateway"], "http")
    assert app["readinessProbe"]["httpGet"]["path"] in settings.public_paths
    # The app outlives the gateway's drain.
    sleep = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= settings.shutdown_grace + DRAIN_NOTICE
    assert sleep < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    service = the(built.docs, "Service", "eid-gateway")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ingress_nginx(tmp_path: Path) -> None:
    built = build(DEPLOY / "overlays/ingress-nginx")
    settings = gateway_settings(built, tmp_path)
    assert_trusts_a_pod_cidr(settings)
    app = the(built.docs, "Ingress", "app")
    annotations = app["metadata"]["annotations"]
    public = urlsplit(settings.public_url)
    assert annotations == {
        "nginx.ingress.kubernetes.io/auth-url": verify_url(built),
        "nginx.ingress.kubernetes.io/auth-signin":
            f"https://{public.hostname}/_auth/login?rd=$scheme://$host$escaped_request_uri",
        "nginx.ingress.kubernetes.io/auth-response-headers": ",".join(identity_headers(settings)),
    }
    assert annotations["nginx.ingress.kubernetes.io/auth-response-headers"] == (
        "X-Auth-Ssn,X-Auth-Name,X-Auth-Country,X-Auth-Assertion"
    )
    # The absolute rd must be accepted for the protected host, and the session cookie must reach it.
    app_host = app["spec"]["rules"][0]["host"]
    assert any(app_host.endswith(domain) for domain, _port in settings.allowed_redirect_domains)
    assert settings.session.cookie_domain and app_host.endswith("." + settings.session.cookie_domain)
    login = the(built.docs, "Ingress", "eid-gateway")
    assert login["spec"]["rules"][0]["host"] == public.hostname
    path = login["spec"]["rules"][0]["http"]["paths"][0]
    assert (path["path"], path["pathType"]) == ("/_auth/", "Prefix")
    assert path["backend"]["service"] == {"name": "eid-gateway", "port": {"name": "http"}}


def test_traefik(tmp_path: Path) -> None:
    built = build(DEPLOY / "overlays/traefik")
    settings = gateway_settings(built, tmp_path)
    assert_trusts_a_pod_cidr(settings)
    middleware = the(built.docs, "Middleware", "eid-gateway-auth")
    forward = middleware["spec"]["forwardAuth"]
    assert forward["address"] == verify_url(built)
    assert forward["trustForwardHeader"] is False
    assert forward["authResponseHeaders"] == identity_headers(settings)
    # The gateway reads Cookie (the session) and Accept (browser navigation -> 302); Traefik adds
    # X-Forwarded-Method/-Proto/-Host/-Uri itself after this filter.
    assert sorted(forward["authRequestHeaders"]) == ["Accept", "Cookie"]
    app = the(built.docs, "IngressRoute", "app")
    assert [m["name"] for m in app["spec"]["routes"][0]["middlewares"]] == ["eid-gateway-auth"]
    login = the(built.docs, "IngressRoute", "eid-gateway")
    route = login["spec"]["routes"][0]
    assert "middlewares" not in route
    assert route["match"] == f"Host(`{urlsplit(settings.public_url).hostname}`) && PathPrefix(`/_auth/`)"
    assert route["services"] == [{"name": "eid-gateway", "port": 8080}]
    app_host = app["spec"]["routes"][0]["match"].split("`")[1]
    assert any(app_host.endswith(domain) for domain, _port in settings.allowed_redirect_domains)


def envoy_config(built: Built) -> dict[str, Any]:
    return yaml.safe_load(built.config_maps["envoy-config"]["envoy.yaml"])  # type: ignore[no-any-return]


def test_envoy(tmp_path: Path) -> None:
    built = build(DEPLOY / "overlays/envoy")
    settings = gateway_settings(built, tmp_path)
    assert_trusts_a_pod_cidr(settings)
    envoy = envoy_config(built)
    (listener,) = envoy["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    assert hcm["name"] == "envoy.filters.network.http_connection_manager"
    manager = hcm["typed_config"]
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters == [
        "envoy.filters.http.header_mutation", "envoy.filters.http.ext_authz", "envoy.filters.http.router"
    ]
    lowered = [h.lower() for h in identity_headers(settings)]
    mutation = manager["http_filters"][0]["typed_config"]
    assert [m["remove"] for m in mutation["mutations"]["request_mutations"]] == lowered
    ext_authz = manager["http_filters"][1]["typed_config"]
    assert ext_authz["@type"] == "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
    assert ext_authz["failure_mode_allow"] is False
    service = ext_authz["http_service"]
    assert service["path_prefix"] == "/_auth/verify"
    assert service["server_uri"]["uri"] + service["path_prefix"] == verify_url(built)
    allowed = service["authorization_response"]["allowed_upstream_headers"]["patterns"]
    assert [p["exact"] for p in allowed] == lowered
    assert {"cookie", "accept"} <= {p["exact"] for p in ext_authz["allowed_headers"]["patterns"]}
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    assert service["server_uri"]["cluster"] in clusters
    gateway_endpoint = clusters[service["server_uri"]["cluster"]]["load_assignment"]["endpoints"][0]
    address = gateway_endpoint["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert f"http://{address['address']}:{address['port_value']}" == service["server_uri"]["uri"]
    hosts = {v["name"]: v for v in manager["route_config"]["virtual_hosts"]}
    login_route = hosts["login"]["routes"][0]
    assert hosts["login"]["domains"] == [urlsplit(settings.public_url).hostname]
    assert login_route["match"] == {"prefix": "/_auth/"}
    assert login_route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    assert "typed_per_filter_config" not in hosts["app"]["routes"][0]
    for route in (r for v in hosts.values() for r in v["routes"]):
        assert route["route"]["cluster"] in clusters
    # The Envoy Deployment mounts that ConfigMap where its --config-path points.
    deployment = the(built.docs, "Deployment", "envoy")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    config_path = Path(args[args.index("--config-path") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "envoy-config"
    assert config_path.name in built.config_maps["envoy-config"]
    # Only Envoy's pods may reach the gateway's port.
    policy = the(built.docs, "NetworkPolicy", "eid-gateway")
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources == [{"podSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}]


# ---------------------------------------------------------------- the real kustomize, where installed

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=rel)
def test_kubectl_kustomize_output_validates(directory: Path) -> None:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in rendered:
        validate_resource(doc, f"kubectl kustomize {rel(directory)}")
    emulated = build(directory)
    # The emulation above agrees with kustomize on what is produced (names without hash suffixes).
    def kinds_and_names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["kind"], d["metadata"]["name"]) for d in docs}

    generated = {("ConfigMap", name) for name in emulated.config_maps}
    rendered_names = {
        (kind, name.rsplit("-", 1)[0] if kind == "ConfigMap" else name) for kind, name in kinds_and_names(rendered)
    }
    assert rendered_names == kinds_and_names(emulated.docs) | generated
    # The Deployment mounts the generated (hashed) ConfigMap, and everything is in the overlay's namespace.
    deployment = the(rendered, "Deployment", "eid-gateway")
    hashed = {d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"}
    sources = deployment["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
    assert sources[0]["configMap"]["name"] in hashed
    if emulated.namespace:
        assert {d["metadata"].get("namespace") for d in rendered} == {emulated.namespace}
    assert names(rendered, "Deployment") >= {"eid-gateway"}
