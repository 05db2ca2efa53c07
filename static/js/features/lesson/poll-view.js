// The class poll on screen: the question with the same choice buttons as the lesson, which
// choice this viewer gave, and for the teacher the answers as they arrive (a bar chart and the
// count) with Reveal and Close; after the reveal, the answer computed from the shared run, the
// right choice marked (✓) in the choices and the chart, and this viewer's answer judged (✓/✗).
// Anyone may hide it on their own screen (Hide, Escape). A view.
import { element } from "../../lib/dom.js";
import { COLORS, plot } from "../../lib/plot.js";

export function createPollView(root, { onChoose, onReveal, onClose, onDismiss }) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  const resultsBox = root.querySelector('[data-testid="poll-results"]');
  const chart = part("chart");
  const revealButton = root.querySelector('[data-testid="poll-reveal"]');
  const closeButton = root.querySelector('[data-testid="poll-close"]');
  revealButton.addEventListener("click", () => onReveal());
  closeButton.addEventListener("click", () => onClose());
  root.querySelector('[data-testid="poll-dismiss"]').addEventListener("click", () => onDismiss());
  root.addEventListener("keydown", (event) => { if (event.key === "Escape") onDismiss(); });
  let drawnCounts = null;

  return {
    show(poll, { control, results, answered }) {
      root.hidden = !poll;
      if (!poll) { drawnCounts = null; return; }
      root.dataset.pollId = String(poll.id);
      root.dataset.status = poll.status;
      part("title").textContent = `Class poll: ${poll.title}`;
      part("question").textContent = poll.question;
      const right = poll.status === "revealed" ? poll.reveal?.correct ?? null : null; // null: no choice is right by itself
      const mark = (index) => (right == null ? "" : index === right ? "right" : index === answered ? "wrong" : "");
      part("choices").replaceChildren(...poll.choices.map((text, index) => element("button", {
        type: "button", className: `lesson-choice ${mark(index)}`.trim(), "data-testid": "lesson-choice", "data-index": String(index),
        // One answer each, and a new one replaces it (the server's rule): a choice can change until the reveal.
        "aria-pressed": String(answered === index), disabled: poll.status !== "open" || answered === index,
        onclick: () => onChoose(index) }, mark(index) === "right" ? `✓ ${text}` : mark(index) === "wrong" ? `✗ ${text}` : text)));
      const you = part("you");
      you.dataset.verdict = right == null || answered == null ? "" : answered === right ? "right" : "wrong";
      you.textContent = right != null
        ? (answered == null ? `The answer: ${poll.choices[right]}. You did not answer this one.`
          : answered === right ? `✓ Right: you chose “${poll.choices[answered]}”.`
            : `✗ Not this time: you chose “${poll.choices[answered]}”; the answer is “${poll.choices[right]}”.`)
        : answered != null ? `Your answer is in: ${poll.choices[answered]}. You can change it until the reveal; answers are anonymous.`
          : poll.status === "open" ? "Answer on this device: one answer each (a new one replaces it), anonymous." : "";
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
          // The right answer is marked in words too (✓ right answer), not by its colour alone.
          const labels = poll.choices.map((c, i) => `${i === right ? "✓ " : ""}${i + 1}. ${c.slice(0, 40)}`);
          chart.dataset.right = right == null ? "" : String(right);
          plot(chart, [{ type: "bar", orientation: "h", y: labels, x: counts,
            text: counts.map((n, i) => (i === right ? `${n} · right answer` : String(n))), textposition: "auto",
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
