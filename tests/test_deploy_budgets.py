"""The numbers that must add up: shutdown within the grace period, DB connections within
max_connections, and ConfigMap/Secret keys that are real Settings.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from service.config import Settings
from tests.deploy.manifests import (
    K8S,
    ROOT,
    SETTINGS_ENV,
    comment_text,
    container,
    effective_settings,
    one,
)

MIGRATION_JOB_CONNECTIONS = 3
README = ROOT / "README.md"


def prestop_sleep_s() -> float:
    command = container("Deployment", "myashes-backend")["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:1] == ["sleep"], command
    assert len(command) == 2, command
    return float(command[1])


def test_shutdown_budget_fits_the_grace_period() -> None:
    grace = one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    settings = effective_settings()  # Settings defaults unless the manifests override them
    total = prestop_sleep_s() + settings.graceful_shutdown_s + settings.final_flush_timeout_s
    assert total < grace, f"preStop + drain + final flush = {total} s >= {grace} s"
    # Dropping the overrides must stay safe too: the same sum with Settings() defaults.
    defaults = Settings()
    assert prestop_sleep_s() + defaults.graceful_shutdown_s + defaults.final_flush_timeout_s < grace
    # The documented arithmetic is the arithmetic in force.
    documented = re.search(
        r"preStop sleep (\d+) s \+ GRACEFUL_SHUTDOWN_S (\d+) s .*?"
        r"\+ FINAL_FLUSH_TIMEOUT_S (\d+) s .*?= (\d+) s < terminationGracePeriodSeconds (\d+) s",
        comment_text(K8S / "deployment.yaml"),
    )
    assert documented, "shutdown budget comment missing from deployment.yaml"
    numbers = [float(n) for n in documented.groups()]
    expected = [
        prestop_sleep_s(),
        settings.graceful_shutdown_s,
        settings.final_flush_timeout_s,
        total,
        grace,
    ]
    assert numbers == expected


def test_sanic_drains_for_graceful_shutdown_s() -> None:
    from service.app import create_app

    settings = dataclasses.replace(effective_settings(), env="test")
    app = create_app(settings)
    assert settings.graceful_shutdown_s == app.config.GRACEFUL_SHUTDOWN_TIMEOUT


def test_connection_budget() -> None:
    config = one("ConfigMap", "myashes-backend-config")
    annotations = config["metadata"]["annotations"]
    max_connections = int(annotations["myashes.ai/postgres-max-connections"])
    headroom = int(annotations["myashes.ai/postgres-connection-headroom"])
    replicas_max = one("ScaledObject")["spec"]["maxReplicaCount"]
    surge = one("Deployment")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), "maxSurge as a pod count keeps the budget exact"
    settings = effective_settings()
    used = (replicas_max + surge) * settings.workers * settings.db_pool_max
    assert used <= max_connections - headroom, (
        f"({replicas_max} + {surge}) pods x {settings.workers} workers x "
        f"{settings.db_pool_max} pool = {used} > {max_connections} - {headroom}"
    )
    # The headroom holds what runs beside the pods: reserved slots, the migration Job (pool
    # of 2 + the advisory-lock session of service/runtime/db.py migrate()), admin sessions,
    # and one pod still draining.
    assert headroom >= 3 + MIGRATION_JOB_CONNECTIONS + 10 + settings.workers * settings.db_pool_max
    documented = re.search(
        r"maxReplicaCount (\d+) \+ rolling-update maxSurge (\d+)\) x WORKERS (\d+) x "
        r"DB_POOL_MAX (\d+) = (\d+) <= PostgreSQL max_connections (\d+) - headroom (\d+)",
        comment_text(K8S / "configmap.yaml"),
    )
    assert documented, "connection budget comment missing from configmap.yaml"
    assert [int(n) for n in documented.groups()] == [
        replicas_max,
        surge,
        settings.workers,
        settings.db_pool_max,
        used,
        max_connections,
        headroom,
    ]


def test_configmap_holds_only_settings_and_is_valid_for_production() -> None:
    data = one("ConfigMap", "myashes-backend-config")["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    assert set(data) <= SETTINGS_ENV, f"not Settings fields: {set(data) - SETTINGS_ENV}"
    settings = effective_settings()
    assert settings.env == "production"
    assert settings.host == "0.0.0.0"  # noqa: S104 - inside the pod
    assert not settings.embedded
    assert settings.metrics_enabled
    assert settings.prometheus_multiproc_dir
    # Players: the identity provider's keys over https, never the local issuer.
    assert not settings.auth_local
    assert settings.auth_jwks_url is not None
    assert settings.auth_jwks_url.startswith("https://")
    assert (settings.auth_issuer, settings.auth_audience) == (
        "https://myashes.ai",
        "myashes-backend",
    )
    # CORS: the production site's origins only, no localhost development origins.
    assert settings.cors_origins == ("https://myashes.ai", "https://www.myashes.ai")


def test_secret_template_has_key_names_only() -> None:
    secret = one("Secret")
    assert "data" not in secret
    assert secret["stringData"] == {"DATABASE_URL": "", "VALKEY_URL": ""}
    assert set(secret["stringData"]) <= SETTINGS_ENV
    refs = {
        source["secretRef"]["name"]
        for kind, name in (("Deployment", "myashes-backend"), ("Job", "myashes-backend-migrate"))
        for source in container(kind, name)["envFrom"]
        if "secretRef" in source
    }
    assert refs == {secret["metadata"]["name"]}
    # With the template's empty values production start-up refuses, naming the variable.
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings.from_env({**one("ConfigMap")["data"], **secret["stringData"]})


def _budget() -> tuple[int, int, int, Settings]:
    annotations = one("ConfigMap", "myashes-backend-config")["metadata"]["annotations"]
    max_connections = int(annotations["myashes.ai/postgres-max-connections"])
    headroom = int(annotations["myashes.ai/postgres-connection-headroom"])
    surge = one("Deployment")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    return max_connections, headroom, surge, effective_settings()


def test_capacity_model() -> None:
    """The README's capacity model uses the connection arithmetic in force: its rows are
    (pods + maxSurge) x WORKERS x DB_POOL_MAX from the manifests, "fits" is the budget rule,
    the pod limit it names is the largest count that fits, and KEDA stays below it."""
    max_connections, headroom, surge, settings = _budget()
    text = README.read_text()
    section = text.split("#### Capacity model", 1)[1].split("\n####", 1)[0]
    assert f"`max_connections` {max_connections} with headroom {headroom}" in section
    per_pod = settings.workers * settings.db_pool_max
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\d+) \| (yes|no) \|", section, re.M)
    assert [int(r[0]) for r in rows] == [6, 20, 60], rows
    for pods, workers, connections, fits in rows:
        assert int(workers) == int(pods) * settings.workers
        assert int(connections) == (int(pods) + surge) * per_pod
        assert (fits == "yes") == (int(connections) <= max_connections - headroom)
    limit = (max_connections - headroom) // per_pod - surge
    stated = re.search(
        r"budget holds up to \*\*(\d+) pods\*\* \(\((\d+) \+ (\d+)\) \N{MULTIPLICATION SIGN} "
        r"(\d+) \N{MULTIPLICATION SIGN} (\d+) = (\d+)",
        section,
    )
    assert stated, "the pod limit of the connection budget is not stated"
    assert [int(n) for n in stated.groups()] == [
        limit,
        limit,
        surge,
        settings.workers,
        settings.db_pool_max,
        (limit + surge) * per_pod,
    ]
    assert one("ScaledObject")["spec"]["maxReplicaCount"] <= limit
    assert "First bottleneck: PostgreSQL connections." in section
