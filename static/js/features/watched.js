// A watched run: the user's own network, trained by the user's own script
// (linear_playground.watch), on its link (?run=<key>). The run is like any other on the page;
// this feature says whose script trains it, shows its structure (the module tree), names the
// tiles after the user's first Linear layer, and says why a view does not apply when the
// network is not a chain the page can follow. docs/protocol.md, "Watch your own network".
import { renderStructure } from "./watched/structure-view.js";
import { renderHistograms } from "./watched/histograms-view.js";
import { createNumberCharts } from "./watched/number-charts-view.js";
import { createLayerPictures } from "./watched/layer-pictures.js";
import { latestOnly } from "../lib/latest.js";

const TILES_TITLE = "hidden.weight"; // the playground's own first layer
const OWN_PLACES = ["accuracy", "epoch"]; // named numbers with a place of their own (its chart, the x axis)
const NUMBERS_EVERY_MS = 1000; // the named numbers' charts are drawn again at most this often

// The image a watched model reads, [channels, height, width], in words.
const imageWords = ([channels, height, width]) => `${height}×${width}${channels === 3 ? " in colour (the drawing in each channel)" : ""}`;

export default function initWatched({ store, connection, request, visibility, $ }) {
  const panel = $("watched");
  const pictures = createLayerPictures({ request, visibility, $ });
  const tilesTitle = document.querySelector("#tiles-title code");
  const tilesNote = $("watched-tiles-note");
  let shown = null; // the watched part last drawn

  function render(watched, status) {
    panel.hidden = !watched;
    tilesNote.hidden = !watched;
    $("watched-setup-note").hidden = !watched;
    document.getElementById("setup-panel").dataset.watched = watched ? "yes" : "";
    const unfollowed = Boolean(watched && !watched.shows_network);
    // A network the page cannot follow: its own layers' pictures take the tiles' place, and the
    // views that compute with the network (and the canvas) say why they do not apply.
    document.getElementById("tiles-panel").dataset.pictures = unfollowed ? "own" : "";
    document.getElementById("inside-panel").dataset.unfollowed = unfollowed ? "yes" : "";
    // A chain that reads another image (32x32, colour, the user's image_shape): the canvas predicts.
    const predicts = Boolean(watched?.predicts);
    for (const [testid, words] of [
      ["watched-inside-why", "The output weights, activations, diagram, distributions and the inspector compute with "
        + "the network on the server, which cannot follow this one"],
      ["watched-canvas-why", "The canvas cannot predict with this network"],
      ["watched-explain-why", "The code, shapes and forward pass here are the playground's own network's, not this "
        + "one's (its structure is under The network), because the page cannot follow it"],
      ["watched-evaluate-why", "Evaluating this network and downloading its weights from here need a network the "
        + "page follows"]]) {
      const says = unfollowed && !(testid === "watched-canvas-why" && predicts);
      $(testid).hidden = !says;
      $(testid).textContent = says ? `${words}: ${watched.why_not}.` : "";
    }
    pictures.render(watched, store.get().server?.run_id);
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
      : `${predicts ? "The views" : "The canvas and the views"} that compute with the network need a chain of Linear `
        + `layers and activations from 784 inputs to 10: ${watched.why_not}. `
        + (predicts ? `The canvas predicts with it: your drawing resampled to ${imageWords(watched.input_image)}. ` : "")
        + "Each Linear layer's weights are drawn under Look inside, its outputs and gradients beside it here.";
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
    objective.querySelector('[data-role="predicts"]').textContent = watched.shows_network || predicts
      ? `Predicts: the softmax of its 10 outputs${watched.shows_network ? "" : ` for the drawing resampled to `
        + imageWords(watched.input_image)}, with its weights as the script last sent them.` : "";
    if (tilesTitle) tilesTitle.textContent = watched.shows_network ? `${first.path || "model"}.weight` : "your Linear layers";
    tilesNote.textContent = watched.shows_network
      ? `Your model's ${first.path || "model"} (nn.Linear(${first.in_features}, ${first.out_features})): one tile per neuron. `
        + "Every Linear layer below."
      : "Your model's Linear layers as the script last sent them: pick one. (The playground's own tiles, their "
        + `inspector and the replay need a network it follows: ${watched.why_not}.)`;
  }

  // The script's other named numbers, under the curves: drawn in view, at most once a second.
  const numbersElement = $("number-charts");
  const numberCharts = createNumberCharts(numbersElement);
  let numbersTimer = null;
  // One draw at a time (its charts are drawn in turn), always of the newest state.
  const showNumbers = latestOnly(() => {
    const server = store.get().server;
    const watched = server?.watched;
    const names = watched ? watched.numbers.filter((name) => !OWN_PLACES.includes(name)) : [];
    const by = watched?.numbers.includes("epoch") ? "epoch" : "step";
    return numberCharts.show(names, server?.history ?? [], by, watched?.numbers_left_out ?? 0);
  });
  function drawNumbers() {
    numbersTimer = null;
    visibility.whenVisible(numbersElement.closest(".panel"), showNumbers);
  }
  const scheduleNumbers = (now) => {
    if (now) { clearTimeout(numbersTimer); drawNumbers(); } else if (numbersTimer === null) numbersTimer = setTimeout(drawNumbers, NUMBERS_EVERY_MS);
  };

  // Each snapshot's histograms (watch:layers), for the run on the page.
  connection.on("watch:layers", (layers) => {
    if (layers.run_id === store.get().server?.run_id && store.get().server?.watched) {
      store.set({ watchedLayers: layers });
      pictures.snapshot();
    }
  });

  store.subscribe((state, patch) => {
    if ("watchedLayers" in patch && state.watchedLayers && state.server?.watched) {
      renderHistograms($("structure"), state.watchedLayers.histograms, state.watchedLayers.step);
    }
    if ("run" in patch && state.watchedLayers) store.set({ watchedLayers: null }); // another run's
    if (!("server" in patch)) return;
    const watched = state.server?.watched ?? null;
    if (watched || !numbersElement.hidden) scheduleNumbers(watched !== shown);
    if (watched === shown && state.server?.status === panel.dataset.status) return;
    shown = watched;
    panel.dataset.status = state.server?.status ?? "";
    render(watched, state.server?.status);
  });
}
