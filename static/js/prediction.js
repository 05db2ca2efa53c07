// The prediction views: the digit, the probability of each digit (ten bars, plain HTML: an
// answer arrives every few strokes while drawing, and a chart library's redraw would cost the
// drawing its frames) and the 28x28 input as the network sees it.
import { element } from "./lib/dom.js";
import { paintPicture } from "./lib/digit-canvas.js";

const DIGITS = [...Array(10).keys()];

export function createPredictionViews({ digitElement, barsElement, previewCanvas }) {
  const bars = DIGITS.map((digit) => {
    const bar = element("span", { className: "bar" });
    barsElement.append(element("span", { className: "bar-column" }, bar, element("span", { className: "bar-label", text: String(digit) })));
    return bar;
  });
  barsElement.prepend(element("span", { className: "bars-axis", "aria-hidden": "true" },
    element("span", { text: "1" }), element("span", { text: "0.5" }), element("span", { text: "0" })));

  function drawBars(probabilities) {
    const best = probabilities.some((p) => p > 0) ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    probabilities.forEach((p, digit) => {
      bars[digit].style.height = `${(100 * p).toFixed(1)}%`;
      bars[digit].classList.toggle("best", digit === best);
      bars[digit].parentElement.title = `digit ${digit}: ${p.toFixed(3)}`;
    });
    barsElement.dataset.values = JSON.stringify(probabilities);
    barsElement.setAttribute("aria-label", best < 0 ? "Probability of each digit: nothing drawn yet"
      : `Probability of each digit: ${probabilities.map((p, d) => `${d}: ${p.toFixed(2)}`).join(", ")}`);
  }

  return {
    show(answer) {
      digitElement.textContent = String(answer.prediction);
      drawBars(answer.probabilities);
      paintPicture(previewCanvas, answer.input);
    },
    clear() {
      digitElement.textContent = "";
      drawBars(new Array(10).fill(0));
      previewCanvas.getContext("2d").clearRect(0, 0, previewCanvas.width, previewCanvas.height);
    },
  };
}

// Whether the network's answer means anything yet: an untrained network answers every drawing
// with the same confident-looking digit. Words for under the prediction, or "" once it has learned.
export const GUESSING_BELOW = 0.5; // right on fewer than half the digits: mostly guessing
export function guessingNote(server) {
  if (!server) return "";
  if (server.step === 0) return "Guessing: this network has not trained yet (its weights are random). Press ▶ Start.";
  const lastEpoch = server.epochs?.at(-1);
  const accuracy = lastEpoch?.val_accuracy ?? server.history?.at(-1)?.accuracy;
  if (accuracy == null || accuracy >= GUESSING_BELOW) return "";
  return `Mostly guessing: right on ${Math.round(accuracy * 100)}% of ${lastEpoch ? "validation" : "training"} digits so far.`;
}
