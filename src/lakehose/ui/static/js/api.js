// The token and every call to the data API. The token is sent as a Bearer header; it is
// kept in sessionStorage (this tab), or in localStorage when "remember" was ticked.

const KEY = "lakehose.token";
export const session = { me: null };

export function token() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
}

export function keepToken(value, remember) {
  forgetToken();
  (remember ? localStorage : sessionStorage).setItem(KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  session.me = null;
}

export function isAdmin() {
  return session.me && session.me.kind === "admin";
}

export class ApiError extends Error {
  constructor(status, code, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function toLogin() {
  forgetToken();
  const next = location.hash.startsWith("#/login") ? "" : `?next=${encodeURIComponent(location.hash)}`;
  location.hash = `#/login${next}`;
}

// as: "json" (default), "text" or "blob"; with bearer: a token to try instead of the kept one
export async function api(path, { method, body, as = "json", bearer } = {}) {
  const headers = { Authorization: `Bearer ${bearer || token() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: method || (body === undefined ? "GET" : "POST"),
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let answer = {};
    try { answer = await response.json(); } catch { answer = { reason: response.statusText }; }
    const badToken = response.status === 401 || /^(unknown|revoked)_token$/.test(answer.error || "");
    if (badToken && !bearer) toLogin();
    throw new ApiError(response.status, answer.error, answer.reason);
  }
  if (as === "text") return response.text();
  if (as === "blob") return response.blob();
  return response.json();
}

// a GET that may not exist on this server (an older or newer lakehose): null when missing
export async function optional(path) {
  try {
    return await api(path);
  } catch (err) {
    if (err.status === 404 || err.status === 405) return null;
    throw err;
  }
}

export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
