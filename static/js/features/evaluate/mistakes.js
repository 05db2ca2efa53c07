// The gallery of misclassified validation digits, most confident mistakes first.
import { digitCard, unpack } from "./digits.js";

export function createMistakesView({ summaryElement, galleryElement }) {
  return {
    render(evaluation) {
      const { mistakes_total: total, n } = evaluation;
      const mistakes = unpack(evaluation.mistakes);
      summaryElement.textContent = total === 0
        ? `No mistakes on the ${n} validation digits.`
        : `${total} of ${n} validation digits are misread${total > mistakes.length ? `; the ${mistakes.length} it was surest about` : ""}. `
          + "Caption: true → said (its probability); bars: the ten probabilities, the true digit in green.";
      galleryElement.replaceChildren(...mistakes.map(digitCard));
    },
    clear(text) {
      summaryElement.textContent = text;
      galleryElement.replaceChildren();
    },
  };
}
