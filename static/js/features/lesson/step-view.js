// One lesson step on screen: what to know, the question, the learner's way to answer (choices
// or a number), and, once committed, the answer the network gave beside the learner's. A view:
// it renders what it is given and reports clicks.
import { element } from "../../lib/dom.js";
import { pictureCanvas } from "../../lib/digit-canvas.js";
import { signedLegend } from "../../lib/legend.js";
import { float32 } from "../../lib/bytes.js";

export function createStepView(root, { onChoose, onNumber }) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  const question = root.querySelector('[data-testid="lesson-question"]');
  const reveal = root.querySelector('[data-testid="lesson-reveal"]');
  const form = part("number-form");
  const input = form.querySelector("input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = Number(input.value.replace(",", "."));
    if (input.value.trim() === "" || !Number.isFinite(value)) { part("error").textContent = "Type a number first."; return; }
    onNumber(value);
  });

  function describeGiven(step, given) {
    return given.choice != null ? step.choices[given.choice] : String(given.number);
  }

  return {
    show(step, number, count, { given = null, reveal: answer = null, waiting = false, error = "" } = {}) {
      root.dataset.step = String(number);
      root.dataset.key = step.key;
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
      if (!given) input.value = ""; else if (given.number != null) input.value = String(given.number);
      part("drawing-hint").hidden = step.kind !== "drawing";
      question.dataset.answered = String(Boolean(given));
      reveal.hidden = !answer;
      if (answer) this.showReveal(step, given, answer);
      else reveal.replaceChildren();
    },
    showReveal(step, given, answer) {
      const right = given.choice != null ? given.choice === answer.correct
        : Math.abs(given.number - answer.value) <= Math.max(answer.tolerance ?? 0, Math.abs(answer.value) * 1e-9);
      reveal.dataset.agrees = String(right);
      // Pictures side by side are compared: one colour scale for all (the largest |value| of
      // any), under the one legend, so faint step-0 weights look faint beside trained ones.
      const pictureValues = (answer.pictures || []).map((picture) => float32(picture.values));
      let sharedLimit = 1e-9;
      for (const values of pictureValues) for (const v of values) sharedLimit = Math.max(sharedLimit, Math.abs(v) || 0);
      const pictures = (answer.pictures || []).map((picture, i) => element("figure", { className: "lesson-picture" },
        pictureCanvas(pictureValues[i], picture.label, { signed: true, className: "square", limit: sharedLimit }),
        element("figcaption", { text: picture.label })));
      reveal.replaceChildren(
        element("p", { className: "lesson-verdict" }, right ? "✓ " : "✗ ",
          element("span", { text: `You said: ${describeGiven(step, given)}.` })),
        element("p", { className: "lesson-said", "data-testid": "lesson-answer" },
          element("strong", { text: "The network: " }), answer.said, "."),
        element("ul", { className: "lesson-details" }, ...answer.details.map((line) => element("li", { text: line }))),
        ...(pictures.length ? [element("div", { className: "lesson-pictures" }, ...pictures,
          signedLegend(Math.max(...pictures.map((p) => Number(p.querySelector("canvas").dataset.limit))), "the neuron's z"))] : []),
        element("p", { className: "hint", text: "On the page: the part outlined in blue." }));
      reveal.dataset.value = answer.correct != null ? String(answer.correct) : String(answer.value);
    },
  };
}
