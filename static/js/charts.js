// Loss and accuracy curves (Plotly). Pure views: they draw what they are given.
const TRAIN = 0;
const VALIDATION = 1;

const baseLayout = (title, yTitle, yRange) => ({
  title: { text: title, font: { size: 14 }, x: 0.01, xanchor: "left" },
  margin: { l: 48, r: 12, t: 32, b: 36 },
  xaxis: { title: { text: "epoch" }, rangemode: "tozero", zeroline: false },
  yaxis: { title: { text: yTitle }, range: yRange, zeroline: false },
  legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom", font: { size: 11 } },
  uirevision: "keep", // keep the user's zoom across updates
});

const CONFIG = { displaylogo: false, responsive: true };

function traces(history, epochs, key) {
  return [
    { name: "train (running average)", x: history.map((p) => p.epoch), y: history.map((p) => p[key]),
      mode: "lines", line: { color: "#2f6fde", width: 1.5 } },
    { name: "validation (end of epoch)", x: epochs.map((e) => e.epoch), y: epochs.map((e) => e[`val_${key}`]),
      mode: "lines+markers", line: { color: "#e4572e", width: 2 } },
  ];
}

export function createCurves(lossElement, accuracyElement) {
  const charts = [
    { element: lossElement, key: "loss", layout: baseLayout("Loss (cross-entropy)", "loss") },
    { element: accuracyElement, key: "accuracy", layout: baseLayout("Accuracy", "accuracy", [0, 1]) },
  ];
  return {
    // Redraw from the whole history (on connect and on every state change).
    render(history, epochs) {
      for (const chart of charts) {
        Plotly.react(chart.element, traces(history, epochs, chart.key), chart.layout, CONFIG);
      }
    },
    addPoint(point) {
      for (const chart of charts) {
        Plotly.extendTraces(chart.element, { x: [[point.epoch]], y: [[point[chart.key]]] }, [TRAIN]);
      }
    },
    addEpoch(record) {
      for (const chart of charts) {
        Plotly.extendTraces(chart.element, { x: [[record.epoch]], y: [[record[`val_${chart.key}`]]] }, [VALIDATION]);
      }
    },
  };
}
