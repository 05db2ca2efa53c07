// The class poll on screen: the question with the same choice buttons as the lesson, which
// choice this viewer gave, and for the teacher the answers as they arrive (a bar chart and the
// count) with Reveal and Close; after the reveal, the answer computed from the shared run. A view.
import { element } from "../../lib/dom.js";
import { COLORS, plot } from "../../lib/plot.js";

export function createPollView(root, { onChoose, onReveal, onClose }) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  const resultsBox = root.querySelector('[data-testid="poll-results"]');
  const chart = part("chart");
  const revealButton = root.querySelector('[data-testid="poll-reveal"]');
  const closeButton = root.querySelector('[data-testid="poll-close"]');
  revealButton.addEventListener("click", () => onReveal());
  closeButton.addEventListener("click", () => onClose());
  let drawnCounts = null;

  return {
    show(poll, { control, results, answered }) {
      root.hidden = !poll;
      if (!poll) { drawnCounts = null; return; }
      root.dataset.pollId = String(poll.id);
      root.dataset.status = poll.status;
      part("title").textContent = `Class poll: ${poll.title}`;
      part("question").textContent = poll.question;
      part("choices").replaceChildren(...poll.choices.map((text, index) => element("button", {
        type: "button", className: "lesson-choice", "data-testid": "lesson-choice", "data-index": String(index),
        "aria-pressed": String(answered === index), disabled: answered != null || poll.status !== "open",
        onclick: () => onChoose(index) }, text)));
      part("you").textContent = answered != null ? `Your answer is in: ${poll.choices[answered]}. Answers are anonymous.`
        : poll.status === "open" ? "Answer on this device: one answer each, anonymous." : "";
      const shown = results ?? (poll.status === "revealed" ? poll : null);
      resultsBox.hidden = !shown;
      revealButton.hidden = !control || poll.status !== "open";
      closeButton.hidden = !control;
      if (shown) {
        const counts = shown.counts;
        root.querySelector('[data-testid="poll-count"]').textContent =
          `${shown.answers} ${shown.answers === 1 ? "answer" : "answers"}`;
        const key = JSON.stringify([counts, shown.reveal?.correct]);
        if (key !== drawnCounts) {
          drawnCounts = key;
          const right = shown.reveal?.correct;
          plot(chart, [{ type: "bar", orientation: "h", y: poll.choices.map((c, i) => `${i + 1}. ${c.slice(0, 40)}`), x: counts,
            marker: { color: counts.map((_, i) => (i === right ? COLORS.ok : COLORS.accent)) },
            hovertemplate: "%{x} answers<extra></extra>" }],
          { margin: { l: 220, r: 10, t: 6, b: 24 }, height: 60 + 28 * counts.length,
            yaxis: { autorange: "reversed", automargin: true }, xaxis: { rangemode: "tozero", dtick: 1 } });
        }
      }
      const reveal = poll.reveal;
      part("reveal").hidden = !reveal;
      if (reveal) {
        part("reveal").replaceChildren(
          element("p", {}, element("strong", { text: "The shared run says: " }), reveal.said, "."),
          element("ul", { className: "lesson-details" }, ...reveal.details.map((line) => element("li", { text: line }))));
      }
    },
  };
}
