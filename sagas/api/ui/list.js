// Saga list: filter by definition, status and start time; find by saga id or a context
// value (an order id); one page at a time, newest first. Failed and compensating sagas
// stand out.
import { ATTENTION, api, badge, el, errorBox, when } from "./core.js";

const STATUSES = ["running", "compensating", "completed", "compensated", "failed", "aborted"];
const PAGE = 25;

function localInput(iso) {
  // an ISO time in the query -> the value of a datetime-local input (local time)
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const shifted = new Date(at.getTime() - at.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

function isoFrom(local) {
  return local ? new Date(local).toISOString() : "";
}

function filterForm(params, definitions) {
  const field = (label, control) => el("label", {}, el("span", {}, label), control);
  const q = el("input", { type: "search", name: "q", id: "find", value: params.get("q") || "",
    placeholder: "saga id or order id", "aria-describedby": "find-help" });
  const saga = el("select", { name: "saga", id: "filter-saga" }, el("option", { value: "" }, "any"),
    definitions.map((d) => el("option", { value: d, selected: params.get("saga") === d }, d)));
  const status = el("select", { name: "status", id: "filter-status" },
    el("option", { value: "" }, "any"),
    el("option", { value: "failed,compensating", selected: params.get("status") === "failed,compensating" }, "needs attention"),
    STATUSES.map((s) => el("option", { value: s, selected: params.get("status") === s }, s)));
  const since = el("input", { type: "datetime-local", name: "since", id: "filter-since", value: localInput(params.get("since")) });
  const until = el("input", { type: "datetime-local", name: "until", id: "filter-until", value: localInput(params.get("until")) });
  const form = el("form", { class: "filters", role: "search" },
    field("Find", q), field("Definition", saga), field("Status", status),
    field("Started from", since), field("Started before", until),
    el("button", { type: "submit", id: "search" }, "Search"),
    el("a", { href: "#/sagas" }, "Clear"),
    el("p", { id: "find-help", class: "help" },
      "Find matches a saga id (or its start) or a top-level value of the saga's context."));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (q.value.trim()) next.set("q", q.value.trim());
    if (saga.value) next.set("saga", saga.value);
    if (status.value) next.set("status", status.value);
    if (since.value) next.set("since", isoFrom(since.value));
    if (until.value) next.set("until", isoFrom(until.value));
    location.hash = `#/sagas?${next}`;
  });
  return form;
}

function row(saga) {
  const standsOut = ATTENTION.has(saga.status);
  return el("tr", { class: standsOut ? "attention" : null, "data-id": saga.id, "data-status": saga.status },
    el("td", {}, el("a", { href: `#/saga/${encodeURIComponent(saga.id)}` }, saga.id)),
    el("td", {}, `${saga.saga} v${saga.version}`),
    el("td", {}, badge(saga.status)),
    el("td", {}, saga.current_steps.join(", ") || "—"),
    el("td", {}, when(saga.started_at)),
    el("td", {}, when(saga.updated_at)),
    el("td", { class: "failure" }, saga.failure || ""));
}

export async function renderList(view, params) {
  view.append(el("h1", {}, "Sagas"));
  const overview = await api("GET", "/overview");
  const definitions = overview.ok ? overview.body.loaded.map((d) => d.saga) : [];
  view.append(filterForm(params, definitions));
  const query = new URLSearchParams();
  for (const name of ["q", "saga", "status", "since", "until", "cursor"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  query.set("limit", String(PAGE));
  const result = await api("GET", `/sagas?${query}`);
  if (!result.ok) {
    view.append(errorBox(result));
    return;
  }
  const data = result.body;
  const table = el("table", { id: "saga-list" },
    el("caption", {}, params.get("q") ? `Sagas matching “${params.get("q")}”` : "Sagas, newest first"),
    el("thead", {}, el("tr", {}, ["saga id", "definition", "status", "current steps", "started", "updated", "failure"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, data.sagas.map(row)));
  if (!data.sagas.length) table.tBodies[0].append(el("tr", {}, el("td", { colspan: 7 }, "No saga matches.")));
  const pages = el("nav", { class: "pages", "aria-label": "Pages" });
  if (params.get("cursor")) {
    const first = new URLSearchParams(params);
    first.delete("cursor");
    pages.append(el("a", { href: `#/sagas?${first}`, id: "first-page" }, "« Newest"));
  }
  if (data.next_cursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", data.next_cursor);
    pages.append(el("a", { href: `#/sagas?${next}`, id: "next-page" }, "Older »"));
  }
  const notes = data.complete ? [] : [el("p", { class: "warning" },
    `Replicas not answering: ${data.missing_replicas.join(", ")}; the list may miss sagas.`)];
  view.append(...notes, el("p", { id: "list-count" }, `${data.count} shown`), table, pages);
}
