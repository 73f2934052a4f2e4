"""k8s manifests: kubernetes-validate strict at a pinned version, CRDs against vendored
schemas (tests/deploy/crds), probes, security contexts, selectors, network policies.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from service.runtime import entrypoint
from tests.deploy.manifests import (
    BUILTIN,
    CRD_SCHEMAS,
    CRDS,
    CUSTOM,
    IMAGE,
    K8S,
    K8S_VERSION,
    KUSTOMIZE,
    MANIFESTS,
    Manifest,
    container,
    effective_settings,
    one,
)


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate as kv
    except ImportError:
        pytest.fail(
            "kubernetes-validate missing: install the dev extra (`pip install -e '.[dev]'`)"
        )
    return kv


def test_every_manifest_is_known() -> None:
    assert {p.name for p in K8S.glob("*.yaml")} >= {
        "namespace.yaml", "configmap.yaml", "secret.template.yaml", "deployment.yaml",
        "service.yaml", "pdb.yaml", "networkpolicy.yaml", "scaledobject.yaml",
    }  # fmt: skip
    for m in MANIFESTS:
        assert {"apiVersion", "kind"} <= m.doc.keys(), m.path
        if m in KUSTOMIZE:
            continue
        if K8S / "monitoring" not in m.path.parents:  # dashboards may live elsewhere
            assert m.doc["metadata"].get("namespace", "myashes-backend") == "myashes-backend", m.id
        if m.group and "." in m.group and not m.group.endswith("k8s.io"):
            assert m in CUSTOM, f"{m.id}: CRD kind without a vendored schema in {CRDS}"


@pytest.mark.parametrize("manifest", BUILTIN, ids=lambda m: m.id)
def test_manifest_validates_strictly(manifest: Manifest) -> None:
    kv = kubernetes_validate()
    try:
        kv.validate(manifest.doc, K8S_VERSION, strict=True)
    except kv.utils.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{manifest.id} invalid for k8s {K8S_VERSION}: {path}: {exc.message}")
    except kv.utils.SchemaNotFoundError as exc:
        pytest.fail(exc.message)


def test_strict_validation_rejects_unknown_fields() -> None:
    kv = kubernetes_validate()
    deployment = copy.deepcopy(one("Deployment"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30  # typo
    with pytest.raises(kv.utils.ValidationError):
        kv.validate(deployment, K8S_VERSION, strict=True)


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema made strict the way kubernetes-validate's schemas are."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


def crd_validator(manifest: Manifest) -> Any:
    import jsonschema

    crd = next(
        yaml.safe_load_all((CRDS / CRD_SCHEMAS[(manifest.group, manifest.doc["kind"])]).read_text())
    )
    version = manifest.doc["apiVersion"].split("/")[1]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert entry["served"], f"{manifest.id}: {version} not served by the vendored CRD"
    return jsonschema.Draft7Validator(_strict(entry["schema"]["openAPIV3Schema"]))


@pytest.mark.parametrize("manifest", CUSTOM, ids=lambda m: m.id)
def test_custom_resource_matches_vendored_crd(manifest: Manifest) -> None:
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}"
        for e in crd_validator(manifest).iter_errors(manifest.doc)
    ]
    assert not errors, f"{manifest.id}: {errors}"
    assert manifest.doc["metadata"].get("name"), manifest.id


def test_crd_validation_rejects_unknown_fields() -> None:
    (scaled,) = [m for m in CUSTOM if m.doc["kind"] == "ScaledObject"]
    broken = copy.deepcopy(scaled.doc)
    broken["spec"]["maxReplicas"] = 10  # typo for maxReplicaCount
    del broken["spec"]["triggers"][0]["type"]
    assert len(list(crd_validator(scaled).iter_errors(broken))) == 2


def test_scaled_object() -> None:
    so = one("ScaledObject")
    spec = so["spec"]
    deployment = one("Deployment")
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    # 1, never 0: at 0 pods nothing exports the trigger's metric, nothing wakes them again.
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 10)
    assert spec["minReplicaCount"] <= deployment["spec"]["replicas"] <= spec["maxReplicaCount"]
    assert spec["fallback"]["replicas"] == deployment["spec"]["replicas"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger.get("metricType", "AverageValue") == "AverageValue"  # needed by fallback
    meta = trigger["metadata"]
    assert meta["serverAddress"].startswith("http")
    assert re.search(r"\brate\(myashes_http_requests_total\{[^}]*\}\[\w+\]\)", meta["query"])
    assert float(meta["threshold"]) > 0
    assert float(meta["activationThreshold"]) >= 0


def pod_specs() -> dict[str, dict[str, Any]]:
    return {
        "api": one("Deployment", "myashes-backend")["spec"]["template"]["spec"],
        "migrate": one("Job", "myashes-backend-migrate")["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize("pod", ["api", "migrate"])
def test_pod_is_restricted_and_read_only(pod: str) -> None:
    spec = pod_specs()[pod]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all(set(v) == {"name", "emptyDir"} for v in volumes.values()), "emptyDirs only"
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc.get("privileged", False) is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["image"].startswith(IMAGE + ":")
        assert not c["image"].endswith(":latest")
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= c["resources"][part].keys(), f"{c['name']} {part}"
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert mounts["/tmp"] in volumes
        entrypoint._parser().parse_args(c["args"])  # args the image's entrypoint accepts


def test_api_container() -> None:
    deployment = one("Deployment", "myashes-backend")
    assert deployment["spec"]["replicas"] == 6
    spec = deployment["spec"]["template"]["spec"]
    c = container("Deployment", "myashes-backend")
    settings = effective_settings()
    args = entrypoint._parser().parse_args(c["args"])
    assert args.command == "run"
    assert not args.migrate, "pods never migrate (the Job does)"
    (port,) = c["ports"]
    assert (port["name"], port["containerPort"]) == ("http", settings.port)
    probes = {p: c[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    paths = {p: probe["httpGet"]["path"] for p, probe in probes.items()}
    assert paths == {
        "startupProbe": "/health/live",
        "readinessProbe": "/health/ready",
        "livenessProbe": "/health/live",
    }
    assert all(probe["httpGet"]["port"] == "http" for probe in probes.values())
    startup = probes["startupProbe"]
    boot_s = 10  # Sanic spawns workers, each opens its pool (measured: ~2 s)
    assert startup["periodSeconds"] * startup["failureThreshold"] >= args.wait_timeout + boot_s
    from service.telemetry.dependencies import CHECK_TIMEOUT_S

    # Readiness answers from each worker's background check: an outage shows in the state
    # within one check interval (+ its timeout), before the next probe.
    readiness = probes["readinessProbe"]
    assert settings.health_check_interval_s + CHECK_TIMEOUT_S <= readiness["periodSeconds"]
    # PROMETHEUS_MULTIPROC_DIR is a mounted, writable emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert settings.prometheus_multiproc_dir in mounts
    volumes = {v["name"] for v in spec["volumes"]}
    assert mounts[settings.prometheus_multiproc_dir] in volumes
    # Memory limit leaves room for every worker's search buffer at its cap.
    limit = c["resources"]["limits"]["memory"]
    assert limit.endswith(("Mi", "Gi"))
    limit_bytes = int(limit[:-2]) * (1 << (20 if limit.endswith("Mi") else 30))
    assert limit_bytes >= 2 * settings.workers * settings.search_buffer_max_bytes


def test_migration_job() -> None:
    job = one("Job", "myashes-backend-migrate")
    spec = job["spec"]["template"]["spec"]
    c = container("Job", "myashes-backend-migrate")
    args = entrypoint._parser().parse_args(c["args"])
    assert args.command == "migrate"
    assert args.seed_templates
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert c["image"] == container("Deployment", "myashes-backend")["image"]
    assert c["envFrom"] == container("Deployment", "myashes-backend")["envFrom"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_selectors_point_at_the_right_pods() -> None:
    deployment = one("Deployment")
    api = deployment["spec"]["template"]["metadata"]["labels"]
    migrate = one("Job")["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], api)
    for selector in (
        one("Service")["spec"]["selector"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one("NetworkPolicy", "myashes-backend-api")["spec"]["podSelector"]["matchLabels"],
    ):
        assert _selects(selector, api), selector
        assert not _selects(selector, migrate), selector
    job_policy = one("NetworkPolicy", "myashes-backend-migrate")["spec"]["podSelector"]
    assert _selects(job_policy["matchLabels"], migrate)
    assert not _selects(job_policy["matchLabels"], api)
    (port,) = one("Service")["spec"]["ports"]
    assert port["targetPort"] == "http"
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1


# The one peer chosen by address: the identity provider's JWKS (https), public addresses only.
PUBLIC_HTTPS = {
    "0.0.0.0/0": {
        "10.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
    },
    "::/0": {"fc00::/7", "fe80::/10"},
}


def _peers(rules: list[dict[str, Any]]) -> set[tuple[str, str, int | str, str]]:
    """(namespace, pod app label, port, protocol) per allowed peer; '' = any / this namespace;
    ('public', cidr, 443, TCP) for the identity provider's address block."""
    found = set()
    for rule in rules:
        for peer in rule.get("from", rule.get("to", [])):
            if "ipBlock" in peer:  # only public https, and nothing private or link-local
                block = peer["ipBlock"]
                assert set(block["except"]) == PUBLIC_HTTPS[block["cidr"]], block
                assert rule["ports"] == [{"protocol": "TCP", "port": 443}], rule
                found.add(("public", block["cidr"], 443, "TCP"))
                continue
            namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
            pod = peer.get("podSelector", {}).get("matchLabels", {})
            ns = namespace.get("kubernetes.io/metadata.name", "")
            app = pod.get("app.kubernetes.io/name") or pod.get("k8s-app", "")
            assert peer.keys() <= {"namespaceSelector", "podSelector"}, peer
            assert ns or app, f"{peer}: selects everything"
            for p in rule["ports"]:
                found.add((ns, app, p["port"], p["protocol"]))
    return found


def test_network_policies() -> None:
    api = one("NetworkPolicy", "myashes-backend-api")["spec"]
    job = one("NetworkPolicy", "myashes-backend-migrate")["spec"]
    for policy in (api, job):
        assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert _peers(api["ingress"]) == {
        ("gateway", "", "http", "TCP"),
        ("monitoring", "prometheus", "http", "TCP"),  # /metrics for the KEDA trigger
    }
    dns = {("kube-system", "kube-dns", 53, "UDP"), ("kube-system", "kube-dns", 53, "TCP")}
    postgres, valkey = ("", "postgresql", 5432, "TCP"), ("", "valkey", 6379, "TCP")
    identity_provider = {("public", cidr, 443, "TCP") for cidr in PUBLIC_HTTPS}
    assert _peers(api["egress"]) == {postgres, valkey, *dns, *identity_provider}
    assert job.get("ingress", []) == []
    assert _peers(job["egress"]) == {postgres, *dns}


def test_kustomizations() -> None:
    by_dir = {m.path.parent: m.doc for m in KUSTOMIZE}
    root, job = by_dir[K8S], by_dir[K8S / "migrate"]
    for base, kustomization in by_dir.items():
        assert kustomization["namespace"] == "myashes-backend"
        for resource in kustomization["resources"]:
            assert (base / resource).exists(), f"{base}/{resource}"
    assert "secret.template.yaml" not in root["resources"]
    top_level = {p.name for p in K8S.glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.template.yaml",
    }
    assert top_level <= set(root["resources"]), "every top-level manifest is applied"
    assert "migrate" not in root["resources"], "the Job runs on its own, before the rollout"
    assert job["resources"] == ["job.yaml"]
    assert root["images"] == job["images"], "release the API and its migration together"
    (image,) = root["images"]
    assert image["name"] == IMAGE
    for kind, name in (("Deployment", "myashes-backend"), ("Job", "myashes-backend-migrate")):
        assert container(kind, name)["image"] == f"{IMAGE}:{image['newTag']}"
