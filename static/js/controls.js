// Training controls: buttons, speed, the setup form (and its link), keyboard shortcuts.
// Reads state, sends requests.
import {
  SETUP_FIELDS, describeDifferences, hasSetupKeys, readLink, sameSetup, setupOf, writeSetupToUrl,
} from "./urlstate.js";

export const SPEEDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, null]; // steps/s; null = full speed

export const speedLabel = (value) => (value == null ? "full speed" : `${value} steps/s`);

const MAX_LAYERS = 4;
const LAYER_INPUTS = ["hidden_size", "hidden_size_2", "hidden_size_3", "hidden_size_4"];
const NEW_LAYER_UNITS = 128; // what an added layer starts with

function speedIndex(value) {
  if (value == null) return SPEEDS.length - 1;
  let best = 0;
  SPEEDS.forEach((s, i) => { if (s != null && Math.abs(s - value) < Math.abs(SPEEDS[best] - value)) best = i; });
  return best;
}

// The form's setup, as config fields. Numbers the browser cannot read are left out (the
// server keeps its value); bounds are the server's to check, it answers in words.
function formToChanges(form) {
  const read = (name) => form.elements[name].value;
  const number = (name) => (read(name).trim() === "" ? NaN : Number(read(name)));
  const layers = Number(read("hidden_layers")) || 1;
  const changes = {
    hidden_sizes: LAYER_INPUTS.slice(0, layers).map(number),
    activation: read("activation"), output: read("output"), optimizer: read("optimizer"),
    lr: number("lr"), momentum: number("momentum"), weight_decay: number("weight_decay"),
    batch_size: number("batch_size"), epochs: number("epochs"), seed: number("seed"),
  };
  if (!changes.hidden_sizes.every(Number.isFinite)) delete changes.hidden_sizes;
  for (const [key, value] of Object.entries(changes)) {
    if (typeof value === "number" && !Number.isFinite(value)) delete changes[key];
  }
  return changes;
}

export function createControls(root, { store, request, ask, notify }) {
  const buttons = Object.fromEntries(
    [...root.querySelectorAll("[data-action]")].map((b) => [b.dataset.action, b]));
  const form = root.querySelector("[data-testid=setup]");
  const speed = root.querySelector("[data-testid=speed]");
  const speedValue = root.querySelector("[data-testid=speed-value]");
  const banner = form.querySelector("[data-testid=link-banner]");
  const bannerText = form.querySelector("[data-testid=link-banner-text]");
  const applyLink = form.querySelector("[data-testid=link-apply]");
  const dismissLink = form.querySelector("[data-testid=link-dismiss]");
  const shareLink = form.querySelector("[data-testid=share-link]");
  const copyLink = form.querySelector("[data-testid=copy-link]");

  // A setup link that was opened and is not settled yet: {config} or {error}. While it is
  // pending the form shows the link's setup, not the server's, and the address keeps the link.
  let link = null;

  const send = ask;

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

  function showLayerRows() {
    const layers = Number(form.elements.hidden_layers.value) || 1;
    form.querySelectorAll(".layer-size").forEach((row) => {
      const index = Number(row.dataset.layer);
      row.hidden = index > layers;
      const input = row.querySelector("input");
      input.disabled = index > layers; // hidden inputs must not block the form's validation
      if (index <= layers && input.value === "") input.value = String(NEW_LAYER_UNITS);
    });
  }

  function fillForm(config) {
    const set = (name, value) => {
      const element = form.elements[name];
      if (document.activeElement !== element) element.value = String(value);
    };
    set("optimizer", config.optimizer); set("activation", config.activation); set("output", config.output);
    set("lr", config.lr); set("momentum", config.momentum); set("weight_decay", config.weight_decay);
    set("batch_size", config.batch_size); set("epochs", config.epochs); set("seed", config.seed);
    set("hidden_layers", config.hidden_sizes.length);
    LAYER_INPUTS.forEach((name, i) => {
      if (i < config.hidden_sizes.length) set(name, config.hidden_sizes[i]);
    });
    showLayerRows();
  }

  // Which fields apply live comes from the server (state.live_fields): one source of truth.
  function renderBadges(liveFields) {
    const live = new Set(liveFields);
    form.querySelectorAll(".badge[data-field]").forEach((badge) => {
      const isLive = live.has(badge.dataset.field);
      badge.classList.toggle("live", isLive);
      badge.classList.toggle("reset", !isLive);
      badge.textContent = isLive ? "live" : "resets";
      badge.title = isLive ? "Applies to the running network at once" : "Changing it builds a new model (fresh weights)";
    });
  }

  // A live field applies on change; a model field at idle applies too (new weights, nothing lost).
  form.addEventListener("change", async (event) => {
    if (event.target.name === "hidden_layers") showLayerRows();
    if (link) return; // the form is a proposal until the link is applied or dismissed
    const { config, status, step, live_fields: liveFields } = store.get().server;
    const changes = formToChanges(form);
    const changedModelFields = SETUP_FIELDS.filter((field) => !liveFields.includes(field)
      && field in changes && JSON.stringify(changes[field]) !== JSON.stringify(config[field]));
    if (changedModelFields.length && step > 0 && (status === "running" || status === "paused")) {
      notify("This field builds a new model: press “Reset with this setup” to apply it.", "info");
      return;
    }
    const answer = await send("config:update", changes);
    if (!answer.ok) fillForm(store.get().server.config); // show what is really in force
  });

  async function resetWithForm() {
    const answer = await send("train:reset", { config: formToChanges(form) });
    return answer;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await resetWithForm();
    if (answer.ok && link) settleLink();
  });

  // ---- the setup link -----------------------------------------------------------------------
  function settleLink() {
    link = null;
    banner.hidden = true;
    form.classList.remove("pending-link");
    const server = store.get().server;
    if (server) {
      fillForm(server.config);
      shareLink.value = writeSetupToUrl(server.config);
    }
  }

  function showBanner(text, { canApply }) {
    bannerText.textContent = text;
    applyLink.hidden = !canApply;
    banner.hidden = false;
  }

  // Called when the link has been read and on every state: decide what the link means now.
  async function checkLink(server) {
    if (!link || !server || link.applying || !(link.config || link.error)) return;
    if (link.error) {
      showBanner(`This link's setup cannot be used: ${link.error}. Nothing was changed.`, { canApply: false });
      dismissLink.textContent = "Keep the running setup";
      return;
    }
    if (sameSetup(link.config, server.config)) {
      settleLink();
      return;
    }
    if (server.status === "idle" && server.step === 0 && !link.autoTried) {
      // Nothing has been trained yet: applying loses nothing, so the link just applies.
      link.autoTried = true;
      link.applying = true;
      const answer = await send("train:reset", { config: setupOf(link.config) });
      link.applying = false;
      if (answer.ok) {
        notify("Applied this link's setup (the shared run was idle, so nothing was lost).", "info");
        settleLink();
        return;
      }
    }
    form.classList.add("pending-link");
    fillForm(link.config);
    shareLink.value = window.location.href; // the link itself, until it is settled
    showBanner(`This link's setup differs from the running one (${describeDifferences(server.config, link.config)}). `
      + "Applying it resets the shared run: everyone watching sees fresh weights and the new setup.", { canApply: true });
  }

  applyLink.addEventListener("click", async () => {
    const answer = await resetWithForm(); // the form shows the link's setup (maybe edited)
    if (answer.ok) {
      notify("Applied this link's setup: the shared run was reset.", "info");
      settleLink();
    }
  });
  dismissLink.addEventListener("click", () => settleLink());

  // A link with a setup in it: read it (on the server) once connected, then settle it.
  if (hasSetupKeys(window.location.search)) {
    link = { reading: true };
    const search = window.location.search;
    const unsubscribe = store.subscribe(async (state) => {
      if (!state.server || !link || !link.reading || link.asked) return;
      link.asked = true;
      unsubscribe();
      link = await readLink(search, request);
      checkLink(store.get().server);
    });
  }

  copyLink.addEventListener("click", async () => {
    shareLink.select();
    try {
      await navigator.clipboard.writeText(shareLink.value);
      notify("Link copied: whoever opens it gets this setup.", "info");
    } catch {
      notify("Select the link and copy it (the browser did not allow copying here).", "info");
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea, button") || event.ctrlKey || event.metaKey || event.altKey) return;
    const status = store.get().server?.status;
    const key = event.key.toLowerCase();
    if (key === " ") { event.preventDefault(); (status === "running" ? actions.pause : actions.start)(); }
    else if (key === "s") actions.step();
    else if (key === "r") actions.reset();
  });

  return {
    render(server) {
      const { status } = server;
      buttons.start.disabled = status === "running";
      buttons.start.textContent = status === "paused" ? "▶ Resume" : status === "done" ? "▶ New run" : "▶ Start";
      buttons.pause.disabled = status !== "running";
      buttons.step.disabled = status === "done";
      renderBadges(server.live_fields || []);
      if (document.activeElement !== speed) {
        speed.value = String(speedIndex(server.config.steps_per_second));
        speedValue.textContent = speedLabel(server.config.steps_per_second);
      }
      if (link) {
        if (link.config) fillForm(link.config);
        checkLink(server);
      } else {
        fillForm(server.config);
        shareLink.value = writeSetupToUrl(server.config);
      }
    },
  };
}
