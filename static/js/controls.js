// Training controls: buttons, speed, the setup form (and its link), keyboard shortcuts.
// Reads state, sends requests. No key press throws a run away: Space never starts over a
// finished run, R asks for a second press, and every reset says where the old run went (the
// Runs list) with a button to restore it.
import {
  SETUP_FIELDS, describeDifferences, hasSetupKeys, readLink, sameSetup, setupOf, writeSetupToUrl,
} from "./urlstate.js";
import { SHARED, addressWithRun } from "./lib/viewer.js";
import { runControl } from "./lib/run-control.js";
import { STATUS } from "./lib/status.js";

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

const CONFIRM_MS = 4000; // a second R within this confirms the reset

export function createControls(root, { store, request, ask, notice }) {
  const notify = (text, kind) => notice.show(text, kind);
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
  const setupError = form.querySelector("[data-testid=setup-error]");
  const statusWord = root.querySelector("[data-testid=status]");
  const setupInputs = [...form.elements].filter((field) => field.name);
  for (const button of Object.values(buttons)) button.dataset.title = button.title; // the key hints, for after read-only
  // The address keeps the setup (and the run's ?run=); the setup link to send is the setup only.
  const setupLink = (config) => addressWithRun(SHARED, writeSetupToUrl(config));

  // A setup link that was opened and is not settled yet: {config} or {error}. While it is
  // pending the form shows the link's setup, not the server's, and the address keeps the link.
  let link = null;

  const send = ask;
  // Someone else's run, watched through its link, or the shared run for a viewer who may only
  // watch it: nothing here may control it (the server refuses too; the page does not even ask).
  const readOnly = () => !runControl(store.get()).allowed;
  const thisRun = () => (store.get().run.key === SHARED ? "the shared run" : "this run");

  // A reset, then where the old run went: the Runs list keeps it with its last weights.
  async function resetRun(payload) {
    const answer = await send("train:reset", payload);
    // The server says which recorded run this reset put away (this page's run, private or
    // shared): the notice names it and Restore brings it back into the same run.
    const previous = answer.ok ? answer.put_away ?? null : null;
    if (previous != null) {
      notice.show(`Reset: a fresh run. The previous one is run #${previous} in Runs, with its weights.`, "info", {
        actions: [{ label: `Restore run #${previous}`, testid: "notice-restore", run: () => restore(previous) }],
        seconds: 20 });
    }
    return answer;
  }
  async function restore(id) {
    const answer = await send("runs:restore", { id });
    if (answer.ok) notify(answer.message, "info");
  }

  const actions = {
    start: () => send("train:start"),
    pause: () => send("train:pause"),
    step: () => send("train:step", { batches: 1 }),
    reset: () => resetRun(),
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
  form.addEventListener("change", (event) => applyForm(event.target));
  async function applyForm(field) {
    if (field.name === "hidden_layers") showLayerRows();
    if (link) return; // the form is a proposal until the link is applied or dismissed
    const { config, status, step, live_fields: liveFields } = store.get().server;
    const changes = formToChanges(form);
    const changedModelFields = SETUP_FIELDS.filter((field) => !liveFields.includes(field)
      && field in changes && JSON.stringify(changes[field]) !== JSON.stringify(config[field]));
    if (changedModelFields.length && step > 0 && (status === STATUS.running || status === STATUS.paused)) {
      notify("This field builds a new model: press “Reset with this setup” to apply it.", "info");
      return;
    }
    const answer = await send("config:update", changes);
    showSetupError(answer);
    if (!answer.ok) fillForm(store.get().server.config); // show what is really in force
  }

  // Enter in a field applies that field as a change does (live, or said why not): it never
  // submits the form, whose submit is “Reset with this setup” and throws the run away. Only
  // the button itself resets.
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.target.tagName !== "INPUT" || !event.target.name) return;
    event.preventDefault();
    applyForm(event.target);
  });

  // A refusal of the form is said beside the form too (the person is looking at it).
  function showSetupError(answer) {
    setupError.textContent = answer.ok ? "" : `Not applied: ${answer.error}`;
    setupError.hidden = answer.ok;
  }

  async function resetWithForm() {
    const answer = await resetRun({ config: formToChanges(form) });
    showSetupError(answer);
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
      shareLink.value = setupLink(server.config);
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
      // The refused link leaves the address at once: reloading or sharing it would only fail again.
      shareLink.value = setupLink(server.config);
      showBanner(`This link's setup cannot be used: ${link.error}. Nothing was changed; the address now holds the running setup.`,
        { canApply: false });
      dismissLink.textContent = "OK";
      return;
    }
    if (sameSetup(link.config, server.config)) {
      settleLink();
      return;
    }
    if (server.status === STATUS.idle && server.step === 0 && !server.weights_origin && !link.autoTried) {
      // Nothing has been trained or loaded yet: applying loses nothing, so the link just applies.
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
    const lost = server.step > 0 ? "" : server.weights_origin
      ? ` The shared run starts from loaded weights (${server.weights_origin}): applying the link replaces them.` : "";
    showBanner(`This link's setup differs from the running one (${describeDifferences(server.config, link.config)}). `
      + `Applying it resets the shared run: everyone watching sees fresh weights and the new setup.${lost}`, { canApply: true });
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

  let resetArmedUntil = 0;
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea, button, [role=application], [role=button]")
        || event.ctrlKey || event.metaKey || event.altKey) return;
    const { server, connection } = store.get();
    const key = event.key.toLowerCase();
    if (![" ", "s", "r"].includes(key)) return;
    if (key === " ") event.preventDefault();
    if (!server || connection !== "connected") { notify("Not connected to the server: the keys work again once the badge says connected.", "connection"); return; }
    if (readOnly()) { notify(`The keys do nothing here: ${runControl(store.get()).reason}`, "info"); return; }
    if (key === " ") {
      if (server.status === STATUS.running) actions.pause();
      else if (server.status === STATUS.done) {
        notify("This run is finished, so Space does nothing: press ▶ New run to start another (this one stays in Runs).", "info");
      } else actions.start();
    } else if (key === "s") actions.step();
    else if (key === "r") {
      const losesSomething = server.step > 0 || Boolean(server.weights_origin);
      if (losesSomething && performance.now() > resetArmedUntil) {
        resetArmedUntil = performance.now() + CONFIRM_MS;
        notice.show(`Press R again to reset ${thisRun()}: new weights, the curves start over `
          + "(this run stays in Runs with its weights).", "info", { seconds: CONFIRM_MS / 1000 });
        return;
      }
      resetArmedUntil = 0;
      actions.reset();
    }
  });

  return {
    // What the page shows while the server cannot be reached: nothing can be pressed, and the
    // status says so instead of the last thing the server said.
    renderOffline(server) {
      for (const button of Object.values(buttons)) button.disabled = true;
      form.querySelector("[data-testid=apply-setup]").disabled = true;
      statusWord.textContent = "not connected";
      statusWord.title = server ? `last known: ${server.status}` : "";
    },
    render(server) {
      const { status } = server;
      const watching = readOnly();
      statusWord.title = "";
      form.querySelector("[data-testid=apply-setup]").disabled = watching;
      const queued = server.queue_position != null; // started already: waiting in line for a place
      buttons.start.disabled = watching || queued || status === STATUS.running;
      buttons.start.textContent = status === STATUS.paused ? "▶ Resume" : status === STATUS.done ? "▶ New run" : "▶ Start";
      buttons.pause.disabled = watching || status !== STATUS.running;
      buttons.step.disabled = watching || status === STATUS.done;
      buttons.reset.disabled = watching;
      const { reason } = runControl(store.get());
      for (const button of Object.values(buttons)) button.title = watching ? reason : button.dataset.title;
      if (queued && !watching) buttons.start.title = "Started: it trains as soon as a place is free";
      speed.disabled = watching;
      form.dataset.readOnly = String(watching);
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
        shareLink.value = setupLink(server.config);
      }
      // After fillForm (which enables the layer rows it shows): the setup of someone's run is
      // shown, not offered.
      if (watching) for (const field of setupInputs) field.disabled = true;
      else for (const field of setupInputs) if (!field.closest(".layer-size")) field.disabled = false;
    },
  };
}
