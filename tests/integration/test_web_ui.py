"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against a running `up`.

Each test does what a person would: log in, build a chart in Explore and put it on a
dashboard, run SQL and download it, replay a rejected row, look at streams and health, use
the menu on a phone. The numbers a chart shows (its data-chart attribute and data table) are
compared with what POST /v1/query answers for the SQL the chart shows. A screenshot of every
page at 1400 and 390 px wide goes to test-artifacts/ui/ (dashboard-demo.png, made from
`lakehose send --demo`, is the README's).
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
LAPTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
PURCHASE_SCHEMA = {"type": "object", "required": ["user_id"], "properties": {
    "user_id": {"type": "string"}, "price": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string"}}}}
# how a rate may be written: no "0.333/s", no "153.4/s"
RATE = re.compile(r"^(0|<0\.01|0\.\d{1,2}|\d{1,2}(\.\d)?|\d{3,4}|\d+(\.\d+)?K)/s$")
EXPLORED = {"stream": "level_complete", "metric": "avg", "field": "score", "group_by": ["device.os"],
            "grain": "hour", "range": "24h", "filters": [{"field": "level", "op": ">=", "value": "2"}]}


@dataclass
class Site:
    lh: Lakehose
    server: Server
    reader: httpx.Client
    browser: Browser
    read_token: str
    errors: list[str] = field(default_factory=list)

    def page(self, viewport: dict[str, int] = LAPTOP, *, logged_in: bool = True, token: str | None = None) -> Page:
        """A fresh browser tab; logged in means a token (the admin one unless told) is already
        kept, as after a login."""
        context = self.browser.new_context(viewport=viewport, accept_downloads=True)  # type: ignore[arg-type]
        if logged_in:
            kept = json.dumps(token or self.lh.token)
            context.add_init_script(f"sessionStorage.setItem('lakehose.token', {kept})")
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
    """One `up` with 120 events over the last 14 hours (two commits, so maintenance every 5 s
    has files to compact), 40 purchases over the last 20 days, one rejected event, a read token."""
    lh = Lakehose(tmp_path_factory.mktemp("ui") / "data")
    lh.create_stream("level_complete")
    lh.create_stream("purchase", PURCHASE_SCHEMA)
    read_token = lh.run("tokens", "create", "viewer").stdout.strip()
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3",
                                  "LAKEHOSE_MAINTENANCE__INTERVAL_SECONDS": "5",
                                  "LAKEHOSE_MAINTENANCE__MIN_FILES": "2"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)
    now = dt.datetime.now(dt.timezone.utc)
    events = [{"user_id": f"u{i % 9}", "level": i % 6 + 1, "score": round(i * 7.25 % 100, 2),
               "device": {"os": ("iOS", "Android")[i % 2]},
               "ts": (now - dt.timedelta(minutes=7 * i)).isoformat()} for i in range(120)]
    for landed in (60, 120):
        sent = writer.post("/v1/streams/level_complete/events", json=events[landed - 60:landed])
        assert sent.json()["accepted"] == 60
        wait_for_count(reader, "level_complete", landed)
    purchases = [{"user_id": f"u{i % 5}", "price": 0.99 + i, "tags": ["gems"],
                  "ts": (now - dt.timedelta(hours=12 * i + 1)).isoformat()} for i in range(40)]
    assert writer.post("/v1/streams/purchase/events", json=purchases).json()["accepted"] == 40
    assert writer.post("/v1/streams/level_complete/events",
                       json=[{"user_id": "late", "level": 2, "coins": 3}]).json()["rejected"] == 1
    wait_for_count(reader, "purchase", 40)
    wait_for_count(reader, "events._rejected", 1)
    home = Site(lh, server, reader, browser, read_token)
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


def test_rejected_for_a_read_token_offers_no_replay(site: Site) -> None:
    """Where an admin has the Replay button, a read token is told why it has none (no "null")."""
    page = site.page(token=site.read_token)
    site.open(page, "rejected")
    page.click("#rejected-summary tr[data-reason=unknown_field]")
    page.wait_for_selector("#rejected-list tbody tr")
    expect(page.locator("#replay-needs-admin")).to_have_text("Replaying needs an admin token.")
    assert page.locator("#replay").count() == 0
    assert not re.search(r"\bnull\b", page.inner_text("main"))


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
    page.click("#rejected-list tbody tr:has-text('unknown_field')")  # not the last list, still shown
    page.wait_for_selector("#payload-text")
    assert json.loads(page.inner_text("#payload-text"))["coins"] == 3
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
    assert cells[0] == "level_complete" and RATE.match(cells[3]) and RATE.match(cells[4]) and "ago" in cells[6]
    assert int(cells[7].replace(",", "")) >= 120
    assert page.locator("#stream-detail summary").first.inner_text().startswith("version ")

    # maintenance runs in up's own process: its runs and its commits in the tables are shown
    deadline = time.monotonic() + 60
    while not last_maintenance(site.reader, "level_complete"):
        assert time.monotonic() < deadline, "maintenance did not compact level_complete's two files"
        time.sleep(0.5)
    assert site.reader.get("/v1/lake/tables").json()["maintenance"] == {"enabled": True, "interval_seconds": 5.0}
    site.open(page, "health")
    page.wait_for_function("() => /\\/s$/.test(document.querySelector('#health-ingest .big')?.textContent)")
    assert RATE.match(page.inner_text("#health-ingest .big"))
    page.wait_for_selector("#ingest-chart .uplot")  # the rate's trend while the page is open
    page.wait_for_selector("#health-disk dd:has-text('KB')")
    page.wait_for_selector("#health-maintenance dd:has-text('last success')")
    maintenance = page.inner_text("#health-maintenance")
    assert re.search(r"compact\s+\d+ runs?, 0 failed; last success [\d.]+ (ms|s|min) ago", maintenance), maintenance
    assert re.search(r"level_complete\s+compact [\d.]+ (ms|s|min) ago", maintenance), maintenance
    assert "No run has finished" not in maintenance


def last_maintenance(reader: httpx.Client, table: str) -> dict[str, Any] | None:
    tables = {t["name"]: t for t in reader.get("/v1/lake/tables").json()["tables"]}
    return tables[table]["last_maintenance"]  # type: ignore[no-any-return]


def test_explore_opens_on_the_range_of_the_data_and_lists_no_arrays(site: Site) -> None:
    """Nothing chosen yet: the range that holds the stream's events, in a grain that gives the
    chart a shape (a fixed last-24-hours-per-hour showed one point, or none, for older events).
    A stream's array fields are listed on its page, and Explore does not offer them."""
    page = site.page()
    site.open(page, "streams/purchase")
    expect(page.locator("#stream-fields tr[data-path=tags] td").nth(1)).to_have_text("array of string")
    page.click("#stream-detail a:has-text('Explore this stream')")
    for stream, range_, grain, points in [("purchase", "30d", "day", 15), ("level_complete", "24h", "hour", 12)]:
        page.wait_for_selector("#explore-chart[data-state=ready]")
        spec = json.loads(parse_qs(page.url.split("?", 1)[1])["spec"][0])
        assert (spec["stream"], spec["range"], spec["grain"]) == (stream, range_, grain)
        assert len(chart_data(page, "#explore-chart")["x"]) >= points
        page = site.page()
        site.open(page, "explore")  # the first stream, level_complete
    page.wait_for_selector("#explore-chart[data-state=ready]")
    page.select_option("select[name=stream]", "purchase")
    page.click("#add-group")
    offered = page.eval_on_selector_all("select[name=group-0] option", "options => options.map(o => o.value)")
    assert "price" in offered and "user_id" in offered and "tags" not in offered


def test_rates_are_written_sensibly(site: Site) -> None:
    page = site.page()
    site.open(page, "streams")
    page.wait_for_selector("#streams-table")
    written = page.evaluate("""async () => {
        const { fmtRate } = await import('/ui/js/dom.js');
        return [0, 0.004, 0.3333, 2.567, 42, 153.4, 12345].map(fmtRate);
    }""")
    assert written == ["0/s", "<0.01/s", "0.33/s", "2.6/s", "42/s", "153/s", "12.3K/s"]
    assert all(RATE.match(text) for text in written)


def test_the_navigation_folds_into_a_menu_on_a_phone(site: Site) -> None:
    phone = site.page(PHONE)
    site.open(phone, "streams")
    phone.wait_for_selector("#streams-table")
    assert phone.is_hidden("#nav") and phone.is_visible("#menu")
    assert phone.evaluate("""() => document.documentElement.scrollWidth <= innerWidth
        && [...document.querySelector('.top').children].every(c => c.getBoundingClientRect().right <= innerWidth)""")
    phone.click("#menu")
    assert phone.get_attribute("#menu", "aria-expanded") == "true"
    shot(phone, "menu-390")
    phone.click("#nav a[data-page=health]")
    phone.wait_for_selector("#health-ingest")
    assert phone.is_hidden("#nav") and phone.get_attribute("#menu", "aria-expanded") == "false"

    wide = site.page()
    site.open(wide, "streams")
    wide.wait_for_selector("#streams-table")
    assert wide.is_hidden("#menu")
    assert all(wide.is_visible(f"#nav a[data-page={name}]") for name, _, _ in VIEWS if name not in ("login", "dashboard"))


# every page: its route and what shows it is drawn
VIEWS = [
    ("login", "login", "input[name=token]"),
    ("explore", "explore", "#explore-chart[data-state=ready]"),
    ("sql", "sql?q=" + quote("SELECT level, count(*) AS events FROM level_complete GROUP BY level"), "#sql-text"),
    ("dashboards", "dashboards", "h1:has-text('Dashboards')"),
    ("dashboard", "dashboard/{board}", ".tile .chart[data-state=ready]"),
    ("streams", "streams/level_complete", "#stream-detail"),
    ("rejected", "rejected", "#rejected-summary table"),
    ("health", "health", "#ingest-chart .uplot"),
]


def test_every_page_fits_the_screen_at_1400_and_390_px(site: Site) -> None:
    """A screenshot of every page at both widths in test-artifacts/ui/, and nothing wider than
    the screen (wide tables scroll inside their panel)."""
    chart = site.reader.post("/v1/charts", json={"name": "Purchases per day", "viz": "bar",
                                                 "explore": {"stream": "purchase", "grain": "day", "range": "30d"}})
    board = site.reader.post("/v1/dashboards", json={"name": "Shop", "tiles": [{"chart": chart.json()["id"]}]})
    for width, viewport in ((1400, LAPTOP), (390, PHONE)):
        for name, route, ready in VIEWS:
            page = site.page(viewport, logged_in=name != "login")
            site.open(page, route.format(board=board.json()["id"]))
            page.wait_for_selector(ready)
            assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth"), (name, width)
            shot(page, f"{name}-{width}")
            page.context.close()


def test_demo_dashboard(tmp_path: Path, browser: Browser) -> None:
    """The README's screenshot: the dashboard `lakehose send --demo` makes, over its traffic."""
    lh = Lakehose(tmp_path / "data")
    try:
        server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
        lh.run("send", "--demo", "--events", "20000")
        admin = lh.reader(server)
        deadline = time.monotonic() + 60
        while sum(t["records"] for t in admin.get("/v1/lake/tables").json()["tables"]) < 20000:
            assert time.monotonic() < deadline, "the demo events did not land"
            time.sleep(0.3)
        [board] = admin.get("/v1/dashboards").json()["dashboards"]  # the one send --demo made
        assert board["name"] == "Game overview"
        tiles = board["tiles"]
        page = browser.new_page(viewport=LAPTOP)
        page.add_init_script(f"sessionStorage.setItem('lakehose.token', {json.dumps(lh.token)})")
        page.goto(f"{server.url}/ui/#/dashboard/{board['id']}")
        page.wait_for_function("n => document.querySelectorAll('.tile .chart[data-state=ready]').length === n",
                               arg=len(tiles), timeout=60_000)
        assert not page.locator(".tile .chart[data-state=error]").count()
        shot(page, "dashboard-demo")
        # a fresh `up` (maintenance every 10 min): Health says when runs come, not that there are none
        page.goto(f"{server.url}/ui/#/health")
        page.wait_for_selector("#health-maintenance p:has-text('No run has finished since lakehose started. "
                               "lakehose up runs maintenance in a process of its own every 10 min, "
                               "the first run 10 min after the start.')")
        page.close()
    finally:
        lh.close()
