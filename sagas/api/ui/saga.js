// One saga: its timeline drawn to scale, steps, lifecycle events, context and the
// operator's actions. It polls the API and redraws what changed, without a reload.
import {
  api, badge, confirmAction, el, errorBox, jsonTree, openPaths, refusal, seconds, when,
} from "./core.js";
import { actionsPanel } from "./actions.js";

const POLL_MS = 1500;
const POLL_DONE_MS = 5000;

function facts(saga) {
  const item = (term, ...value) => [el("dt", {}, term), el("dd", {}, ...value)];
  return el("dl", { class: "facts", id: "facts" },
    item("status", badge(saga.status), saga.phase === "backward" && !saga.terminal ? " (compensating)" : ""),
    item("definition", `${saga.saga} version ${saga.version}`),
    item("started", when(saga.started_at)),
    item("finished", when(saga.finished_at)),
    item("duration", seconds(saga.duration_seconds)),
    item("current steps", saga.current_steps.join(", ") || "—"),
    saga.failure ? item("failure", saga.failure) : [],
    saga.abort_reason ? item("abort reason", saga.abort_reason) : [],
    item("served by", saga.served_by || "—"));
}

function timeline(saga) {
  const startMs = Date.parse(saga.started_at);
  const lastStart = Math.max(startMs, ...saga.timeline.map((s) => Date.parse(s.start)));
  const endMs = saga.finished_at ? Date.parse(saga.finished_at) : Math.max(Date.now(), lastStart + 1);
  const total = Math.max(endMs - startMs, 1);
  const rows = saga.timeline.map((span) => {
    const begin = Date.parse(span.start) - startMs;
    const length = span.end ? Date.parse(span.end) - Date.parse(span.start) : endMs - Date.parse(span.start);
    const left = (100 * begin) / total;
    const width = Math.max((100 * length) / total, 0.4);
    const kind = span.phase === "undo" ? "compensation" : "step";
    const label = `${span.step} ${kind}, attempt ${span.attempt}: ${span.result || "waiting for a reply"}`;
    const bar = el("div", { class: "track" }, el("div", {
      class: `bar p-${span.phase} r-${(span.result || "open").replace(/[^a-z]/g, "")}`,
      style: { left: `${left.toFixed(3)}%`, width: `${Math.min(width, 100 - left).toFixed(3)}%` },
      title: `${label} · ${when(span.start)} → ${when(span.end)}`,
      role: "img",
      "aria-label": label,
    }));
    return el("tr", { "data-phase": span.phase, "data-step": span.step, class: `span-${span.phase}` },
      el("th", { scope: "row" }, span.step),
      el("td", {}, kind),
      el("td", {}, span.attempt),
      el("td", {}, span.command || "(observed)"),
      el("td", {}, when(span.start)),
      el("td", {}, span.end ? seconds(span.duration_seconds) : "running"),
      el("td", {}, span.result || "waiting", span.detail ? ` (${span.detail})` : ""),
      el("td", { class: "bar-cell" }, bar));
  });
  return el("table", { id: "timeline", class: "timeline" },
    el("caption", {}, `Timeline: every attempt, to scale over ${seconds(total / 1000)}`),
    el("thead", {}, el("tr", {}, ["step", "kind", "attempt", "command", "started", "took", "result", "time"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 8 }, "No step has started."))));
}

function steps(saga) {
  return el("table", { id: "steps" },
    el("caption", {}, "Steps"),
    el("thead", {}, el("tr", {}, ["#", "step", "status", "attempts", "undo attempts", "started", "finished", "took", "outcome", "undo outcome"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, saga.steps.map((s) => el("tr", { "data-step": s.name },
      el("td", {}, s.index), el("th", { scope: "row" }, s.name, s.pivot ? " (pivot)" : ""),
      el("td", {}, s.status), el("td", {}, s.attempts), el("td", {}, s.compensation_attempts),
      el("td", {}, when(s.started_at)), el("td", {}, when(s.finished_at)),
      el("td", {}, seconds(s.duration_seconds)), el("td", {}, s.outcome || "—"),
      el("td", {}, s.compensation_outcome || "—")))));
}

function lifecycle(saga) {
  return el("table", { id: "history" },
    el("caption", {}, "Lifecycle events and history"),
    el("thead", {}, el("tr", {}, ["at", "event", "step", "detail"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, saga.history.map((h) => el("tr", { "data-event": h.event },
      el("td", {}, when(h.at)), el("td", {}, h.event), el("td", {}, h.step || ""), el("td", {}, h.detail || "")))));
}

function timers(saga) {
  if (!saga.timers.length) return el("p", { id: "timers" }, "No timer is armed.");
  return el("ul", { id: "timers" }, saga.timers.map((t) =>
    el("li", {}, `${t.kind} of ${t.step} (${t.phase}, attempt ${t.attempt}) due ${when(t.due)}`)));
}

function section(id, title, content) {
  return el("section", { "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, title), content);
}

export async function renderSaga(view, id) {
  view.append(el("h1", {}, `Saga ${id}`),
    el("p", {}, el("a", { href: "#/sagas" }, "← all sagas")));
  const live = el("p", { id: "live", class: "help" });
  const parts = el("div");
  const actionsHost = el("div");
  view.append(live, parts, actionsHost);
  let timer = null;
  let stopped = false;
  let last = "";
  let actions = null;

  async function load() {
    clearTimeout(timer);
    const result = await api("GET", `/sagas/${encodeURIComponent(id)}`);
    if (stopped) return;
    const text = JSON.stringify(result.body);
    if (!result.ok) {
      parts.replaceChildren(errorBox(result));
      live.textContent = "";
    } else {
      if (text !== last) {
        const saga = result.body;
        const open = openPaths(parts);
        parts.replaceChildren(
          facts(saga),
          section("tl", "Timeline", timeline(saga)),
          section("st", "Steps", steps(saga)),
          section("ctx", "Context", jsonTree(saga.context, "$", open)),
          section("lc", "Lifecycle", lifecycle(saga)),
          section("tm", "Timers", timers(saga)));
        if (actions === null) {
          actions = actionsPanel(id, saga, { api, confirmAction, refusal, el, reload: load });
          actionsHost.append(actions.node);
        }
        actions.update(saga);
      }
      live.textContent = `Live: checked ${new Date().toLocaleTimeString()}`;
    }
    last = text;
    const done = result.ok && result.body.terminal;
    timer = setTimeout(load, done ? POLL_DONE_MS : POLL_MS);
  }
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}
