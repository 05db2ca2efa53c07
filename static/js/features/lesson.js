// The guided lesson "what exactly is self.hidden?": each step asks first, and only once the
// learner has committed shows the answer, computed by the server from the live network or a
// real run (lesson:reveal), beside what the learner said; the page then points at the view
// where it can be seen. Progress is kept in this browser; ?lesson=N opens step N.
import { createStepView } from "./lesson/step-view.js";
import { createSummaryView } from "./lesson/summary-view.js";
import { agrees, linkedStep, loadProgress, saveProgress, writeStepToUrl } from "./lesson/progress.js";
import { createPolls } from "./lesson/polls.js";

export default function initLesson(context) {
  const { store, request, $ } = context;
  const panel = $("lesson");
  const toggle = $("lesson-toggle");
  const part = (role) => panel.querySelector(`[data-role="${role}"]`);
  let steps = null; // the questions, as the server asks them for the network on screen
  let progress = loadProgress();
  const reveals = {}; // step key -> the network's answer shown now (asked again after a reload)
  let pointed = null;

  const view = createStepView(part("step"), { onChoose: (choice) => commit({ choice }), onNumber: (number) => commit({ number }) });
  const summary = createSummaryView(part("summary"), { onOpen: (n) => open(n) });
  const polls = createPolls(context, { currentStep: () => progress.current, steps: () => steps });

  function point(testid) {
    if (pointed) pointed.classList.remove("lesson-pointed");
    pointed = testid ? $(testid) : null;
    if (!pointed) return;
    pointed.classList.add("lesson-pointed");
    pointed.scrollIntoView({ block: "center", behavior: "instant" });
  }

  function render({ waiting = false, error = "" } = {}) {
    if (!steps) return;
    const n = progress.current;
    const step = steps[n - 1];
    const record = progress.answers[step.key];
    panel.dataset.step = String(n);
    view.show(step, n, steps.length, { given: record?.answer ?? null, reveal: record ? reveals[step.key] : null, waiting, error });
    part("prev").disabled = n <= 1;
    part("next").textContent = n < steps.length ? "Next step →" : "Summary";
    polls.render();
  }

  function drawing() {
    const answer = store.get().answer;
    return answer ? answer.input.map((v) => Math.min(1, Math.max(0, v))) : null;
  }

  async function reveal(n, step) {
    const pixels = drawing();
    const answer = await request("lesson:reveal", { step: n, ...(pixels ? { pixels } : {}) }).catch((err) => ({ ok: false, error: err.message }));
    return answer;
  }

  async function commit(given) {
    const n = progress.current;
    const step = steps[n - 1];
    if (progress.answers[step.key]) return;
    render({ waiting: true });
    const answer = await reveal(n, step);
    if (progress.current !== n) return;
    if (!answer.ok) { render({ error: answer.error }); return; }
    reveals[step.key] = answer.reveal;
    progress.answers[step.key] = {
      answer: given, agrees: agrees(given, answer.reveal), said: answer.reveal.said,
      given: given.choice != null ? step.choices[given.choice] : String(given.number),
    };
    saveProgress(progress);
    render();
    point(answer.reveal.view);
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
    render();
    point(step.view);
    // Answered before (this page, or before a reload): the answer again, from the network now.
    if (progress.answers[step.key] && !reveals[step.key]) {
      const answer = await reveal(progress.current, step);
      if (answer.ok && progress.current === n) { reveals[step.key] = answer.reveal; render(); }
    }
  }

  function showSummary() {
    part("step").hidden = true;
    part("summary").hidden = false;
    summary.show(steps, progress.answers);
    point(null);
  }

  function showPanel(shown) {
    panel.hidden = !shown;
    toggle.setAttribute("aria-expanded", String(shown));
    if (!shown) { point(null); writeStepToUrl(null); }
  }

  part("prev").addEventListener("click", () => open(progress.current - 1));
  part("next").addEventListener("click", () => (progress.current < steps.length ? open(progress.current + 1) : showSummary()));
  part("close").addEventListener("click", () => { showPanel(false); toggle.focus(); });
  part("restart").addEventListener("click", () => {
    progress = { current: 1, answers: {} };
    for (const key of Object.keys(reveals)) delete reveals[key];
    saveProgress(progress);
    open(1);
  });
  toggle.addEventListener("click", () => (panel.hidden ? open(progress.current) : showPanel(false)));

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
  }
  store.subscribe((state, patch) => {
    if ("connection" in patch && state.connection !== "connected") askedFor = null;
    if (!("connection" in patch || "server" in patch) || state.connection !== "connected" || !state.server) return;
    const { config } = state.server;
    const key = JSON.stringify([config.hidden_sizes, config.activation, config.lr, config.optimizer]);
    if (key !== askedFor) { askedFor = key; loadSteps(); }
  });
}
