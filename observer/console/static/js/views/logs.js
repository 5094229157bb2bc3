// Logs: one component's lines by scope, time, level and phrase; pages by the server's cursor; a live tail
// (the observer's server-sent events when it has them, else a re-query every 5 s); a line's trace id opens it.
import { ApiError, post, streamEvents } from "../api.js";
import { announce, errorBox, h, section } from "../dom.js";
import { checkbox, filterForm } from "../form.js";
import { href, save } from "../route.js";
import { missing, SCOPE_KEYS } from "../scope.js";
import { rangeOf, timeEl } from "../time.js";

const LEVELS = ["ERROR", "WARN", "INFO", "DEBUG"];
const PAGE = 100;
const MAX_ROWS = 2000; // what the table keeps: a live tail running all day must not grow without bound
const POLL_MS = 5000;
const REQUIRED = ["namespace", "project", "component", "environment"];

export function render(main, params) {
  const levelBoxes = LEVELS.map((level) =>
    checkbox("level", level, (params.get("levels") || "").split(",").includes(level)),
  );
  const phrase = h("input", { type: "search", name: "phrase", value: params.get("phrase") || "", maxlength: 1024 });
  const sort = h("select", { name: "sort" }, h("option", { value: "desc" }, "Newest first"),
    h("option", { value: "asc" }, "Oldest first"));
  sort.value = params.get("sort") === "asc" ? "asc" : "desc";
  const phraseId = "logs-phrase";
  phrase.id = phraseId;
  const extras = [
    h("fieldset", { class: "levels" }, h("legend", {}, "Levels"), levelBoxes.map((box) => box.element)),
    h("div", { class: "field" }, h("label", { for: phraseId }, "Phrase"), phrase),
    h("div", { class: "field" }, h("label", { for: "logs-sort" }, "Order"), Object.assign(sort, { id: "logs-sort" })),
  ];
  const readExtras = () => ({
    levels: levelBoxes.filter((box) => box.input.checked).map((box) => box.input.value),
    phrase: phrase.value,
    sort: sort.value,
  });
  const liveButton = h("button", { type: "button", "aria-pressed": "false" }, "Live tail");
  const results = h("div", { class: "results" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const count = h("p", { class: "count" });
  let state = null;
  let stopLive = () => {};

  const form = filterForm({
    params,
    label: "Log filters",
    keys: SCOPE_KEYS,
    required: REQUIRED,
    extras,
    readExtras,
    onSubmit: (values) => {
      save("logs", { ...values, live: state && state.live ? 1 : "" }, true);
      search(values);
    },
  });

  const body = (values) => {
    const scope = Object.fromEntries(SCOPE_KEYS.filter((key) => values[key]).map((key) => [key, values[key]]));
    const request = { ...rangeOf(new URLSearchParams(values)), searchScope: scope, limit: PAGE,
      sortOrder: values.sort || "desc" };
    if (values.levels && values.levels.length) request.logLevels = values.levels;
    if (values.phrase) request.searchPhrase = values.phrase;
    return request;
  };

  const table = h("table", { class: "logs" },
    h("caption", { class: "visually-hidden" }, "Log lines"),
    h("thead", {}, h("tr", {}, ["Time", "Level", "Component", "Pod", "Message", "Trace"].map((name) =>
      h("th", { scope: "col" }, name)))));
  const tbody = h("tbody");
  table.append(tbody);

  const row = (entry, values) => {
    const meta = entry.metadata || {};
    const traceLink = entry.traceId
      ? h("a", {
          href: href("traces", { namespace: values.namespace, project: values.project,
            environment: values.environment, range: values.range, from: values.from, to: values.to,
            trace: entry.traceId }),
          title: `Open trace ${entry.traceId}`,
          class: "mono",
          dataset: { trace: entry.traceId },
        }, h("span", { class: "visually-hidden" }, "Open trace "), entry.traceId.slice(0, 12))
      : "";
    const level = entry.level || "";
    return h("tr", { class: `level-${level.toLowerCase()}` },
      h("td", { class: "nowrap" }, timeEl(entry.timestamp)),
      h("td", {}, h("span", { class: `badge level ${level.toLowerCase()}` }, level)),
      h("td", {}, meta.componentName || ""),
      h("td", { class: "mono small" }, meta.podName || ""),
      h("td", { class: "message" }, entry.log || ""),
      h("td", {}, traceLink));
  };

  const addRows = (entries, values, atTop) => {
    const rows = entries.map((entry) => row(entry, values));
    if (atTop) tbody.prepend(...rows);
    else tbody.append(...rows);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(atTop ? -1 : 0);
  };

  async function search(values) {
    stopLive();
    const gap = missing(values, REQUIRED);
    if (gap) {
      results.replaceChildren(errorBox(`To search logs, ${gap}.`));
      return;
    }
    let request;
    try {
      request = body(values);
    } catch (error) {
      results.replaceChildren(errorBox(error));
      return;
    }
    state = { values, request, cursor: null, newest: null, live: state ? state.live : params.get("live") === "1" };
    tbody.replaceChildren();
    results.replaceChildren(count, table, more);
    count.textContent = "Searching…";
    await page();
    if (state.live) startLive();
  }

  async function page() {
    const current = state;
    try {
      const answer = await post("/api/v1/logs/query", current.cursor ? { ...current.request, cursor: current.cursor }
        : current.request);
      if (current !== state) return;
      const logs = answer.logs || [];
      addRows(logs, current.values, false);
      current.cursor = answer.nextCursor || null;
      if (logs.length && !current.newest) current.newest = current.request.sortOrder === "asc"
        ? logs[logs.length - 1].timestamp : logs[0].timestamp;
      more.hidden = !current.cursor;
      count.textContent = `${tbody.rows.length} of ${answer.total ?? tbody.rows.length} matching lines shown`;
      if (!tbody.rows.length) count.textContent = "No log lines match.";
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  }
  more.addEventListener("click", page);

  function setLive(on) {
    if (!state) return;
    state.live = on;
    liveButton.setAttribute("aria-pressed", String(on));
    liveButton.textContent = on ? "Stop live tail" : "Live tail";
    save("logs", { ...state.values, live: on ? 1 : "" });
    if (on) startLive();
    else stopLive();
  }
  liveButton.addEventListener("click", () => setLive(!(state && state.live)));

  function startLive() {
    stopLive();
    const current = state;
    liveButton.setAttribute("aria-pressed", "true");
    liveButton.textContent = "Stop live tail";
    const controller = new AbortController();
    let timer = null;
    stopLive = () => {
      controller.abort();
      if (timer) clearTimeout(timer);
      stopLive = () => {};
    };
    const { searchScope, logLevels, searchPhrase } = current.request;
    const tailBody = { searchScope, ...(logLevels ? { logLevels } : {}), ...(searchPhrase ? { searchPhrase } : {}) };
    announce("Live tail on");
    const onEntry = (entry) => {
      if (current !== state || !entry || !entry.timestamp) return;
      addRows([entry], current.values, current.request.sortOrder !== "asc");
      count.textContent = `${tbody.rows.length} lines shown (live)`;
    };
    let dropped = 0;
    const tail = () => streamEvents("/api/v1alpha1/logs/tail", tailBody, controller.signal, ({ event, data }) => {
      if (event === "log") onEntry(data);
      else if (event === "dropped") dropped = Number(data.total || dropped);
      else if (event === "end" && data && data.reason !== "max duration") {
        announce(`Live tail ended: ${data.reason}${dropped ? ` (${dropped} lines over the rate skipped)` : ""}`);
      }
    }).then(() => {
      // The server ends every tail after its maxSeconds: start the next one, unless the user stopped it.
      if (!controller.signal.aborted && current === state && current.live) timer = setTimeout(tail, 500);
    }).catch((error) => {
      if (controller.signal.aborted) return;
      if (error instanceof ApiError && [404, 405, 501].includes(error.status)) poll();
      else announce(`Live tail stopped: ${error.message}`, "error");
    });
    tail();
    // An observer without the tail endpoint: ask again every 5 s for what came after the newest line seen.
    const poll = async () => {
      if (controller.signal.aborted || current !== state) return;
      const since = current.newest || current.request.startTime;
      try {
        const answer = await post("/api/v1/logs/query", { ...current.request, startTime: since,
          endTime: new Date().toISOString(), sortOrder: "asc", limit: 1000 }, controller.signal);
        const fresh = (answer.logs || []).filter((entry) => entry.timestamp !== since);
        for (const entry of fresh) onEntry(entry);
        if (fresh.length) current.newest = fresh[fresh.length - 1].timestamp;
      } catch (error) {
        if (!controller.signal.aborted) announce(`Live tail: ${error.message}`, "error");
      }
      if (!controller.signal.aborted) timer = setTimeout(poll, POLL_MS);
    };
  }

  main.append(section("Logs", form.element, h("div", { class: "toolbar" }, liveButton), results));
  form.ready.then(() => {
    const values = form.read();
    if (!missing(values, REQUIRED)) search(values);
  });
  return () => stopLive();
}
