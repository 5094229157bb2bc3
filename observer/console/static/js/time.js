// Times: the API speaks RFC3339 with nanoseconds in UTC; people read their own zone. Every shown time carries
// its UTC form in a title attribute, and the range controls are shared by every view.
import { field, h } from "./dom.js";

export const PRESETS = [
  ["15m", "Last 15 minutes", 15 * 60],
  ["1h", "Last hour", 3600],
  ["6h", "Last 6 hours", 6 * 3600],
  ["24h", "Last 24 hours", 24 * 3600],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
];
export const DEFAULT_PRESET = "15m";

/** Milliseconds since the epoch of an RFC3339 time with any number of fraction digits. */
export function toMillis(iso) {
  return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
}

/** A <time> in the viewer's zone, with the exact UTC value on hover. */
export function timeEl(iso, withDate = true) {
  const ms = toMillis(iso);
  if (Number.isNaN(ms)) return h("span", {}, String(iso || ""));
  const date = new Date(ms);
  const fraction = String(iso).match(/\.(\d+)/);
  const local = withDate
    ? `${date.toLocaleDateString()} ${date.toLocaleTimeString([], { hour12: false })}`
    : date.toLocaleTimeString([], { hour12: false });
  const millis = fraction ? `.${fraction[1].padEnd(3, "0").slice(0, 3)}` : "";
  return h("time", { datetime: String(iso), title: `${iso} (UTC)` }, local + millis);
}

/** {startTime, endTime} for the view's parameters: a preset ending now, or a custom range. */
export function rangeOf(params) {
  const preset = params.get("range") || DEFAULT_PRESET;
  if (preset === "custom") {
    const start = Date.parse(params.get("from") || "");
    const end = Date.parse(params.get("to") || "");
    if (Number.isNaN(start) || Number.isNaN(end)) throw new Error("choose both ends of the custom range");
    if (end <= start) throw new Error("the custom range must end after it starts");
    return { startTime: new Date(start).toISOString(), endTime: new Date(end).toISOString() };
  }
  const seconds = (PRESETS.find(([key]) => key === preset) || PRESETS[0])[2];
  const end = Date.now();
  return { startTime: new Date(end - seconds * 1000).toISOString(), endTime: new Date(end).toISOString() };
}

function localInputValue(iso) {
  const ms = Date.parse(iso || "");
  if (Number.isNaN(ms)) return "";
  const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return date.toISOString().slice(0, 16);
}

/**
 * The range controls: a preset select and, for "custom", two datetime-local inputs in the viewer's zone.
 * read() gives {range, from, to} for the URL (from/to as UTC ISO strings).
 */
export function rangeControls(params) {
  const select = h(
    "select",
    { name: "range" },
    PRESETS.map(([key, label]) => h("option", { value: key }, label)),
    h("option", { value: "custom" }, "Custom range"),
  );
  select.value = params.get("range") || DEFAULT_PRESET;
  const from = h("input", { type: "datetime-local", name: "from", value: localInputValue(params.get("from")) });
  const to = h("input", { type: "datetime-local", name: "to", value: localInputValue(params.get("to")) });
  const custom = h("div", { class: "custom-range" }, field("From (your time zone)", from), field("To", to));
  const sync = () => {
    custom.hidden = select.value !== "custom";
  };
  select.addEventListener("change", sync);
  sync();
  const read = () => {
    if (select.value !== "custom") return { range: select.value, from: "", to: "" };
    const iso = (input) => (input.value ? new Date(input.value).toISOString() : "");
    return { range: "custom", from: iso(from), to: iso(to) };
  };
  return { element: h("div", { class: "range" }, field("Time range", select), custom), read };
}
