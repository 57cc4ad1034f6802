// The explorer's router: the part of the URL after "#" names the page.
//   #/                  overview
//   #/sagas?status=...  saga list (filters and search in the query)
//   #/saga/ID           one saga
//   #/deadletters       dead letters
import { announce, setToken, token } from "./core.js";
import { renderDeadLetters } from "./letters.js";
import { renderList } from "./list.js";
import { renderOverview } from "./overview.js";
import { renderSaga } from "./saga.js";

let stopCurrent = () => {};

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  if (path.startsWith("/saga/")) return { page: "sagas", render: (v) => renderSaga(v, decodeURIComponent(path.slice(6))) };
  if (path === "/sagas") return { page: "sagas", render: (v) => renderList(v, params) };
  if (path === "/deadletters") return { page: "deadletters", render: (v) => renderDeadLetters(v) };
  return { page: "overview", render: (v) => renderOverview(v) };
}

async function show() {
  stopCurrent();
  stopCurrent = () => {};
  const view = document.getElementById("view");
  const { page, render } = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view.replaceChildren();
  const stop = await render(view);
  if (typeof stop === "function") stopCurrent = stop;
  const heading = view.querySelector("h1");
  if (heading) {
    document.title = `${heading.textContent} · sagastream`;
    announce(heading.textContent);
  }
  view.focus({ preventScroll: true });
}

function tokenState() {
  document.getElementById("token-state").textContent = token() ? "token set for this tab" : "no token";
}

function setUpToken() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    input.value = "";
    tokenState();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    setToken("");
    input.value = "";
    tokenState();
  });
  tokenState();
}

setUpToken();
window.addEventListener("hashchange", show);
show();
