// The run replayed: moving the scrubber back asks the server for the weights kept nearest to
// that step (replay:frame) and puts them in the store (`replay`); the tiles, the output weights,
// the distributions and the curves' marker draw from it instead of the live frames, and the
// prediction of the drawing is made by that step's weights (replay:predict). "Live" returns.
import { createScrubberView } from "./replay/scrubber-view.js";
import { latestOnly } from "../lib/latest.js";

export default function initReplay({ store, request, notify, $ }) {
  let wanted = null; // the step the slider points at (null: live)
  const view = createScrubberView($("replay-box"), {
    onScrub: (step) => { wanted = step; load(); },
    onLive: () => { wanted = null; store.set({ replay: null }); },
  });

  const load = latestOnly(async () => {
    if (wanted == null) return;
    const step = wanted;
    try {
      const answer = await request("replay:frame", { step });
      if (wanted == null) return;
      if (!answer.ok) { view.showError(answer.error); return; }
      store.set({ replay: { frame: answer.frame, answer: null } });
    } catch (err) {
      notify(err.message, "connection");
    }
  });

  const predict = latestOnly(async () => {
    const { replay, answer } = store.get();
    if (!replay || !answer) return;
    const frame = replay.frame;
    const pixels = answer.input.map((v) => Math.min(1, Math.max(0, v)));
    const said = await request("replay:predict", { step: frame.step, pixels }).catch(() => null);
    const now = store.get().replay;
    if (said?.ok && now && now.frame === frame) store.set({ replay: { ...now, answer: { ...said, input: answer.input } } });
  });

  store.subscribe((state, patch) => {
    if ("server" in patch && state.server) view.setLiveStep(state.server.step, Boolean(state.replay));
    if ("server" in patch && state.server && !state.replay) view.showLive(state.server.step);
    if ("replay" in patch) {
      if (state.replay) { view.showReplay(state.replay.frame); if (!state.replay.answer) predict(); }
      else if (state.server) { view.showLive(state.server.step); view.setLiveStep(state.server.step, false); }
    }
    if ("answer" in patch && state.replay) predict();
    // A new run: the replay of the old one is gone.
    if ("server" in patch && state.replay && state.server && state.server.run_id !== state.replay.frame.run_id) {
      wanted = null;
      store.set({ replay: null });
    }
  });
}
