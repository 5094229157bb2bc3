// Scope pickers: namespace, project, component, environment. Typed, with suggestions from
// GET /api/v1alpha1/scopes (what the caller may query) when the observer has it; an observer without it still
// works, the names are then typed.
import { get } from "./api.js";
import { field, h, uid } from "./dom.js";

export const SCOPE_KEYS = ["namespace", "project", "component", "environment"];
const LABELS = { namespace: "Namespace", project: "Project", component: "Component", environment: "Environment" };
let catalogue = null; // a promise of the normalized scopes, or of null when the observer has no such endpoint

const nameOf = (item) => (typeof item === "string" ? item : item && (item.name || item.displayName)) || "";
const listOf = (value) => (Array.isArray(value) ? value : []);

/** The scopes document in one shape: [{name, environments: [..], projects: [{name, components: [..]}]}]. */
export function normalize(document) {
  const root = document && (document.namespaces || document.items || document);
  const topEnvironments = listOf(document && document.environments).map(nameOf);
  return listOf(root)
    .map((ns) => ({
      name: nameOf(ns),
      environments: [...new Set([...listOf(ns.environments).map(nameOf), ...topEnvironments])].filter(Boolean),
      projects: listOf(ns.projects).map((project) => ({
        name: nameOf(project),
        components: listOf(project.components).map(nameOf).filter(Boolean),
      })),
    }))
    .filter((ns) => ns.name);
}

/** The scopes the caller may query, fetched once per page load; null when the observer does not offer them. */
export function scopes() {
  if (!catalogue) {
    catalogue = get("/api/v1alpha1/scopes")
      .then(normalize)
      .catch(() => null);
  }
  return catalogue;
}

function suggestions(tree, values) {
  if (!tree) return { namespace: [], project: [], component: [], environment: [] };
  const ns = tree.find((item) => item.name === values.namespace);
  const projects = ns ? ns.projects : tree.flatMap((item) => item.projects);
  const project = projects.find((item) => item.name === values.project);
  return {
    namespace: tree.map((item) => item.name),
    project: projects.map((item) => item.name),
    component: (project ? [project] : projects).flatMap((item) => item.components),
    environment: ns ? ns.environments : tree.flatMap((item) => item.environments),
  };
}

/**
 * The pickers for `keys` (a subset of SCOPE_KEYS, in that order). `required` lists those the view needs.
 * read() gives {namespace, ...} with the typed values; blank ones are left out.
 */
export function scopeControls(params, keys, required) {
  const inputs = {};
  const lists = {};
  for (const key of keys) {
    lists[key] = h("datalist", { id: uid(`${key}-list`) });
    inputs[key] = h("input", {
      type: "text",
      name: key,
      value: params.get(key) || "",
      list: lists[key].id,
      autocomplete: "off",
      spellcheck: "false",
      required: required.includes(key),
      maxlength: 253,
    });
  }
  const read = () => {
    const values = {};
    for (const key of keys) {
      const value = inputs[key].value.trim();
      if (value) values[key] = value;
    }
    return values;
  };
  const refresh = async () => {
    const tree = await scopes();
    const options = suggestions(tree, read());
    for (const key of keys) {
      lists[key].replaceChildren(...[...new Set(options[key])].map((name) => h("option", { value: name })));
      if (!inputs[key].value && required.includes(key) && options[key].length) inputs[key].value = options[key][0];
    }
  };
  for (const key of keys) inputs[key].addEventListener("change", refresh);
  const ready = refresh();
  const element = h(
    "fieldset",
    { class: "scope" },
    h("legend", {}, "Scope"),
    keys.map((key) => [
      field(required.includes(key) ? LABELS[key] : `${LABELS[key]} (optional)`, inputs[key]),
      lists[key],
    ]),
  );
  return { element, read, ready };
}

/** The missing required keys, as a message saying what to fill in; "" when complete. */
export function missing(values, required) {
  const absent = required.filter((key) => !values[key]);
  return absent.length ? `fill in the ${absent.map((key) => LABELS[key].toLowerCase()).join(", ")}` : "";
}
