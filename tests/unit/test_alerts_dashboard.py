"""The Prometheus alerts and the Grafana dashboard: valid PromQL, on metrics that exist.

``promtool`` (Debian's ``prometheus`` package; scripts/test installs it) checks
the rules, runs their unit tests (alerts_test.yml: input series that must make
the alerts fire), and parses every dashboard query wrapped as a recording rule.
Every ``lakehose_*`` name used must be one that ``lakehose.metrics`` defines, and
every metric defined there must be charted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import lakehose.metrics  # noqa: F401  (registers every lakehose metric)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "lakehose.json"
NAME = re.compile(r"\blakehose_\w+")


def promtool(*args: str, cwd: Path) -> str:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: apt-get install prometheus (scripts/test does)")
    result = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def served_names() -> dict[str, str]:
    """Every sample name lakehose serves → its family's name."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = {}
    for family in REGISTRY.collect():
        if family.name.startswith("lakehose_"):
            for suffix in suffixes[family.type]:
                names[family.name + suffix] = family.name
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_alert_rules_are_valid() -> None:
    assert "SUCCESS: 6 rules found" in promtool("check", "rules", RULES.name, cwd=RULES.parent)


def test_alerts_fire_on_their_input_series() -> None:
    """Collector down, lag, no commit, a rejection jump and an audit difference each fire on time."""
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules: dict[str, Any] = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "5m")}
        for n, expr in enumerate(dashboard_exprs())]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    promtool("check", "rules", "dashboard.yml", cwd=tmp_path)


def test_dashboard_panels_have_unique_ids_and_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


def test_alerts_and_dashboard_use_only_metrics_that_exist() -> None:
    served = served_names()
    for source, exprs in (("alerts.yml", alert_exprs()), ("lakehose.json", dashboard_exprs())):
        for expr in exprs:
            unknown = set(NAME.findall(expr)) - set(served)
            assert not unknown, f"{source} uses {sorted(unknown)}, not in lakehose.metrics: {expr}"


def test_every_metric_is_charted() -> None:
    charted = {served_names()[name] for expr in dashboard_exprs() for name in NAME.findall(expr)}
    missing = set(served_names().values()) - charted
    assert not missing, f"add a panel to deploy/grafana/lakehose.json for {sorted(missing)}"
