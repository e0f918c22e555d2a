// Explore: ask a question of a stream without writing SQL. The server turns the spec into SQL
// (fields checked against the schema, values bound) and answers rows plus the SQL text, which
// is shown and can be opened in the SQL editor. The spec lives in the URL, so a view can be
// shared; saved charts store the same spec.

import { api, isAdmin } from "./api.js";
import { modelFromExplore, renderChart, VIZ } from "./chart.js";
import { errorText, field, fmtNumber, fmtRows, h, option, select } from "./dom.js";
import { openInEditor } from "./sql.js";
import { dataTable } from "./table.js";

export const METRICS = [["count", "Count of events"], ["unique", "Unique users (or values)"],
  ["sum", "Sum of"], ["avg", "Average of"], ["min", "Minimum of"], ["max", "Maximum of"],
  ["p50", "Median (p50) of"], ["p90", "p90 of"], ["p95", "p95 of"], ["p99", "p99 of"]];
export const GRAINS = [["none", "No time grain"], ["minute", "Minute"], ["hour", "Hour"], ["day", "Day"],
  ["week", "Week"], ["month", "Month"]];
export const RANGES = [["15m", "Last 15 minutes"], ["1h", "Last hour"], ["6h", "Last 6 hours"],
  ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["90d", "Last 90 days"],
  ["1y", "Last year"], ["all", "All time"]];
const OPS = { "=": "=", "!=": "≠", "<": "<", "<=": "≤", ">": ">", ">=": "≥", in: "in", not_in: "not in",
  contains: "contains", is_null: "is null", not_null: "is not null" };
const OPS_BY_KIND = {
  string: ["=", "!=", "in", "not_in", "contains", "is_null", "not_null"],
  boolean: ["=", "!=", "is_null", "not_null"],
  other: ["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"],
};
const NUMERIC_KINDS = ["integer", "number"];
const RANGE_SECONDS = { "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400,
  "90d": 90 * 86400, "1y": 365 * 86400 };
// the grain for events spread over up to this many seconds: tens to a few hundred points
const GRAIN_FOR_SPAN = [[3 * 3600, "minute"], [7 * 86400, "hour"], [180 * 86400, "day"], [3 * 365 * 86400, "week"]];

const fieldCache = new Map();
export async function fieldsOf(stream) {
  if (!fieldCache.has(stream)) fieldCache.set(stream, api(`/v1/streams/${encodeURIComponent(stream)}/fields`).then((r) => r.fields));
  return fieldCache.get(stream);
}

export function describe(spec) {
  const metric = spec.metric === "count" ? "Events" : `${spec.metric} ${spec.field || "user_id"}`;
  const by = spec.group_by?.length ? ` by ${spec.group_by.join(", ")}` : "";
  const per = spec.grain && spec.grain !== "none" ? ` per ${spec.grain}` : "";
  return `${metric}${by}${per} · ${spec.stream}`;
}

// a spec as stored (defaults left out) with every default filled in
export function withDefaults(spec) {
  return { metric: "count", grain: "none", range: "24h", ...spec, group_by: [...(spec.group_by || [])],
    filters: (spec.filters || []).map((f) => ({ ...f })) };
}

// Explore opened on a stream with nothing chosen: count its events over the range that holds
// them, in a grain that gives the chart a shape. A fixed "last 24 hours per hour" showed one
// point (events sent in one burst), or none (events with older times).
export async function firstSpec(stream) {
  const spec = { stream, metric: "count", grain: "hour", range: "24h" };
  if (!stream) return spec;
  const bound = async (metric) => {
    const answer = await api("/v1/explore", { body: { stream, metric, field: "ts", range: "all" } });
    return Date.parse(answer.rows[0]?.[0]) / 1000;
  };
  const [first, last] = await Promise.all([bound("min"), bound("max")]);
  if (Number.isNaN(first)) return spec; // no events yet
  const back = Date.now() / 1000 - first + 60;
  spec.range = Object.keys(RANGE_SECONDS).find((range) => RANGE_SECONDS[range] >= back) || "all";
  spec.grain = GRAIN_FOR_SPAN.find(([span]) => last - first <= span)?.[1] || "month";
  return spec;
}

// what the explore endpoint is sent: only what is complete
export function cleanSpec(spec) {
  const out = { stream: spec.stream, metric: spec.metric, grain: spec.grain, range: spec.range };
  if (spec.metric !== "count" && spec.field) out.field = spec.field;
  const groups = (spec.group_by || []).filter(Boolean);
  if (groups.length) out.group_by = groups;
  const filters = (spec.filters || []).filter((f) => f.field && f.op);
  if (filters.length) out.filters = filters;
  if (spec.limit) out.limit = spec.limit;
  return out;
}

// the data of an explore spec, and how to read its columns
export async function runSpec(stored) {
  const spec = withDefaults(stored);
  const result = await api("/v1/explore", { body: cleanSpec(spec) });
  const time = spec.grain !== "none";
  const dims = (time ? 1 : 0) + spec.group_by.filter(Boolean).length;
  return { result, model: modelFromExplore(result, dims, time) };
}

export async function render(view, { params }) {
  const streams = (await api("/v1/streams")).streams.map((s) => s.name);
  let spec, viz, chart = null;
  if (params.get("spec")) {
    spec = JSON.parse(params.get("spec"));
    viz = params.get("viz") || "line";
    if (params.get("chart")) chart = { id: params.get("chart"), name: params.get("name") || "" };
  } else if (params.get("chart")) {
    const saved = await api(`/v1/charts/${encodeURIComponent(params.get("chart"))}`);
    if (!saved.explore) { location.hash = `#/sql?chart=${saved.id}`; return null; }
    spec = saved.explore;
    viz = saved.viz;
    chart = { id: saved.id, name: saved.name };
  } else {
    spec = await firstSpec(params.get("stream") || streams[0] || "");
    viz = "line";
  }
  spec = withDefaults(spec);
  if (!streams.length) {
    view.append(h("div", { class: "panel" }, h("h1", {}, "Explore"),
      h("p", {}, "No streams yet. Create one (lakehose streams create) or send demo events: lakehose send --demo.")));
    return null;
  }

  const form = h("form", { class: "panel stack", id: "explore-form", onsubmit: (e) => e.preventDefault() });
  const vizBar = h("div", { class: "seg", id: "viz" });
  const status = h("span", { class: "muted small grow", id: "explore-status" });
  const chartEl = h("div", { class: "chart", id: "explore-chart", dataset: { state: "idle" } });
  const sqlEl = h("pre", { id: "explore-sql" });
  const tableEl = h("div", { id: "explore-data" });
  const savePanel = h("div", { class: "panel stack", id: "explore-save" });
  const dataPanel = h("div", { class: "panel" }, h("h2", {}, "Data"), tableEl);
  view.append(h("div", { class: "split" }, form, h("div", {},
    h("div", { class: "panel" }, h("div", { class: "row" }, vizBar, status), chartEl),
    h("div", { class: "panel" }, h("div", { class: "row" }, h("h2", { class: "grow" }, "SQL"),
      h("button", { type: "button", class: "quiet small", id: "open-sql",
        onclick: () => openInEditor(sqlEl.textContent) }, "Open in SQL editor")),
    sqlEl),
    savePanel,
    dataPanel)));

  let fields = [];
  let last = null; // the last answer, drawn again when only the viz changes
  let named = !!chart; // a name typed (or saved) is kept; else the name follows the question
  let timer = null, asked = 0;

  function syncUrl() {
    const query = new URLSearchParams({ spec: JSON.stringify(cleanSpec(spec)), viz });
    if (chart) { query.set("chart", chart.id); query.set("name", chart.name); }
    history.replaceState(null, "", `#/explore?${query}`);
  }

  function changed({ redraw = false } = {}) {
    syncUrl();
    if (redraw) drawForm();
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  }

  async function run() {
    const mine = ++asked;
    chartEl.dataset.state = "loading";
    status.textContent = "running…";
    try {
      const answer = await runSpec(spec);
      if (mine !== asked) return;
      last = answer;
      drawAnswer();
      const { result } = answer;
      status.textContent = `${fmtRows(result.row_count)} in ${fmtNumber(result.elapsed_ms)} ms`
        + (result.truncated ? " (truncated)" : "");
      chartEl.dataset.state = "ready";
    } catch (err) {
      if (mine !== asked) return;
      last = null;
      status.textContent = "";
      chartEl.replaceChildren(h("div", { class: "message error" }, errorText(err)));
      chartEl.dataset.state = "error";
    }
  }

  function drawAnswer() {
    const { result, model } = last;
    sqlEl.textContent = result.sql;
    const name = savePanel.querySelector("input[name=chart-name]");
    if (name && !named) name.value = describe(cleanSpec(spec));
    renderChart(chartEl, model, viz, result, { height: 320 });
    tableEl.replaceChildren(dataTable(result));
    dataPanel.classList.toggle("hidden", viz === "table"); // the chart is this very table
  }

  function drawViz() {
    vizBar.replaceChildren(...VIZ.map(([value, label]) => h("button", {
      type: "button", class: value === viz ? "on" : null, dataset: { viz: value },
      onclick: () => { viz = value; syncUrl(); drawViz(); if (last) drawAnswer(); },
    }, label)));
  }

  // an array is listed on the stream's page but is no metric, group or filter value
  const fieldOptions = (kinds) => fields.filter((f) => f.kind !== "array" && (!kinds || kinds.includes(f.kind)))
    .map((f) => [f.path, f.path]);

  function metricField() {
    if (spec.metric === "count") return null;
    const kinds = spec.metric === "unique" ? null
      : ["min", "max"].includes(spec.metric) ? [...NUMERIC_KINDS, "datetime"] : NUMERIC_KINDS;
    const options = fieldOptions(kinds);
    if (!options.some(([p]) => p === spec.field)) {
      spec.field = spec.metric === "unique" && options.some(([p]) => p === "user_id") ? "user_id" : options[0]?.[0];
    }
    if (!options.length) return h("p", { class: "error small" }, "This stream has no numeric field.");
    return select(options, spec.field, (v) => { spec.field = v; changed(); }, { name: "field", "aria-label": "Field" });
  }

  function filterRow(f, i) {
    const kind = fields.find((x) => x.path === f.field)?.kind;
    const ops = OPS_BY_KIND[kind] || OPS_BY_KIND[kind === undefined ? "string" : "other"];
    if (!ops.includes(f.op)) f.op = ops[0];
    const needsValue = !["is_null", "not_null"].includes(f.op);
    const enumValues = fields.find((x) => x.path === f.field)?.enum;
    const listId = `enum-${i}`;
    let input = null;
    if (needsValue && kind === "boolean") {
      f.value = f.value ?? "true";
      input = select([["true", "true"], ["false", "false"]], String(f.value), (v) => { f.value = v; changed(); },
        { name: `filter-value-${i}` });
    } else if (needsValue) {
      const shown = Array.isArray(f.value) ? f.value.join(", ") : f.value ?? "";
      input = h("input", { name: `filter-value-${i}`, value: shown, list: enumValues ? listId : null,
        placeholder: ["in", "not_in"].includes(f.op) ? "a, b, c" : kind === "datetime" ? "2026-01-31T00:00Z" : "value",
        onchange: (e) => {
          const text = e.target.value;
          f.value = ["in", "not_in"].includes(f.op) ? text.split(",").map((s) => s.trim()).filter(Boolean) : text;
          changed();
        } });
    }
    return h("div", { class: "filter" },
      select([["", "field…"], ...fieldOptions(null)], f.field || "", (v) => { f.field = v; changed({ redraw: true }); },
        { name: `filter-field-${i}` }),
      select(ops.map((op) => [op, OPS[op]]), f.op, (v) => { f.op = v; changed({ redraw: true }); }, { name: `filter-op-${i}` }),
      input || h("span"),
      h("button", { type: "button", class: "quiet small", title: "Remove filter",
        onclick: () => { spec.filters.splice(i, 1); changed({ redraw: true }); } }, "×"),
      enumValues ? h("datalist", { id: listId }, enumValues.map((v) => option(String(v)))) : null);
  }

  function drawForm() {
    const custom = spec.range.includes("/");
    const [from = "", to = ""] = custom ? spec.range.split("/") : [];
    const rangeValue = custom ? "custom" : spec.range;
    const setCustom = (which, value) => {
      const parts = spec.range.includes("/") ? spec.range.split("/") : ["", ""];
      parts[which] = value ? `${value}Z` : "";
      spec.range = parts.join("/");
      changed();
    };
    form.replaceChildren(
      h("h1", {}, "Explore"),
      field("Stream", select(streams.map((s) => [s, s]), spec.stream, async (v) => {
        spec = { ...spec, stream: v, field: undefined, group_by: [], filters: [] };
        fields = await fieldsOf(v);
        changed({ redraw: true });
      }, { name: "stream" })),
      field("Metric", h("div", { class: "stack" },
        select(METRICS, spec.metric, (v) => { spec.metric = v; changed({ redraw: true }); }, { name: "metric" }),
        metricField())),
      field("Group by", h("div", { class: "stack" },
        spec.group_by.map((g, i) => h("div", { class: "row" },
          h("div", { class: "grow" }, select([["", "field…"], ...fieldOptions(null)], g,
            (v) => { spec.group_by[i] = v; changed(); }, { name: `group-${i}` })),
          h("button", { type: "button", class: "quiet small", title: "Remove",
            onclick: () => { spec.group_by.splice(i, 1); changed({ redraw: true }); } }, "×"))),
        spec.group_by.length < 3 ? h("button", { type: "button", class: "quiet small", id: "add-group",
          onclick: () => { spec.group_by.push(""); drawForm(); } }, "+ Group by") : null)),
      field("Time grain (of ts)", select(GRAINS, spec.grain, (v) => { spec.grain = v; changed(); }, { name: "grain" })),
      field("Time range (UTC)", h("div", { class: "stack" },
        select([...RANGES, ["custom", "Between…"]], rangeValue, (v) => {
          spec.range = v === "custom" ? "/" : v;
          if (v !== "custom") changed(); else drawForm();
        }, { name: "range" }),
        custom ? h("div", { class: "stack" },
          h("input", { type: "datetime-local", name: "range-from", value: from.replace(/Z$/, "").slice(0, 16),
            onchange: (e) => setCustom(0, e.target.value) }),
          h("input", { type: "datetime-local", name: "range-to", value: to.replace(/Z$/, "").slice(0, 16),
            onchange: (e) => setCustom(1, e.target.value) })) : null)),
      field("Filters", h("div", { class: "stack" },
        spec.filters.map(filterRow),
        h("button", { type: "button", class: "quiet small", id: "add-filter",
          onclick: () => { spec.filters.push({ field: "", op: "=", value: "" }); drawForm(); } }, "+ Filter"))),
    );
  }

  async function drawSave() {
    if (!isAdmin()) {
      savePanel.replaceChildren(h("p", { class: "muted small" }, "Saving charts needs an admin token."));
      return;
    }
    const name = h("input", { name: "chart-name", class: "grow", value: chart?.name || describe(cleanSpec(spec)),
      "aria-label": "Chart name", oninput: () => { named = true; } });
    const note = h("span", { class: "small", id: "save-note" });
    const dashboards = (await api("/v1/dashboards")).dashboards;
    const target = select([...dashboards.map((d) => [d.id, d.name]), ["new", "New dashboard…"]],
      dashboards[0]?.id || "new", (v) => { newName.classList.toggle("hidden", v !== "new"); }, { name: "dashboard" });
    const newName = h("input", { name: "dashboard-name", placeholder: "dashboard name",
      class: dashboards.length ? "hidden" : null });

    async function save(asNew) {
      const body = { name: name.value, viz, explore: cleanSpec(spec) };
      const saved = chart && !asNew ? await api(`/v1/charts/${chart.id}`, { method: "PUT", body })
        : await api("/v1/charts", { body });
      chart = { id: saved.id, name: saved.name };
      syncUrl();
      return saved;
    }
    async function act(work) {
      note.className = "small";
      note.textContent = "…";
      try {
        note.replaceChildren(await work());
        note.className = "small ok";
      } catch (err) {
        note.textContent = errorText(err);
        note.className = "small error";
      }
    }
    savePanel.replaceChildren(
      h("h2", {}, "Save"),
      h("div", { class: "row" }, name,
        h("button", { type: "button", id: "save-chart", onclick: () => act(async () => `Saved “${(await save(false)).name}”.`) },
          chart ? "Save" : "Save chart"),
        chart ? h("button", { type: "button", class: "quiet", onclick: () => act(async () => `Saved as new chart “${(await save(true)).name}”.`) },
          "Save as new") : null),
      h("div", { class: "row" }, h("span", { class: "muted small" }, "Add to dashboard"), target, newName,
        h("button", { type: "button", class: "quiet", id: "add-to-dashboard", onclick: () => act(async () => {
          const saved = chart || await save(false);
          let board;
          if (target.value === "new") {
            board = await api("/v1/dashboards", { body: { name: newName.value || "My dashboard", tiles: [{ chart: saved.id }] } });
          } else {
            const d = await api(`/v1/dashboards/${target.value}`);
            board = await api(`/v1/dashboards/${d.id}`, { method: "PUT", body: {
              name: d.name, range: d.range, refresh: d.refresh, tiles: [...d.tiles, { chart: saved.id, w: 6, h: 4 }] } });
          }
          return h("span", {}, "Added to ", h("a", { href: `#/dashboard/${board.id}`, id: "dashboard-link" }, board.name), ".");
        }) }, "Add")),
      note);
  }

  fields = await fieldsOf(spec.stream);
  drawForm();
  drawViz();
  drawSave();
  syncUrl();
  run();
  return () => clearTimeout(timer);
}
