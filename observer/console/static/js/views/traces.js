// Traces: the list for a scope (filters: trace id, minimum duration, errors only), and one trace as a waterfall
// of its spans, the chosen span's attributes and resource attributes, and the log lines written inside it.
import { ApiError, post } from "../api.js";
import { errorBox, field, h, s, section } from "../dom.js";
import { checkbox, filterForm } from "../form.js";
import { href, save } from "../route.js";
import { missing } from "../scope.js";
import { rangeOf, timeEl, toMillis } from "../time.js";

const KEYS = ["namespace", "project", "component", "environment"];
const REQUIRED = ["namespace", "project", "environment"];
const COMPONENT_ATTRIBUTE = "openchoreo.dev/component";
const TRACE_ID = /^[0-9a-fA-F]{32}$/;

export const formatDuration = (ns) => {
  const ms = Number(ns) / 1e6;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 1) return `${ms.toFixed(1)} ms`;
  return `${(ms * 1000).toFixed(0)} µs`;
};

export function render(main, params) {
  const traceInput = h("input", { type: "search", name: "traceId", value: params.get("traceId") || "",
    maxlength: 32, spellcheck: "false", pattern: "[0-9a-fA-F]{32}" });
  const minDuration = h("input", { type: "number", name: "minDurationMs", min: 0, step: 1,
    value: params.get("minDurationMs") || "" });
  const errorsOnly = checkbox("errorsOnly", "Errors only", params.get("errorsOnly") === "1", "1");
  const extras = [
    field("Trace id", traceInput, "32 hexadecimal digits"),
    field("Minimum duration (ms)", minDuration),
    errorsOnly.element,
  ];
  const readExtras = () => ({
    traceId: traceInput.value.trim(),
    minDurationMs: minDuration.value,
    errorsOnly: errorsOnly.input.checked ? "1" : "",
  });
  const list = h("div", { class: "results" });
  const detail = h("div", { class: "trace-detail" });
  const form = filterForm({
    params, label: "Trace filters", keys: KEYS, required: REQUIRED, extras, readExtras,
    onSubmit: (values) => {
      const target = { ...values, trace: TRACE_ID.test(values.traceId) ? values.traceId.toLowerCase() : "" };
      save("traces", target, true);
      show(target);
    },
  });

  function show(values) {
    const gap = missing(values, REQUIRED);
    if (gap) {
      list.replaceChildren(errorBox(`To list traces, ${gap}.`));
      detail.replaceChildren();
      return;
    }
    if (values.traceId && !TRACE_ID.test(values.traceId)) {
      list.replaceChildren(errorBox("a trace id is 32 hexadecimal digits"));
      return;
    }
    if (values.trace) {
      list.replaceChildren();
      showTrace(values, detail);
    } else {
      detail.replaceChildren();
      showList(values, list);
    }
  }

  main.append(section("Traces", form.element, list, detail));
  form.ready.then(() => show({ ...form.read(), trace: params.get("trace") || "", span: params.get("span") || "" }));
}

function scopeOf(values) {
  return Object.fromEntries(KEYS.filter((key) => values[key]).map((key) => [key, values[key]]));
}

async function showList(values, container) {
  container.replaceChildren(h("p", { class: "count" }, "Searching…"));
  let request;
  try {
    request = { ...rangeOf(new URLSearchParams(values)), searchScope: scopeOf(values), limit: 100,
      sortOrder: "desc" };
  } catch (error) {
    container.replaceChildren(errorBox(error));
    return;
  }
  if (values.minDurationMs) request.minDurationMs = Number(values.minDurationMs);
  if (values.errorsOnly) request.errorsOnly = true;
  let answer;
  try {
    answer = await post("/api/v1alpha1/traces/query", request);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 400 && (request.minDurationMs !== undefined
      || request.errorsOnly))) {
      container.replaceChildren(errorBox(error));
      return;
    }
    // An observer without the duration and error filters: the same list, filtered here.
    const { minDurationMs, errorsOnly, ...plain } = request;
    try {
      answer = await post("/api/v1alpha1/traces/query", plain);
    } catch (retryError) {
      container.replaceChildren(errorBox(retryError));
      return;
    }
    answer.traces = (answer.traces || []).filter((trace) =>
      (!errorsOnly || trace.hasErrors) && (!minDurationMs || trace.durationNs >= minDurationMs * 1e6));
  }
  const traces = answer.traces || [];
  const rows = traces.map((trace) => h("tr", { class: trace.hasErrors ? "has-errors" : "" },
    h("td", {}, h("a", { href: href("traces", { ...values, trace: trace.traceId }) },
      trace.traceName || trace.rootSpanName || trace.traceId)),
    h("td", { class: "nowrap" }, timeEl(trace.startTime)),
    h("td", { class: "num" }, formatDuration(trace.durationNs)),
    h("td", { class: "num" }, String(trace.spanCount ?? "")),
    h("td", {}, trace.hasErrors ? h("span", { class: "badge error" }, "Errors") : "OK"),
    h("td", { class: "mono small" }, trace.traceId)));
  container.replaceChildren(
    h("p", { class: "count" }, traces.length ? `${traces.length} of ${answer.total ?? traces.length} traces`
      : "No traces match."),
    h("table", { class: "traces" }, h("caption", { class: "visually-hidden" }, "Traces"),
      h("thead", {}, h("tr", {}, ["Trace", "Start", "Duration", "Spans", "Status", "Trace id"].map((name) =>
        h("th", { scope: "col" }, name)))), h("tbody", {}, rows)));
}

/** Spans in tree order (each parent before its children, siblings by start), with their depth. */
export function treeOrder(spans) {
  const ids = new Set(spans.map((span) => span.spanId));
  const children = new Map();
  for (const span of spans) {
    const parent = span.parentSpanId && ids.has(span.parentSpanId) ? span.parentSpanId : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  for (const group of children.values()) group.sort((a, b) => toMillis(a.startTime) - toMillis(b.startTime)
    || String(a.startTime).localeCompare(String(b.startTime)));
  const ordered = [];
  const visit = (parent, depth) => {
    for (const span of children.get(parent) || []) {
      if (ordered.length > spans.length) return; // a cycle in bad data must not loop forever
      ordered.push({ span, depth });
      visit(span.spanId, depth + 1);
    }
  };
  visit("", 0);
  return ordered;
}

async function showTrace(values, container) {
  const traceId = values.trace;
  container.replaceChildren(h("p", { class: "count" }, "Loading the trace…"));
  let answer;
  try {
    answer = await post(`/api/v1alpha1/traces/${encodeURIComponent(traceId)}/spans/query`, {
      ...rangeOf(new URLSearchParams(values)), searchScope: scopeOf({ ...values, component: "" }), limit: 1000,
      sortOrder: "asc", includeAttributes: true,
    });
  } catch (error) {
    container.replaceChildren(errorBox(error));
    return;
  }
  const spans = answer.spans || [];
  if (!spans.length) {
    container.replaceChildren(errorBox(`No spans of trace ${traceId} in this scope and time range.`));
    return;
  }
  const start = Math.min(...spans.map((span) => toMillis(span.startTime)));
  const end = Math.max(...spans.map((span) => toMillis(span.endTime)));
  const total = Math.max(end - start, 0.001);
  const attributes = h("div", { class: "attributes", "aria-live": "polite" });
  const back = h("a", { href: href("traces", { ...values, trace: "", span: "" }) }, "← All traces");
  const select = (span, button) => {
    for (const other of container.querySelectorAll(".waterfall button[aria-pressed]")) {
      other.setAttribute("aria-pressed", "false");
    }
    if (button) button.setAttribute("aria-pressed", "true");
    attributes.replaceChildren(spanDetails(span));
    save("traces", { ...values, span: span.spanId });
  };
  const rows = treeOrder(spans).map(({ span, depth }) => {
    const left = ((toMillis(span.startTime) - start) / total) * 1000;
    const width = Math.max((Number(span.durationNs) / 1e6 / total) * 1000, 2);
    const component = (span.resourceAttributes || {})[COMPONENT_ATTRIBUTE] || "";
    const error = span.status && span.status.code === "error";
    const button = h("button", { type: "button", class: "span-name", "aria-pressed": "false",
      dataset: { depth: String(Math.min(depth, 12)) } },
      h("span", { class: "indent", dataset: { depth: String(Math.min(depth, 12)) } }),
      span.spanName, component ? h("span", { class: "component" }, ` ${component}`) : "");
    button.addEventListener("click", () => select(span, button));
    return h("li", { class: error ? "span error" : "span" }, button,
      s("svg", { class: "bar", viewBox: "0 0 1000 10", preserveAspectRatio: "none", "aria-hidden": "true" },
        s("rect", { x: left.toFixed(1), y: 1, width: width.toFixed(1), height: 8, rx: 1 })),
      h("span", { class: "num" }, formatDuration(span.durationNs)));
  });
  const logs = h("div", { class: "trace-logs" }, h("p", {}, "Loading the trace's log lines…"));
  container.replaceChildren(
    h("h3", {}, `Trace ${traceId}`),
    h("p", {}, back, " · ", `${spans.length} spans, ${formatDuration(total * 1e6)}, started `,
      timeEl(spans.map((span) => span.startTime).sort((a, b) => toMillis(a) - toMillis(b))[0])),
    h("ol", { class: "waterfall", "aria-label": "Spans, in call order" }, rows),
    attributes,
    h("h3", {}, "Log lines of this trace"),
    logs);
  const chosen = spans.find((span) => span.spanId === values.span) || treeOrder(spans)[0].span;
  select(chosen, container.querySelectorAll(".waterfall button")[treeOrder(spans).findIndex((item) =>
    item.span === chosen)]);
  showTraceLogs(values, spans, logs);
}

function attributeTable(title, attributes) {
  const entries = Object.entries(attributes || {}).sort(([a], [b]) => a.localeCompare(b));
  return h("table", { class: "attrs" }, h("caption", {}, title),
    h("tbody", {}, entries.length ? entries.map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key),
      h("td", { class: "mono" }, typeof value === "object" ? JSON.stringify(value) : String(value))))
      : h("tr", {}, h("td", { colspan: 2 }, "none"))));
}

function spanDetails(span) {
  return h("div", {},
    h("h3", {}, `Span ${span.spanName}`),
    h("p", { class: "mono small" }, `span ${span.spanId}`, span.parentSpanId ? ` · parent ${span.parentSpanId}` : "",
      ` · ${span.spanKind || ""} · status ${(span.status && span.status.code) || "unset"}`),
    h("div", { class: "two" }, attributeTable("Span attributes", span.attributes),
      attributeTable("Resource attributes", span.resourceAttributes)));
}

/** The trace's log lines: each component it crossed, asked for the trace's own window (one second around it). */
async function showTraceLogs(values, spans, container) {
  const components = [...new Set(spans.map((span) => (span.resourceAttributes || {})[COMPONENT_ATTRIBUTE])
    .filter(Boolean))];
  const startTime = new Date(Math.min(...spans.map((span) => toMillis(span.startTime))) - 1000).toISOString();
  const endTime = new Date(Math.max(...spans.map((span) => toMillis(span.endTime))) + 1000).toISOString();
  const ask = async (component) => {
    const request = { startTime, endTime, limit: 1000, sortOrder: "asc", traceId: values.trace,
      searchScope: { namespace: values.namespace, project: values.project, component,
        environment: values.environment } };
    try {
      return (await post("/api/v1/logs/query", request)).logs || [];
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 400)) throw error;
      const { traceId, ...plain } = request; // an observer without the traceId filter: filter here
      return ((await post("/api/v1/logs/query", plain)).logs || []).filter((entry) => entry.traceId === traceId);
    }
  };
  try {
    const lines = (await Promise.all(components.map(ask))).flat()
      .sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
    if (!lines.length) {
      container.replaceChildren(h("p", {}, "No log lines carry this trace id."));
      return;
    }
    container.replaceChildren(h("table", { class: "logs" }, h("caption", { class: "visually-hidden" },
      "Log lines of this trace"),
      h("thead", {}, h("tr", {}, ["Time", "Level", "Component", "Message", "Span"].map((name) =>
        h("th", { scope: "col" }, name)))),
      h("tbody", {}, lines.map((entry) => h("tr", {},
        h("td", { class: "nowrap" }, timeEl(entry.timestamp)),
        h("td", {}, h("span", { class: `badge level ${(entry.level || "").toLowerCase()}` }, entry.level || "")),
        h("td", {}, (entry.metadata || {}).componentName || ""),
        h("td", { class: "message" }, entry.log || ""),
        h("td", { class: "mono small" }, entry.spanId || ""))))));
  } catch (error) {
    container.replaceChildren(errorBox(error));
  }
}
