// Building elements and formatting values. Text always goes in as text (never as HTML),
// so nothing read from events (payloads, field values) can run as markup.

const PROPS = new Set(["value", "checked", "selected", "disabled", "hidden", "multiple"]);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function option(value, label, selected) {
  return h("option", { value, selected: selected === true || selected === value }, label ?? value);
}

export function select(options, value, onchange, attrs = {}) {
  return h("select", { onchange: (e) => onchange(e.target.value), ...attrs },
    options.map(([v, label]) => option(v, label, value === v)));
}

export function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

export function message(text, cls = "muted") {
  return h("div", { class: `message ${cls}` }, text);
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

// numbers ---------------------------------------------------------------------------
const FULL = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });
const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

export function fmtNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return FULL.format(value);
}

export function fmtShort(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Math.abs(value) >= 10000 ? COMPACT.format(value) : FULL.format(Math.round(value * 1000) / 1000);
}

export function fmtRows(n) {
  return `${fmtNumber(n)} row${n === 1 ? "" : "s"}`;
}

// a rate is a measure over a few seconds: whole numbers from 100, one decimal from 1, two
// significant digits below (0.33/s), and a floor under which "0.0012/s" would be noise
const RATE_SMALL = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 2 });
const RATE_ONE = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const RATE_WHOLE = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const RATE_COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 });

export function fmtRate(perSecond) {
  if (perSecond === null || perSecond === undefined || Number.isNaN(perSecond)) return "–";
  const n = Math.abs(perSecond);
  const text = n === 0 ? "0" : n < 0.01 ? "<0.01" : n < 1 ? RATE_SMALL.format(perSecond)
    : n < 100 ? RATE_ONE.format(perSecond) : n < 10000 ? RATE_WHOLE.format(perSecond) : RATE_COMPACT.format(perSecond);
  return `${text}/s`;
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let n = bytes, i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

export function fmtAgo(unixSeconds) {
  if (!unixSeconds) return "–";
  return `${fmtSeconds(Math.max(0, Date.now() / 1000 - unixSeconds))} ago`;
}

// times are shown in UTC, as SQL returns them
export function fmtTime(value) {
  if (value === null || value === undefined) return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const iso = date.toISOString();
  const seconds = iso.slice(17, 23) === "00.000" ? "" : iso.slice(16, 19);
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}${seconds}`;
}

// one cell of a result, by its DuckDB type
const NUMERIC = /INT|DOUBLE|FLOAT|DECIMAL|REAL|NUMERIC/i;
const TEMPORAL = /^(TIMESTAMP|DATE)/i;

export function isNumericType(type) { return NUMERIC.test(type || "") && !/INTERVAL|\[\]|STRUCT|MAP/i.test(type); }
export function isTimeType(type) { return TEMPORAL.test(type || ""); }

export function fmtCell(value, type) {
  if (value === null || value === undefined) return "NULL";
  if (isNumericType(type) && typeof value === "number") return fmtNumber(value);
  if (isTimeType(type)) return /^DATE$/i.test(type) ? String(value) : fmtTime(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
