// Health: the pipeline at a glance, from /metrics (sampled every 5 s while the page is open;
// under `lakehose up` it holds the counters of all its processes, maintenance's included), the
// tables' snapshots, and the audit endpoint where this server has it. Anything this server
// does not export shows as "–" or "not available", never as an error.

import { api, optional } from "./api.js";
import { renderChart } from "./chart.js";
import { errorText, fmtAgo, fmtBytes, fmtNumber, fmtRate, fmtSeconds, h } from "./dom.js";
import { has, one, rate, sampler, sumOf, total } from "./metrics.js";

const SECONDS = 5;

function card(title, id) {
  const body = h("div", { class: "stack" });
  return { el: h("div", { class: "panel card", id }, h("h3", {}, title), body), body };
}

function big(value, caption, cls = "") {
  return h("div", {}, h("div", { class: `big ${cls}` }, value), h("div", { class: "muted small" }, caption));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// histogram quantile from cumulative buckets: the smallest bound holding q of the observations
function quantile(before, after, name, q) {
  const now = total(after, `${name}_bucket`, "le");
  const then = before ? total(before, `${name}_bucket`, "le") : new Map();
  const buckets = [...now].map(([le, n]) => [Number(le), n - (then.get(le) || 0)]).sort((a, b) => a[0] - b[0]);
  const count = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!count) return null;
  const bound = buckets.find(([, n]) => n >= q * count)[0];
  return bound;
}

function average(before, after, name) {
  const sum = (one(after, `${name}_sum`) || 0) - (before ? one(before, `${name}_sum`) || 0 : 0);
  const count = (one(after, `${name}_count`) || 0) - (before ? one(before, `${name}_count`) || 0 : 0);
  return count > 0 ? sum / count : null;
}

function rateHistory(history, names) {
  const x = [], values = [];
  for (let i = 1; i < history.length; i++) {
    x.push(new Date(history[i].at * 1000).toISOString());
    values.push(names.reduce((a, n) => a + (sumOf(rate(history[i - 1], history[i], n)) || 0), 0));
  }
  return { x, values };
}

export async function render(view) {
  const cards = {
    ingest: card("Ingest", "health-ingest"), rejected: card("Rejections", "health-rejections"),
    lag: card("Delivery lag", "health-lag"), commits: card("Commits", "health-commits"),
    disk: card("Disk and lake", "health-disk"), maintenance: card("Maintenance", "health-maintenance"),
    audit: card("Audit", "health-audit"),
  };
  const note = h("p", { class: "muted small" });
  view.append(h("div", { class: "row" }, h("h1", { class: "grow" }, "Health"), note),
    h("div", { class: "cards" }, Object.values(cards).map((c) => c.el)));
  const ingestChart = h("div", { class: "chart", style: "height: 110px", id: "ingest-chart" });
  const auditGauge = h("div");
  const rejectChart = h("div", { class: "chart", style: "height: 110px" });
  let lake = null, schedule = null;

  function spark(el, history, names, label) {
    const { x, values } = rateHistory(history, names);
    if (x.length < 2) { el.replaceChildren(h("div", { class: "message" }, "collecting…")); return; }
    renderChart(el, { x, xTime: true, series: [{ label, values }], hidden: 0 }, "area", null, { compact: true, height: 90 });
  }

  function draw(history, latest) {
    const after = history[history.length - 1];
    const before = history.length > 1 ? history[history.length - 2] : null;
    note.textContent = latest ? `from /metrics, sampled every ${SECONDS} s` : "/metrics is not answering: live numbers are not available";
    const accepted = sumOf(rate(before, after, "lakehose_events_accepted_total"));
    const rejected = (sumOf(rate(before, after, "lakehose_events_rejected_total")) || 0)
      + (sumOf(rate(before, after, "lakehose_delivery_rejected_total")) || 0);
    const share = accepted !== null && accepted + rejected > 0 ? rejected / (accepted + rejected) : null;
    // a counter this server has but has not counted anything in yet is 0, not unknown
    const counted = (name) => fmtNumber(one(after, name) ?? (after ? 0 : null));

    cards.ingest.body.replaceChildren(
      big(before ? fmtRate(accepted ?? 0) : "…", "events accepted per second"),
      kv([["accepted since start", counted("lakehose_events_accepted_total")],
        ["answer latency (avg)", fmtSeconds(average(before, after, "lakehose_ack_latency_seconds"))],
        ["received", before ? `${fmtBytes(sumOf(rate(before, after, "lakehose_request_bytes_total")) ?? 0)}/s` : "…"]]),
      ingestChart);
    spark(ingestChart, history, ["lakehose_events_accepted_total"], "events/s");

    cards.rejected.body.replaceChildren(
      big(before ? fmtRate(rejected) : "…", "events rejected per second", rejected > 0 ? "warn" : ""),
      kv([["share of events", share === null ? "–" : `${(share * 100).toFixed(2)} %`],
        ["at the collector", counted("lakehose_events_rejected_total")],
        ["at delivery", counted("lakehose_delivery_rejected_total")]]),
      rejectChart, h("a", { href: "#/rejected" }, "Browse rejected rows →"));
    spark(rejectChart, history, ["lakehose_events_rejected_total", "lakehose_delivery_rejected_total"], "rejected/s");

    const lag = total(after, "lakehose_consumer_lag_seconds", "stream", Math.max);
    const worst = [...lag].sort((a, b) => b[1] - a[1])[0];
    cards.lag.body.replaceChildren(
      big(worst ? fmtSeconds(worst[1]) : "–", "age of the oldest event not yet in a table", worst && worst[1] > 300 ? "warn" : ""),
      kv([["oldest undelivered", worst && worst[1] > 0 ? worst[0] : "–"],
        ["events read, not committed", fmtNumber(sumOf(total(after, "lakehose_consumer_lag_events", "stream", Math.max)))]]));

    const commitsPerMinute = sumOf(rate(before, after, "lakehose_batches_committed_total"));
    cards.commits.body.replaceChildren(
      big(fmtSeconds(average(null, after, "lakehose_commit_latency_seconds")), "average time to write and commit a batch"),
      kv([["latency p95 (≤)", fmtSeconds(quantile(null, after, "lakehose_commit_latency_seconds", 0.95))],
        ["commits", commitsPerMinute === null ? "–" : `${fmtNumber(Math.round(commitsPerMinute * 600) / 10)}/min`],
        ["rows committed", counted("lakehose_rows_committed_total")],
        ["failed, retried", counted("lakehose_commit_failures_total")]]));

    const tables = lake || [];
    cards.disk.body.replaceChildren(
      big(fmtBytes(one(after, "lakehose_disk_free_bytes", Math.min)), "free on the log's disk"),
      kv([["log", fmtBytes(one(after, "lakehose_log_size_bytes", Math.max))],
        ["lake", lake ? fmtBytes(tables.reduce((a, t) => a + t.bytes, 0)) : "–"],
        ["data files", lake ? fmtNumber(tables.reduce((a, t) => a + t.data_files, 0)) : "–"],
        ["tables", lake ? fmtNumber(tables.length) : "–"]]));

    cards.maintenance.body.replaceChildren(...maintenance(after));

    const gaps = [...total(after, "lakehose_audit_discrepancy_events", "stream")];
    auditGauge.replaceChildren(has(after, "lakehose_audit_discrepancy_events")
      ? kv(gaps.map(([stream, n]) => [stream, h("span", { class: n ? "error" : "ok" }, n ? `${fmtNumber(n)} events differ` : "balanced")]))
      : h("p", { class: "muted" }, "No audit result in /metrics yet."));
  }

  const auditResult = h("div", { id: "audit-result" });
  cards.audit.body.append(auditGauge, h("button", { type: "button", class: "quiet small", id: "run-audit", onclick: async (e) => {
    e.target.disabled = true;
    auditResult.textContent = "auditing the last 24 hours…";
    try {
      const report = await optional("/v1/audit?since=24h");
      auditResult.replaceChildren(report === null ? h("p", { class: "muted" }, "This server has no audit endpoint.")
        : report.ok ? h("p", { class: "ok" }, "Every acknowledged event is accounted for.")
          : h("ul", { class: "error" }, report.problems.map((p) => h("li", {}, p))));
    } catch (err) {
      auditResult.replaceChildren(h("p", { class: "error" }, errorText(err)));
    } finally {
      e.target.disabled = false;
    }
  } }, "Run audit (24 h)"), auditResult);

  // the runs counted since this start (every process of `up`), else when they come; then the
  // newest maintenance commit in each table, which outlives restarts
  function maintenance(after) {
    const runs = [...total(after, "lakehose_maintenance_runs_total", "job")];
    const failures = total({ samples: (after?.samples || []).filter((s) => s.labels.outcome === "failure") },
      "lakehose_maintenance_runs_total", "job");
    const lastOk = total(after, "lakehose_maintenance_last_success_timestamp_seconds", "job", Math.max);
    const every = schedule ? fmtSeconds(schedule.interval_seconds) : null;
    const since = runs.length
      ? kv(runs.map(([job, n]) => [job, `${fmtNumber(n)} run${n === 1 ? "" : "s"}, ${fmtNumber(failures.get(job) || 0)} failed; `
        + `last success ${fmtAgo(lastOk.get(job))}`]))
      : h("p", { class: "muted" }, schedule?.enabled === false
        ? "Maintenance is off ([maintenance] enabled = false): compact and expire the tables with lakehose maintain --once."
        : "No run has finished since lakehose started."
          + (every ? ` lakehose up runs maintenance in a process of its own every ${every}, the first run ${every} after the start.` : ""));
    const commits = (lake || []).filter((t) => t.last_maintenance);
    const recorded = !lake ? null : commits.length
      ? h("div", {}, h("div", { class: "muted small" }, "Last maintenance commit in each table"),
        kv(commits.map((t) => [t.name, `${t.last_maintenance.job} ${fmtAgo(t.last_maintenance.at)}`])))
      : h("p", { class: "muted small" }, "No table has a maintenance commit yet (a run with nothing to compact commits nothing).");
    return [since, recorded].filter(Boolean);
  }

  let history = [];
  async function loadLake() {
    try {
      ({ tables: lake, maintenance: schedule } = await api("/v1/lake/tables"));
    } catch {
      lake = null;
    }
    draw(history, history[history.length - 1]);
  }
  const stop = sampler(SECONDS, (samples, latest) => { history = samples; draw(samples, latest); });
  loadLake();
  const timer = setInterval(loadLake, 30000);
  return () => { stop(); clearInterval(timer); };
}
