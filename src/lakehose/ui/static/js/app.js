// The single page: routes on the URL's hash (#/page/arg?params), so every view has a URL that
// can be shared and reloaded. Without a kept token only the login page is shown.

import { api, forgetToken, session, token } from "./api.js";
import { errorText, h } from "./dom.js";
import * as dashboards from "./dashboards.js";
import * as explore from "./explore.js";
import * as health from "./health.js";
import * as login from "./login.js";
import * as rejected from "./rejected.js";
import * as sql from "./sql.js";
import * as streams from "./streams.js";

const PAGES = { login, explore, sql, dashboards, dashboard: dashboards, streams, rejected, health };
const main = document.getElementById("main");
let cleanup = null;
let generation = 0;

export function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const [name = "explore", ...args] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: PAGES[name] ? name : "explore", args, params: new URLSearchParams(query) };
}

async function route() {
  const mine = ++generation;
  const { name, args, params } = parseHash();
  if (name !== "login" && !token()) {
    location.hash = `#/login?next=${encodeURIComponent(location.hash || "#/explore")}`;
    return;
  }
  if (name !== "login" && !session.me) {
    try {
      session.me = await api("/v1/whoami");
    } catch {
      return; // a refused token has sent us to the login page
    }
  }
  if (mine !== generation) return;
  cleanup?.();
  cleanup = null;
  const view = h("div", { class: "view" });
  main.replaceChildren(view);
  document.body.dataset.page = name;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === name || (name === "dashboard" && link.dataset.page === "dashboards"));
  }
  document.getElementById("who").textContent = session.me ? `${session.me.name} (${session.me.kind})` : "";
  try {
    const stop = await PAGES[name].render(view, { name, args, params });
    if (mine === generation) cleanup = stop || null;
    else stop?.();
  } catch (err) {
    view.append(h("div", { class: "panel error" }, errorText(err)));
  }
}

// the menu button shows the pages' links on a narrow screen; going anywhere folds them again
const menu = document.getElementById("menu");
function showMenu(open) {
  document.body.classList.toggle("menu-open", open);
  menu.setAttribute("aria-expanded", String(open));
}
menu.addEventListener("click", () => showMenu(!document.body.classList.contains("menu-open")));
document.getElementById("nav").addEventListener("click", () => showMenu(false)); // also the page already open
window.addEventListener("hashchange", () => showMenu(false));

document.getElementById("logout").addEventListener("click", () => {
  forgetToken();
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
