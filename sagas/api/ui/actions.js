// The operator's actions on a saga: retry, skip a step, resolve, abort. Each asks for
// confirmation, sends the tab's API token, and says what came of it — the new state,
// or why the coordinator refused.

const WAIT_SECONDS = 5;

const ACTIONS = {
  abort: { label: "Abort", needsReason: false,
    explain: "It compensates every step that succeeded, then ends aborted." },
  retry: { label: "Retry", needsReason: false,
    explain: "A parked saga retries the compensation that gave up, with a fresh budget." },
  skip: { label: "Skip step", needsReason: true,
    explain: "The step is marked done by hand; the reason is kept in the history." },
  resolve: { label: "Resolve", needsReason: true,
    explain: "A parked saga is marked repaired by hand; the reason is kept in the history." },
};

export function actionsPanel(id, saga, { api, confirmAction, refusal, el, reload }) {
  const result = el("p", { id: "action-result", role: "status", "aria-live": "polite" });
  const reason = el("input", { id: "action-reason", type: "text", maxlength: 1000,
    placeholder: "why (kept in the saga's history)" });
  const step = el("select", { id: "action-step" });
  const buttons = {};

  async function run(action) {
    const spec = ACTIONS[action];
    const why = reason.value.trim();
    if (spec.needsReason && !why) {
      result.textContent = `${spec.label} needs a reason: type one above.`;
      result.className = "error";
      reason.focus();
      return;
    }
    const target = action === "skip" ? ` step ${step.value} of` : "";
    const ok = await confirmAction(`${spec.label}${target} saga ${id}? ${spec.explain}`, spec.label);
    if (!ok) {
      result.textContent = `${spec.label} cancelled.`;
      result.className = "";
      return;
    }
    const body = { reason: why || `${action} from the explorer` };
    if (action === "skip") body.step = step.value;
    result.textContent = `${spec.label}: sending…`;
    result.className = "";
    const answer = await api("POST", `/sagas/${encodeURIComponent(id)}/${action}?wait=${WAIT_SECONDS}`, body);
    if (answer.ok) {
      const state = answer.body.state;
      result.textContent = answer.body.applied && state
        ? `${spec.label} applied: the saga is now ${state.status}.`
        : `${spec.label} accepted; this page shows the effect when the coordinator has applied it.`;
      result.className = "ok";
    } else {
      result.textContent = refusal(answer);
      result.className = "error";
    }
    reload();
  }

  for (const action of Object.keys(ACTIONS)) {
    buttons[action] = el("button", { type: "button", id: `action-${action}`,
      class: action === "abort" ? "danger" : null, onclick: () => run(action) }, ACTIONS[action].label);
  }
  const node = el("section", { "aria-labelledby": "actions-h", class: "actions" },
    el("h2", { id: "actions-h" }, "Operator actions"),
    el("p", { class: "help" },
      "Each action asks for confirmation and needs the API token (top right). The coordinator refuses what its state does not allow, and says why."),
    el("label", {}, el("span", {}, "Reason"), reason),
    el("div", { class: "buttons" }, buttons.abort, buttons.retry, buttons.resolve),
    el("div", { class: "buttons" }, el("label", {}, el("span", {}, "Step"), step), buttons.skip),
    result);

  function update(current) {
    const chosen = step.value;
    step.replaceChildren(...current.steps.map((s) =>
      el("option", { value: s.name, selected: s.name === chosen }, `${s.name} (${s.status})`)));
  }
  update(saga);
  return { node, update };
}
