// The prediction views: the digit, the probability bars and the 28x28 preview.
const CONFIG = { displaylogo: false, responsive: true, staticPlot: false };
const DIGITS = [...Array(10).keys()].map(String);

export function createPredictionViews({ digitElement, barsElement, previewCanvas }) {
  const preview = previewCanvas.getContext("2d");
  const layout = {
    margin: { l: 36, r: 8, t: 8, b: 28 },
    xaxis: { type: "category", title: { text: "" } },
    yaxis: { range: [0, 1], title: { text: "probability" } },
    bargap: 0.15,
  };

  function drawBars(probabilities) {
    const best = probabilities.indexOf(Math.max(...probabilities));
    Plotly.react(barsElement, [{
      type: "bar", x: DIGITS, y: probabilities,
      marker: { color: probabilities.map((_, i) => (i === best ? "#2f6fde" : "#aab4c8")) },
      hovertemplate: "digit %{x}: %{y:.3f}<extra></extra>",
    }], layout, CONFIG);
  }

  function drawPreview(pixels) {
    const image = preview.createImageData(28, 28);
    for (let i = 0; i < 784; i += 1) {
      const v = Math.round(pixels[i] * 255);
      image.data.set([v, v, v, 255], i * 4);
    }
    preview.putImageData(image, 0, 0);
  }

  return {
    show(answer) {
      digitElement.textContent = String(answer.prediction);
      drawBars(answer.probabilities);
      drawPreview(answer.input);
    },
    clear() {
      digitElement.textContent = "";
      drawBars(new Array(10).fill(0));
      preview.clearRect(0, 0, 28, 28);
    },
  };
}
