// The confusion matrix (Plotly heatmap: rows = true digit, columns = what the network said),
// the accuracy of each digit, and the digits behind a clicked cell.
import { DIGITS, digitCard, unpack } from "./digits.js";
import { plot, purge } from "../../lib/plot.js";
import { element } from "../../lib/dom.js";

// Accuracy per digit in three bands, with their legend under the chart.
export const BANDS = [{ from: 0.9, color: "#1f7a45" }, { from: 0.7, color: "#a35c00" }, { from: 0, color: "#b42318" }];
const bandColor = (a) => (a == null ? "#ccc" : BANDS.find((band) => a >= band.from).color);
// Share of a row: the scale rises fast at first, so a 2% confusion is already visible next
// to a 95% diagonal.
const COLORSCALE = [[0, "#ffffff"], [0.02, "#fde3c8"], [0.1, "#f7a35c"], [0.4, "#d9541e"], [1, "#6b1d0e"]];

export function describeWhen(evaluation) {
  if (!evaluation) return "";
  if (evaluation.step === 0) return "(untrained weights, step 0)";
  return evaluation.at_epoch_end
    ? `(after epoch ${evaluation.epoch}, step ${evaluation.step})` : `(at step ${evaluation.step})`;
}

export function createMatrixView({ matrixElement, perClassElement, cellBox, cellTitle, cellGrid, picker, onCell }) {
  let clickBound = false;

  function drawMatrix(evaluation) {
    const labels = DIGITS.map(String);
    const rows = evaluation.matrix;
    const shares = rows.map((row) => {
      const total = row.reduce((a, b) => a + b, 0);
      return row.map((n) => (total ? n / total : 0));
    });
    const hover = rows.map((row, actual) => row.map((n, predicted) => {
      const total = row.reduce((a, b) => a + b, 0);
      const share = total ? ` (${((100 * n) / total).toFixed(1)}% of the ${actual}s)` : "";
      return actual === predicted ? `${n} ${actual}s read right${share}` : `${n} ${actual}s read as ${predicted}${share}`;
    }));
    return plot(matrixElement, [{
      type: "heatmap", x: labels, y: labels, z: shares, zmin: 0, zmax: 1, colorscale: COLORSCALE,
      text: rows, texttemplate: "%{text}", customdata: hover, hovertemplate: "%{customdata}<extra></extra>",
      xgap: 1, ygap: 1, showscale: false,
    }], {
      margin: { l: 44, r: 8, t: 8, b: 40 },
      xaxis: { title: { text: "the network said" }, type: "category", side: "bottom", fixedrange: true },
      yaxis: { title: { text: "true digit" }, type: "category", autorange: "reversed", fixedrange: true },
      font: { size: 11 },
    }).then(() => {
      if (clickBound) return;
      clickBound = true;
      matrixElement.on("plotly_click", (event) => {
        const point = event.points[0];
        onCell(Number(point.y), Number(point.x));
      });
    });
  }

  function drawPerClass(evaluation) {
    const accuracies = evaluation.per_class.map((c) => c.accuracy);
    return plot(perClassElement, [{
      type: "bar", orientation: "h", y: DIGITS.map(String), x: accuracies,
      text: evaluation.per_class.map((c) => `${c.correct}/${c.total}`), textposition: "outside", cliponaxis: false,
      marker: { color: accuracies.map(bandColor) },
      hovertemplate: "digit %{y}: %{x:.1%} right (%{text})<extra></extra>",
    }], {
      title: { text: "right, per digit", font: { size: 12 } },
      margin: { l: 24, r: 8, t: 28, b: 30 },
      xaxis: { range: [0, 1.35], tickvals: [0, 0.5, 1], tickformat: ".0%", fixedrange: true },
      yaxis: { type: "category", autorange: "reversed", fixedrange: true },
      font: { size: 11 },
    });
  }

  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    onCell(Number(picker.elements.actual.value), Number(picker.elements.predicted.value));
  });

  return {
    render(evaluation) {
      drawMatrix(evaluation);
      drawPerClass(evaluation);
    },
    clear() {
      purge(matrixElement);
      purge(perClassElement);
      clickBound = false;
      cellBox.hidden = true;
    },
    showCell(cell) {
      picker.elements.actual.value = String(cell.actual);
      picker.elements.predicted.value = String(cell.predicted);
      const what = cell.actual === cell.predicted ? `${cell.actual}s read right` : `${cell.actual}s read as ${cell.predicted}`;
      const shown = cell.count > cell.digits.length ? ` (the first ${cell.digits.length})` : "";
      cellTitle.textContent = `${cell.count} ${what}${shown}, at step ${cell.step}`;
      cellGrid.replaceChildren(...unpack(cell).map(digitCard));
      if (!cell.count) {
        cellGrid.append(element("p", { className: "hint", text: "No digits in this cell." }));
      }
      cellBox.hidden = false;
      cellBox.dataset.actual = String(cell.actual);
      cellBox.dataset.predicted = String(cell.predicted);
    },
  };
}
