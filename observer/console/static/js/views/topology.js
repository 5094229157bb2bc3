// Topology: who calls whom in a project and environment, drawn left to right (callers before callees), each
// edge labelled with its requests, rate, error rate and latency; the same edges as a table for reading.
import { post } from "../api.js";
import { checkbox, filterForm } from "../form.js";
import { errorBox, h, s, section } from "../dom.js";
import { save } from "../route.js";
import { missing } from "../scope.js";
import { rangeOf, toMillis } from "../time.js";
import { formats } from "../chart.js";

const KEYS = ["namespace", "project", "environment"];
const NODE_W = 170;
const NODE_H = 48;
const COL_GAP = 190;
const ROW_GAP = 40;
const MAX_NODES = 200;

export const nodeKey = (node) => `${node.kind}:${node.component || node.name || node.componentUid || "?"}`;
const nodeName = (node) => node.component || node.name || node.kind;

/** Column of each node: the longest chain of callers before it (cycles cut), so callers stand left. */
export function columns(keys, edges) {
  const depth = new Map(keys.map((key) => [key, 0]));
  for (let round = 0; round < keys.length; round += 1) {
    let changed = false;
    for (const edge of edges) {
      const next = (depth.get(edge.from) ?? 0) + 1;
      if (edge.from !== edge.to && next > (depth.get(edge.to) ?? 0) && next < keys.length) {
        depth.set(edge.to, next);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

function edgeLabel(metrics, seconds) {
  const count = Number(metrics.requestCount || 0);
  const errors = Number(metrics.unsuccessfulRequestCount || 0);
  const rate = count / Math.max(seconds, 1);
  const errorRate = count ? (errors / count) * 100 : 0;
  const latency = metrics.latencyP50 ?? metrics.meanLatency;
  const label = {
    count, rate, errorRate, latency,
    first: `${Math.round(count)} req · ${formats.rate(rate)}`,
    second: `${errorRate.toFixed(1)}% err` + (latency !== undefined ? ` · p50 ${formats.seconds(Number(latency))}` : ""),
  };
  return { ...label, text: `${label.first} · ${label.second}` };
}

export function render(main, params) {
  const gateways = checkbox("gateways", "Gateways", params.get("gateways") !== "0", "1");
  const external = checkbox("external", "External", params.get("external") === "1", "1");
  const graph = h("div", { class: "results" });
  const form = filterForm({
    params, label: "Topology filters", keys: KEYS, required: KEYS, submit: "Show",
    extras: [gateways.element, external.element],
    readExtras: () => ({ gateways: gateways.input.checked ? "" : "0", external: external.input.checked ? "1" : "" }),
    onSubmit: (values) => {
      save("topology", values, true);
      show(values);
    },
  });

  async function show(values) {
    const gap = missing(values, KEYS);
    if (gap) {
      graph.replaceChildren(errorBox(`To draw the topology, ${gap}.`));
      return;
    }
    let range;
    try {
      range = rangeOf(new URLSearchParams(values));
    } catch (error) {
      graph.replaceChildren(errorBox(error));
      return;
    }
    graph.replaceChildren(h("p", { class: "count" }, "Loading…"));
    try {
      const answer = await post("/api/v1alpha1/metrics/runtime-topology", {
        ...range, searchScope: { namespace: values.namespace, project: values.project,
          environment: values.environment },
        includeGateways: values.gateways !== "0", includeExternal: values.external === "1",
      });
      const seconds = (toMillis(range.endTime) - toMillis(range.startTime)) / 1000;
      graph.replaceChildren(...draw(answer, seconds));
    } catch (error) {
      graph.replaceChildren(errorBox(error));
    }
  }

  main.append(section("Topology", form.element, graph));
  form.ready.then(() => show(form.read()));
}

function draw(answer, seconds) {
  const byKey = new Map();
  for (const node of (answer.nodes || []).slice(0, MAX_NODES)) byKey.set(nodeKey(node), node);
  const edges = (answer.edges || []).map((edge) => ({ ...edge, from: nodeKey(edge.source), to: nodeKey(edge.target) }));
  for (const edge of edges) {
    if (!byKey.has(edge.from) && byKey.size < MAX_NODES) byKey.set(edge.from, edge.source);
    if (!byKey.has(edge.to) && byKey.size < MAX_NODES) byKey.set(edge.to, edge.target);
  }
  if (!byKey.size) return [h("p", { class: "empty" }, "No traffic in this range.")];
  const keys = [...byKey.keys()];
  const depth = columns(keys, edges);
  const perColumn = new Map();
  const position = new Map();
  for (const key of [...keys].sort((a, b) => a.localeCompare(b))) {
    const column = depth.get(key) || 0;
    const row = perColumn.get(column) || 0;
    perColumn.set(column, row + 1);
    position.set(key, { x: 20 + column * (NODE_W + COL_GAP), y: 20 + row * (NODE_H + ROW_GAP) });
  }
  const width = 40 + (Math.max(...depth.values()) + 1) * (NODE_W + COL_GAP) - COL_GAP;
  const height = 40 + Math.max(...perColumn.values()) * (NODE_H + ROW_GAP) - ROW_GAP + 20;
  const labels = edges.map((edge) => ({ edge, label: edgeLabel(edge.metrics || {}, seconds) }));
  const svg = s("svg", { class: "topology", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Runtime topology: ${labels.map(({ edge, label }) =>
      `${nodeName(byKey.get(edge.from))} to ${nodeName(byKey.get(edge.to))}, ${label.text}`).join("; ")}` },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8,
      markerHeight: 8, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z" }))),
    labels.map(({ edge, label }) => {
      const a = position.get(edge.from);
      const b = position.get(edge.to);
      if (!a || !b) return null;
      const [x1, y1, x2, y2] = [a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2];
      const bad = label.errorRate >= 5;
      return s("g", { class: bad ? "edge bad" : "edge" },
        s("path", { d: `M ${x1} ${y1} C ${x1 + 60} ${y1}, ${x2 - 60} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }),
        s("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 20, "text-anchor": "middle" },
          s("tspan", { x: (x1 + x2) / 2, dy: 0 }, label.first), s("tspan", { x: (x1 + x2) / 2, dy: 13 }, label.second)),
        s("title", {}, label.text));
    }),
    keys.map((key) => {
      const node = byKey.get(key);
      const { x, y } = position.get(key);
      const metrics = node.metrics || {};
      return s("g", { class: `node ${node.kind}` },
        s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6 }),
        s("text", { x: x + NODE_W / 2, y: y + 20, "text-anchor": "middle", class: "name" }, nodeName(node)),
        s("text", { x: x + NODE_W / 2, y: y + 37, "text-anchor": "middle", class: "sub" },
          metrics.requestCount !== undefined ? `${Math.round(metrics.requestCount)} req received` : node.kind));
    }));
  const table = h("table", { class: "edges" }, h("caption", {}, "Calls"),
    h("thead", {}, h("tr", {}, ["From", "To", "Requests", "Rate", "Error rate", "p50", "p90", "p99"].map((name) =>
      h("th", { scope: "col" }, name)))),
    h("tbody", {}, labels.map(({ edge, label }) => {
      const m = edge.metrics || {};
      const sec = (value) => (value === undefined ? "" : formats.seconds(Number(value)));
      return h("tr", {}, h("td", {}, nodeName(byKey.get(edge.from))), h("td", {}, nodeName(byKey.get(edge.to))),
        h("td", { class: "num" }, String(Math.round(label.count))), h("td", { class: "num" }, formats.rate(label.rate)),
        h("td", { class: "num" }, `${label.errorRate.toFixed(1)}%`), h("td", { class: "num" }, sec(m.latencyP50)),
        h("td", { class: "num" }, sec(m.latencyP90)), h("td", { class: "num" }, sec(m.latencyP99)));
    })));
  return [h("div", { class: "graph" }, svg), table];
}
