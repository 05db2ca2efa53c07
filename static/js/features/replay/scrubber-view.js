// The replay's scrubber: a slider over the run's steps so far, the step shown, and "Live". A
// view: it shows what it is given and reports where the slider was moved.
export function createScrubberView(root, { onScrub, onLive }) {
  const slider = root.querySelector('[data-testid="replay"]');
  const readout = root.querySelector('[data-testid="replay-step"]');
  const live = root.querySelector('[data-testid="replay-live"]');
  slider.addEventListener("input", () => onScrub(Number(slider.value)));
  live.addEventListener("click", () => onLive());
  return {
    // The slider's range follows the live run while nobody replays.
    setLiveStep(step, replaying) {
      slider.max = String(Math.max(0, step));
      if (!replaying) slider.value = slider.max;
    },
    showLive(step) {
      root.dataset.mode = "live";
      readout.textContent = `Live: step ${step}`;
      live.disabled = true;
      slider.setAttribute("aria-valuetext", `live, step ${step}`);
    },
    showReplay(frame) {
      root.dataset.mode = "replay";
      root.dataset.step = String(frame.step);
      const curve = frame.curve ? `, loss ${frame.curve.loss.toFixed(3)}, accuracy ${(100 * frame.curve.accuracy).toFixed(1)}%` : "";
      readout.textContent = `Replay: the weights at step ${frame.step} of ${frame.live_step}${curve}`
        + ` (${frame.steps.length} points of the run are kept, spread evenly over it)`;
      live.disabled = false;
      slider.setAttribute("aria-valuetext", `step ${frame.step}`);
    },
    showError(words) { readout.textContent = words; },
  };
}
