"""The Helm chart deploy/helm/eid-gateway.

Always (no helm needed): Chart.yaml against a schema of Chart.yaml v2; values.yaml against the
chart's values.schema.json, which also refuses bad values; the schema's config keys are the
gateway's; the default config (plus the keys the chart sets) passes the gateway's validation; every
.Values path the templates use exists in values.yaml and every value is used; every include is defined.

Rendering needs Helm's template engine: with a `helm` binary on PATH (`helm template`, `helm lint
--strict`), or else the `helm_python` module (PyPI helm-python-sdk, Helm's Go SDK as a library) when
it is importable (helm-python-sdk is a test dependency, so the chart is always rendered).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config import schema as config_schema
from tests.deploy.k8s import (
    CONFIG_PATH,
    DEPLOY,
    K8S_VERSIONS,
    ROOT,
    check_gateway_config,
    container_port,
    gateway_container,
    materialize_pod_files,
    validate_resource,
)

CHART = DEPLOY / "helm/eid-gateway"
TEMPLATES = CHART / "templates"
#: Keys of the gateway config that the chart writes itself (templates/_helpers.tpl "eid-gateway.config").
CHART_OWNED = {"listen", "metrics", "shutdown_grace"}

CHART_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "name", "version"],
    "properties": {
        "apiVersion": {"const": "v2"},
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"},
        "appVersion": {"type": "string"},
        "kubeVersion": {"type": "string"},
        "description": {"type": "string"},
        "type": {"enum": ["application", "library"]},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "home": {"type": "string"},
        "sources": {"type": "array", "items": {"type": "string"}},
        "dependencies": {"type": "array"},
        "maintainers": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "icon": {"type": "string"},
        "deprecated": {"type": "boolean"},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def chart() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())  # type: ignore[no-any-return]


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())  # type: ignore[no-any-return]


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())  # type: ignore[no-any-return]


def merged(override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge key by key, anything else (lists included) is replaced."""
    def merge(base: Any, top: Any) -> Any:
        if isinstance(base, dict) and isinstance(top, dict):
            out = dict(base)
            for key, value in top.items():
                out[key] = merge(base.get(key), value)
            return out
        return copy.deepcopy(top)

    return merge(values(), override)  # type: ignore[no-any-return]


def test_chart_yaml() -> None:
    meta = chart()
    jsonschema.validate(meta, CHART_SCHEMA)
    assert meta["name"] == CHART.name
    assert meta["type"] == "application"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["appVersion"] == project["version"], "the chart's appVersion is the gateway's version"
    assert meta["kubeVersion"] == f">={K8S_VERSIONS[0]}.0-0", "the oldest version the manifests are checked against"


def test_values_match_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.Draft7Validator(schema()).validate(values())


@pytest.mark.parametrize(
    "override",
    [
        {"workers": 0},
        {"replicaCount": "2"},
        {"unknown": True},
        {"config": {"listen": "0.0.0.0:8080"}},  # chart-owned
        {"config": {"metrics": {"listen": "0.0.0.0:9090"}}},
        {"config": {"providers": [{"name": "x", "issuer": "https://op", "client_id": "c", "scopes": ["profile"]}]}},
        {"config": {"providers": [{"name": "Bad Name", "issuer": "https://op", "client_id": "c"}]}},
        {"config": {"session": {"secret": "${S}", "lifetime": "8 hours"}}},
        {"config": {"sesion": {}}},
        {"config": {"rules": [{"path_prefix": "/admin/", "require": {"country": []}}]}},
        {"config": {"routes": [{"name": "Bad Name", "upstream": "http://a:1"}]}},
        {"config": {"routes": [{"name": "a"}]}},
        {"config": {"routes": [{"name": "a", "upstream": "http://a:1", "match": {"port": 1}}]}},
        {"config": {"audit": {"file": "-"}}},
        {"secrets": {"create": True, "stringData": {}}},
        {"secrets": {"files": ["../escape.pem"]}},
        {"image": {"digest": "sha256:short"}},
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": None, "minAvailable": None}},
        {"readinessProbe": {"httpGet": {"path": "/_auth/readyz", "port": "http"}, "periodSecond": 5}},
        {"metrics": {"serviceMonitor": {"enabled": True, "interval": "often"}}},
    ],
    ids=lambda o: json.dumps(o)[:60],
)
def test_schema_refuses_bad_values(override: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema()).validate(merged(override))


def test_routes_config_validates_without_a_top_level_upstream(tmp_path: Path) -> None:
    vals = values()
    config = vals["config"]
    for key in ("upstream", "headers", "public_paths", "rules"):
        config.pop(key, None)
    config["routes"] = [{"name": "app", "match": {"path_prefix": "/"}, "upstream": "http://app:8080",
                         "headers": {"name": "X-Auth-Name"}}]
    jsonschema.Draft7Validator(schema()).validate(vals)
    del config["routes"]
    with pytest.raises(jsonschema.ValidationError):  # neither upstream nor routes
        jsonschema.Draft7Validator(schema()).validate(vals)


def test_schema_has_no_ref_with_siblings() -> None:
    """Draft 7 ignores every keyword beside "$ref": such a constraint would silently do nothing."""
    def walk(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            found = [path] if "$ref" in node and len(node) > 1 else []
            return found + [p for key, value in node.items() for p in walk(value, f"{path}/{key}")]
        if isinstance(node, list):
            return [p for i, value in enumerate(node) for p in walk(value, f"{path}/{i}")]
        return []

    assert not walk(schema(), "#")


def test_schema_knows_exactly_the_gateways_config_keys() -> None:
    """Kept in step with gateway/config.py: a new config key must be added to values.schema.json."""
    config = schema()["properties"]["config"]["properties"]
    provider = schema()["definitions"]["provider"]["properties"]
    assert set(config) | CHART_OWNED == config_schema.TOP_KEYS
    assert set(provider) == config_schema.PROVIDER_KEYS
    assert set(config["session"]["properties"]) == config_schema.SESSION_KEYS
    assert set(config["assertion"]["properties"]) == config_schema.ASSERTION_KEYS
    assert set(config["rules"]["items"]["properties"]) == config_schema.RULE_KEYS
    route = config["routes"]["items"]["properties"]
    assert set(route) == config_schema.ROUTE_KEYS
    assert set(route["match"]["properties"]) == config_schema.MATCH_KEYS
    assert set(route["assertion"]["properties"]) == config_schema.ROUTE_ASSERTION_KEYS
    assert set(config["pairwise"]["properties"]) == config_schema.PAIRWISE_KEYS
    assert set(config["audit"]["properties"]) == config_schema.AUDIT_KEYS
    assert set(config["admin"]["properties"]) == config_schema.ADMIN_KEYS


def chart_config(vals: dict[str, Any]) -> dict[str, Any]:
    """What templates/_helpers.tpl "eid-gateway.config" writes, restated in Python (the rendering
    tests below compare it with Helm's actual output when Helm is available)."""
    doc = copy.deepcopy(vals["config"])
    doc["listen"] = f"0.0.0.0:{vals['containerPorts']['http']}"
    if vals["metrics"]["enabled"]:
        doc["metrics"] = {"listen": f"0.0.0.0:{vals['containerPorts']['metrics']}"}
    doc["shutdown_grace"] = f"{vals['shutdownGraceSeconds']}s"
    return doc


def test_default_config_passes_gateway_validation(tmp_path: Path) -> None:
    vals = values()
    (tmp_path / "keys").mkdir()
    from gateway import keys

    for name in vals["secrets"]["files"]:
        (tmp_path / "keys" / name).write_bytes(keys.generate_ec_pem())
    environ = {variable: "dummy-secret-value-" + "x" * 40 for variable in vals["secrets"]["env"]}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(chart_config(vals)))
    settings = check_gateway_config(config_file, environ)
    assert settings.assertion.signing_key_file is not None, "several replicas need one signing key"
    assert vals["terminationGracePeriodSeconds"] > vals["shutdownGraceSeconds"] + 2
    assert vals["readinessProbe"]["httpGet"]["path"] == "/_auth/readyz"
    assert vals["livenessProbe"]["httpGet"]["path"] == "/_auth/healthz"
    assert vals["podDisruptionBudget"]["enabled"] and vals["replicaCount"] == 2
    assert vals["securityContext"]["readOnlyRootFilesystem"] is True
    assert vals["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert vals["podSecurityContext"]["runAsNonRoot"] is True


def template_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TEMPLATES.iterdir()) if p.is_file()}


def values_paths(node: Any, prefix: str = "") -> set[str]:
    paths = {prefix} if prefix else set()
    if isinstance(node, dict):
        for key, value in node.items():
            paths |= values_paths(value, f"{prefix}.{key}" if prefix else key)
    return paths


# Values whose content is passed through whole (toYaml, range): their inner keys are not referenced.
_WHOLE = ("config", "podSecurityContext", "securityContext", "resources", "readinessProbe", "livenessProbe",
          "secrets.stringData", "secrets.env", "podAnnotations", "podLabels", "nodeSelector", "affinity",
          "metrics.serviceMonitor.labels", "service.annotations", "metrics.service.annotations",
          "serviceAccount.annotations")


def test_templates_use_only_defined_values_and_every_value_is_used() -> None:
    text = "\n".join(template_sources().values())
    used = set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text))
    defined = values_paths(values())
    unknown = {u for u in used if u not in defined}
    assert not unknown, f"templates use values that values.yaml does not define: {sorted(unknown)}"
    unused = {
        d for d in defined
        if not any(u == d or u.startswith(d + ".") or d.startswith(u + ".") for u in used)
        and not d.startswith(tuple(w + "." for w in _WHOLE))
    }
    assert not unused, f"values.yaml defines values no template uses: {sorted(unused)}"


def test_every_include_is_defined() -> None:
    sources = template_sources()
    defined = set(re.findall(r'{{-?\s*define\s+"([^"]+)"', sources["_helpers.tpl"]))
    included = {n for text in sources.values() for n in re.findall(r'(?:include|template)\s+"([^"]+)"', text)}
    assert included <= defined, sorted(included - defined)
    assert {"deployment.yaml", "service.yaml", "configmap.yaml", "pdb.yaml", "servicemonitor.yaml",
            "_helpers.tpl"} <= sources.keys()


# ---------------------------------------------------------------- rendering, where Helm is available

HELM = shutil.which("helm")
HELM_PYTHON = importlib.util.find_spec("helm_python") is not None
# helm-python-sdk is a test dependency, so the chart is always rendered; a missing engine is a failure.
assert HELM is not None or HELM_PYTHON, "install the test dependencies: helm-python-sdk renders the chart"
RELEASE, NAMESPACE = "eid-gateway", "auth"


def render(vals: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    if HELM is not None:
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(vals))
        result = subprocess.run(
            [HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        text = result.stdout
    else:
        import helm_python

        manifests = helm_python.Chart.load(CHART).render(vals, name=RELEASE, namespace=NAMESPACE, is_install=True)
        text = "\n---\n".join(v for k, v in sorted(manifests.items()) if not k.endswith("NOTES.txt"))
    return [d for d in yaml.safe_load_all(text) if d]


def render_fails(vals: dict[str, Any], tmp_path: Path) -> str:
    if HELM is not None:
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(vals))
        result = subprocess.run(
            [HELM, "template", RELEASE, str(CHART), "-f", str(values_file)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode != 0
        return result.stderr
    import helm_python

    with pytest.raises(helm_python.HelmError) as info:
        helm_python.Chart.load(CHART).render(vals, name=RELEASE, namespace=NAMESPACE)
    return str(info.value)


VARIANTS = {
    "defaults": {},
    "workers-3-servicemonitor": {"workers": 3, "metrics": {"serviceMonitor": {"enabled": True}}},
    "created-secret-digest-minavailable": {
        "secrets": {"create": True, "stringData": {"session-secret": "s" * 40, "assertion-key.pem": "PEM\nLINES\n"}},
        "image": {"digest": "sha256:" + "a" * 64},
        "podDisruptionBudget": {"maxUnavailable": None, "minAvailable": 1},
    },
    "no-metrics-no-pdb": {"metrics": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
}


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_rendered_chart_validates_and_its_config_passes(variant: str, tmp_path: Path) -> None:
    vals = merged(VARIANTS[variant])
    docs = render(VARIANTS[variant], tmp_path)
    for doc in docs:
        validate_resource(doc, f"helm template ({variant})")
    kinds = sorted(d["kind"] for d in docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = gateway_container(deployment)
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    rendered_config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert rendered_config == chart_config(vals), "the Python restatement above matches the template"
    (tmp_path / "pod").mkdir()
    config_file, environ = materialize_pod_files(
        tmp_path / "pod", deployment, config_map["data"]["config.yaml"], config_map["metadata"]["name"]
    )
    assert str(config_file.relative_to(tmp_path / "pod")) == Path(CONFIG_PATH).name
    settings = check_gateway_config(config_file, environ)
    assert settings.listen_port == container_port(container, "http")
    workers = int(container["args"][container["args"].index("--workers") + 1])
    assert workers == vals["workers"]
    if vals["metrics"]["enabled"]:
        assert settings.metrics_listen is not None
        metrics_ports = [p for p in container["ports"] if p["name"].startswith("metrics")]
        assert [p["containerPort"] for p in metrics_ports] == [settings.metrics_listen[1] + i for i in range(workers)]
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics"))
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [p["name"] for p in metrics_ports]
        for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
            assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
            assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    else:
        assert settings.metrics_listen is None
        assert "ServiceMonitor" not in kinds
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.shutdown_grace + 2
    assert ("PodDisruptionBudget" in kinds) == vals["podDisruptionBudget"]["enabled"]
    assert ("ServiceMonitor" in kinds) == (vals["metrics"]["enabled"] and vals["metrics"]["serviceMonitor"]["enabled"])
    assert ("Secret" in kinds) == vals["secrets"]["create"]
    if vals["secrets"]["create"]:
        secret = next(d for d in docs if d["kind"] == "Secret")
        assert secret["stringData"] == vals["secrets"]["stringData"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for doc in docs:
        selector = doc.get("spec", {}).get("selector", {})
        selector = selector.get("matchLabels", selector) if doc["kind"] != "ServiceMonitor" else {}
        assert selector.items() <= pod_labels.items(), doc["kind"]


def test_rendering_refuses_a_grace_period_shorter_than_the_drain(tmp_path: Path) -> None:
    message = render_fails({"terminationGracePeriodSeconds": 12, "shutdownGraceSeconds": 10}, tmp_path)
    assert "terminationGracePeriodSeconds" in message


def test_helm_lint_strict(tmp_path: Path) -> None:
    if HELM is not None:
        result = subprocess.run([HELM, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return
    import helm_python

    report = helm_python.lint(CHART, strict=True, kube_version=f"v{K8S_VERSIONS[0]}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems
