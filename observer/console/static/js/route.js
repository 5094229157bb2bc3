// Every view's state lives in the URL fragment (#/view?key=value...), so a reload, a bookmark or a link pasted
// to a colleague shows the same thing.

export const VIEWS = ["logs", "traces", "metrics", "topology", "alerts"];
/** The fragment on screen now: views update it as they save their state, so only a real navigation re-renders. */
export const shown = { hash: null };

/** {view, params} from location.hash; an unknown view falls back to logs. */
export function current() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, query] = hash.split("?", 2);
  return { view: VIEWS.includes(name) ? name : "logs", params: new URLSearchParams(query || "") };
}

/** The fragment for a view and its parameters (empty values left out). */
export function href(view, params) {
  const clean = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    if (Array.isArray(value)) {
      if (value.length) clean.set(key, value.join(","));
    } else clean.set(key, String(value));
  }
  const query = clean.toString();
  return `#/${view}${query ? `?${query}` : ""}`;
}

/** Records the state of the view being shown: a new history entry (push) or the same one updated. */
export function save(view, params, push = false) {
  const target = href(view, params);
  shown.hash = target;
  if (target === location.hash) return;
  if (push) history.pushState(null, "", target);
  else history.replaceState(null, "", target);
}

/** Goes to another view (a hashchange follows, and main.js renders it). */
export function go(view, params) {
  location.hash = href(view, params);
}
