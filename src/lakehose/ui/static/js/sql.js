// The SQL editor: read-only SQL through POST /v1/query; results typed and paged, charted (first
// column on x, numeric columns as series), downloaded as CSV, saved as a chart.
//
// A link never runs SQL: #/sql?q=... opens the query in the editor and waits for Run, since any
// page can link a logged-in user here. Only a click inside this tab (Explore's "Open in SQL
// editor") runs the text it opens, through a note in this tab's sessionStorage that no link can
// write. A saved chart (#/sql?chart=id) runs: an admin saved it, and the server checks it again.

import { api, download, isAdmin } from "./api.js";
import { modelFromSql, renderChart, VIZ } from "./chart.js";
import { errorText, fmtNumber, fmtRows, h } from "./dom.js";
import { dataTable } from "./table.js";

const LAST = "lakehose.sql";
const CLICKED = "lakehose.sql.clicked";

// open `text` in the editor and run it: for the UI's own buttons, never for a URL
export function openInEditor(text) {
  sessionStorage.setItem(CLICKED, text);
  location.hash = `#/sql?q=${encodeURIComponent(text)}`;
}

export async function render(view, { params }) {
  let chart = null;
  let viz = params.get("viz") || "table";
  let text = params.get("q");
  const clicked = sessionStorage.getItem(CLICKED);
  sessionStorage.removeItem(CLICKED);
  const runNow = text !== null && text === clicked;
  if (params.get("chart")) {
    const saved = await api(`/v1/charts/${encodeURIComponent(params.get("chart"))}`);
    chart = { id: saved.id, name: saved.name };
    text = saved.sql;
    viz = saved.viz;
  }
  if (text === null) text = sessionStorage.getItem(LAST) || "SELECT * FROM events._rejected LIMIT 100";

  const editor = h("textarea", { class: "code", id: "sql-text", spellcheck: "false", "aria-label": "SQL" });
  editor.value = text;
  const status = h("span", { class: "muted small grow", id: "sql-status" });
  const chartEl = h("div", { class: "chart", id: "sql-chart", dataset: { state: "idle" } });
  const tableEl = h("div", { id: "sql-result" });
  const vizBar = h("div", { class: "seg", id: "viz" });
  const note = h("span", { class: "small", id: "sql-note" });
  let last = null;

  async function run() {
    sessionStorage.setItem(LAST, editor.value);
    chartEl.dataset.state = "loading";
    status.textContent = "running…";
    try {
      last = await api("/v1/query", { body: { sql: editor.value } });
      status.textContent = `${fmtRows(last.row_count)} in ${fmtNumber(last.elapsed_ms)} ms`
        + (last.truncated ? " — truncated at the row limit; add a LIMIT or download less" : "");
      draw();
      chartEl.dataset.state = "ready";
    } catch (err) {
      last = null;
      status.textContent = "";
      tableEl.replaceChildren(h("div", { class: "error" }, errorText(err)));
      chartEl.replaceChildren();
      chartEl.dataset.state = "error";
    }
  }

  function draw() {
    drawViz();
    if (!last) return;
    tableEl.replaceChildren(dataTable(last));
    chartEl.classList.toggle("hidden", viz === "table");
    if (viz !== "table") renderChart(chartEl, modelFromSql(last), viz, last, { height: 300 });
  }

  function drawViz() {
    vizBar.replaceChildren(...VIZ.map(([value, label]) => h("button", {
      type: "button", class: value === viz ? "on" : null, dataset: { viz: value },
      onclick: () => { viz = value; draw(); },
    }, label)));
  }

  async function csv() {
    try {
      download(await api("/v1/query", { body: { sql: editor.value, format: "csv" }, as: "blob" }), "result.csv");
    } catch (err) {
      status.textContent = errorText(err);
    }
  }

  const name = h("input", { name: "chart-name", class: "grow", value: chart?.name || "", placeholder: "chart name",
    "aria-label": "Chart name" });
  async function save() {
    try {
      const body = { name: name.value || "SQL chart", viz, sql: editor.value };
      const saved = chart ? await api(`/v1/charts/${chart.id}`, { method: "PUT", body }) : await api("/v1/charts", { body });
      chart = { id: saved.id, name: saved.name };
      note.className = "small ok";
      note.textContent = `Saved “${saved.name}”; add it to a dashboard from the dashboard's edit mode.`;
    } catch (err) {
      note.className = "small error";
      note.textContent = errorText(err);
    }
  }

  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  view.append(
    h("div", { class: "panel stack" },
      h("div", { class: "row" }, h("h1", { class: "grow" }, "SQL"),
        h("span", { class: "muted small" }, "Read-only. Tables: events.<stream>, events._rejected. Ctrl+Enter runs.")),
      editor,
      h("div", { class: "row" },
        h("button", { type: "button", id: "run-sql", onclick: run }, "Run"),
        h("button", { type: "button", class: "quiet", id: "download-csv", onclick: csv }, "Download CSV"),
        vizBar, status),
      isAdmin() ? h("div", { class: "row" }, name, h("button", { type: "button", class: "quiet", id: "save-chart", onclick: save },
        "Save as chart"), note) : null),
    h("div", { class: "panel" }, chartEl, tableEl));
  drawViz();
  if (runNow || chart) run();
  else if (params.get("q") !== null) status.textContent = "Opened from a link: read the query, then press Run.";
  return null;
}
