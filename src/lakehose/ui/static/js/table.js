// A result as a paged table. Every cell carries its raw value in data-value (JSON), so what a
// chart shows can be checked against the query's own answer.

import { fmtCell, h, isNumericType } from "./dom.js";

export function dataTable(result, { pageSize = 100, onRow } = {}) {
  const { columns, rows } = result;
  const wrap = h("div", { class: "result" });
  let page = 0;
  const pages = Math.max(1, Math.ceil(rows.length / pageSize));

  function draw() {
    const shown = rows.slice(page * pageSize, (page + 1) * pageSize);
    const table = h("table", { class: "data" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.name, h("span", { class: "type" }, c.type))))),
      h("tbody", {}, shown.map((row, i) => h("tr", {
        class: onRow ? "click" : null,
        onclick: onRow ? () => onRow(row, page * pageSize + i) : null,
      }, row.map((value, j) => {
        const type = columns[j].type;
        const cls = value === null ? "null" : isNumericType(type) ? "num" : typeof value === "string" && value.length > 60 ? "wrap" : null;
        return h("td", { class: cls, dataset: { value: JSON.stringify(value) } }, fmtCell(value, type));
      })))));
    const pager = pages > 1 ? h("div", { class: "pager" },
      h("button", { type: "button", class: "quiet small", disabled: page === 0, onclick: () => { page--; draw(); } }, "‹ Prev"),
      h("span", { class: "muted small" }, `page ${page + 1} of ${pages}`),
      h("button", { type: "button", class: "quiet small", disabled: page >= pages - 1, onclick: () => { page++; draw(); } }, "Next ›"),
    ) : null;
    wrap.replaceChildren(h("div", { class: "scroll" }, table), pager || "");
  }

  draw();
  return wrap;
}
