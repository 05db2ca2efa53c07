// Training controls: buttons, speed, setup form, keyboard shortcuts. Reads state, sends requests.
export const SPEEDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, null]; // steps/s; null = full speed

export const speedLabel = (value) => (value == null ? "full speed" : `${value} steps/s`);

function speedIndex(value) {
  if (value == null) return SPEEDS.length - 1;
  let best = 0;
  SPEEDS.forEach((s, i) => { if (s != null && Math.abs(s - value) < Math.abs(SPEEDS[best] - value)) best = i; });
  return best;
}

// Form fields <-> config fields. hidden_size edits the first hidden layer.
function formToChanges(form, config) {
  const read = (name) => form.elements[name].value;
  const number = (name) => Number(read(name));
  const changes = {
    optimizer: read("optimizer"), activation: read("activation"),
    lr: number("lr"), momentum: number("momentum"), batch_size: number("batch_size"),
    epochs: number("epochs"), seed: number("seed"),
    hidden_sizes: [number("hidden_size"), ...config.hidden_sizes.slice(1)],
  };
  for (const [key, value] of Object.entries(changes)) {
    if (typeof value === "number" && !Number.isFinite(value)) delete changes[key];
  }
  return changes;
}

export function createControls(root, { store, request, notify }) {
  const buttons = Object.fromEntries(
    [...root.querySelectorAll("[data-action]")].map((b) => [b.dataset.action, b]));
  const form = root.querySelector("[data-testid=setup]");
  const speed = root.querySelector("[data-testid=speed]");
  const speedValue = root.querySelector("[data-testid=speed-value]");

  async function send(event, payload) {
    try {
      const answer = await request(event, payload);
      if (!answer.ok) notify(answer.error, "error");
      return answer;
    } catch (err) {
      notify(err.message, "error");
      return { ok: false };
    }
  }

  const actions = {
    start: () => send("train:start"),
    pause: () => send("train:pause"),
    step: () => send("train:step", { batches: 1 }),
    reset: () => send("train:reset"),
  };
  for (const [name, button] of Object.entries(buttons)) button.addEventListener("click", () => actions[name]());

  speed.max = String(SPEEDS.length - 1);
  speed.addEventListener("input", () => { speedValue.textContent = speedLabel(SPEEDS[Number(speed.value)]); });
  speed.addEventListener("change", () => send("config:update", { steps_per_second: SPEEDS[Number(speed.value)] }));

  // A live field applies on change; a model field at idle applies too (new weights, nothing lost).
  form.addEventListener("change", async (event) => {
    const { config, status, step } = store.get().server;
    const changes = formToChanges(form, config);
    const badge = event.target.closest("label")?.querySelector(".badge.reset");
    if (badge && step > 0 && (status === "running" || status === "paused")) {
      notify("This field builds a new model: press “Reset with this setup” to apply it.", "info");
      return;
    }
    const answer = await send("config:update", changes);
    if (!answer.ok) fillForm(store.get().server.config); // show what is really in force
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send("train:reset", { config: formToChanges(form, store.get().server.config) });
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea, button") || event.ctrlKey || event.metaKey || event.altKey) return;
    const status = store.get().server?.status;
    const key = event.key.toLowerCase();
    if (key === " ") { event.preventDefault(); (status === "running" ? actions.pause : actions.start)(); }
    else if (key === "s") actions.step();
    else if (key === "r") actions.reset();
  });

  function fillForm(config) {
    const set = (name, value) => {
      const element = form.elements[name];
      if (document.activeElement !== element) element.value = String(value);
    };
    set("optimizer", config.optimizer); set("activation", config.activation);
    set("lr", config.lr); set("momentum", config.momentum); set("batch_size", config.batch_size);
    set("epochs", config.epochs); set("seed", config.seed); set("hidden_size", config.hidden_sizes[0]);
    if (document.activeElement !== speed) {
      speed.value = String(speedIndex(config.steps_per_second));
      speedValue.textContent = speedLabel(config.steps_per_second);
    }
  }

  return {
    render(server) {
      const { status } = server;
      buttons.start.disabled = status === "running";
      buttons.start.textContent = status === "paused" ? "▶ Resume" : status === "done" ? "▶ New run" : "▶ Start";
      buttons.pause.disabled = status !== "running";
      buttons.step.disabled = status === "done";
      fillForm(server.config);
    },
  };
}
