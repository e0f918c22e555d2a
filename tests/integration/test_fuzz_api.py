"""Every route of ``lakehose up``, fuzzed from its own /openapi.json: no 5xx, no hang.

The server has a stream with landed events (so tables, the rejected table and
the audit have something to read), a write key for ingestion and an admin token
for everything else (it can read as well), handed to schemathesis per security
scheme. Schemathesis runs as a user would run it (its CLI, a subprocess), with a
bounded number of examples per operation and a timeout per request: a 5xx fails
its ``not_a_server_error`` check and a timeout is an error, and either makes it
exit non-zero. Afterwards the server still answers and never logged a traceback.

Two runs: ingestion first, then everything else, because the second one also
revokes keys by name (it reads them from ``GET /v1/keys``) and would leave
ingestion nothing but 403s to answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector_support import collector_log_tracebacks
from conftest import Lakehose
from lake_support import wait_for_count

EXAMPLES_PER_OPERATION = 12
INGESTION_EXAMPLES = 100  # the routes every write key (public, in game clients) can reach
REQUEST_TIMEOUT_SECONDS = 20
INGESTION = "/events$"
_ID = re.compile(r"/v1/(streams|keys|charts|dashboards|rejected)/[^/?]+")


def _operation(request: dict[str, Any]) -> tuple[str, str]:
    """(method, path with the id or name generalised) of a recorded request."""
    path = httpx.URL(request["url"]).path
    return request["method"], _ID.sub(lambda m: f"/v1/{m[1]}/{{x}}", path)


def schemathesis(url: str, config: Path, report: Path, examples: int, *selection: str) -> list[dict[str, Any]]:
    """One run over the selected operations; fails on any 5xx or timeout. Returns the requests."""
    started = time.monotonic()
    # one worker: with two, Hypothesis' lambda-source cache races inside schemathesis (KeyError)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
         f"{url}/openapi.json", *selection, "--checks", "not_a_server_error",
         "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(examples),
         "--request-timeout", str(REQUEST_TIMEOUT_SECONDS), "--workers", "1", "--seed", "12",
         "--no-shrink", "--suppress-health-check", "all", "--warnings", "off",
         "--report", "har", "--report-har-path", str(report)],
        capture_output=True, text=True, timeout=600, cwd=config.parent, env={**os.environ, "NO_COLOR": "1"})
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found problems ({took:.0f} s):\n{output[-12000:]}"
    entries: list[dict[str, Any]] = json.loads(report.read_text())["log"]["entries"]
    statuses = Counter(e["response"]["status"] for e in entries)
    print(f"schemathesis {' '.join(selection)}: {took:.0f} s, {len(entries)} requests, "
          f"answers {sorted(statuses.items())}")
    assert not [s for s in statuses if s >= 500 or s == 0], statuses
    return entries


def test_schemathesis_finds_no_server_error_and_no_hang(lh: Lakehose, tmp_path: Path) -> None:
    lh.create_stream("level_complete")
    key = lh.run("keys", "create", "fuzz_writer").stdout.strip()
    token = lh.run("tokens", "create", "fuzz_admin", "--admin").stdout.strip()
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    events = [{"user_id": f"u{i}", "level": 1 + i} for i in range(30)] + [{"level": "bad"}]
    assert writer.post("/v1/streams/level_complete/events", json=events).json()["accepted"] == 30
    wait_for_count(lh.reader(server), "events.level_complete", 30)
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""
[auth.openapi.writeKey]
bearer = "{key}"
[auth.openapi.writeKeyHeader]
api_key = "{key}"
[auth.openapi.writeKeyBasic]
username = "{key}"
password = ""
[auth.openapi.token]
bearer = "{token}"
""")

    ingested = schemathesis(server.url, config, tmp_path / "ingest.har", INGESTION_EXAMPLES,
                            "--include-path-regex", INGESTION)
    # the key was taken: a 200, or a 404 naming the closest streams (answered after the key is checked)
    assert {_operation(e["request"]) for e in ingested if e["response"]["status"] in (200, 404)} == {
        ("POST", "/v1/streams/{x}/events"), ("POST", "/v1/events")}
    rest = schemathesis(server.url, config, tmp_path / "rest.har", EXAMPLES_PER_OPERATION,
                        "--exclude-path-regex", INGESTION)
    everyone = {_operation(e["request"]) for e in rest}
    reached = {_operation(e["request"]) for e in rest if e["response"]["status"] not in (401, 403, 405)}
    described = {(m.upper(), _ID.sub(lambda x: f"/v1/{x[1]}/{{x}}", p))
                 for p, ops in httpx.get(f"{server.url}/openapi.json").json()["paths"].items() for m in ops
                 if not re.search(INGESTION, p) and p != "/openapi.json"}  # what schemathesis loads
    assert described <= everyone, described - everyone
    assert described - reached == set(), "never got past authentication"

    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert collector_log_tracebacks(server.log_path) == []


def test_collector_and_serve_describe_what_they_serve(lh: Lakehose) -> None:
    """The same /openapi.json route in every process, each listing its own routes only."""
    collector = lh.server("collector").start()
    serve = lh.server("serve").start()
    ingest = httpx.get(f"{collector.url}/openapi.json").json()["paths"]
    query = httpx.get(f"{serve.url}/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/streams/{stream}/events", "/healthz", "/openapi.json"} <= set(ingest)
    assert "/v1/query" not in ingest
    assert {"/v1/query", "/v1/explore", "/v1/keys", "/v1/charts", "/v1/audit", "/openapi.json"} <= set(query)
    assert "/v1/events" not in query
    for path, ops in query.items():  # every route says how it is authenticated
        assert all("security" in op for op in ops.values()), path


NUL_REQUESTS = [("POST", "/v1/keys", {"name": "a\u0000b"}, 400), ("DELETE", "/v1/keys/%00", None, 404),
                ("GET", "/v1/streams/%00", None, 404), ("GET", "/v1/streams/%00/history", None, 404),
                ("GET", "/v1/streams/%00/fields", None, 404),
                ("PUT", "/v1/streams/%00", {"schema": {"type": "object"}}, 404),
                ("POST", "/v1/explore", {"stream": "a\u0000"}, 404),
                ("POST", "/v1/rejected/replay", {"stream": "a\u0000"}, 404),
                ("GET", "/v1/charts/%00", None, 404), ("DELETE", "/v1/charts/%00", None, 404),
                ("PUT", "/v1/dashboards/%00", {"name": "x"}, 404),
                ("POST", "/v1/charts", {"name": "a\u0000", "sql": "SELECT 1"}, 400),
                ("POST", "/v1/dashboards", {"name": "a\u0000"}, 400)]


@pytest.mark.parametrize("backend", ["embedded", "scaled"], indirect=True)
def test_a_nul_in_a_name_or_id_is_a_4xx(lh: Lakehose) -> None:
    """PostgreSQL refuses NUL in text: each of these was a 500 with a PostgreSQL catalog."""
    server = lh.server("serve").start()
    admin = lh.reader(server)
    for method, path, body, status in NUL_REQUESTS:
        answer = admin.request(method, path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (status, {400: "bad_request", 404: "not_found"}[
            status]), (method, path, answer.text)
