// Overview: sagas in flight per definition, recent outcomes, what needs attention.
import { api, badge, el, errorBox, when } from "./core.js";

const POLL_MS = 5000;

function listLink(params, text) {
  return el("a", { href: `#/sagas?${new URLSearchParams(params)}` }, text);
}

function definitionsTable(data) {
  const statuses = ["running", "compensating", "completed", "compensated", "failed", "aborted"];
  const table = el("table", { id: "in-flight" },
    el("caption", {}, "Sagas in the table, per definition"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "definition"),
      el("th", { scope: "col" }, "in flight"),
      statuses.map((s) => el("th", { scope: "col" }, s)))));
  const body = el("tbody");
  for (const row of data.definitions) {
    body.append(el("tr", { "data-saga": row.saga },
      el("th", { scope: "row" }, listLink({ saga: row.saga }, row.saga)),
      el("td", {}, listLink({ saga: row.saga, status: "running,compensating" }, row.in_flight)),
      statuses.map((s) => el("td", { class: s === "failed" && row.by_status[s] ? "attention" : null },
        row.by_status[s] ? listLink({ saga: row.saga, status: s }, row.by_status[s]) : "0"))));
  }
  if (!data.definitions.length) body.append(el("tr", {}, el("td", { colspan: 8 }, "No sagas yet.")));
  table.append(body);
  return table;
}

function recentTable(data) {
  const minutes = Math.round(data.recent.window_seconds / 60);
  const list = el("ul", { id: "recent" });
  for (const [saga, outcomes] of Object.entries(data.recent.outcomes)) {
    const parts = Object.entries(outcomes).map(([status, n]) =>
      el("li", {}, listLink({ saga, status }, `${n} ${status}`)));
    list.append(el("li", {}, el("strong", {}, saga), el("ul", { class: "inline" }, parts)));
  }
  if (!list.children.length) list.append(el("li", {}, "Nothing finished."));
  return el("section", { "aria-labelledby": "recent-h" },
    el("h2", { id: "recent-h" }, `Outcomes in the last ${minutes} minutes`), list);
}

function attention(data) {
  const items = data.attention.map((row) =>
    el("li", {}, el("a", { href: `#/saga/${encodeURIComponent(row.id)}` }, row.id), " ",
      badge(row.status), ` ${row.saga} v${row.version} · ${row.failure || ""} · ${when(row.updated_at)}`));
  const letters = data.dead_letters || {};
  const letterLine = letters.total === null || letters.total === undefined
    ? `Dead letters: unknown (${letters.error || "not read"})`
    : `${letters.total} dead letter${letters.total === 1 ? "" : "s"} on ${letters.topic}`;
  return el("section", { "aria-labelledby": "attention-h", class: "attention-box" },
    el("h2", { id: "attention-h" }, "Needs attention"),
    el("p", {}, el("a", { href: "#/deadletters", id: "dead-letter-count" }, letterLine)),
    items.length ? el("ul", { id: "parked" }, items) : el("p", {}, "No failed (parked) sagas."));
}

export async function renderOverview(view) {
  const heading = el("h1", {}, "Overview");
  const body = el("div");
  view.append(heading, body);
  let timer = null;
  let stopped = false;
  let last = "";
  async function load() {
    const result = await api("GET", "/overview");
    if (stopped) return;
    const text = JSON.stringify(result);
    if (text === last) {
      // unchanged: keep the page (and the keyboard focus) as it is
    } else if (!result.ok) {
      body.replaceChildren(errorBox(result));
    } else {
      const data = result.body;
      const notes = data.complete ? [] : [el("p", { class: "warning" },
        `Replicas not answering: ${data.missing_replicas.join(", ")}; counts are partial.`)];
      body.replaceChildren(...notes, attention(data), definitionsTable(data), recentTable(data));
    }
    last = text;
    timer = setTimeout(load, POLL_MS);
  }
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}
