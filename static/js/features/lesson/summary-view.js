// The end of the lesson: each step, what the learner said, what the network said, and a link
// back to it. A view.
import { element } from "../../lib/dom.js";

export function createSummaryView(root, { onOpen }) {
  return {
    show(steps, answers) {
      const rows = steps.map((step, index) => {
        const record = answers[step.key];
        const judged = record && record.judged !== false;
        const mark = !record ? "" : !judged ? "… " : record.agrees ? "✓ " : "✗ ";
        const when = record?.weights_step != null ? ` at step ${record.weights_step}` : "";
        return element("li", { className: "lesson-summary-row", "data-agrees": !record ? "unanswered" : judged ? String(record.agrees) : "not-judged" },
          element("button", { type: "button", className: "link-button", onclick: () => onOpen(index + 1) },
            `${index + 1}. ${step.title}`),
          element("span", { "data-testid": "lesson-summary-said",
            text: record ? `${mark}you: ${record.given}; the network${when}: ${record.said}` : "not answered yet" }));
      });
      const answered = steps.filter((step) => answers[step.key] && answers[step.key].judged !== false).length;
      const right = steps.filter((step) => answers[step.key]?.judged !== false && answers[step.key]?.agrees).length;
      root.replaceChildren(
        element("h3", { text: "Summary" }),
        element("p", { "data-testid": "lesson-score", text: `${right} of ${answered} answered the way the network did (${answered} of ${steps.length} steps answered).` }),
        element("p", { text: "self.hidden is a module object, nn.Linear(784, 256), stored on the network: it holds a (256, 784) "
          + "table of weights and 256 biases, which model.parameters() hands to the optimizer. forward calls it: for a drawing x, "
          + "self.hidden(x) computes z = x Wᵀ + b, one number per neuron, and the sigmoid squashes each z to between 0 and 1. "
          + "Each training step the optimizer moves every weight a little against its gradient, until each row of weights "
          + "looks for a part of a digit." }),
        element("ol", { className: "lesson-summary-list" }, ...rows));
    },
  };
}
