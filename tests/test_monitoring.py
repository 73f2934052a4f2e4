"""k8s/monitoring as code: the dashboard parses, every metric a panel, an alert or the KEDA
trigger uses is one the service exports (scraped after real traffic), alerts and the
ServiceMonitor have what the Prometheus Operator needs. (Schemas: tests/test_deploy_manifests.)
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.factories import API, create_build, headers, new_session
from tests.prometheus import tool
from tests.scrape import Scrape, scrape

K8S = Path(__file__).resolve().parent.parent / "k8s"
MONITORING = K8S / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
# Labels Prometheus adds to every series it scrapes (and `le` of histogram buckets).
TARGET_LABELS = {"namespace", "pod", "service", "job", "instance", "endpoint", "container", "le"}
_METRIC = re.compile(r"\b(myashes_[a-z0-9_]+)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((MONITORING / name).read_text())
    return doc


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load("prometheusrule.yaml")["spec"]["groups"] for r in g["rules"]]


def keda_queries() -> list[str]:
    scaled = yaml.safe_load((K8S / "scaledobject.yaml").read_text())
    return [t["metadata"]["query"] for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]


def every_expr() -> list[str]:
    return dashboard_exprs() + [r["expr"] for r in alert_rules()] + keda_queries()


@pytest.fixture
async def after_traffic(client: httpx.AsyncClient, app: Any) -> Scrape:
    """A scrape after one of every kind of event, so every labelled series exists."""
    owner, voter = new_session(), new_session()
    build = await create_build(client, owner)
    vote = {"rating": 4}
    await client.post(f"{API}/builds/{build['build_id']}/vote", json=vote, headers=headers(voter))
    body = {"query": "q", "response_snippet": "a", "search_mode": "deep", "rating": "up"}
    await client.post(f"{API}/feedback", json=body)
    search = {"query": "tank", "search_mode": "quick", "result_count": 1}
    await client.post(f"{API}/analytics/search", json=search)
    await app.ctx.search.flush()
    await client.get("/health")
    await client.get("/no/such/route")
    return await scrape(client)


def test_dashboard_parses_and_covers_the_operator_questions():
    doc = dashboard()
    assert doc["uid"]
    assert doc["title"]
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    for p in panels:
        assert p["targets"], p["title"]
        assert all(t["expr"].strip() for t in p["targets"]), p["title"]
    exprs = "\n".join(dashboard_exprs())
    assert "rate(myashes_http_requests_total" in exprs  # request rate
    assert 'status_class="5xx"' in exprs  # errors
    for q in ("0.5", "0.99"):  # p50 / p99
        assert f"histogram_quantile({q}, sum by (le) (rate(myashes_http_request_duration" in exprs
    assert "myashes_aggregator_buffer_depth" in exprs
    assert "myashes_aggregator_oldest_pending_age_seconds" in exprs
    assert "max by (aggregator) (myashes_aggregator_buffer_fill_ratio" in exprs  # fullest worker
    assert "rate(myashes_rate_limited_total" in exprs
    assert "rate(myashes_rate_limit_fail_open_total" in exprs
    assert "rate(myashes_votes_total" in exprs
    assert "rate(myashes_searches_recorded_total" in exprs
    assert exprs.count("* 60") >= 2  # votes and searches per minute


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_enabled": True}], indirect=True)
async def test_every_metric_used_is_exported(after_traffic: Scrape):
    exported = after_traffic.names()
    used: dict[str, set[str]] = {}
    for expr in every_expr():
        for name, matchers in _METRIC.findall(expr):
            used.setdefault(name, set()).update(_MATCHER.findall(matchers))
    assert len(used) >= 15
    missing = sorted(set(used) - exported)
    assert not missing, f"used in k8s/ but not exported by /metrics: {missing}"
    for name, labels in used.items():
        have = {label for (n, ls) in after_traffic.samples for label, _ in ls if n == name}
        unknown = labels - have - TARGET_LABELS
        assert not unknown, f"{name} has no label(s) {sorted(unknown)}"


async def test_a_scrape_passes_promtool_check_metrics(after_traffic: Scrape, client):
    text = (await client.get("/metrics")).text
    check = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == ""  # no lint problem either


def test_alerts_cover_errors_flush_age_buffer_postgres_absence_and_rate_limits():
    rules = {r["alert"]: r for r in alert_rules()}
    for rule in rules.values():
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    errors = rules["MyAshesHighErrorRate"]["expr"]
    assert 'status_class="5xx"' in errors
    stale = " ".join(rules["MyAshesFlushStale"]["expr"].split())
    assert "max by (namespace, pod, aggregator) (myashes_aggregator_oldest_pending_age" in stale
    assert "> 5 * max by (namespace, pod, aggregator) (myashes_aggregator_flush_interval" in stale
    full = " ".join(rules["MyAshesBufferNearlyFull"]["expr"].split())
    assert full.startswith("max by (namespace, pod, aggregator) (myashes_aggregator_buffer_fill")
    assert full.endswith("> 0.8")
    absent = " ".join(rules["MyAshesApiAbsent"]["expr"].split())
    assert absent == 'absent(up{namespace="myashes-backend", service="myashes-backend"} == 1)'
    assert rules["MyAshesApiAbsent"]["labels"]["namespace"] == "myashes-backend"
    assert "myashes_rate_limit_fail_open_total" in rules["MyAshesRateLimitFailOpen"]["expr"]
    assert "myashes_rate_limited_total" in rules["MyAshesRateLimitedShare"]["expr"]
    down = rules["MyAshesPostgresDown"]["expr"]
    assert 'myashes_dependency_up{namespace="myashes-backend", dependency="postgres"}' in down
    assert down.strip().endswith("== 0")
    assert rules["MyAshesPostgresDown"]["labels"]["severity"] == "critical"


def test_service_monitor_scrapes_the_api_service():
    monitor = load("servicemonitor.yaml")
    service = yaml.safe_load((K8S / "service.yaml").read_text())
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    interval = int(endpoint["interval"].removesuffix("s"))
    assert int(endpoint["scrapeTimeout"].removesuffix("s")) <= interval


def test_kustomization_ships_all_three():
    kustomization = load("kustomization.yaml")
    assert set(kustomization["resources"]) == {"servicemonitor.yaml", "prometheusrule.yaml"}
    (generator,) = kustomization["configMapGenerator"]
    assert generator["options"]["labels"] == {"grafana_dashboard": "1"}
    for entry in generator["files"]:
        assert (MONITORING / entry.partition("=")[2]).is_file()
    for resource in kustomization["resources"]:
        assert (MONITORING / resource).is_file()
