// The nn.Linear explainer: the code of the network on screen tied to its views, the shapes,
// the forward pass of the drawing step by step, a Linear sandbox, Keras and the softmax trap.
import { createCodeView } from "./explain/code-view.js";
import { createShapesView } from "./explain/shapes-view.js";
import { createForwardView } from "./explain/forward-view.js";
import { createSandbox } from "./explain/sandbox.js";
import { createTrapView } from "./explain/trap-view.js";
import { requestJSON } from "./explain/util.js";

export default function init(context) {
  const { store, connection, request, notify } = context;
  const panel = document.getElementById("explain-panel");
  const $ = (testid) => panel.querySelector(`[data-testid="${testid}"]`);
  panel.hidden = false;

  const codeView = createCodeView({ list: $("model-code"), selection: $("code-selection") });
  const shapesView = createShapesView({ body: $("shapes-table").tBodies[0], total: $("parameter-total"), batch: $("batch-shapes") });
  const forwardView = createForwardView(panel, { request, notify });
  const sandbox = createSandbox($("linear-sandbox"));
  const trapView = createTrapView(panel, { request, notify });

  // The code and shapes follow the setup: fetched again whenever the config changes.
  let shownConfig = null;
  async function loadCode(config) {
    const key = JSON.stringify(config);
    if (key === shownConfig) return;
    shownConfig = key;
    const answer = await requestJSON("GET", "/api/explain/code");
    if (!answer.ok) { notify(answer.body.error, "error"); shownConfig = null; return; }
    codeView.render(answer.body.lines);
    shapesView.render(answer.body.shapes);
    trapView.setFloor(answer.body.double_softmax_floor);
    trapView.renderKeras(answer.body);
  }

  let architecture = null;
  function onServer(server) {
    trapView.update(server);
    loadCode(server.config).catch((err) => { shownConfig = null; notify(err.message, "error"); });
    const shape = JSON.stringify(server.model.shape);
    if (architecture && shape !== architecture) forwardView.resetPick();
    architecture = shape;
  }

  store.subscribe((state, patch) => {
    if ("server" in patch && state.server) onServer(state.server);
    if ("answer" in patch) forwardView.setInput(state.answer ? state.answer.input : null);
  });
  // Metrics extend the curve in place (main.js); the trap's chart redraws from it.
  connection.on("metrics", () => { const { server } = store.get(); if (server) trapView.update(server); });
  if (store.get().server) onServer(store.get().server);
  sandbox.start().catch((err) => notify(err.message, "error"));
}
