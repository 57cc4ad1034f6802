// Dead letters: the records the coordinator could not take, why, where they were read,
// their value; re-drive one to the topic it came from (needs the API token).
import { api, confirmAction, el, errorBox, jsonTree, refusal, when } from "./core.js";

function value(letter) {
  if (letter.value_json !== null && letter.value_json !== undefined) {
    return jsonTree(letter.value_json, `$${letter.partition}-${letter.offset}`, new Set(), 1);
  }
  if (!letter.value_size) return el("em", {}, "empty (a value too large to keep is dropped)");
  return el("details", {}, el("summary", {}, `${letter.value_size} bytes of text`),
    el("pre", {}, letter.value_text || ""));
}

function letterRow(letter, status) {
  const original = letter.original;
  const from = original.topic ? `${original.topic}[${original.partition ?? "?"}]@${original.offset ?? "?"}` : "unknown";
  const place = `${letter.partition}/${letter.offset}`;
  const button = el("button", {
    type: "button", class: "redrive", "data-letter": place,
    disabled: !original.topic,
    onclick: async () => {
      const ok = await confirmAction(
        `Re-drive dead letter ${place} to ${original.topic}? The coordinator reads it again; if it still cannot take it, it comes back here.`,
        "Re-drive");
      if (!ok) {
        status.textContent = "Re-drive cancelled.";
        return;
      }
      const answer = await api("POST", `/deadletters/${letter.partition}/${letter.offset}/redrive`);
      if (answer.ok) {
        const to = answer.body.to;
        status.textContent = `Re-driven: dead letter ${place} sent to ${to.topic}[${to.partition}]@${to.offset}.`;
        status.className = "ok";
      } else {
        status.textContent = refusal(answer);
        status.className = "error";
      }
    },
  }, "Re-drive");
  const extra = Object.entries(letter.dlq_headers).map(([k, v]) => `${k}: ${v}`).join("; ");
  return el("tr", { "data-letter": place, "data-reason": letter.reason || "" },
    el("td", {}, when(letter.timestamp)),
    el("td", {}, el("strong", {}, letter.reason || "—"), letter.detail ? el("div", {}, letter.detail) : "",
      extra ? el("div", { class: "help" }, extra) : ""),
    el("td", {}, from),
    el("td", {}, letter.key || "—"),
    el("td", {}, value(letter)),
    el("td", {}, button));
}

export async function renderDeadLetters(view) {
  view.append(el("h1", {}, "Dead letters"));
  const status = el("p", { id: "redrive-result", role: "status", "aria-live": "polite" });
  const refresh = el("button", { type: "button", id: "refresh-letters" }, "Refresh");
  const body = el("div");
  view.append(el("p", { class: "help" },
    "Records that could not be decoded, validated or routed, unchanged, with why (x-dlq-reason) and where they were read. Re-driving needs the API token."),
    refresh, status, body);
  async function load() {
    const result = await api("GET", "/deadletters?limit=100");
    if (!result.ok) {
      body.replaceChildren(errorBox(result));
      return;
    }
    const data = result.body;
    const table = el("table", { id: "letters" },
      el("caption", {}, `Newest dead letters on ${data.topic} (${data.total} in all)`),
      el("thead", {}, el("tr", {}, ["written", "reason", "read from", "key", "value", ""]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, data.letters.map((l) => letterRow(l, status))));
    if (!data.letters.length) table.tBodies[0].append(el("tr", {}, el("td", { colspan: 6 }, "No dead letters.")));
    body.replaceChildren(table);
  }
  refresh.addEventListener("click", load);
  await load();
}
