"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against a running `up`.

Each test does what a person would: log in, build a chart in Explore and put it on a
dashboard, run SQL and download it, replay a rejected row, look at streams and health. The
numbers a chart shows (its data-chart attribute and data table) are compared with what
POST /v1/query answers for the SQL the chart shows. Screenshots of every page go to
test-artifacts/ui/ (dashboard-demo.png, made from `lakehose send --demo`, is the README's).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import LEVEL_SCHEMA, Lakehose, Server
from lake_support import query, wait_for_count

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
EXPLORED = {"stream": "level_complete", "metric": "avg", "field": "score", "group_by": ["device.os"],
            "grain": "hour", "range": "24h", "filters": [{"field": "level", "op": ">=", "value": "2"}]}


@dataclass
class Site:
    lh: Lakehose
    server: Server
    reader: httpx.Client
    browser: Browser
    errors: list[str] = field(default_factory=list)

    def page(self, viewport: dict[str, int] = LAPTOP, *, logged_in: bool = True) -> Page:
        """A fresh browser tab; logged in means the token is already kept, as after a login."""
        context = self.browser.new_context(viewport=viewport, accept_downloads=True)  # type: ignore[arg-type]
        if logged_in:
            context.add_init_script(f"sessionStorage.setItem('lakehose.token', {json.dumps(self.lh.token)})")
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def open(self, page: Page, route: str) -> None:
        page.goto(f"{self.server.url}/ui/#/{route}")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Site]:
    """One `up` with 120 events over the last 14 hours and one rejected event."""
    lh = Lakehose(tmp_path_factory.mktemp("ui") / "data")
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    now = dt.datetime.now(dt.timezone.utc)
    events = [{"user_id": f"u{i % 9}", "level": i % 6 + 1, "score": round(i * 7.25 % 100, 2),
               "device": {"os": ("iOS", "Android")[i % 2]},
               "ts": (now - dt.timedelta(minutes=7 * i)).isoformat()} for i in range(120)]
    assert writer.post("/v1/streams/level_complete/events", json=events).json()["accepted"] == 120
    assert writer.post("/v1/streams/level_complete/events",
                       json=[{"user_id": "late", "level": 2, "coins": 3}]).json()["rejected"] == 1
    reader = lh.reader(server)
    wait_for_count(reader, "level_complete", 120)
    wait_for_count(reader, "events._rejected", 1)
    home = Site(lh, server, reader, browser)
    yield home
    lh.close()
    assert not home.errors, f"JavaScript errors: {home.errors}"


def wait_ready(page: Page, selector: str) -> None:
    page.wait_for_selector(f"{selector}[data-state=ready]", state="attached")


def table_values(page: Page, selector: str) -> list[list[Any]]:
    """The raw values of a data table, as its cells' data-value attributes hold them."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => JSON.parse(c.dataset.value)))")


def chart_data(page: Page, selector: str) -> dict[str, Any]:
    return json.loads(page.get_attribute(selector, "data-chart") or "null")  # type: ignore[no-any-return]


def test_login_is_needed_and_the_token_is_checked(site: Site) -> None:
    page = site.page(logged_in=False)
    site.open(page, "dashboards")
    page.wait_for_selector("input[name=token]")
    assert "#/login?next=" in page.url
    shot(page, "login")
    page.fill("input[name=token]", "lht_not-a-token")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error:has-text('refused')")
    page.fill("input[name=token]", site.lh.token)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboards')")
    assert page.url.endswith("#/dashboards")
    assert httpx.get(f"{site.server.url}/v1/dashboards").status_code == 401  # the data needs the token


def test_explore_a_chart_save_it_and_see_it_on_a_dashboard_after_reload(site: Site) -> None:
    page = site.page()
    site.open(page, "explore")
    page.wait_for_selector("#explore-chart[data-state=ready]")
    page.select_option("select[name=metric]", "avg")
    page.select_option("select[name=field]", "score")
    page.click("#add-group")
    page.select_option("select[name=group-0]", "device.os")
    page.select_option("select[name=grain]", "hour")
    page.select_option("select[name=range]", "24h")
    page.click("#add-filter")
    page.select_option("select[name=filter-field-0]", "level")
    page.select_option("select[name=filter-op-0]", ">=")
    page.fill("input[name=filter-value-0]", "2")
    page.press("input[name=filter-value-0]", "Tab")
    page.click("#viz button[data-viz=bar]")
    page.wait_for_function("""() => {
        const sql = document.querySelector('#explore-sql').textContent;
        return document.querySelector('#explore-chart').dataset.state === 'ready'
            && sql.includes('"level" >= 2') && sql.includes('avg("score")') && sql.includes("['os']");
    }""")
    assert json.loads(parse_qs(page.url.split("?", 1)[1])["spec"][0]) == EXPLORED
    sql = page.inner_text("#explore-sql")
    rows = query(site.reader, sql)
    assert rows and table_values(page, "#explore-data") == rows
    chart = chart_data(page, "#explore-chart")
    shown = {(x, s["label"]): v for s in chart["series"] for x, v in zip(chart["x"], s["values"]) if v is not None}
    assert shown == {(time, os): value for time, os, value in rows}
    assert page.locator("#explore-chart svg.bars rect").count() == len(rows)
    shot(page, "explore")

    page.fill("input[name=chart-name]", "Average score by OS")
    page.click("#save-chart")
    page.wait_for_selector("#save-note.ok")
    page.fill("input[name=dashboard-name]", "Game")
    page.click("#add-to-dashboard")
    page.click("#dashboard-link")
    wait_ready(page, ".tile .chart")
    page.reload()
    wait_ready(page, ".tile .chart")
    assert page.inner_text(".tile header a") == "Average score by OS"
    assert chart_data(page, ".tile .chart") == chart
    shot(page, "dashboard")

    page.select_option("select[name=range]", "6h")  # the dashboard's range overrides the chart's
    page.wait_for_function("() => location.hash.includes('range=6h')")
    wait_ready(page, ".tile .chart")
    narrower = site.reader.post("/v1/explore", json={**EXPLORED, "range": "6h"}).json()["rows"]
    page.wait_for_function("n => JSON.parse(document.querySelector('.tile .chart').dataset.chart).x.length === n",
                           arg=len({r[0] for r in narrower}))

    phone = site.page(PHONE)
    phone.goto(page.url)
    wait_ready(phone, ".tile .chart")
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(phone, "dashboard-phone")


def test_sql_editor_opens_explore_sql_runs_charts_and_downloads_csv(site: Site) -> None:
    page = site.page()
    site.open(page, f"explore?spec={quote(json.dumps(EXPLORED))}")
    page.wait_for_selector("#explore-chart[data-state=ready]")
    shown = page.inner_text("#explore-sql")
    page.click("#open-sql")
    wait_ready(page, "#sql-chart")
    assert page.input_value("#sql-text") == shown
    assert table_values(page, "#sql-result") == query(site.reader, shown)

    site.open(page, "sql")
    sql = "SELECT level, count(*) AS events, avg(score) AS avg_score FROM level_complete GROUP BY level ORDER BY level"
    page.fill("#sql-text", sql)
    page.click("#run-sql")
    wait_ready(page, "#sql-chart")
    assert table_values(page, "#sql-result") == query(site.reader, sql)
    assert "BIGINT" in page.inner_text("#sql-result thead")
    page.click("#viz button[data-viz=line]")
    chart = chart_data(page, "#sql-chart")
    assert [s["label"] for s in chart["series"]] == ["events", "avg_score"]
    assert chart["x"] == [1, 2, 3, 4, 5, 6]
    with page.expect_download() as download:
        page.click("#download-csv")
    csv = Path(download.value.path()).read_text()
    assert csv == site.reader.post("/v1/query", json={"sql": sql, "format": "csv"}).text
    assert csv.splitlines()[0] == '"level","events","avg_score"'
    shot(page, "sql")


def test_a_link_opens_sql_but_never_runs_it(site: Site) -> None:
    """A hostile page can link a logged-in user to #/sql?q=...: the query is shown, not run."""
    page = site.page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/v1/query") else None)
    sql = "SELECT count(*) AS n FROM level_complete"
    site.open(page, f"sql?q={quote(sql)}")
    page.wait_for_selector("#sql-status:has-text('Opened from a link')")
    assert page.input_value("#sql-text") == sql
    page.wait_for_timeout(1000)  # give a run on load every chance to show itself
    assert sent == []
    assert page.get_attribute("#sql-chart", "data-state") == "idle"
    page.click("#run-sql")
    wait_ready(page, "#sql-chart")
    assert [json.loads(body)["sql"] for body in sent] == [sql]
    assert table_values(page, "#sql-result") == [[120]]


def test_replay_a_rejected_row(site: Site) -> None:
    v2 = copy.deepcopy(LEVEL_SCHEMA)
    v2["properties"]["coins"] = {"type": "integer"}
    assert site.reader.put("/v1/streams/level_complete", json={"schema": v2}).status_code == 200
    # a request refused whole holds no event: Replay skips it and says so
    broken = httpx.post(site.server.url + "/v1/streams/level_complete/events", content=b'[{"broken"',
                        headers={"Authorization": f"Bearer {site.lh.key}"})
    assert broken.status_code == 400
    wait_for_count(site.reader, "events._rejected", 2)
    page = site.page()
    site.open(page, "rejected")
    page.click("#rejected-summary tr[data-reason=malformed_json]")
    page.wait_for_selector("#replay:not([disabled])")
    page.click("#replay")
    page.wait_for_selector("#replay-note.ok")
    assert page.inner_text("#replay-note") == ("Replayed 0 events into events.level_complete; still rejected: "
                                               "none. Skipped (no event to replay): 1 malformed_json.")
    page.click("#rejected-summary tr[data-reason=unknown_field]")
    page.wait_for_selector("#replay:not([disabled])")
    page.click("#rejected-list tbody tr")
    page.wait_for_selector("#payload-text")
    assert json.loads(page.inner_text("#payload-text"))["coins"] == 3
    shot(page, "rejected")
    page.click("#replay")
    page.wait_for_selector("#replay-note.ok")
    assert page.inner_text("#replay-note").startswith("Replayed 1 event into events.level_complete")
    assert query(site.reader, "SELECT coins FROM level_complete WHERE user_id = 'late'") == [[3]]
    page.wait_for_selector("#rejected-list:has-text('No rows.')")


def test_streams_and_health_show_the_pipeline(site: Site) -> None:
    page = site.page()
    site.open(page, "streams/level_complete")
    row = page.locator("#streams-table tr[data-stream=level_complete]")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"/s$"))  # a rate, once /metrics was sampled twice
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "level_complete" and cells[3].endswith("/s") and "ago" in cells[6]
    assert int(cells[7].replace(",", "")) >= 120
    assert page.locator("#stream-detail summary").first.inner_text().startswith("version ")
    shot(page, "streams")

    site.open(page, "health")
    page.wait_for_function("() => /\\/s$/.test(document.querySelector('#health-ingest .big')?.textContent)")
    page.wait_for_selector("#ingest-chart .uplot")  # the rate's trend while the page is open
    page.wait_for_selector("#health-disk dd:has-text('KB')")
    shot(page, "health")


def test_demo_dashboard(tmp_path: Path, browser: Browser) -> None:
    """The README's screenshot: a dashboard over `lakehose send --demo` traffic."""
    lh = Lakehose(tmp_path / "data")
    try:
        server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
        lh.run("send", "--demo", "--events", "20000", "--rate", "0", "--url", server.url)
        admin = lh.reader(server)
        deadline = time.monotonic() + 60
        while sum(t["records"] for t in admin.get("/v1/lake/tables").json()["tables"]) < 20000:
            assert time.monotonic() < deadline, "the demo events did not land"
            time.sleep(0.3)
        charts = [
            ("Sessions", "number", 4, 2, {"stream": "session_start", "range": "1h"}),
            ("Players", "number", 4, 2, {"stream": "session_start", "metric": "unique", "range": "1h"}),
            ("Purchases (sum of price)", "number", 4, 2,
             {"stream": "purchase", "metric": "sum", "field": "price", "range": "1h"}),
            ("Levels completed per minute", "line", 8, 4, {"stream": "level_complete", "grain": "minute",
                                                           "group_by": ["platform"], "range": "1h"}),
            ("Ad impressions by network", "bar", 4, 4, {"stream": "ad_impression", "group_by": ["ad_network"],
                                                        "range": "1h"}),
            ("Level time p90 (ms)", "area", 6, 4, {"stream": "level_complete", "metric": "p90",
                                                    "field": "duration_ms", "grain": "minute", "range": "1h"}),
            ("Why levels fail", "bar", 6, 4, {"stream": "level_fail", "group_by": ["reason", "platform"],
                                              "range": "1h"}),
        ]
        tiles = []
        for name, viz, w, h, spec in charts:
            made = admin.post("/v1/charts", json={"name": name, "viz": viz, "explore": spec})
            assert made.status_code == 201, made.text
            tiles.append({"chart": made.json()["id"], "w": w, "h": h})
        board = admin.post("/v1/dashboards", json={"name": "Game overview", "tiles": tiles}).json()
        page = browser.new_page(viewport=LAPTOP)
        page.add_init_script(f"sessionStorage.setItem('lakehose.token', {json.dumps(lh.token)})")
        page.goto(f"{server.url}/ui/#/dashboard/{board['id']}")
        page.wait_for_function("n => document.querySelectorAll('.tile .chart[data-state=ready]').length === n",
                               arg=len(tiles), timeout=60_000)
        assert not page.locator(".tile .chart[data-state=error]").count()
        shot(page, "dashboard-demo")
        page.close()
    finally:
        lh.close()
