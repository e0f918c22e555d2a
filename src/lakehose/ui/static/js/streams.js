// Streams: each stream's schema and versions, its live rates and lag (from /metrics), and its
// table's rows, size, files and last commit (from the Iceberg snapshot).

import { api } from "./api.js";
import { fmtAgo, fmtBytes, fmtNumber, fmtRate, fmtSeconds, fmtTime, h } from "./dom.js";
import { rate, sampler, total } from "./metrics.js";

const TABLE_SECONDS = 10;

export async function render(view, { args }) {
  const chosen = args[0] || null;
  const { streams } = await api("/v1/streams");
  let tables = new Map();
  let history = [];
  const body = h("tbody");
  const metricsNote = h("p", { class: "muted small" });
  view.append(h("div", { class: "panel stack" },
    h("h1", {}, "Streams"),
    h("div", { class: "scroll" }, h("table", { class: "data", id: "streams-table" },
      h("thead", {}, h("tr", {}, ["Stream", "Version", "Fields", "Events/s", "Rejected/s", "Lag", "Last commit",
        "Rows", "Size", "Files"].map((t) => h("th", {}, t)))),
      body)),
    metricsNote));
  if (chosen) view.append(await detail(chosen));

  function draw() {
    const [before, after] = [history[history.length - 2], history[history.length - 1]];
    const accepted = rate(before, after, "lakehose_events_accepted_total", "stream");
    const rejected = rate(before, after, "lakehose_events_rejected_total", "stream");
    const failed = rate(before, after, "lakehose_delivery_rejected_total", "stream");
    const lag = total(after, "lakehose_consumer_lag_seconds", "stream", Math.max);
    const lagEvents = total(after, "lakehose_consumer_lag_events", "stream", Math.max);
    const commits = total(after, "lakehose_last_commit_timestamp_seconds", "stream", Math.max);
    // no /metrics: unknown; one sample so far: wait for the next; a stream not counted yet: 0/s
    const perSecond = (value) => (!after ? "–" : !before ? "…" : fmtRate(value || 0));
    body.replaceChildren(...streams.map((s) => {
      const table = tables.get(s.name) || {};
      const lastCommit = commits.get(s.name) || table.last_commit;
      return h("tr", { class: s.name === chosen ? "selected" : null, dataset: { stream: s.name } },
        h("td", {}, h("a", { href: `#/streams/${s.name}` }, s.name)),
        h("td", { class: "num" }, s.version),
        h("td", { class: "num" }, Object.keys(s.schema.properties || {}).length),
        h("td", { class: "num" }, perSecond(accepted.get(s.name))),
        h("td", { class: "num" }, perSecond((rejected.get(s.name) || 0) + (failed.get(s.name) || 0))),
        h("td", { class: "num", title: lagEvents.has(s.name) ? `${fmtNumber(lagEvents.get(s.name))} events read, not committed` : null },
          lag.has(s.name) ? fmtSeconds(lag.get(s.name)) : "–"),
        h("td", { title: lastCommit ? fmtTime(lastCommit) : null }, fmtAgo(lastCommit)),
        h("td", { class: "num" }, fmtNumber(table.records)),
        h("td", { class: "num" }, fmtBytes(table.bytes)),
        h("td", { class: "num" }, fmtNumber(table.data_files)));
    }));
    metricsNote.textContent = !history.length ? "Live rates need /metrics, which this server does not answer."
      : "Rates are measured between samples of /metrics taken while this page is open.";
  }

  async function loadTables() {
    try {
      tables = new Map((await api("/v1/lake/tables")).tables.map((t) => [t.name, t]));
      draw();
    } catch { /* keep the last numbers */ }
  }

  await loadTables();
  const stopSampling = sampler(5, (samples) => { history = samples; draw(); });
  const timer = setInterval(loadTables, TABLE_SECONDS * 1000);
  return () => { stopSampling(); clearInterval(timer); };
}

async function detail(name) {
  const [stream, { fields }, { versions }] = await Promise.all([
    api(`/v1/streams/${encodeURIComponent(name)}`),
    api(`/v1/streams/${encodeURIComponent(name)}/fields`),
    api(`/v1/streams/${encodeURIComponent(name)}/history`)]);
  const required = new Set(stream.schema.required || []);
  return h("div", { class: "split", id: "stream-detail" },
    h("div", { class: "panel stack" },
      h("h2", {}, stream.name),
      h("dl", { class: "kv" },
        h("dt", {}, "table"), h("dd", {}, stream.table),
        h("dt", {}, "version"), h("dd", {}, stream.version),
        h("dt", {}, "unknown fields"), h("dd", {}, stream.unknown_fields),
        ...Object.entries(stream.hints).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, fmtNumber(v))])),
      h("a", { href: `#/explore?stream=${encodeURIComponent(name)}` }, "Explore this stream →")),
    h("div", {},
      h("div", { class: "panel" }, h("h2", {}, "Fields"),
        h("table", { class: "data", id: "stream-fields" }, h("tbody", {}, fields.map((f) => h("tr", { dataset: { path: f.path } },
          h("td", {}, h("code", {}, f.path)), h("td", { class: "muted" }, f.items ? `${f.kind} of ${f.items}` : f.kind),
          h("td", { class: "muted" }, required.has(f.path) ? "required" : ""),
          h("td", { class: "muted wrap" }, f.enum ? f.enum.join(", ") : "")))))),
      h("div", { class: "panel stack" }, h("h2", {}, "Versions"),
        versions.slice().reverse().map((v) => h("details", {},
          h("summary", {}, `version ${v.version} · ${fmtTime(v.created_at)}`),
          h("pre", { class: "small" }, JSON.stringify(v.schema, null, 2)))))));
}
