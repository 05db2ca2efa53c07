// The end of the lesson: each step, what the learner said, what the network said, and a link
// back to it. A view.
import { element } from "../../lib/dom.js";

export function createSummaryView(root, { onOpen }) {
  return {
    show(steps, answers) {
      const rows = steps.map((step, index) => {
        const record = answers[step.key];
        return element("li", { className: "lesson-summary-row", "data-agrees": record ? String(record.agrees) : "unanswered" },
          element("button", { type: "button", className: "link-button", onclick: () => onOpen(index + 1) },
            `${index + 1}. ${step.title}`),
          element("span", { text: record ? `${record.agrees ? "✓" : "✗"} you: ${record.given}; the network: ${record.said}` : "not answered yet" }));
      });
      const answered = steps.filter((step) => answers[step.key]).length;
      const right = steps.filter((step) => answers[step.key]?.agrees).length;
      root.replaceChildren(
        element("h3", { text: "Summary" }),
        element("p", { "data-testid": "lesson-score", text: `${right} of ${answered} answered the way the network did (${answered} of ${steps.length} steps answered).` }),
        element("p", { text: "self.hidden is nn.Linear(784, 256): a (256, 784) table of weights and 256 biases. For a drawing x it "
          + "computes z = x Wᵀ + b, one number per neuron, and the sigmoid squashes each z to between 0 and 1. Training moves "
          + "every weight a small step (the learning rate) against the gradient, until each row of weights looks for a part of a digit." }),
        element("ol", { className: "lesson-summary-list" }, ...rows));
    },
  };
}
