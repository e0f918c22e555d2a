// Rejected rows: what was refused, by stream and reason; each row's raw payload; and replay
// (validate a stream's rejected rows again and land those that now pass, once).

import { api, isAdmin } from "./api.js";
import { errorText, field, fmtNumber, fmtTime, h, select } from "./dom.js";

const PAGE = 50;

export async function render(view, { params }) {
  const state = { stream: params.get("stream") || "", reason: params.get("reason") || "",
    state: params.get("state") || "pending", offset: 0 };
  const summaryEl = h("div", { id: "rejected-summary" });
  const filtersEl = h("div", { class: "row" });
  const listEl = h("div", { id: "rejected-list" });
  const payloadEl = h("div", { class: "panel stack hidden", id: "rejected-payload" });
  const note = h("p", { class: "small", id: "replay-note" });
  view.append(
    h("div", { class: "panel stack" }, h("h1", {}, "Rejected rows"),
      h("p", { class: "muted small" }, "Every event lakehose refused, with the reason and the raw payload ",
        "(table events._rejected). Fix the stream's schema, then replay: rows that now pass land once."),
      summaryEl),
    h("div", { class: "panel stack" }, filtersEl, note, listEl),
    payloadEl);

  function syncUrl() {
    const query = new URLSearchParams(Object.entries(state).filter(([k, v]) => v && k !== "offset"));
    history.replaceState(null, "", `#/rejected?${query}`);
  }

  async function loadSummary() {
    const summary = await api("/v1/rejected/summary");
    if (!summary.rows.length) {
      summaryEl.replaceChildren(h("p", { class: "muted" }, "Nothing was rejected."));
      return summary;
    }
    summaryEl.replaceChildren(h("div", { class: "scroll" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["Stream", "Reason", "Waiting", "Replayed", "Last received"].map((t) => h("th", {}, t)))),
      h("tbody", {}, summary.rows.map(([stream, reason, pending, replayed, lastAt]) => h("tr", {
        class: "click", dataset: { stream: stream ?? "", reason },
        onclick: () => { Object.assign(state, { stream: stream ?? "", reason, offset: 0 }); refresh(); },
      }, h("td", {}, stream ?? "(no stream)"), h("td", {}, reason), h("td", { class: "num" }, fmtNumber(pending)),
      h("td", { class: "num" }, fmtNumber(replayed)), h("td", {}, fmtTime(lastAt))))))));
    return summary;
  }

  function drawFilters(summary) {
    const streams = [...new Set(summary.rows.map((r) => r[0]).filter(Boolean))].sort();
    const reasons = [...new Set(summary.rows.filter((r) => !state.stream || r[0] === state.stream).map((r) => r[1]))].sort();
    const replay = isAdmin() ? h("button", { type: "button", id: "replay", disabled: !state.stream, onclick: async (e) => {
      e.target.disabled = true;
      note.className = "small";
      note.textContent = "replaying…";
      try {
        const done = await api("/v1/rejected/replay", { body: { stream: state.stream, reason: state.reason || null } });
        const counts = (byReason) => Object.entries(byReason).map(([code, n]) => `${n} ${code}`).join(", ");
        const skipped = counts(done.skipped);
        note.className = "small ok";
        note.textContent = `Replayed ${done.replayed} event${done.replayed === 1 ? "" : "s"} into events.${done.stream}; `
          + `still rejected: ${counts(done.still_rejected) || "none"}.`
          + (skipped ? ` Skipped (no event to replay): ${skipped}.` : "");
        await refresh({ keepNote: true });
      } catch (err) {
        note.className = "small error";
        note.textContent = errorText(err);
        e.target.disabled = false;
      }
    } }, state.stream ? `Replay ${state.stream}${state.reason ? ` (${state.reason})` : ""}` : "Pick a stream to replay")
      : h("span", { class: "muted small", id: "replay-needs-admin" }, "Replaying needs an admin token.");
    filtersEl.replaceChildren(
      field("Stream", select([["", "all streams"], ...streams.map((s) => [s, s])], state.stream,
        (v) => { Object.assign(state, { stream: v, reason: "", offset: 0 }); refresh(); }, { name: "stream" })),
      field("Reason", select([["", "all reasons"], ...reasons.map((r) => [r, r])], state.reason,
        (v) => { Object.assign(state, { reason: v, offset: 0 }); refresh(); }, { name: "reason" })),
      field("State", select([["pending", "waiting"], ["replayed", "replayed"], ["all", "all"]], state.state,
        (v) => { Object.assign(state, { state: v, offset: 0 }); refresh(); }, { name: "state" })),
      h("span", { class: "grow" }), replay);
  }

  async function loadList() {
    const query = new URLSearchParams({ state: state.state, limit: PAGE, offset: state.offset });
    if (state.stream) query.set("stream", state.stream);
    if (state.reason) query.set("reason", state.reason);
    const result = await api(`/v1/rejected?${query}`);
    const at = Object.fromEntries(result.columns.map((c, i) => [c.name, i]));
    listEl.replaceChildren(
      result.rows.length ? h("div", { class: "scroll" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["Received", "Stream", "Reason", "Path", "Message", "Payload"].map((t) => h("th", {}, t)))),
        h("tbody", {}, result.rows.map((row) => h("tr", {
          class: "click", dataset: { id: row[at.rejection_id] }, onclick: () => showPayload(row[at.rejection_id]),
        }, h("td", {}, fmtTime(row[at.received_at])), h("td", {}, row[at.stream] ?? "–"), h("td", {}, row[at.reason]),
        h("td", {}, h("code", {}, row[at.path] ?? "")), h("td", { class: "wrap" }, row[at.message] ?? ""),
        h("td", { class: "wrap" }, h("code", {}, (row[at.payload] || "").slice(0, 120))))))))
        : h("p", { class: "muted" }, "No rows."),
      h("div", { class: "pager" },
        h("button", { type: "button", class: "quiet small", disabled: state.offset === 0,
          onclick: () => { state.offset = Math.max(0, state.offset - PAGE); loadList(); } }, "‹ Newer"),
        h("span", { class: "muted small" }, result.rows.length ? `rows ${state.offset + 1}–${state.offset + result.rows.length}` : ""),
        h("button", { type: "button", class: "quiet small", disabled: result.rows.length < PAGE,
          onclick: () => { state.offset += PAGE; loadList(); } }, "Older ›")));
  }

  async function showPayload(id) {
    const row = await api(`/v1/rejected/${encodeURIComponent(id)}`);
    let payload = row.payload ?? "";
    try { payload = JSON.stringify(JSON.parse(payload), null, 2); } catch { /* not JSON: shown as received */ }
    payloadEl.classList.remove("hidden");
    payloadEl.replaceChildren(
      h("div", { class: "row" }, h("h2", { class: "grow" }, "Raw payload"),
        h("button", { type: "button", class: "quiet small", onclick: () => payloadEl.classList.add("hidden") }, "Close")),
      h("dl", { class: "kv" }, ["rejection_id", "stream", "reason", "message", "path", "received_at", "key_name",
        "source", "replayed_at"].flatMap((k) => [h("dt", {}, k),
        h("dd", {}, k.endsWith("_at") ? fmtTime(row[k]) : row[k] ?? "–")])),
      h("pre", { id: "payload-text" }, payload));
    payloadEl.scrollIntoView({ block: "nearest" });
  }

  async function refresh({ keepNote = false } = {}) {
    if (!keepNote) note.textContent = "";
    syncUrl();
    const summary = await loadSummary();
    drawFilters(summary);
    await loadList();
  }

  await refresh();
  return null;
}
