// One lesson step on screen: what to know, the question, the learner's way to answer (choices
// or a number, read as people write it), what the step still needs (a trained network), and,
// once committed, the answer the network gave beside the learner's: its words, how it was
// computed, its pictures, its curve, its code. A view: it renders what it is given and reports
// what is clicked or typed.
import { element } from "../../lib/dom.js";
import { pictureCanvas } from "../../lib/digit-canvas.js";
import { signedLegend } from "../../lib/legend.js";
import { float32 } from "../../lib/bytes.js";
import { readNumber, writtenNumber } from "../../lib/read-number.js";
import { COLORS, plot } from "../../lib/plot.js";

// What the learner's answer was, in words: the choice, or the number as typed and as read.
export function describeGiven(step, given) {
  if (given.choice != null) return step.choices[given.choice];
  const read = writtenNumber(given.number);
  return given.typed && given.typed.replace(/\s/g, "") !== read ? `${given.typed} = ${read}` : read;
}

export function createStepView(root, { onChoose, onNumber }) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  const question = root.querySelector('[data-testid="lesson-question"]');
  const reveal = root.querySelector('[data-testid="lesson-reveal"]');
  const training = root.querySelector('[data-testid="lesson-training"]');
  const form = part("number-form");
  const input = form.querySelector("input");
  const reading = form.querySelector('[data-testid="lesson-number-reading"]');
  const READING_HINT = reading.textContent;

  // As the learner types, what the page reads (so "200,960" is seen to be 200960 before it counts).
  input.addEventListener("input", () => {
    const text = input.value;
    if (!text.trim()) { reading.textContent = READING_HINT; reading.dataset.state = "hint"; return; }
    const read = readNumber(text);
    reading.dataset.state = read.error ? "error" : "ok";
    reading.textContent = read.error ? read.error : `reads as ${writtenNumber(read.value)}`;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const read = readNumber(input.value);
    if (read.error) { part("error").textContent = read.error; input.focus(); return; }
    onNumber(read.value, input.value.trim());
  });

  function showCurve(box, curve) {
    // The activation's curve, with the drawing's neurons on it: each at its z and its value.
    plot(box, [
      { type: "scatter", mode: "lines", x: curve.z, y: curve.a, name: `${curve.activation}(z)`,
        line: { color: COLORS.muted, width: 2 }, hoverinfo: "skip" },
      { type: "scatter", mode: "markers", x: curve.points_z, y: curve.points_a, name: "its neurons",
        marker: { color: COLORS.accent, size: 6, opacity: 0.55 },
        hovertemplate: "z = %{x:.2f} → %{y:.3f}<extra></extra>" },
    ], { height: 200, margin: { l: 40, r: 8, t: 8, b: 34 }, showlegend: false,
      xaxis: { title: { text: "z = x·W[j] + b[j]", standoff: 4 }, zeroline: true },
      yaxis: { title: { text: curve.activation, standoff: 4 } } }).catch(() => {
      box.replaceChildren(element("p", { className: "hint", text: "The curve could not be drawn (the charts did not load)." }));
    });
  }

  function verdict(step, given, answer, right) {
    const said = element("span", { text: `You said: ${describeGiven(step, given)}.` });
    if (answer.judged === false) {
      return element("p", { className: "lesson-verdict", "data-verdict": "not-judged" }, "Not judged yet. ", said,
        " This needs a network that has trained: train it, then ask the network again.");
    }
    return element("p", { className: "lesson-verdict", "data-verdict": right ? "right" : "wrong" }, right ? "✓ " : "✗ ", said);
  }

  return {
    show(step, number, count, { given = null, reveal: answer = null, waiting = false, error = "" } = {}) {
      root.dataset.step = String(number);
      root.dataset.key = step.key;
      // What the step is about, for whoever reads the page's structure (tests, tools): not shown.
      root.dataset.kind = step.kind;
      root.dataset.view = step.view;
      root.dataset.hides = JSON.stringify(step.hides ?? []);
      root.dataset.asksFor = step.asks_for ?? "";
      part("counter").textContent = `Step ${number} of ${count}`;
      part("title").textContent = step.title;
      part("lead").textContent = step.lead;
      part("text").textContent = step.question;
      part("error").textContent = error;
      const choices = part("choices");
      choices.replaceChildren(...step.choices.map((text, index) => element("button", {
        type: "button", className: "lesson-choice", "data-testid": "lesson-choice", "data-index": String(index),
        "aria-pressed": String(given?.choice === index), disabled: Boolean(given) || waiting,
        onclick: () => onChoose(index) }, text)));
      choices.hidden = step.choices.length === 0;
      choices.classList.toggle("digits", step.kind === "drawing");
      form.hidden = step.kind !== "number";
      input.disabled = Boolean(given) || waiting;
      form.querySelector("button").disabled = Boolean(given) || waiting;
      if (!given) {
        if (document.activeElement !== input && !waiting) { input.value = ""; reading.textContent = READING_HINT; }
      } else if (given.number != null) {
        input.value = given.typed ?? String(given.number);
        reading.textContent = `reads as ${writtenNumber(given.number)}`;
      }
      part("drawing-hint").hidden = step.kind !== "drawing";
      question.dataset.answered = String(Boolean(given));
      reveal.hidden = !answer;
      if (answer) this.showReveal(step, given, answer);
      else reveal.replaceChildren();
    },
    showReveal(step, given, answer) {
      const right = given.choice != null ? given.choice === answer.correct
        : Math.abs(given.number - answer.value) <= Math.max(answer.tolerance ?? 0, Math.abs(answer.value) * 1e-9);
      reveal.dataset.agrees = answer.judged === false ? "not-judged" : String(right);
      // Pictures side by side are compared: one colour scale for all (the largest |value| of
      // any), under the one legend, so faint step-0 weights look faint beside trained ones.
      const pictureValues = (answer.pictures || []).map((picture) => float32(picture.values));
      let sharedLimit = 1e-9;
      for (const values of pictureValues) for (const v of values) sharedLimit = Math.max(sharedLimit, Math.abs(v) || 0);
      const pictures = (answer.pictures || []).map((picture, i) => element("figure", { className: "lesson-picture" },
        pictureCanvas(pictureValues[i], picture.label, { signed: true, className: "square", limit: sharedLimit }),
        element("figcaption", { text: picture.label })));
      const curveBox = answer.curve ? element("div", { className: "lesson-curve", "data-testid": "lesson-curve",
        role: "img", "aria-label": `The ${answer.curve.activation} curve with this drawing's ${answer.curve.points_z.length} neurons on it` }) : null;
      reveal.replaceChildren(
        verdict(step, given, answer, right),
        element("p", { className: "lesson-said", "data-testid": "lesson-answer" },
          element("strong", { text: "The network: " }), answer.said, "."),
        element("div", { className: "lesson-more", "data-role": "more" },
          element("ul", { className: "lesson-details" }, ...answer.details.map((line) => element("li", { text: line }))),
          curveBox,
          ...(pictures.length ? [element("div", { className: "lesson-pictures" }, ...pictures,
            signedLegend(Math.max(...pictures.map((p) => Number(p.querySelector("canvas").dataset.limit))), "the neuron's z"))] : []),
          answer.code ? element("pre", { className: "lesson-code", "data-testid": "lesson-code", text: answer.code.join("\n") }) : null,
          answer.judged === false ? null : element("p", { className: "hint", text: "On the page: the part outlined in blue." })));
      if (curveBox) showCurve(curveBox, answer.curve);
      reveal.dataset.value = answer.correct != null ? String(answer.correct) : String(answer.value);
    },
    // A step about training, on a run that has hardly trained: said before the guess.
    showTraining(step, trained) {
      training.hidden = trained == null;
      if (trained == null) return;
      training.textContent = trained.enough
        ? `This run has trained ${trained.steps.toLocaleString("en-US")} steps: enough for this question.`
        : "This question compares the network before and after training, and this run has trained only "
          + `${trained.steps} of the ${step.needs_training} steps it needs. Press ▶ Start (or “Train it for me” below), `
          + "then answer; you can ask the network again afterwards.";
      training.dataset.enough = String(trained.enough);
    },
    // The answer's longer part shown or folded (folded by default on a phone, where the sheet
    // must leave room for what the step points at).
    fold(folded) {
      const more = reveal.querySelector('[data-role="more"]');
      if (more) more.hidden = folded;
    },
    focusReveal() { reveal.focus({ preventScroll: false }); },
  };
}
