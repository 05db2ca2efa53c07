// A watched run: the user's own network, trained by the user's own script
// (linear_playground.watch), on its link (?run=<key>). The run is like any other on the page;
// this feature says whose script trains it, shows its structure (the module tree), names the
// tiles after the user's first Linear layer, and says why a view does not apply when the
// network is not a chain the page can follow. docs/protocol.md, "Watch your own network".
import { renderStructure } from "./watched/structure-view.js";
import { renderHistograms } from "./watched/histograms-view.js";

const TILES_TITLE = "hidden.weight"; // the playground's own first layer

export default function initWatched({ store, connection, $ }) {
  const panel = $("watched");
  const tilesTitle = document.querySelector("#tiles-title code");
  const tilesNote = $("watched-tiles-note");
  let shown = null; // the watched part last drawn

  function render(watched, status) {
    panel.hidden = !watched;
    tilesNote.hidden = !watched;
    $("watched-setup-note").hidden = !watched;
    document.getElementById("setup-panel").dataset.watched = watched ? "yes" : "";
    if (!watched) {
      if (tilesTitle) tilesTitle.textContent = TILES_TITLE;
      return;
    }
    const first = watched.layers[0];
    $("watched-name").textContent = watched.name || "a watched network";
    $("watched-by").textContent = status === "done"
      ? "Trained by its own script, which has finished: these are its last weights."
      : `Trained by its own script (linear_playground.watch)${watched.controllable ? "; Pause and Step hold its loop" : ""}.`;
    const why = $("watched-why");
    why.hidden = watched.shows_network;
    why.textContent = watched.shows_network ? ""
      : `The pictures and the canvas need a chain of Linear layers and activations from 784 inputs to 10: ${watched.why_not}.`;
    renderStructure($("structure"), watched);
    const layers = store.get().watchedLayers;
    renderHistograms($("structure"), layers?.histograms ?? watched.histograms, layers?.step ?? watched.snapshot_step);
    // The network line and what trains it are the script's, not the playground's setup.
    if (!watched.shows_network) {
      $("architecture").textContent = `Linear layers: ${watched.layers
        .map((layer) => `${layer.path || "model"} ${layer.in_features}→${layer.out_features}`).join(", ")}`;
    }
    const objective = $("training-objective");
    objective.dataset.output = "script"; // not the playground's output setting
    objective.querySelector('[data-role="trains"]').textContent = "Trains: in its own script (its loss, its optimizer, its data).";
    objective.querySelector('[data-role="predicts"]').textContent = watched.shows_network
      ? "Predicts: the softmax of its 10 outputs, with its weights as the script last sent them." : "";
    if (tilesTitle) tilesTitle.textContent = `${first.path || "model"}.weight`;
    tilesNote.textContent = watched.shows_network
      ? `Your model's ${first.path || "model"} (nn.Linear(${first.in_features}, ${first.out_features})): one tile per neuron.`
      : `Not shown for this network: ${watched.why_not}.`;
  }

  // Each snapshot's histograms (watch:layers), for the run on the page.
  connection.on("watch:layers", (layers) => {
    if (layers.run_id === store.get().server?.run_id && store.get().server?.watched) store.set({ watchedLayers: layers });
  });

  store.subscribe((state, patch) => {
    if ("watchedLayers" in patch && state.watchedLayers && state.server?.watched) {
      renderHistograms($("structure"), state.watchedLayers.histograms, state.watchedLayers.step);
    }
    if ("run" in patch && state.watchedLayers) store.set({ watchedLayers: null }); // another run's
    if (!("server" in patch)) return;
    const watched = state.server?.watched ?? null;
    if (watched === shown && state.server?.status === panel.dataset.status) return;
    shown = watched;
    panel.dataset.status = state.server?.status ?? "";
    render(watched, state.server?.status);
  });
}
