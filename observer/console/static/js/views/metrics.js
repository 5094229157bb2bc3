// Metrics: one component's CPU, memory, network and disk (the `resource` family) and its request rate, errors and latency
// (the `http` family), as line charts.
import { post } from "../api.js";
import { errorBox, field, h, section } from "../dom.js";
import { filterForm } from "../form.js";
import { save } from "../route.js";
import { missing, SCOPE_KEYS } from "../scope.js";
import { rangeOf } from "../time.js";
import { formats, lineChart } from "../chart.js";

const STEPS = ["1m", "5m", "15m", "1h"];
const REQUIRED = SCOPE_KEYS;

const series = (answer, names) =>
  names.map(([key, name]) => ({ name, points: Array.isArray(answer[key]) ? answer[key] : [] }));

export function render(main, params) {
  const step = h("select", { name: "step" }, STEPS.map((value) => h("option", { value }, value)));
  step.value = STEPS.includes(params.get("step")) ? params.get("step") : "1m";
  const charts = h("div", { class: "charts" });
  const form = filterForm({
    params, label: "Metric filters", keys: SCOPE_KEYS, required: REQUIRED,
    extras: [field("Step", step)], readExtras: () => ({ step: step.value }), submit: "Show",
    onSubmit: (values) => {
      save("metrics", values, true);
      show(values);
    },
  });

  async function show(values) {
    const gap = missing(values, REQUIRED);
    if (gap) {
      charts.replaceChildren(errorBox(`To chart metrics, ${gap}.`));
      return;
    }
    let request;
    try {
      request = { ...rangeOf(new URLSearchParams(values)), step: values.step,
        searchScope: Object.fromEntries(SCOPE_KEYS.map((key) => [key, values[key]])) };
    } catch (error) {
      charts.replaceChildren(errorBox(error));
      return;
    }
    charts.replaceChildren(h("p", { class: "count" }, "Loading…"));
    try {
      const [resource, http] = await Promise.all([
        post("/api/v1/metrics/query", { ...request, metric: "resource" }),
        post("/api/v1/metrics/query", { ...request, metric: "http" }),
      ]);
      charts.replaceChildren(
        lineChart("CPU usage", series(resource, [["cpuUsage", "usage"], ["cpuRequests", "requests"],
          ["cpuLimits", "limits"]]), formats.cores),
        lineChart("Memory usage", series(resource, [["memoryUsage", "usage"], ["memoryRequests", "requests"],
          ["memoryLimits", "limits"]]), formats.bytes),
        lineChart("Network", series(resource, [["networkReceiveBytes", "receive"],
          ["networkTransmitBytes", "transmit"]]), formats.bytesPerSecond),
        lineChart("Disk", series(resource, [["diskReadBytes", "read"], ["diskWriteBytes", "write"]]),
          formats.bytesPerSecond),
        lineChart("Request rate", series(http, [["requestCount", "requests"], ["successfulRequestCount",
          "successful"], ["unsuccessfulRequestCount", "errors"]]), formats.rate),
        lineChart("Latency", series(http, [["meanLatency", "mean"], ["latencyP50", "p50"], ["latencyP90", "p90"],
          ["latencyP99", "p99"]]), formats.seconds),
      );
    } catch (error) {
      charts.replaceChildren(errorBox(error));
    }
  }

  main.append(section("Metrics", form.element, charts));
  form.ready.then(() => show(form.read()));
}
