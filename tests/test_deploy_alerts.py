"""The alert rules of k8s/monitoring/prometheusrule.yaml under `promtool` (Debian's prometheus
package, installed when missing): `check rules`, and `test rules` with the cases of
tests/deploy/alerts.test.yaml, where every alert fires when it should and none fires under
healthy, skewed load (the false MyAshesFlushStale and the blind MyAshesBufferNearlyFull of
issue 15 included). A real Prometheus against the real server: tests/test_prometheus.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.prometheus import alert_names, tool, write_rules

CASES = Path(__file__).resolve().parent / "deploy" / "alerts.test.yaml"


def promtool(directory: Path, *args: str) -> str:
    run = subprocess.run(
        [tool("promtool"), *args], cwd=directory, capture_output=True, text=True, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    return output


def cases() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(CASES.read_text())["tests"]
    return tests


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    output = promtool(tmp_path, "check", "rules", rules.name)
    assert f"SUCCESS: {len(alert_names())} rules found" in output


def test_every_alert_fires_in_a_case_and_stays_silent_under_healthy_load() -> None:
    alerts = set(alert_names())
    assert len(alerts) == len(alert_names()) >= 12
    checks = [check for case in cases() for check in case["alert_rule_test"]]
    assert {c["alertname"] for c in checks if c["exp_alerts"]} == alerts
    healthy = next(case for case in cases() if case["name"] == "healthy skewed load fires nothing")
    assert {c["alertname"] for c in healthy["alert_rule_test"] if not c["exp_alerts"]} == alerts
    assert all(not c["exp_alerts"] for c in healthy["alert_rule_test"])


def test_alert_unit_tests_pass(tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(CASES, tmp_path / CASES.name)
    output = promtool(tmp_path, "test", "rules", CASES.name)
    assert "SUCCESS" in output
    assert "FAILED" not in output
