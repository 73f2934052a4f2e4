"""Shared by the deployment tests: the k8s manifests, the Dockerfile, and what they add up to."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CRDS = Path(__file__).resolve().parent / "crds"
# Oldest Kubernetes minor we support; manifests must be valid there (strict: no unknown fields).
K8S_VERSION = "1.33.0"
IMAGE = "ghcr.io/myashes/myashes-backend"
# CRD kinds we know, with the vendored upstream schema each is checked against.
CRD_SCHEMAS = {
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
SETTINGS_ENV = {f.name.upper() for f in dataclasses.fields(Settings)}
# Stand-ins for the Secret's values (the template has key names only).
SECRET_VALUES = {
    "DATABASE_URL": "postgresql://myashes:not-a-placeholder@postgresql:5432/myashes",
    "VALKEY_URL": "redis://:not-a-placeholder@valkey:6379/0",
}


@dataclasses.dataclass(frozen=True)
class Manifest:
    path: Path
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        name = self.doc.get("metadata", {}).get("name", "?")
        return f"{self.path.relative_to(K8S)}:{self.doc.get('kind')}/{name}"

    @property
    def group(self) -> str:
        api = str(self.doc.get("apiVersion", ""))
        return api.split("/")[0] if "/" in api else ""


def load_manifests() -> list[Manifest]:
    found = []
    for path in sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append(Manifest(path, doc))
    return found


MANIFESTS = load_manifests()
KUSTOMIZE = [m for m in MANIFESTS if m.group == "kustomize.config.k8s.io"]
CUSTOM = [m for m in MANIFESTS if (m.group, m.doc["kind"]) in CRD_SCHEMAS]
BUILTIN = [m for m in MANIFESTS if m not in KUSTOMIZE and m not in CUSTOM]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    docs = [
        m.doc
        for m in MANIFESTS
        if m.doc["kind"] == kind and name in (None, m.doc["metadata"].get("name"))
    ]
    assert len(docs) == 1, f"expected one {kind} {name or ''}, found {len(docs)}"
    return docs[0]


def container(kind: str, name: str) -> dict[str, Any]:
    (c,) = one(kind, name)["spec"]["template"]["spec"]["containers"]
    return c


def effective_env() -> dict[str, str]:
    """What the API container's process sees: ConfigMap + Secret (stand-ins) + inline env."""
    env = dict(one("ConfigMap", "myashes-backend-config")["data"])
    env.update(SECRET_VALUES)
    for item in container("Deployment", "myashes-backend").get("env", []):
        env[item["name"]] = item["value"]
    return env


def effective_settings() -> Settings:
    return Settings.from_env(effective_env())


def comment_text(path: Path) -> str:
    """All `#` comments of a file joined into one line (for checking documented numbers)."""
    lines = [line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line]
    return " ".join(" ".join(lines).split())


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, args))
    return result
