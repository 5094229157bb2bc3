// A line chart in SVG: a few series over time, y from zero, the last value of each in the legend. Small on
// purpose: the metrics the API returns are a handful of series with at most 11,000 points.
import { h, s } from "./dom.js";
import { timeEl, toMillis } from "./time.js";

const W = 640;
const H = 220;
const PAD = { left: 64, right: 12, top: 12, bottom: 28 };

/** series: [{name, points: [{timestamp, value}]}]; format(value) -> text for axis and legend. */
export function lineChart(title, series, format) {
  const all = series.flatMap((line) => line.points.map((point) => ({ t: toMillis(point.timestamp), v: point.value })))
    .filter((point) => Number.isFinite(point.t) && Number.isFinite(point.v));
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, title));
  if (!all.length) {
    figure.append(h("p", { class: "empty" }, "No data in this range."));
    return figure;
  }
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t));
  const vMax = Math.max(...all.map((p) => p.v), 0) || 1;
  const x = (t) => PAD.left + ((t - t0) / Math.max(t1 - t0, 1)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / vMax) * (H - PAD.top - PAD.bottom);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${series.map((line) =>
    `${line.name} ${line.points.length ? format(line.points[line.points.length - 1].value) : "no data"}`).join(", ")}` },
    s("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
    s("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
    s("line", { class: "grid", x1: PAD.left, y1: y(vMax / 2), x2: W - PAD.right, y2: y(vMax / 2) }),
    s("text", { class: "tick", x: PAD.left - 6, y: y(vMax) + 4, "text-anchor": "end" }, format(vMax)),
    s("text", { class: "tick", x: PAD.left - 6, y: y(vMax / 2) + 4, "text-anchor": "end" }, format(vMax / 2)),
    s("text", { class: "tick", x: PAD.left - 6, y: y(0) + 4, "text-anchor": "end" }, format(0)),
    s("text", { class: "tick", x: PAD.left, y: H - 8 }, new Date(t0).toLocaleTimeString([], { hour12: false })),
    s("text", { class: "tick", x: W - PAD.right, y: H - 8, "text-anchor": "end" },
      new Date(t1).toLocaleTimeString([], { hour12: false })),
    series.map((line, index) => {
      if (!line.points.length) return null;
      const points = line.points.map((p) => [x(toMillis(p.timestamp)), y(p.value)])
        .filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py));
      return s("polyline", { class: `series s${index % 6}`, points: points.map(([px, py]) =>
        `${px.toFixed(1)},${py.toFixed(1)}`).join(" ") }, s("title", {}, line.name));
    }));
  const legend = h("ul", { class: "legend" }, series.map((line, index) => {
    const last = line.points[line.points.length - 1];
    return h("li", {}, h("span", { class: `swatch s${index % 6}`, "aria-hidden": "true" }), line.name, ": ",
      last ? format(last.value) : "no data", last ? [" at ", timeEl(last.timestamp, false)] : "");
  }));
  figure.append(svg, legend);
  return figure;
}

export const formats = {
  cores: (v) => (v >= 1 ? `${v.toFixed(2)} cores` : `${(v * 1000).toFixed(0)} m`),
  bytes: (v) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = v;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(value >= 10 || unit === 0 ? 0 : 1)} ${units[unit]}`;
  },
  rate: (v) => `${v.toFixed(v >= 10 ? 0 : 2)}/s`,
  bytesPerSecond: (v) => `${formats.bytes(v)}/s`,
  seconds: (v) => (v >= 1 ? `${v.toFixed(2)} s` : `${(v * 1000).toFixed(0)} ms`),
};
