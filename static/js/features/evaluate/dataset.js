// The dataset browser: per class, the mean digit, the counts in each split, sample digits.
import { DIGITS, digitCanvas, nthDigit } from "./digits.js";
import { element } from "../../lib/dom.js";

export function createDatasetView({ summaryElement, rowsElement, moreButton, onMore }) {
  let counts = null;
  let means = null;

  const cell = (content) => element("td", {}, content);

  // samples: {classes: [{digit, indices}], pixels: the digits of class 0, then 1, ...}
  function renderRows(samples) {
    let next = 0;
    rowsElement.replaceChildren(...DIGITS.map((digit) => {
      const row = element("tr", { "data-digit": String(digit) });
      const head = element("th", { scope: "row", text: String(digit) });
      const strip = element("div", { className: "sample-strip", "data-testid": `samples-${digit}` });
      for (const index of samples.classes[digit].indices) {
        strip.append(digitCanvas(nthDigit(samples.pixels, next), `a training ${digit} (#${index})`));
        next += 1;
      }
      const mean = digitCanvas(nthDigit(means, digit), `the mean of all training ${digit}s`);
      mean.classList.add("mean");
      row.append(head, cell(mean), cell(counts.train[digit].toLocaleString()),
        cell(counts.validation[digit].toLocaleString()), cell(counts.test ? counts.test[digit].toLocaleString() : "–"),
        cell(strip));
      return row;
    }));
  }

  moreButton.addEventListener("click", () => onMore());

  return {
    render(dataset) {
      counts = dataset.counts;
      means = dataset.means;
      const splits = Object.entries(dataset.splits).filter(([, n]) => n > 0)
        .map(([name, n]) => `${n.toLocaleString()} ${name}`).join(" · ");
      const fallback = dataset.fallback_reason ? ` Full MNIST was not available: ${dataset.fallback_reason}.` : "";
      summaryElement.textContent = `${dataset.name}: ${dataset.source}. Splits: ${splits}.${fallback} `
        + "Mean: the average of every training digit of that class.";
      renderRows(dataset.samples);
    },
    renderSamples(samples) {
      if (counts) renderRows(samples);
    },
  };
}
