// The filter form every view starts with: scope pickers, the time range, the view's own controls, a submit
// button. Submitting records the filters in the URL (a history entry) and runs the view's query.
import { h } from "./dom.js";
import { rangeControls } from "./time.js";
import { scopeControls } from "./scope.js";

/**
 * keys/required: which scope pickers (scope.js); extras: [element...]; readExtras(): the extras' URL values;
 * onSubmit(values): called with {scope keys..., range, from, to, ...extras}.
 */
export function filterForm({ params, label, keys, required, extras = [], readExtras = () => ({}), submit, onSubmit }) {
  const scope = scopeControls(params, keys, required);
  const range = rangeControls(params);
  const button = h("button", { type: "submit", class: "primary" }, submit || "Search");
  const read = () => ({ ...scope.read(), ...range.read(), ...readExtras() });
  const form = h(
    "form",
    { class: "filters", "aria-label": label, novalidate: true },
    scope.element,
    h("div", { class: "row" }, range.element, extras, button),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit(read());
  });
  return { element: form, read, ready: scope.ready };
}

/** A checkbox with its label after it, the usual order for checkboxes. */
export function checkbox(name, labelText, checked, value) {
  const input = h("input", { type: "checkbox", name, checked, value: value ?? labelText });
  return { input, element: h("label", { class: "check" }, input, " ", labelText) };
}
