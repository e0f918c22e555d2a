// Dashboards: saved charts on a 12-column grid, with one time range and auto-refresh for the
// whole board. The range and refresh chosen while viewing go into the URL, so a link shows
// exactly that view; an admin can save them as the board's defaults.

import { api, isAdmin } from "./api.js";
import { modelFromSql, renderChart } from "./chart.js";
import { errorText, fmtAgo, h, select } from "./dom.js";
import { RANGES, runSpec } from "./explore.js";

const REFRESH = [["0", "Off"], ["10", "Every 10 s"], ["30", "Every 30 s"], ["60", "Every minute"], ["300", "Every 5 min"]];

export async function render(view, { name, args, params }) {
  if (name === "dashboard" && args[0]) return board(view, args[0], params);
  return listing(view);
}

function chartLink(chart) {
  return chart.explore ? `#/explore?chart=${chart.id}` : `#/sql?chart=${chart.id}`;
}

async function listing(view) {
  const [{ dashboards }, { charts }] = await Promise.all([api("/v1/dashboards"), api("/v1/charts")]);
  const admin = isAdmin();
  const problem = h("p", { class: "error small" });
  const newName = h("input", { name: "dashboard-name", placeholder: "name", class: "grow" });
  const act = (work) => async () => {
    try { await work(); } catch (err) { problem.textContent = errorText(err); }
  };
  view.append(
    h("div", { class: "panel stack" },
      h("h1", {}, "Dashboards"),
      dashboards.length ? h("div", { class: "scroll" }, h("table", { class: "data", id: "dashboard-list" }, h("tbody", {}, dashboards.map((d) => h("tr", {},
        h("td", {}, h("a", { href: `#/dashboard/${d.id}` }, d.name)),
        h("td", { class: "muted" }, `${d.tiles.length} chart${d.tiles.length === 1 ? "" : "s"}`),
        h("td", { class: "muted" }, `changed ${fmtAgo(d.updated_at)}`),
        admin ? h("td", {}, h("button", { type: "button", class: "danger small", onclick: act(async () => {
          await api(`/v1/dashboards/${d.id}`, { method: "DELETE" });
          location.reload();
        }) }, "Delete")) : null)))))
        : h("p", { class: "muted" }, "No dashboards yet. Build a chart in Explore and add it to a new dashboard."),
      admin ? h("div", { class: "row" }, newName, h("button", { type: "button", id: "create-dashboard", onclick: act(async () => {
        const d = await api("/v1/dashboards", { body: { name: newName.value || "New dashboard" } });
        location.hash = `#/dashboard/${d.id}?edit=1`;
      }) }, "New dashboard")) : null,
      problem),
    h("div", { class: "panel stack" },
      h("h2", {}, "Saved charts"),
      charts.length ? h("div", { class: "scroll" }, h("table", { class: "data", id: "chart-list" }, h("tbody", {}, charts.map((c) => h("tr", {},
        h("td", {}, h("a", { href: chartLink(c) }, c.name)),
        h("td", { class: "muted" }, c.explore ? `explore · ${c.explore.stream}` : "sql"),
        h("td", { class: "muted" }, c.viz),
        admin ? h("td", {}, h("button", { type: "button", class: "danger small", onclick: act(async () => {
          await api(`/v1/charts/${c.id}`, { method: "DELETE" });
          location.reload();
        }) }, "Delete")) : null)))))
        : h("p", { class: "muted" }, "No saved charts yet.")));
  return null;
}

// one tile's data: an explore chart takes the board's range when it has one
export async function tileData(chart, range) {
  if (chart.explore) {
    return runSpec(range ? { ...chart.explore, range } : chart.explore);
  }
  const result = await api("/v1/query", { body: { sql: chart.sql } });
  return { result, model: modelFromSql(result) };
}

async function board(view, id, params) {
  const [saved, { charts: chartList }] = await Promise.all([api(`/v1/dashboards/${encodeURIComponent(id)}`), api("/v1/charts")]);
  const charts = new Map(chartList.map((c) => [c.id, c]));
  let range = params.get("range") ?? saved.range ?? "";
  let refresh = params.get("refresh") ?? String(saved.refresh || 0);
  let editing = params.get("edit") === "1" && isAdmin();
  let tiles = saved.tiles.map((t) => ({ ...t }));
  let title = saved.name;
  let timer = null;
  const grid = h("div", { class: "grid", id: "dashboard-grid" });
  const toolbar = h("div", { class: "panel row" });
  const note = h("span", { class: "small", id: "dashboard-note" });
  view.append(toolbar, grid);

  function syncUrl() {
    const query = new URLSearchParams();
    if (range) query.set("range", range);
    if (refresh !== "0") query.set("refresh", refresh);
    if (editing) query.set("edit", "1");
    history.replaceState(null, "", `#/dashboard/${id}${query.size ? `?${query}` : ""}`);
  }

  function schedule() {
    clearInterval(timer);
    if (Number(refresh) > 0) timer = setInterval(loadAll, Number(refresh) * 1000);
  }

  async function load(tileEl, chart) {
    const chartEl = tileEl.querySelector(".chart");
    chartEl.dataset.state = "loading";
    try {
      const { result, model } = await tileData(chart, range);
      renderChart(chartEl, model, chart.viz, result, { compact: true });
      chartEl.dataset.state = "ready";
    } catch (err) {
      chartEl.replaceChildren(h("div", { class: "message error" }, errorText(err)));
      chartEl.dataset.state = "error";
    }
  }

  function loadAll() {
    for (const tileEl of grid.children) {
      const chart = charts.get(tileEl.dataset.chartId);
      if (chart) load(tileEl, chart);
    }
  }

  function move(i, to) {
    if (to < 0 || to >= tiles.length) return;
    [tiles[i], tiles[to]] = [tiles[to], tiles[i]];
    drawGrid();
  }

  function resize(i, dw, dh) {
    tiles[i].w = Math.min(12, Math.max(2, (tiles[i].w || 6) + dw));
    tiles[i].h = Math.min(12, Math.max(2, (tiles[i].h || 4) + dh));
    drawGrid();
  }

  function drawGrid() {
    grid.replaceChildren(...tiles.map((tile, i) => {
      const chart = charts.get(tile.chart);
      const tools = editing ? h("div", { class: "tools" },
        h("button", { type: "button", class: "quiet small", title: "Move earlier", onclick: () => move(i, i - 1) }, "←"),
        h("button", { type: "button", class: "quiet small", title: "Move later", onclick: () => move(i, i + 1) }, "→"),
        h("button", { type: "button", class: "quiet small", title: "Narrower", onclick: () => resize(i, -1, 0) }, "−w"),
        h("button", { type: "button", class: "quiet small", title: "Wider", onclick: () => resize(i, 1, 0) }, "+w"),
        h("button", { type: "button", class: "quiet small", title: "Shorter", onclick: () => resize(i, 0, -1) }, "−h"),
        h("button", { type: "button", class: "quiet small", title: "Taller", onclick: () => resize(i, 0, 1) }, "+h"),
        h("button", { type: "button", class: "danger small", title: "Remove from the dashboard",
          onclick: () => { tiles.splice(i, 1); drawGrid(); } }, "×")) : null;
      return h("section", {
        class: "tile", dataset: { chartId: tile.chart },
        style: `grid-column: span ${tile.w || 6}; grid-row: span ${tile.h || 4}`,
      },
      h("header", {}, chart ? h("a", { href: chartLink(chart), class: "grow", title: chart.name }, chart.name)
        : h("span", { class: "grow muted" }, "(chart deleted)"), tools),
      h("div", { class: "chart", dataset: { state: "idle" } }));
    }));
    if (!tiles.length) {
      grid.append(h("div", { class: "panel", style: "grid-column: 1 / -1" },
        h("p", { class: "muted" }, "No charts on this dashboard yet. ",
          isAdmin() ? "Edit it to add saved charts, or use “Add to dashboard” in Explore." : "")));
    }
    loadAll();
  }

  function drawToolbar() {
    const rangeSelect = select([["", "Each chart's own range"], ...RANGES], range, (v) => {
      range = v; syncUrl(); loadAll();
    }, { name: "range", "aria-label": "Time range" });
    const refreshSelect = select(REFRESH, refresh, (v) => { refresh = v; syncUrl(); schedule(); },
      { name: "refresh", "aria-label": "Auto refresh" });
    const link = h("button", { type: "button", class: "quiet", onclick: async () => {
      try {
        await navigator.clipboard.writeText(location.href);
        note.textContent = "Link copied.";
      } catch {
        note.textContent = location.href;
      }
    } }, "Copy link");
    const heading = editing
      ? h("input", { name: "dashboard-title", value: title, class: "grow", onchange: (e) => { title = e.target.value; } })
      : h("h1", { class: "grow", id: "dashboard-title" }, title);
    const controls = [rangeSelect, refreshSelect, link];
    if (isAdmin() && !editing) {
      controls.push(h("button", { type: "button", class: "quiet", id: "edit-dashboard",
        onclick: () => { editing = true; syncUrl(); drawToolbar(); drawGrid(); } }, "Edit"));
    }
    const editRow = editing ? h("div", { class: "row", style: "flex-basis: 100%" },
      select([["", "Add a saved chart…"], ...[...charts.values()].map((c) => [c.id, c.name])], "", (v) => {
        if (v) { tiles.push({ chart: v, w: 6, h: 4 }); drawGrid(); drawToolbar(); }
      }, { name: "add-chart" }),
      h("span", { class: "muted small grow" }, "The range and refresh above are saved as the board's defaults."),
      h("button", { type: "button", id: "save-dashboard", onclick: async () => {
        try {
          const stored = await api(`/v1/dashboards/${id}`, { method: "PUT", body: {
            name: title, tiles, range: range || null, refresh: Number(refresh) } });
          Object.assign(saved, stored);
          editing = false;
          syncUrl();
          drawToolbar();
          drawGrid();
          note.className = "small ok";
          note.textContent = "Saved.";
        } catch (err) {
          note.className = "small error";
          note.textContent = errorText(err);
        }
      } }, "Save"),
      h("button", { type: "button", class: "quiet", onclick: () => {
        editing = false;
        tiles = saved.tiles.map((t) => ({ ...t }));
        title = saved.name;
        syncUrl();
        drawToolbar();
        drawGrid();
      } }, "Cancel")) : null;
    toolbar.replaceChildren(heading, ...controls, note, editRow || "");
  }

  syncUrl();
  drawToolbar();
  drawGrid();
  schedule();
  return () => clearInterval(timer);
}
