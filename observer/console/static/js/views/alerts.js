// Alerts and incidents of a scope: both lists with their filters, and an incident acknowledged or resolved
// from its row (PUT /api/v1alpha1/incidents/{id}, as OpenChoreo's console does).
import { post, put } from "../api.js";
import { announce, errorBox, field, h, section } from "../dom.js";
import { filterForm } from "../form.js";
import { save } from "../route.js";
import { missing, SCOPE_KEYS } from "../scope.js";
import { rangeOf, timeEl } from "../time.js";

const REQUIRED = ["namespace"];
const SEVERITIES = ["", "critical", "warning", "info"];
const STATUSES = ["", "active", "acknowledged", "resolved"];

function select(name, options, value, blank) {
  const el = h("select", { name }, options.map((option) => h("option", { value: option }, option || blank)));
  el.value = options.includes(value) ? value : "";
  return el;
}

const place = (labels = {}) => [labels.projectName, labels.componentName, labels.environmentName]
  .filter(Boolean).join(" / ") || labels.namespaceName || "";

export function render(main, params) {
  const severity = select("severity", SEVERITIES, params.get("severity") || "", "any");
  const status = select("status", STATUSES, params.get("status") || "", "any");
  const alerts = h("div", { class: "results" });
  const incidents = h("div", { class: "results" });
  const form = filterForm({
    params, label: "Alert filters", keys: SCOPE_KEYS, required: REQUIRED, submit: "Show",
    extras: [field("Alert severity", severity), field("Incident status", status)],
    readExtras: () => ({ severity: severity.value, status: status.value }),
    onSubmit: (values) => {
      save("alerts", values, true);
      show(values);
    },
  });

  async function show(values) {
    const gap = missing(values, REQUIRED);
    if (gap) {
      alerts.replaceChildren(errorBox(`To list alerts, ${gap}.`));
      incidents.replaceChildren();
      return;
    }
    let request;
    try {
      request = { ...rangeOf(new URLSearchParams(values)), limit: 100, sortOrder: "desc",
        searchScope: Object.fromEntries(SCOPE_KEYS.filter((key) => values[key]).map((key) => [key, values[key]])) };
    } catch (error) {
      alerts.replaceChildren(errorBox(error));
      return;
    }
    alerts.replaceChildren(h("p", { class: "count" }, "Loading…"));
    incidents.replaceChildren(h("p", { class: "count" }, "Loading…"));
    const [alertAnswer, incidentAnswer] = await Promise.allSettled([
      post("/api/v1alpha1/alerts/query", request),
      post("/api/v1alpha1/incidents/query", request),
    ]);
    if (alertAnswer.status === "rejected") alerts.replaceChildren(errorBox(alertAnswer.reason));
    else showAlerts(alertAnswer.value.alerts || [], values);
    if (incidentAnswer.status === "rejected") incidents.replaceChildren(errorBox(incidentAnswer.reason));
    else showIncidents(incidentAnswer.value.incidents || [], values);
  }

  function showAlerts(items, values) {
    const shown = items.filter((alert) => !values.severity
      || ((alert.metadata || {}).alertRule || {}).severity === values.severity);
    alerts.replaceChildren(h("p", { class: "count" }, shown.length ? `${shown.length} alert${shown.length === 1 ? "" : "s"}` : "No alerts."),
      shown.length ? h("table", { class: "alerts" }, h("caption", { class: "visually-hidden" }, "Alerts"),
        h("thead", {}, h("tr", {}, ["Time", "Rule", "Severity", "Value", "Where", "Incident"].map((name) =>
          h("th", { scope: "col" }, name)))),
        h("tbody", {}, shown.map((alert) => {
          const rule = (alert.metadata || {}).alertRule || {};
          return h("tr", {}, h("td", { class: "nowrap" }, timeEl(alert.timestamp)), h("td", {}, rule.name || ""),
            h("td", {}, rule.severity ? h("span", { class: `badge sev ${rule.severity}` }, rule.severity) : ""),
            h("td", { class: "num" }, String(alert.alertValue ?? "")),
            h("td", {}, place((alert.metadata || {}).labels)), h("td", {}, alert.incidentEnabled ? "yes" : "no"));
        }))) : "");
  }

  function showIncidents(items, values) {
    const shown = items.filter((incident) => STATUSES.includes(incident.status)
      && (!values.status || incident.status === values.status));
    incidents.replaceChildren(
      h("p", { class: "count" }, shown.length ? `${shown.length} incident${shown.length === 1 ? "" : "s"}` : "No incidents."),
      shown.length ? h("table", { class: "incidents" }, h("caption", { class: "visually-hidden" }, "Incidents"),
        h("thead", {}, h("tr", {}, ["Triggered", "Status", "Where", "Description", "Actions"].map((name) =>
          h("th", { scope: "col" }, name)))),
        h("tbody", {}, shown.map((incident) => incidentRow(incident, values)))) : "");
  }

  function incidentRow(incident, values) {
    const action = (target, label) => {
      const button = h("button", { type: "button", "aria-label": `${label} incident ${incident.incidentId}` }, label);
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await put(`/api/v1alpha1/incidents/${encodeURIComponent(incident.incidentId)}`, { status: target });
          announce(`Incident ${incident.incidentId} is now ${target}.`);
          await show(values);
        } catch (error) {
          button.disabled = false;
          announce(`Could not update the incident: ${error.message}`, "error");
        }
      });
      return button;
    };
    return h("tr", { dataset: { incident: incident.incidentId } },
      h("td", { class: "nowrap" }, timeEl(incident.triggeredAt || incident.timestamp)),
      h("td", {}, h("span", { class: `badge state-${incident.status}` }, incident.status)),
      h("td", {}, place(incident.labels)),
      h("td", {}, incident.description || incident.notes || ""),
      h("td", { class: "actions" }, incident.status === "active" ? action("acknowledged", "Acknowledge") : "",
        incident.status !== "resolved" ? action("resolved", "Resolve") : ""));
  }

  main.append(section("Alerts and incidents", form.element, h("h3", {}, "Alerts"), alerts,
    h("h3", {}, "Incidents"), incidents));
  form.ready.then(() => show(form.read()));
}
