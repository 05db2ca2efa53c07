// Each Linear layer of a watched network as a picture, whatever the network: the page asks the
// server for the layer picked (watch:weights, docs/protocol.md) when the run comes on screen,
// when another layer is picked, and after each snapshot (at most once a second, only while the
// picture is in view); layer-picture-view.js draws it. Where the playground's own tiles show
// the first layer (a chain it follows), the second layer is picked first.
import { element } from "../../lib/dom.js";
import { latestOnly } from "../../lib/latest.js";
import { createLayerPicture } from "./layer-picture-view.js";

const EVERY_MS = 1000;

export function createLayerPictures({ request, visibility, $ }) {
  const block = $("layer-pictures");
  const select = $("layer-picture-select");
  const view = createLayerPicture({ canvas: $("layer-picture"), caption: $("layer-picture-caption"),
    legend: block.querySelector('[data-role="legend"]'), readout: $("layer-picture-readout"),
    histogram: block.querySelector('[data-role="histogram"]'), spread: $("layer-spread") });
  let shownRun = null; // the run (and its layers) the select was filled for
  let timer = null;
  let last = 0;

  const load = latestOnly(async () => {
    if (block.hidden || select.value === "") return;
    last = performance.now();
    const answer = await request("watch:weights", { layer: Number(select.value) }).catch((err) => ({ error: err.message }));
    if (answer?.ok) view.show(answer.picture);
    else view.clear(`No picture of this layer yet: ${answer?.error ?? "no answer"}.`);
  });
  const loadInView = () => { timer = null; visibility.whenVisible(block, load); };

  select.addEventListener("change", loadInView);

  return {
    // The watched run on the page (null: none): fills the layer picker once per run.
    render(watched, runId) {
      block.hidden = !watched;
      if (!watched) { shownRun = null; return; }
      const key = `${runId}/${watched.layers.map((layer) => `${layer.path}:${layer.in_features}:${layer.out_features}`).join(",")}`;
      if (key === shownRun) return;
      shownRun = key;
      select.replaceChildren(...watched.layers.map((layer, index) => element("option", { value: String(index),
        text: `${layer.path || "(model)"}: nn.Linear(${layer.in_features}, ${layer.out_features})` })));
      select.value = String(watched.shows_network && watched.layers.length > 1 ? 1 : 0);
      view.clear("Waiting for the script's first snapshot of its weights…");
      loadInView();
    },
    // A snapshot came (watch:layers): the picture again, at most once a second.
    snapshot() {
      if (block.hidden || timer !== null) return;
      timer = setTimeout(loadInView, Math.max(0, EVERY_MS - (performance.now() - last)));
    },
  };
}
