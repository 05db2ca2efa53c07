// The prediction views: the digit, the probability of each digit (ten bars, plain HTML: an
// answer arrives every few strokes while drawing, and a chart library's redraw would cost the
// drawing its frames) and the input as the network sees it: the 28x28 drawing, or (a watched
// model that reads another image) the drawing resampled to that image, answer.model_input.
import { element } from "./lib/dom.js";
import { paintPicture } from "./lib/digit-canvas.js";

const DIGITS = [...Array(10).keys()];

const OWN_CAPTION = "28×28, as the network sees it";

// A model's input image {shape: [channels, height, width], values: channel-first} drawn as the
// 28x28 preview is (ink dark on paper); 3 channels as red, green and blue.
function paintInput(canvas, { shape: [channels, height, width], values }) {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const plane = width * height;
  for (let i = 0; i < plane; i += 1) {
    for (let c = 0; c < 3; c += 1) {
      const value = values[(channels === 3 ? c * plane : 0) + i];
      image.data[i * 4 + c] = 255 - Math.round(255 * Math.min(1, Math.max(0, value)));
    }
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function inputWords([channels, height, width]) {
  return `${height}×${width}${channels === 3 ? " colour (the drawing in each of red, green and blue)" : ""}`;
}
// The caption under the preview is short (the row is narrow); the full words are its label.
const shortWords = ([channels, height, width]) => `${height}×${width}${channels === 3 ? " colour" : ""}`;

export function createPredictionViews({ digitElement, barsElement, previewCanvas }) {
  const caption = previewCanvas.closest("figure")?.querySelector("figcaption");
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
      const seen = answer.model_input;
      if (seen?.values) paintInput(previewCanvas, seen); else paintPicture(previewCanvas, answer.input);
      const words = seen ? `Resampled to ${shortWords(seen.shape)}, as your model sees it` : OWN_CAPTION;
      if (caption) caption.textContent = seen && !seen.values ? `${words} (shown at 28×28)` : words;
      previewCanvas.dataset.shape = seen ? seen.shape.join("x") : "1x28x28";
      previewCanvas.setAttribute("aria-label", seen ? `Your drawing resampled to ${inputWords(seen.shape)}, the input `
        + "your model is given" : "The 28x28 input as the network sees it");
    },
    clear() {
      digitElement.textContent = "";
      drawBars(new Array(10).fill(0));
      previewCanvas.getContext("2d").clearRect(0, 0, previewCanvas.width, previewCanvas.height);
      if (caption) caption.textContent = OWN_CAPTION;
      previewCanvas.dataset.shape = "";
    },
  };
}

// Whether the network's answer means anything yet: an untrained network answers every drawing
// with the same confident-looking digit. {short, full} words for under the drawing (short: the
// first screen must keep the curves; full: on hover and for screen readers), or null once it has learned.
export const GUESSING_BELOW = 0.5; // right on fewer than half the digits: mostly guessing
export function guessingNote(server) {
  if (!server) return null;
  if (server.step === 0) {
    return { short: "Guessing: not trained yet",
      full: "Guessing: this network has not trained yet (its weights are random). Press ▶ Start." };
  }
  const lastEpoch = server.epochs?.at(-1);
  const accuracy = lastEpoch?.val_accuracy ?? server.history?.at(-1)?.accuracy;
  if (accuracy == null || accuracy >= GUESSING_BELOW) return null;
  const percent = Math.round(accuracy * 100);
  return { short: `Guessing: ${percent}% right so far`,
    full: `Mostly guessing: right on ${percent}% of ${lastEpoch ? "validation" : "training"} digits so far.` };
}
