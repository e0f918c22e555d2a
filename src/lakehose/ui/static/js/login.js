// The login page: the only page that works without a token. The token is checked against
// /v1/whoami before it is kept.

import { api, keepToken, session } from "./api.js";
import { errorText, h } from "./dom.js";

export async function render(view, { params }) {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true,
    placeholder: "lht_…", autofocus: true });
  const remember = h("input", { type: "checkbox", name: "remember" });
  const problem = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, "Log in");
  async function submit(event) {
    event.preventDefault();
    const value = input.value.trim();
    button.disabled = true;
    problem.textContent = "";
    try {
      const me = await api("/v1/whoami", { bearer: value });
      keepToken(value, remember.checked);
      session.me = me;
      location.hash = params.get("next") || "#/explore";
    } catch (err) {
      problem.textContent = err.status === 401 || err.status === 403
        ? `This token was refused: ${errorText(err)}` : errorText(err);
    } finally {
      button.disabled = false;
    }
  }
  view.append(h("form", { class: "panel login stack", onsubmit: submit },
    h("h1", {}, "lakehose"),
    h("p", { class: "muted" }, "Log in with an admin or read token (lakehose tokens create NAME [--admin]). ",
      "lakehose up prints an admin token on its first start."),
    h("label", { class: "field" }, h("span", {}, "Token"), input),
    h("label", { class: "row small" }, remember, "Remember on this device"),
    button, problem));
}
