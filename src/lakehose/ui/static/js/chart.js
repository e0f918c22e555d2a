// Results as charts: line, area (uPlot, vendored), bar (SVG), big number or table.
//
// A result is first turned into one model, {x, xTime, series: [{label, values}]}, from either
//   - an Explore answer ("long": dimension columns, then one value column), or
//   - a SQL answer ("wide": the first column is x, every numeric column after it a series).
// The model is what gets drawn, and it is also written to the chart's data-chart attribute,
// so a test (or a curious person) can read the exact numbers a chart shows.

import { fmtCell, fmtShort, fmtTime, h, isNumericType, isTimeType, message } from "./dom.js";
import { dataTable } from "./table.js";

const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2",
  "#db2777", "#65a30d", "#ea580c", "#475569", "#0d9488", "#9333ea"];
export const MAX_SERIES = PALETTE.length;
export const VIZ = [["line", "Line"], ["bar", "Bar"], ["area", "Area"], ["table", "Table"], ["number", "Number"]];

function label(value) {
  return value === null || value === undefined ? "NULL" : String(value);
}

// Explore: `dims` leading columns (time first when `time`), then the value column
export function modelFromExplore(result, dims, time) {
  const valueName = result.columns[result.columns.length - 1].name;
  const xs = [], xAt = new Map(), series = new Map();
  for (const row of result.rows) {
    const x = dims > 0 ? row[0] : valueName;
    const key = dims > 1 ? row.slice(1, dims).map(label).join(" · ") : valueName;
    if (!xAt.has(x)) { xAt.set(x, xs.length); xs.push(x); }
    if (!series.has(key)) series.set(key, []);
    series.get(key)[xAt.get(x)] = row[dims];
  }
  return limit({
    x: xs, xTime: time,
    series: [...series].map(([key, values]) => ({ label: key, values: xs.map((_, i) => values[i] ?? null) })),
  });
}

// SQL: first column on x, every numeric column after it a series
export function modelFromSql(result) {
  const { columns, rows } = result;
  if (columns.length === 1) {
    return limit({ x: rows.map((_, i) => i + 1), xTime: false,
      series: isNumericType(columns[0].type) ? [{ label: columns[0].name, values: rows.map((r) => r[0]) }] : [] });
  }
  const series = [];
  columns.forEach((c, i) => {
    if (i > 0 && isNumericType(c.type)) series.push({ label: c.name, values: rows.map((r) => r[i]) });
  });
  return limit({ x: rows.map((r) => r[0]), xTime: isTimeType(columns[0]?.type), series });
}

function limit(model) {
  const hidden = Math.max(0, model.series.length - MAX_SERIES);
  if (hidden) {
    const weight = (s) => s.values.reduce((a, v) => a + Math.abs(v || 0), 0);
    model.series = [...model.series].sort((a, b) => weight(b) - weight(a)).slice(0, MAX_SERIES);
  }
  return { ...model, hidden };
}

function xLabel(model, value) {
  return model.xTime ? fmtTime(value) : label(value);
}

// short axis labels for times: only the part that changes (hours within a day, days at midnight)
function shortLabels(model) {
  if (!model.xTime) return model.x.map(label);
  const iso = model.x.map((x) => new Date(x).toISOString());
  const oneDay = new Set(iso.map((s) => s.slice(0, 10))).size === 1;
  const midnight = iso.every((s) => s.slice(11, 19) === "00:00:00");
  const oneYear = new Set(iso.map((s) => s.slice(0, 4))).size === 1;
  return iso.map((s) => (midnight ? s.slice(oneYear ? 5 : 0, 10) : oneDay ? s.slice(11, 16) : `${s.slice(5, 10)} ${s.slice(11, 16)}`));
}

// draw `model` into `el` as `viz`; `result` is used by the table view. compact: dashboard tile
export function renderChart(el, model, viz, result, { compact = false, height = null } = {}) {
  el.replaceChildren();
  el.dataset.viz = viz;
  el.dataset.chart = JSON.stringify({ x: model.x, series: model.series });
  el._observer?.disconnect();
  if (viz === "table") {
    el.append(dataTable(result, { pageSize: compact ? 50 : 100 }));
    return;
  }
  if (!model.series.length || !model.x.length) {
    el.append(message(model.x.length ? "Nothing numeric to chart: add a numeric column after the first."
      : "No rows for this question."));
    return;
  }
  if (viz === "number") {
    bigNumber(el, model);
    return;
  }
  const box = h("div", { class: "plot" });
  el.append(box);
  if (compact || viz === "bar") el.append(legend(model));
  const draw = viz === "bar" ? () => bars(box, model, plotHeight(el, height, compact))
    : lines(box, model, viz === "area", compact, () => plotHeight(el, height, compact));
  let width = 0;
  el._observer = new ResizeObserver(() => {
    if (box.clientWidth && box.clientWidth !== width) { width = box.clientWidth; draw(); }
  });
  el._observer.observe(box);
}

function plotHeight(el, height, compact) {
  if (height) return height;
  const legendSpace = compact ? 24 : 0;
  return Math.max(80, el.clientHeight - legendSpace);
}

function legend(model) {
  return h("div", { class: "legend" },
    model.series.map((s, i) => h("span", {}, h("i", { style: `background:${PALETTE[i]}` }), s.label)),
    model.hidden ? h("span", { class: "muted" }, `+${model.hidden} more series not shown`) : null);
}

function bigNumber(el, model) {
  const series = model.series[0];
  let at = series.values.length - 1;
  while (at > 0 && series.values[at] === null) at--;
  const caption = model.xTime ? `${series.label} · ${xLabel(model, model.x[at])}` : series.label;
  el.append(h("div", { class: "bignum" },
    h("div", { class: "value", title: String(series.values[at]) }, fmtShort(series.values[at])),
    h("div", { class: "label" }, caption)));
}

const TIME_INCRS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
  2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400];

// a time axis tick in UTC: the time of day within days, the date at midnight and for day steps
function timeTick(ts, incr) {
  const iso = new Date(ts * 1000).toISOString();
  if (incr >= 86400 || iso.slice(11, 19) === "00:00:00") return iso.slice(5, 10);
  return incr < 60 ? iso.slice(11, 19) : iso.slice(11, 16);
}

// line and area: uPlot. Returns the function that (re)draws at the box's width.
function lines(box, model, area, compact, heightOf) {
  const uPlot = window.uPlot;
  const xs = model.xTime ? model.x.map((x) => Date.parse(x) / 1000) : model.x.map((_, i) => i);
  const labels = model.x.map((x) => xLabel(model, x));
  const pad = model.xTime ? 3600 : 1;
  // time ticks no finer than the data's own step (a minute grain gets no :30 seconds ticks)
  const step = xs.slice(1).reduce((least, x, i) => Math.min(least, x - xs[i]), Infinity);
  const incrs = Number.isFinite(step) ? TIME_INCRS.filter((incr) => incr >= Math.min(step, 86400)) : TIME_INCRS;
  let plot = null;
  return () => {
    plot?.destroy();
    const width = box.clientWidth;
    const every = Math.max(1, Math.ceil(labels.length * 90 / Math.max(width, 1)));
    const opts = {
      width, height: heightOf(),
      legend: { show: !compact },
      cursor: { drag: { x: true, y: false } },
      // one point alone: give the axis some room instead of years of empty time
      scales: { x: { time: model.xTime, range: (u, min, max) => (min === max ? [min - pad, max + pad] : [min, max]) } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [
        model.xTime ? { label: "time (UTC)" } : { label: "x", value: (u, v) => (v === null ? "" : labels[v] ?? "") },
        ...model.series.map((s, i) => ({
          label: s.label, stroke: PALETTE[i], width: 2,
          fill: area ? `${PALETTE[i]}22` : undefined,
          points: { show: xs.length <= 60 },
          value: (u, v) => (v === null ? "–" : fmtShort(v)),
        })),
      ],
      axes: [
        model.xTime ? { incrs, values: (u, splits, axis, space, incr) => splits.map((ts) => timeTick(ts, incr)) } : {
          splits: () => labels.map((_, i) => i).filter((i) => i % every === 0),
          values: (u, splits) => splits.map((i) => (labels[i] ?? "").slice(0, 16)),
        },
        { size: 56, values: (u, splits) => splits.map(fmtShort) },
      ],
    };
    plot = new uPlot(opts, [xs, ...model.series.map((s) => s.values)], box);
  };
}

// grouped bars: categories on x, one bar per series in each
function bars(box, model, height) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  };
  const width = box.clientWidth;
  const values = model.series.flatMap((s) => s.values).filter((v) => v !== null);
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values));
  const lo = ticks[0], hi = ticks[ticks.length - 1];
  const left = 56, right = 8, top = 8, bottom = 24;
  const plotW = Math.max(10, width - left - right), plotH = Math.max(10, height - top - bottom);
  const y = (v) => top + plotH * (hi - v) / (hi - lo || 1);
  const root = svg("svg", { class: "bars", width, height, viewBox: `0 0 ${width} ${height}` });
  for (const t of ticks) {
    root.append(svg("line", { class: "grid", x1: left, x2: left + plotW, y1: y(t), y2: y(t) }));
    root.append(svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end" }, fmtShort(t)));
  }
  const n = model.x.length, k = model.series.length;
  const band = plotW / n, bar = (band * 0.8) / k;
  model.series.forEach((s, j) => s.values.forEach((v, i) => {
    if (v === null) return;
    const x = left + i * band + band * 0.1 + j * bar;
    const rect = svg("rect", {
      x, width: Math.max(1, bar - (bar > 4 ? 1 : 0)), y: Math.min(y(v), y(0)),
      height: Math.max(1, Math.abs(y(v) - y(0))), fill: PALETTE[j],
    });
    rect.append(svg("title", {}, `${s.label} · ${xLabel(model, model.x[i])}: ${fmtCell(v, "DOUBLE")}`));
    root.append(rect);
  }));
  const labels = shortLabels(model).map((text) => (text.length > 14 ? `${text.slice(0, 13)}…` : text));
  const widest = Math.max(...labels.map((text) => text.length)) * 6.5 + 12;
  const every = Math.max(1, Math.ceil((n * widest) / plotW));
  labels.forEach((text, i) => {
    if (i % every) return;
    root.append(svg("text", { x: left + (i + 0.5) * band, y: top + plotH + 16, "text-anchor": "middle" }, text));
  });
  box.replaceChildren(root);
}

function niceTicks(lo, hi, count = 5) {
  if (lo === hi) hi = lo + 1;
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.round(t / step) * step);
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}
