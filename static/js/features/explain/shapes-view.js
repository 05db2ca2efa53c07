// Shapes and parameter counts of every nn.Linear, from the server's description of the setup.
import { element, code } from "../../lib/dom.js";
import { thousands } from "../../lib/format.js";

const shape = (dims) => `(${dims.join(", ")}${dims.length === 1 ? "," : ""})`;

export function createShapesView({ body, total, batch }) {
  return {
    render(shapes) {
      body.replaceChildren(...shapes.layers.map((layer) => element("tr", { "data-testid": `shapes-${layer.name}` },
        element("td", {}, code(`self.${layer.name}`), element("br"), code(`nn.Linear(${layer.in_features}, ${layer.out_features})`)),
        element("td", {}, code(shape(layer.weight_shape)), element("br"), element("small", { text: `${layer.out_features} × ${layer.in_features} = ${thousands(layer.weight_count)}` })),
        element("td", {}, code(shape(layer.bias_shape)), element("br"), element("small", { text: thousands(layer.bias_count) })),
        element("td", { "data-testid": `parameters-${layer.name}`,
          text: `${thousands(layer.weight_count)} + ${thousands(layer.bias_count)} = ${thousands(layer.parameters)}` }))));
      total.textContent = thousands(shapes.parameters);
      batch.textContent = shapes.batch_shapes_text;
    },
  };
}
