"""Prometheus in tests: promtool and prometheus from Debian's `prometheus` package (installed
when missing; a test fails, never skips, without them), the PrometheusRule's groups as a
plain rules file, the dashboard's panel queries, and a Prometheus server of its own (config
and data in a temporary directory, 127.0.0.1 on a free port) scraping given targets.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.debian import debian_tool
from tests.server import ROOT, free_port

MONITORING = ROOT / "k8s" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboard.json"
PACKAGE = "prometheus"


def tool(binary: str) -> str:
    path = debian_tool(binary, PACKAGE)
    if path is None:
        pytest.fail(f"{binary} missing and not installable: apt-get install {PACKAGE}")
    return path


def write_rules(directory: Path) -> Path:
    """The PrometheusRule's groups as the rules file Prometheus and promtool read."""
    spec = yaml.safe_load(RULES.read_text())["spec"]
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": spec["groups"]}, sort_keys=False))
    return path


def alert_names() -> list[str]:
    spec = yaml.safe_load(RULES.read_text())["spec"]
    return [rule["alert"] for group in spec["groups"] for rule in group["rules"]]


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    legend: str
    expr: str


def panel_queries(namespace: str, rate_interval: str) -> list[PanelQuery]:
    """Every target of every dashboard panel, with Grafana's variables filled in."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$namespace", namespace)
            expr = expr.replace("$__rate_interval", rate_interval)
            queries.append(PanelQuery(panel["title"], target.get("legendFormat", ""), expr))
    return queries


def template_queries() -> list[str]:
    """The dashboard's `label_values(metric, label)` variables."""
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    return [v["definition"] for v in variables if v["type"] == "query"]


class PrometheusServer:
    """`prometheus` scraping `target` every `interval`, with the service's alert rules."""

    def __init__(self, directory: Path, target: str, labels: dict[str, str], interval: str):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(write_rules(directory))],
            "scrape_configs": [
                {
                    "job_name": labels.get("service", "api"),
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": [target], "labels": labels}],
                }
            ],
        }
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> PrometheusServer:
        binary = tool("prometheus")
        check = subprocess.run(
            [tool("promtool"), "check", "config", str(self.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"prometheus not ready in {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        assert r.status_code == 200, (path, params, r.text)
        body = r.json()
        assert body["status"] == "success", (path, params, r.text)
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = self.api("query", query=expr, time=f"{at:.3f}")
        assert data["resultType"] in ("vector", "scalar"), data
        result: list[dict[str, Any]] = data["result"]
        return result if data["resultType"] == "vector" else [{"value": result}]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
