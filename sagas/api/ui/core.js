// What every page of the explorer shares: building elements, calling the API, the token,
// times and durations, and the confirmation dialog. No framework, no build step.

const TOKEN_KEY = "sagas-api-token";

/** An element: el("a", {href: "#/"}, "text", child, ...). Strings are text, never HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** One API call: {ok, status, body}; a network failure is status 0 with a message. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    return { ok: false, status: 0, body: { error: "unreachable", detail: `the API did not answer (${err}); is the coordinator up?` } };
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = { error: "not-json", detail: `HTTP ${response.status} without a JSON body` };
  }
  return { ok: response.ok, status: response.status, body: parsed };
}

/** What a refused call says, for a person: the status and the API's own reason. */
export function refusal(result) {
  const body = result.body || {};
  const why = body.detail || body.error || "no reason given";
  if (result.status === 401) return `Refused (401, not authorised): ${why}`;
  if (result.status === 409) return `Refused (409, not possible now): ${why}`;
  if (result.status === 0) return `Not sent: ${why}`;
  return `Refused (${result.status}): ${why}`;
}

export function when(iso) {
  if (!iso) return "—";
  return iso.replace("T", " ").replace("Z", " UTC");
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

export const ATTENTION = new Set(["failed", "compensating", "aborted"]);

export function badge(status) {
  const label = status === "failed" ? "failed (parked)" : status;
  return el("span", { class: `badge s-${status}`, "data-status": status }, label);
}

export function announce(text) {
  const node = document.getElementById("announce");
  node.textContent = "";
  requestAnimationFrame(() => { node.textContent = text; });
}

/** Ask before doing something: resolves true when the person confirms. */
export function confirmAction(text, confirmLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = confirmLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

/** A JSON value as nested <details>: objects and arrays collapse, scalars are text. */
export function jsonTree(value, path = "$", open = new Set(), depth = 0) {
  if (value === null || typeof value !== "object") {
    return el("code", { class: `json-${value === null ? "null" : typeof value}` }, JSON.stringify(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  const details = el("details", { "data-path": path, open: depth === 0 || open.has(path) });
  details.append(el("summary", {}, summary));
  const list = el("dl", { class: "json" });
  for (const [key, child] of entries) {
    list.append(el("dt", {}, String(key)), el("dd", {}, jsonTree(child, `${path}.${key}`, open, depth + 1)));
  }
  details.append(list);
  return details;
}

export function openPaths(root) {
  return new Set([...root.querySelectorAll("details[open][data-path]")].map((d) => d.dataset.path));
}

/** Why a page could not be shown (a read, not a refused action). */
export function errorBox(result) {
  const body = result.body || {};
  const why = body.detail || body.error || "no reason given";
  const text = result.status === 0 ? why : `Could not load (${result.status}): ${why}`;
  return el("p", { class: "error", role: "alert" }, text);
}
