// Distributions over time: for each layer, its weights' and its gradients' histograms at every
// recorded step (fixed bins per tensor, computed on the server; a darker cell holds more values).
import { toBytes } from "../../lib/bytes.js";
import { plural, short } from "../../lib/format.js";
import { plot } from "../../lib/plot.js";

const SEQUENTIAL = [[0, "#ffffff"], [0.25, "#d6e4f5"], [0.5, "#7fa8dc"], [0.75, "#2f5fb3"], [1, "#0b1f4f"]];


// Bin labels, unique so they can be categories: "[-0.031, -0.025)".
function binLabels(edges) {
  const seen = new Set();
  return edges.slice(0, -1).map((lo, i) => {
    let label = `${short(lo)} to ${short(edges[i + 1])}`;
    if (seen.has(label)) label += ` (#${i})`;
    seen.add(label);
    return label;
  });
}

function stepEdges(steps) {
  const last = steps[steps.length - 1] ?? 0;
  const gap = steps.length > 1 ? last - steps[steps.length - 2] : 1;
  return [...steps, last + Math.max(1, gap)];
}

export function createDistributions(element, captionElement) {
  return {
    show(frame) {
      const tensors = frame.tensors;
      const layers = [...new Set(tensors.map((t) => t.layer))];
      // Weights beside gradients, or (on a narrow screen) one above the other.
      const columns = element.clientWidth < 560 ? 1 : 2;
      const rows = layers.length * (3 - columns);
      const traces = [];
      const layout = {
        // room between rows for the x ticks above and the next title
        grid: { rows, columns, pattern: "independent", ygap: 0.45, xgap: 0.12 },
        margin: { l: 110, r: 10, t: 26, b: 40 },
        annotations: [],
        height: 90 + 230 * rows,
      };
      const notes = [];
      tensors.forEach((tensor) => {
        const kind = tensor.kind === "weight" ? 0 : 1;
        const row = columns === 2 ? layers.indexOf(tensor.layer) : layers.indexOf(tensor.layer) * 2 + kind;
        const column = columns === 2 ? kind : 0;
        const k = row * columns + column + 1;
        const suffix = k === 1 ? "" : String(k);
        const codes = toBytes(tensor.counts);
        const records = tensor.steps.length;
        const bins = tensor.bins;
        const scale = tensor.count_encoding.log1p_max / 255;
        const z = [];
        const counts = [];
        for (let b = 0; b < bins; b += 1) {
          const zRow = new Array(records);
          const cRow = new Array(records);
          for (let r = 0; r < records; r += 1) {
            const code = codes[r * bins + b];
            zRow[r] = code;
            cRow[r] = Math.round(Math.expm1(code * scale));
          }
          z.push(zRow);
          counts.push(cRow);
        }
        const what = tensor.kind === "weight" ? tensor.name : `gradient of ${tensor.name}`;
        traces.push({
          // The steps as the bricks' left edges (one more edge closes the last): the axis starts
          // at the first record, not half a gap before it.
          type: "heatmap", x: stepEdges(tensor.steps), y: binLabels(tensor.edges), z, customdata: counts,
          xaxis: `x${suffix}`, yaxis: `y${suffix}`, colorscale: SEQUENTIAL, zmin: 0, zmax: 255, showscale: false,
          zsmooth: false,
          hovertemplate: `${what}<br>step %{x}<br>values %{y}: ≈ %{customdata:,} of ${tensor.numel.toLocaleString()}<extra></extra>`,
        });
        layout[`xaxis${suffix}`] = { title: { text: row === rows - 1 ? "training step" : "" }, zeroline: false };
        layout[`yaxis${suffix}`] = { type: "category", nticks: 7, tickfont: { size: 11 }, automargin: false };
        const outside = tensor.outside[tensor.outside.length - 1];
        layout.annotations.push({
          text: `<b>${what}</b> (${tensor.numel.toLocaleString()} values)`, showarrow: false, font: { size: 11 },
          xref: `x${suffix} domain`, yref: `y${suffix} domain`, x: 0, y: 1.02, xanchor: "left", yanchor: "bottom",
        });
        if (outside > 0) notes.push(`${outside.toLocaleString()} values of ${what} lie beyond ±${short(tensor.limit)} (counted in the outer bins)`);
      });
      const drawn = plot(element, traces, layout);
      if (!tensors.some((t) => t.kind === "gradient")) notes.push("Gradients appear after the first training step.");
      const recorded = tensors[0] ? tensors[0].steps.length : 0;
      captionElement.textContent = [
        `${plural(recorded, "recorded step")} per tensor (up to ${frame.capacity}: older records are thinned, the first is kept). ` +
        "Bins are fixed per tensor at its first record: linear near 0, logarithmic beyond, to 64× its first largest value; shading is logarithmic in the count.",
        ...notes,
      ].join(" ");
      element.dataset.step = String(frame.step);
      element.dataset.records = String(recorded);
      return drawn;
    },
  };
}
