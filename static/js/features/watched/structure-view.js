// The structure view of a watched run: the user's module tree, as `print(model)` shows it,
// each line with its parameter count; each Linear layer with its weight's shape and where the
// page shows it. Renders only.
import { element, code } from "../../lib/dom.js";

const count = (n) => n.toLocaleString("en-US");

// Where each Linear layer is drawn: the first one's tiles, the last one's output weights.
function shownAt(index, layers, showsNetwork) {
  if (!showsNetwork) return "its weights are drawn under Look inside (pick it there)";
  if (index === 0) return "its neurons are the tiles below";
  if (index === layers.length - 1) return "the output weights";
  return "in the diagram and the distributions";
}

export function renderStructure(container, watched) {
  const linears = new Map(watched.layers.map((layer, index) => [layer.path, { layer, index }]));
  const rows = watched.tree.map((module) => {
    const linear = linears.get(module.path);
    const name = module.path === "" ? "(model)" : module.path.split(".").pop();
    const shape = linear ? ` weight ${linear.layer.out_features}×${linear.layer.in_features}` : "";
    const where = linear ? shownAt(linear.index, watched.layers, watched.shows_network) : "";
    return element("li", { "data-path": module.path, "data-linear": linear ? "yes" : null, style: `--depth: ${module.depth}` },
      code(`${name}: ${module.text}`),
      element("span", { className: "structure-params", text: ` ${count(module.parameters)} parameters${shape}` }),
      where ? element("span", { className: "structure-where" }, " · ",
        // The first layer's line leads to its tiles (the view it names).
        linear.index === 0 ? element("a", { href: "#tiles-panel", text: where }) : where) : null);
  });
  container.replaceChildren(element("ul", { className: "structure-tree" }, rows));
}
