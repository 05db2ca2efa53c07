// Beside the validation accuracy: the MNIST page's results for comparable networks (trained
// and tested on the full MNIST, 60,000 / 10,000 digits), and this run's latest validation
// accuracy on the playground's own split. A view of the store's run.
import { percent } from "../lib/format.js";

export default function initBenchmarks({ store, $ }) {
  const cell = $("benchmark-live");
  const note = $("benchmark-live-note");
  store.subscribe((state, patch) => {
    if (!("server" in patch) || !state.server) return;
    const { epochs, dataset, config } = state.server;
    const last = epochs[epochs.length - 1];
    cell.textContent = last ? percent(last.val_accuracy) : "–";
    note.textContent = last
      ? `this run, after epoch ${last.epoch} (${dataset.splits.validation.toLocaleString()} validation digits, `
        + `${dataset.splits.train.toLocaleString()} to train on; ${config.hidden_sizes.join("-")} hidden)`
      : state.server.watched ? "this run: trained in its own script, on its own data; the playground does not validate it"
        : "this run: its validation accuracy appears at the end of the first epoch";
  });
}
