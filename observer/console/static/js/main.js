// The console's shell: signs in when the observer asks for it, then renders the view the URL names and keeps
// the navigation's current-page marker right. Each view is a module with render(main, params) -> cleanup.
import { announce } from "./dom.js";
import { current, shown } from "./route.js";
import { start as startAuth } from "./auth.js";
import * as logs from "./views/logs.js";
import * as traces from "./views/traces.js";
import * as metrics from "./views/metrics.js";
import * as topology from "./views/topology.js";
import * as alerts from "./views/alerts.js";

const VIEWS = { logs, traces, metrics, topology, alerts };
const TITLES = {
  logs: "Logs",
  traces: "Traces",
  metrics: "Metrics",
  topology: "Topology",
  alerts: "Alerts and incidents",
};
let cleanup = () => {};

function render(force = false) {
  const { view, params } = current();
  if (!force && location.hash === shown.hash) return;
  shown.hash = location.hash;
  cleanup();
  const main = document.getElementById("main");
  main.replaceChildren();
  main.dataset.view = view;
  document.title = `${TITLES[view]} - Observer console`;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  announce("");
  cleanup = VIEWS[view].render(main, params) || (() => {});
}

async function boot() {
  try {
    const signedIn = await startAuth(document.getElementById("session"));
    if (!signedIn) return;
  } catch (error) {
    announce(`Sign-in failed: ${error.message}`, "error");
    return;
  }
  window.addEventListener("hashchange", () => render());
  window.addEventListener("popstate", () => render());
  render(true);
}

boot();
