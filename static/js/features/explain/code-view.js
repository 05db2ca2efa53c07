// The generated code, line by line, tied to the views it makes: clicking a line highlights its
// views (by data-testid, whichever are on the page), hovering a view points back to its line.
import { element, code } from "../../lib/dom.js";

// Names of the views a line can point at; views of other features may not be on the page yet.
export const VIEW_NAMES = {
  "network-diagram": "network diagram",
  "architecture": "architecture line",
  "explain-shapes": "shapes and counts",
  "hidden-weights": "hidden weight heatmaps",
  "output-weights": "output weight heatmap",
  "activation-histogram": "activation histogram",
  "forward-steps": "forward pass, step by step",
  "forward-hidden": "hidden pre-activations",
  "neuron-arithmetic": "a neuron's arithmetic",
  "forward-softmax": "softmax steps",
  "probabilities": "probability bars",
  "prediction": "prediction",
  "loss-chart": "loss curve",
  "accuracy-chart": "accuracy curve",
  "softmax-trap": "the softmax trap",
};
const viewName = (testid) => VIEW_NAMES[testid]
  || (testid.startsWith("shapes-") ? `shapes of ${testid.slice(7)}` : testid);

const HIGHLIGHT = "explain-highlight";
const find = (testid) => [...document.querySelectorAll(`[data-testid="${testid}"]`)];

export function createCodeView({ list, selection }) {
  let lines = [];
  let homeLine = new Map(); // view testid -> the line that makes it
  let selected = null;
  let pointedView = null;
  // "made by line N": a bar at the bottom of the window, so it never covers the view or its controls.
  const pointer = document.querySelector('[data-testid="code-pointer"]');

  function indexHomes() {
    homeLine = new Map();
    // A view's home is the line that names it first; otherwise the first line naming it.
    lines.forEach((line, i) => { if (line.targets[0] && !homeLine.has(line.targets[0])) homeLine.set(line.targets[0], i); });
    lines.forEach((line, i) => line.targets.forEach((t) => { if (!homeLine.has(t)) homeLine.set(t, i); }));
  }

  function clearHighlight() {
    for (const node of document.querySelectorAll(`.${HIGHLIGHT}`)) node.classList.remove(HIGHLIGHT);
    for (const node of list.querySelectorAll(".selected")) node.classList.remove("selected");
    for (const node of list.querySelectorAll("[aria-pressed]")) node.setAttribute("aria-pressed", "false");
  }

  function describeSelection(index) {
    selection.replaceChildren();
    if (index == null) return;
    const line = lines[index];
    const views = line.targets.map((testid) => {
      const present = find(testid).filter((node) => !node.closest("[hidden]"));
      if (!present.length) return element("li", { className: "absent" }, `${viewName(testid)} (not on this page yet)`);
      const show = element("button", { type: "button", className: "link", "data-view": testid, text: viewName(testid) });
      show.addEventListener("click", () => present[0].scrollIntoView({ behavior: "smooth", block: "center" }));
      return element("li", {}, show);
    });
    selection.append(
      element("p", {}, element("strong", { text: `Line ${index + 1}` }), " ", code(line.text.trim()), line.makes ? ` makes ${line.makes}.` : ""),
      views.length ? element("ul", { className: "explain-view-links" }, views) : "");
  }

  function select(index) {
    clearHighlight();
    selected = index === selected ? null : index;
    if (selected != null) {
      const node = list.children[selected];
      node.classList.add("selected");
      node.querySelector("button")?.setAttribute("aria-pressed", "true");
      for (const testid of lines[selected].targets) for (const view of find(testid)) view.classList.add(HIGHLIGHT);
    }
    describeSelection(selected);
  }

  function render(newLines) {
    const keep = selected != null && lines[selected] ? lines[selected].text : null;
    lines = newLines;
    indexHomes();
    list.replaceChildren(...lines.map((line, i) => {
      const text = element("span", { className: "code-text", text: line.text || " " });
      const note = line.note ? element("span", { className: "code-note", "data-testid": "code-note", text: line.note }) : null;
      const clickable = line.targets.length > 0;
      // A line that makes views is a real button (Tab reaches it, Enter and Space press it, the
      // focus shows); the others are text. Each stays a list item of the numbered code.
      const content = clickable
        ? element("button", { type: "button", className: "code-button", "aria-pressed": "false",
          title: line.makes ? `line ${i + 1} makes ${line.makes}` : `line ${i + 1}` }, text, note)
        : element("span", { className: "code-content" }, text, note);
      if (clickable) content.addEventListener("click", () => select(i));
      return element("li", {
        className: `code-line${clickable ? " clickable" : ""}${line.text.trim().startsWith("#") ? " comment" : ""}`,
        "data-line": String(i + 1),
      }, content);
    }));
    selected = null;
    clearHighlight();
    const again = keep == null ? -1 : lines.findIndex((line) => line.text === keep);
    if (again >= 0) select(again);
    else describeSelection(null);
  }

  // Hovering any view a line makes points back to that line (views added later included).
  function point(view) {
    if (view === pointedView) return;
    pointedView = view;
    for (const node of list.querySelectorAll(".pointed")) node.classList.remove("pointed");
    if (!view) { pointer.hidden = true; return; }
    const index = homeLine.get(view.dataset.testid);
    const line = list.children[index];
    line.classList.add("pointed");
    pointer.replaceChildren(`${viewName(view.dataset.testid)}: made by line ${index + 1}: `, code(lines[index].text.trim()));
    pointer.hidden = false;
  }
  // A mouse's hover only: a finger's tap would leave the bar standing (touch has no "leave").
  document.addEventListener("pointerover", (event) => {
    if (event.pointerType !== "mouse") return;
    let view = null;
    if (!list.contains(event.target) && !pointer.contains(event.target)) {
      for (let node = event.target.closest?.("[data-testid]"); node; node = node.parentElement?.closest("[data-testid]")) {
        if (homeLine.has(node.dataset.testid)) { view = node; break; }
      }
    }
    point(view);
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && selected != null) select(selected); });

  return { render, select, lines: () => lines };
}
