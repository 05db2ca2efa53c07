// The guided lesson "what exactly is self.hidden?": each step asks first, and only once the
// learner has committed shows the answer, computed by the server from the live network or a
// real run (lesson:reveal), beside what the learner said. Until then the views that hold the
// answer are veiled (lesson/veil.js), on a class poll's screens too; with the answer the page
// points at the view where it can be seen. The panel docks beside the page (a bottom sheet on a
// phone) so that it never covers what it points at or asks for. Progress is kept in this
// browser; ?lesson=N opens step N.
import { createStepView } from "./lesson/step-view.js";
import { createSummaryView } from "./lesson/summary-view.js";
import { createVeil } from "./lesson/veil.js";
import { agrees, linkedStep, loadProgress, saveProgress, writeStepToUrl } from "./lesson/progress.js";
import { createPolls } from "./lesson/polls.js";
import { STATUS } from "../lib/status.js";

const PHONE = window.matchMedia("(max-width: 760px)");
const USER_SCROLLS = ["wheel", "touchmove", "keydown"];

export default function initLesson(context) {
  const { store, request, $ } = context;
  const panel = $("lesson");
  const toggle = $("lesson-toggle");
  const part = (role) => panel.querySelector(`[data-role="${role}"]`);
  const buttons = { train: $("lesson-train"), askAgain: $("lesson-ask-again"), answerAgain: $("lesson-answer-again"), more: $("lesson-more") };
  let steps = null; // the questions, as the server asks them for the network on screen
  let progress = loadProgress();
  const reveals = {}; // step key -> the network's answer shown now (asked again after a reload)
  let pointed = null;
  let folded = false; // the answer's longer part folded away (a phone's default)
  let asking = false; // a reveal on its way

  const view = createStepView(part("step"), {
    onChoose: (choice) => commit({ choice }),
    onNumber: (number, typed) => commit({ number, typed }),
  });
  const summary = createSummaryView(part("summary"), { onOpen: (n) => open(n) });
  const polls = createPolls(context, { currentStep: () => progress.current, steps: () => steps });
  const veil = createVeil((testid) => $(testid));

  const stepNamed = (key) => steps?.find((step) => step.key === key) ?? null;
  const onStep = () => !panel.hidden && !part("step").hidden;

  // ---- ask, then show -------------------------------------------------------------------------
  // The views holding an answer nobody has given yet: the open step's, and an open poll's.
  function updateVeils() {
    if (!steps) return;
    const hidden = new Set();
    let why = "";
    const poll = store.get().poll;
    if (poll && poll.status === "open") {
      for (const testid of stepNamed(poll.key)?.hides ?? []) hidden.add(testid);
      why = "Hidden while the class poll asks";
    }
    const step = steps[progress.current - 1];
    const revealedToTheClass = poll?.status === "revealed" && poll.key === step?.key;
    if (onStep() && step && !progress.answers[step.key] && !revealedToTheClass) {
      for (const testid of step.hides) hidden.add(testid);
      why = `Hidden until you answer step ${progress.current}`;
    }
    veil.show(hidden, why);
  }

  // Keeps `target` in sight: above the sheet on a phone, beside the docked panel on a wide screen.
  // Charts above it may still be drawing and move it: it is kept in sight while the page settles
  // (a second or so), unless the learner scrolls meanwhile.
  let settling = null;
  function bringIntoSight(target, { outline }) {
    if (pointed) pointed.classList.remove("lesson-pointed", "lesson-asks");
    settling?.disconnect();
    settling = null;
    pointed = target;
    if (!target) return;
    target.classList.add(outline ? "lesson-pointed" : "lesson-asks");
    scrollToSight(target);
    const observer = new ResizeObserver(() => scrollToSight(target));
    const stop = () => { observer.disconnect(); if (settling === handle) settling = null; for (const type of USER_SCROLLS) window.removeEventListener(type, stop); };
    const handle = { disconnect: stop };
    settling = handle;
    observer.observe(document.body);
    observer.observe(panel);
    for (const type of USER_SCROLLS) window.addEventListener(type, stop, { passive: true, once: true });
    setTimeout(stop, 1500);
  }
  function scrollToSight(target) {
    const rect = target.getBoundingClientRect();
    const top = topbarBottom();
    const bottom = PHONE.matches && !panel.hidden ? panel.getBoundingClientRect().top : window.innerHeight;
    const room = bottom - top - 16;
    // Centred in the free room when it fits; its top at the room's top when it does not.
    const delta = rect.height <= room ? rect.top - (top + 8 + (room - rect.height) / 2) : rect.top - (top + 8);
    window.scrollBy({ top: delta, behavior: "instant" });
  }
  function topbarBottom() {
    const bar = document.querySelector(".topbar");
    const rect = bar?.getBoundingClientRect();
    return rect && getComputedStyle(bar).position !== "static" && rect.bottom > 0 ? rect.bottom : 0;
  }

  function point(testid) { bringIntoSight(testid ? $(testid) : null, { outline: true }); }

  // ---- what the page shows ----------------------------------------------------------------------
  function training(step) {
    if (!step.needs_training) return null;
    const steps = store.get().server?.step ?? 0;
    return { steps, enough: steps >= step.needs_training };
  }

  function render({ waiting = false, error = "" } = {}) {
    if (!steps) return;
    const n = progress.current;
    const step = steps[n - 1];
    const record = progress.answers[step.key];
    const answer = record ? reveals[step.key] : null;
    panel.dataset.step = String(n);
    panel.dataset.state = answer ? "revealed" : "asking";
    view.show(step, n, steps.length, { given: record?.answer ?? null, reveal: answer, waiting, error });
    trainingShown = null;
    view.fold(folded && Boolean(answer));
    part("prev").disabled = n <= 1;
    part("next").textContent = n < steps.length ? "Next step →" : "Summary";
    renderTraining();
    buttons.answerAgain.hidden = !record;
    buttons.more.hidden = !answer || !PHONE.matches;
    buttons.more.setAttribute("aria-expanded", String(!folded));
    buttons.more.textContent = folded ? "How it was worked out ▾" : "Fold the details ▴";
    polls.render();
    updateVeils();
  }

  // What a step about training still needs, as the run trains (only these parts: re-rendering
  // the whole step would take the focus off a choice).
  let trainingShown = null;
  function renderTraining() {
    const step = steps[progress.current - 1];
    const needs = training(step);
    const answer = progress.answers[step.key] ? reveals[step.key] : null;
    const running = store.get().server?.status === STATUS.running;
    const key = JSON.stringify([progress.current, needs, running, Boolean(answer), answer?.judged]);
    if (key === trainingShown) return;
    trainingShown = key;
    view.showTraining(step, needs);
    buttons.train.hidden = !needs || needs.enough || running;
    buttons.askAgain.hidden = !answer || answer.judged !== false;
    buttons.askAgain.disabled = Boolean(needs && !needs.enough);
    buttons.askAgain.title = buttons.askAgain.disabled ? "Once the run has trained enough steps" : "";
  }

  function drawing() {
    const answer = store.get().answer;
    return answer ? answer.input.map((v) => Math.min(1, Math.max(0, v))) : null;
  }

  async function reveal(n) {
    const pixels = drawing();
    return request("lesson:reveal", { step: n, ...(pixels ? { pixels } : {}) }).catch((err) => ({ ok: false, error: err.message }));
  }

  function record(step, given, answer) {
    const judged = answer.judged !== false;
    progress.answers[step.key] = {
      answer: given, judged, agrees: judged ? agrees(given, answer) : null, said: answer.said,
      given: given.choice != null ? step.choices[given.choice] : (given.typed || String(given.number)),
      run_id: answer.run_id, weights_step: answer.weights_step,
    };
    saveProgress(progress);
  }

  // Ask the network for step n's answer and keep it with what the learner gave: the reveal, or
  // null when the lesson moved on meanwhile or the answer is refused (said in the panel).
  async function judge(n, step, given) {
    asking = true;
    render({ waiting: true });
    const answer = await reveal(n);
    asking = false;
    if (progress.current !== n) return null;
    if (!answer.ok) { render({ error: answer.error }); return null; }
    reveals[step.key] = answer.reveal;
    record(step, given, answer.reveal);
    return answer.reveal;
  }

  async function commit(given) {
    const n = progress.current;
    const step = steps[n - 1];
    if (progress.answers[step.key] || asking) return;
    const shown = await judge(n, step, given);
    if (!shown) return;
    folded = PHONE.matches;
    render();
    // The answer first (the focus, for a keyboard and a screen reader), then where it shows.
    if (shown.judged !== false) point(shown.view);
    else bringIntoSight($("train-start"), { outline: false });
    view.focusReveal();
  }

  // The same answer, judged again by the network as it is now (after training, say).
  async function askAgain() {
    const n = progress.current;
    const step = steps[n - 1];
    const given = progress.answers[step.key]?.answer;
    if (!given || asking) return;
    const shown = await judge(n, step, given);
    if (!shown) return;
    render();
    if (shown.judged !== false) point(shown.view);
    view.focusReveal();
  }

  function answerAgain() {
    const step = steps[progress.current - 1];
    delete progress.answers[step.key];
    delete reveals[step.key];
    saveProgress(progress);
    open(progress.current);
    const first = panel.querySelector('[data-testid="lesson-choice"]:not([disabled]), [data-testid="lesson-number"]:not([disabled])');
    first?.focus();
  }

  async function open(n) {
    if (!steps) return;
    showPanel(true);
    part("summary").hidden = true;
    part("step").hidden = false;
    progress.current = Math.min(Math.max(1, n), steps.length);
    saveProgress(progress);
    writeStepToUrl(progress.current);
    const step = steps[progress.current - 1];
    folded = PHONE.matches;
    render();
    const record = progress.answers[step.key];
    // Answered: point at where the answer shows. Not yet: only at what the step needs to be answered.
    if (record) point(step.view);
    else bringIntoSight(step.asks_for ? $(step.asks_for) : null, { outline: false });
    // Answered before (this page, or before a reload): the answer again, from the network now.
    if (record && !reveals[step.key]) {
      const answer = await reveal(progress.current);
      if (answer.ok && progress.current === n) {
        reveals[step.key] = answer.reveal;
        record.said = answer.reveal.said;
        render();
      }
    }
  }

  // The summary shows the newest answers: each answered step asked again, one after another
  // (a reveal may train; the server takes a few a second).
  async function showSummary() {
    part("step").hidden = true;
    part("summary").hidden = false;
    point(null);
    updateVeils();
    summary.show(steps, progress.answers);
    for (const [index, step] of steps.entries()) {
      const given = progress.answers[step.key]?.answer;
      if (!given || step.key === "learning-rate") continue; // its two trial runs do not follow the live weights
      const answer = await reveal(index + 1);
      if (part("summary").hidden) return;
      if (!answer.ok) continue;
      reveals[step.key] = answer.reveal;
      record(step, given, answer.reveal);
      summary.show(steps, progress.answers);
    }
  }

  function showPanel(shown) {
    panel.hidden = !shown;
    document.body.classList.toggle("lesson-open", shown);
    toggle.setAttribute("aria-expanded", String(shown));
    if (!shown) { point(null); writeStepToUrl(null); }
    updateVeils();
  }

  function close() { showPanel(false); toggle.focus(); }

  // After Next or Back, the focus goes where the step wants the learner: the first way to answer
  // it, or its answer when it was answered before.
  async function go(n) {
    await open(n);
    const answered = Boolean(progress.answers[steps[progress.current - 1].key]);
    const target = answered ? panel.querySelector('[data-testid="lesson-reveal"]:not([hidden])')
      : panel.querySelector('[data-testid="lesson-choice"]:not([disabled]), [data-testid="lesson-number"]:not([disabled])');
    target?.focus({ preventScroll: true });
  }
  part("prev").addEventListener("click", () => go(progress.current - 1));
  part("next").addEventListener("click", () => {
    if (progress.current < steps.length) go(progress.current + 1);
    else { showSummary(); part("summary").querySelector("h3")?.setAttribute("tabindex", "-1"); part("summary").querySelector("h3")?.focus(); }
  });
  part("close").addEventListener("click", close);
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(); }
  });
  part("restart").addEventListener("click", () => {
    progress = { current: 1, answers: {} };
    for (const key of Object.keys(reveals)) delete reveals[key];
    saveProgress(progress);
    open(1);
  });
  buttons.train.addEventListener("click", () => {
    const start = $("train-start");
    if (start.disabled) {
      render({ error: "This page cannot start this run (it is someone else's, or it is running already): "
        + "press “Train my own copy” to train one of your own." });
      return;
    }
    start.click(); // exactly what pressing ▶ Start does, with its checks and notices
    bringIntoSight(start, { outline: false });
  });
  buttons.askAgain.addEventListener("click", askAgain);
  buttons.answerAgain.addEventListener("click", answerAgain);
  buttons.more.addEventListener("click", () => { folded = !folded; render(); });
  toggle.addEventListener("click", () => (panel.hidden ? open(progress.current) : close()));

  // The questions follow the network on screen (a 100-unit layer asks about (100, 784)).
  let askedFor = null;
  async function loadSteps() {
    const answer = await request("lesson:steps").catch(() => null);
    if (!answer?.ok) return;
    const first = steps == null;
    steps = answer.steps;
    toggle.hidden = false;
    const linked = linkedStep(window.location.search, steps.length);
    if (first && linked != null) open(linked);
    else if (!panel.hidden) render();
    else updateVeils();
  }
  let lastPoll = null;
  store.subscribe((state, patch) => {
    if ("poll" in patch) {
      // A poll's answer revealed: every screen points at where it shows.
      const poll = state.poll;
      if (poll?.status === "revealed" && lastPoll?.status === "open" && poll.id === lastPoll.id) point(poll.view);
      lastPoll = poll;
      updateVeils();
    }
    if ("server" in patch && steps && onStep() && steps[progress.current - 1].needs_training) renderTraining();
    if ("connection" in patch && state.connection !== "connected") askedFor = null;
    if (!("connection" in patch || "server" in patch) || state.connection !== "connected" || !state.server) return;
    const { config } = state.server;
    const key = JSON.stringify([config.hidden_sizes, config.activation, config.lr, config.optimizer]);
    if (key !== askedFor) { askedFor = key; loadSteps(); }
  });
}
